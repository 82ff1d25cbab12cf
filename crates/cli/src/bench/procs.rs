//! CPU time and resident memory of the processes a run involves, read from `/proc`: the
//! Tongban processes (`tongban`, `tongban-<service>`), PostgreSQL (every backend, summed) and
//! RabbitMQ (`beam.smp`). A sampler reads them every ~200 ms; CPU is the change of
//! utime + stime over the run, memory the largest VmRSS seen.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
    time::Duration,
};

use super::report::ProcessUse;

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    pub pid: u32,
    pub comm: String,
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum StatError {
    #[error("/proc stat line: no `(comm)` field")]
    NoComm,
    #[error("/proc stat line: field {0} is missing or not a number")]
    Field(&'static str),
}

/// Parses one `/proc/<pid>/stat` line. The command name sits in parentheses and may itself
/// hold spaces and parentheses, so the fields after it are counted from the last `)`.
pub(crate) fn parse_stat(line: &str) -> Result<Stat, StatError> {
    let open = line.find('(').ok_or(StatError::NoComm)?;
    let close = line.rfind(')').ok_or(StatError::NoComm)?;
    if close < open {
        return Err(StatError::NoComm);
    }
    let pid = line[..open]
        .trim()
        .parse()
        .map_err(|_| StatError::Field("pid"))?;
    let comm = line[open + 1..close].to_string();
    // After the comm: state (field 3), ppid (4), ..., utime (14), stime (15).
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    let num = |idx: usize, name: &'static str| -> Result<u64, StatError> {
        rest.get(idx)
            .and_then(|v| v.parse().ok())
            .ok_or(StatError::Field(name))
    };
    let ppid = u32::try_from(num(1, "ppid")?).map_err(|_| StatError::Field("ppid"))?;
    Ok(Stat {
        pid,
        comm,
        ppid,
        cpu_ticks: num(11, "utime")? + num(12, "stime")?,
    })
}

/// VmRSS of a `/proc/<pid>/status` text, in KiB (None for kernel threads, which have none).
pub(crate) fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The name a process is reported under, or None when the bench does not watch it. The
/// kernel cuts comm to 15 bytes ("tongban-notific"); PostgreSQL backends all count as one.
pub(crate) fn group_of(comm: &str) -> Option<&'static str> {
    match comm {
        "postgres" => Some("postgres"),
        "beam.smp" => Some("rabbitmq (beam.smp)"),
        c if c == "tongban" || c.starts_with("tongban-") => Some("tongban"),
        _ => None,
    }
}

/// Clock ticks per second (USER_HZ) for the stat's CPU times; Linux's usual 100 when the
/// system will not say.
pub(crate) fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

#[derive(Debug, Default)]
struct Seen {
    /// The name it is reported under.
    key: String,
    first_ticks: u64,
    last_ticks: u64,
    /// Whether the process existed at the first sample (else it started during the run and
    /// all its CPU time is the run's).
    at_start: bool,
}

/// Samples `/proc` and keeps, per pid, the CPU ticks at first and last sight, and per group
/// the largest summed RSS.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    seen: HashMap<u32, Seen>,
    peak_rss_kib: BTreeMap<String, u64>,
    samples: usize,
    /// Only these Tongban processes (and their children): a spawned `tongban dev`, the
    /// processes of `tongban local`; None = every one.
    only_tongban: Option<HashSet<u32>>,
}

impl Sampler {
    pub(crate) fn new(only_tongban: Option<HashSet<u32>>) -> Self {
        Self {
            only_tongban,
            ..Self::default()
        }
    }

    /// The group name for a process, counting each Tongban process apart.
    fn key(&self, st: &Stat) -> Option<String> {
        match group_of(&st.comm)? {
            "tongban" => {
                if let Some(only) = &self.only_tongban
                    && !only.contains(&st.pid)
                    && !only.contains(&st.ppid)
                {
                    return None;
                }
                Some(format!("{} [{}]", st.comm, st.pid))
            }
            g => Some(g.to_string()),
        }
    }

    /// Reads every process once.
    pub(crate) fn sample(&mut self, proc_dir: &Path) {
        let Ok(entries) = std::fs::read_dir(proc_dir) else {
            return;
        };
        let first = self.samples == 0;
        let mut rss: BTreeMap<String, u64> = BTreeMap::new();
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            // Processes come and go between listing and reading: skip what vanished.
            let Ok(line) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            let Ok(st) = parse_stat(&line) else { continue };
            let Some(key) = self.key(&st) else { continue };
            let kib = std::fs::read_to_string(e.path().join("status"))
                .ok()
                .and_then(|s| parse_vm_rss_kib(&s))
                .unwrap_or(0);
            *rss.entry(key.clone()).or_default() += kib;
            let seen = self.seen.entry(pid).or_insert_with(|| Seen {
                key,
                first_ticks: st.cpu_ticks,
                last_ticks: st.cpu_ticks,
                at_start: first,
            });
            seen.last_ticks = st.cpu_ticks;
        }
        for (k, v) in rss {
            let peak = self.peak_rss_kib.entry(k).or_default();
            *peak = (*peak).max(v);
        }
        self.samples += 1;
    }

    /// CPU seconds and peak RSS per group, busiest first.
    pub(crate) fn usage(&self) -> Vec<ProcessUse> {
        let hz = clock_ticks();
        let mut out: BTreeMap<String, ProcessUse> = BTreeMap::new();
        for (pid, s) in &self.seen {
            let key = s.key.clone();
            let ticks = if s.at_start {
                s.last_ticks.saturating_sub(s.first_ticks)
            } else {
                s.last_ticks
            };
            let e = out.entry(key.clone()).or_insert_with(|| ProcessUse {
                name: key.clone(),
                pids: Vec::new(),
                cpu_seconds: 0.0,
                peak_rss_mib: self.peak_rss_kib.get(&key).copied().unwrap_or(0) as f64 / 1024.0,
            });
            e.pids.push(*pid);
            e.cpu_seconds += ticks as f64 / hz;
        }
        let mut v: Vec<ProcessUse> = out.into_values().collect();
        for p in &mut v {
            p.pids.sort_unstable();
        }
        v.sort_by(|a, b| b.cpu_seconds.total_cmp(&a.cpu_seconds));
        v
    }
}

/// The Tongban processes holding a file under `dir` open: the `tongban dev` whose data dir
/// it is, among whatever other stacks run on the machine.
pub(crate) fn holding(proc_dir: &Path, dir: &Path) -> HashSet<u32> {
    let Ok(dir) = dir.canonicalize() else {
        return HashSet::new();
    };
    let Ok(entries) = std::fs::read_dir(proc_dir) else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let st = parse_stat(&std::fs::read_to_string(e.path().join("stat")).ok()?).ok()?;
            group_of(&st.comm).filter(|g| *g == "tongban")?;
            std::fs::read_dir(e.path().join("fd"))
                .ok()?
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|target| target.starts_with(&dir))
                .then_some(pid)
        })
        .collect()
}

/// Samples every `every` on a thread of its own until `stop` is set, then returns the
/// sampler (reading /proc is blocking file I/O; it stays off the runtime's workers).
pub(crate) fn sample_until(
    mut sampler: Sampler,
    every: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Sampler> {
    std::thread::spawn(move || {
        let proc_dir = Path::new("/proc");
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            sampler.sample(proc_dir);
            std::thread::sleep(every);
        }
        sampler.sample(proc_dir);
        sampler
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line of this machine: a PostgreSQL backend.
    const POSTGRES: &str = "2221 (postgres) S 1 2221 2221 0 -1 4194304 51837 4412593 1 67 15 188 4307 3453 20 0 1 0 3247 222543872 6834 18446744073709551615 94486245044224 94486250500569 140727285592720 0 0 0 0 24129536 84487 1 0 0 17 1 0 0 0 0 0 94486252980304 94486253198026 94487146270720 140727285595806 140727285595928 140727285595928 140727285596116 0";

    #[test]
    fn parses_a_real_stat_line() {
        let st = parse_stat(POSTGRES).expect("parses");
        assert_eq!(st.pid, 2221);
        assert_eq!(st.comm, "postgres");
        assert_eq!(st.ppid, 1);
        // utime 15 + stime 188 (the children's 4307 + 3453 are not ours).
        assert_eq!(st.cpu_ticks, 15 + 188);
    }

    #[test]
    fn a_comm_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let line = "42 (a (b) c) R 7 42 42 0 -1 0 0 0 0 0 100 5 0 0 20 0 1 0 9 0 0";
        let st = parse_stat(line).expect("parses");
        assert_eq!(st.comm, "a (b) c");
        assert_eq!((st.ppid, st.cpu_ticks), (7, 105));
        assert_eq!(parse_stat("42 no comm"), Err(StatError::NoComm));
        assert_eq!(parse_stat("42 (x) R 1"), Err(StatError::Field("utime")));
    }

    #[test]
    fn parses_this_process_live() {
        let pid = std::process::id();
        let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("own stat");
        let st = parse_stat(&line).expect("parses");
        assert_eq!(st.pid, pid);
        let ppid = std::os::unix::process::parent_id();
        assert_eq!(st.ppid, ppid);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        assert!(parse_vm_rss_kib(&status).is_some_and(|k| k > 0));
        assert!(clock_ticks() > 0.0);
    }

    #[test]
    fn finds_the_process_holding_a_directory_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _open = std::fs::File::create(dir.path().join("x.db")).expect("file");
        let procs = tempfile::tempdir().expect("tempdir");
        // A fake /proc: one `tongban` holding the file, one `bash` holding it too, one
        // `tongban` holding nothing of it.
        let fake = |pid: u32, comm: &str, target: &Path| {
            let p = procs.path().join(pid.to_string());
            std::fs::create_dir_all(p.join("fd")).expect("mkdir");
            std::fs::write(
                p.join("stat"),
                format!("{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 9 0 0"),
            )
            .expect("stat");
            std::os::unix::fs::symlink(target, p.join("fd/3")).expect("symlink");
        };
        fake(10, "tongban", &dir.path().join("x.db"));
        fake(11, "bash", &dir.path().join("x.db"));
        fake(12, "tongban", Path::new("/dev/null"));
        assert_eq!(holding(procs.path(), dir.path()), HashSet::from([10]));
    }

    #[test]
    fn groups_the_processes_it_watches() {
        assert_eq!(group_of("tongban"), Some("tongban"));
        assert_eq!(group_of("tongban-notific"), Some("tongban"));
        assert_eq!(group_of("postgres"), Some("postgres"));
        assert_eq!(group_of("beam.smp"), Some("rabbitmq (beam.smp)"));
        assert_eq!(group_of("bash"), None);
        assert_eq!(
            parse_vm_rss_kib("Name:\tx\nVmRSS:\t  1234 kB\n"),
            Some(1234)
        );
        assert_eq!(parse_vm_rss_kib("Name:\tkthreadd\n"), None);
    }
}
