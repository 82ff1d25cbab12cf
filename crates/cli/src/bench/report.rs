//! The bench's numbers and how they are shown: percentiles, open-loop pacing, and the report
//! rendered as a table or as JSON (the same figures in both).

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;

/// p50/p90/p99/max of one latency, in milliseconds; `None` fields when nothing was measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Spread {
    pub count: usize,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// The `q`-quantile (0 < q ≤ 1) of sorted samples by the nearest-rank method: the smallest
/// sample with at least `q` of all samples at or below it.
pub(crate) fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The spread of `samples` (milliseconds, any order; NaNs are dropped).
pub(crate) fn spread(samples: &[f64]) -> Spread {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    Spread {
        count: sorted.len(),
        p50: nearest_rank(&sorted, 0.50),
        p90: nearest_rank(&sorted, 0.90),
        p99: nearest_rank(&sorted, 0.99),
        max: sorted.last().copied(),
    }
}

/// When, after the start of an open-loop run at `rate` applications/s, application `i`
/// (0-based) is due: evenly spaced, so a slow server does not slow the offered load down.
pub(crate) fn due_after(i: usize, rate: f64) -> Duration {
    if rate <= 0.0 || !rate.is_finite() {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(i as f64 / rate)
}

/// CPU and memory of one process (or, for PostgreSQL and RabbitMQ, of all processes of that
/// name) over the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ProcessUse {
    pub name: String,
    pub pids: Vec<u32>,
    pub cpu_seconds: f64,
    /// The largest VmRSS seen (summed over the pids at each sample, so memory the processes
    /// share counts once per process), in MiB.
    pub peak_rss_mib: f64,
}

/// How the load was offered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Offered {
    /// At most this many submissions in flight.
    Concurrency(usize),
    /// At most this many applications between submit and their last delivery.
    InFlight(usize),
    /// Submissions started at this many per second, whatever the answers.
    Rate(f64),
}

/// A counter's change over the run, and per completed application.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct PerApp {
    pub total: f64,
    pub per_application: Option<f64>,
}

impl PerApp {
    pub(crate) fn new(total: f64, completed: usize) -> Self {
        Self {
            total,
            per_application: (completed > 0).then(|| total / completed as f64),
        }
    }
}

/// The four latencies, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Latencies {
    /// SubmitApplication round trip, timed by the bench.
    pub submit: Spread,
    /// Application create_time → create_time of its first task (server clocks).
    pub submit_to_first_task: Spread,
    /// Decide time of its last task → the last platform's delivery report (server clocks).
    pub approved_to_delivered: Spread,
    /// Application create_time → the last platform's delivery report (server clocks).
    pub submit_to_delivered: Spread,
}

/// What the broker and the databases saw, where the bench could reach them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Counters {
    /// PostgreSQL commits + rollbacks in every database (pg_stat_database).
    pub postgres_transactions: Option<PerApp>,
    /// Messages the broker received from publishers (RabbitMQ).
    pub amqp_published: Option<PerApp>,
    /// Messages the broker delivered to consumers (RabbitMQ).
    pub amqp_delivered: Option<PerApp>,
    /// Events written to the services' outboxes.
    pub outbox_events: Option<PerApp>,
    /// Payload bytes of those events.
    pub outbox_bytes: Option<PerApp>,
}

/// Unpublished outbox rows and undelivered bus messages after the run; both must be 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Backlog {
    /// Unpublished rows over every outbox the bench could read.
    pub outbox: Option<u64>,
    /// The same per service database.
    pub outbox_by_database: BTreeMap<String, u64>,
    /// Messages waiting in the stack's queues (dead-letter queues apart).
    pub queues: Option<u64>,
}

impl Backlog {
    pub(crate) fn drained(&self) -> bool {
        self.outbox.unwrap_or(0) == 0 && self.queues.unwrap_or(0) == 0
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Report {
    pub target: String,
    pub offered: Offered,
    pub applications: usize,
    pub completed: usize,
    pub failed: usize,
    pub platforms: u32,
    /// First submit → last completion, in seconds.
    pub wall_seconds: f64,
    pub applications_per_second: f64,
    pub latency_ms: Latencies,
    pub processes: Vec<ProcessUse>,
    /// CPU of the stack's processes per completed application (under `tongban dev` the
    /// Tongban process alone, with PostgreSQL and RabbitMQ everything).
    pub cpu_seconds_per_application: Option<f64>,
    pub counters: Counters,
    pub backlog: Backlog,
}

/// Completed applications per second of wall time (0 when no time passed).
pub(crate) fn throughput(completed: usize, wall: Duration) -> f64 {
    let secs = wall.as_secs_f64();
    if secs > 0.0 {
        completed as f64 / secs
    } else {
        0.0
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.1}"))
}

fn per_app(v: &Option<PerApp>, unit: &str) -> String {
    match v {
        Some(PerApp {
            total,
            per_application,
        }) => format!(
            "{total:.0} {unit} ({} per application)",
            per_application.map_or_else(|| "n/a".into(), |p| format!("{p:.1}"))
        ),
        None => "n/a".into(),
    }
}

fn count(v: Option<u64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| v.to_string())
}

/// The report as text tables.
pub(crate) fn render_table(r: &Report) -> String {
    let offered = match r.offered {
        Offered::Concurrency(c) => format!("concurrency {c}"),
        Offered::InFlight(k) => format!("{k} applications in flight"),
        Offered::Rate(rate) => format!("{rate} applications/s offered"),
    };
    let mut summary = crate::output::fields(&[
        ("Target", r.target.clone()),
        ("Load", offered),
        (
            "Completed",
            format!(
                "{}/{} ({} failed), approved + {} platforms",
                r.completed, r.applications, r.failed, r.platforms
            ),
        ),
        ("Wall time", format!("{:.2} s", r.wall_seconds)),
        (
            "Throughput",
            format!("{:.2} applications/s", r.applications_per_second),
        ),
        (
            "CPU / application",
            r.cpu_seconds_per_application
                .map_or_else(|| "n/a".into(), |c| format!("{:.1} ms", c * 1000.0)),
        ),
        (
            "PostgreSQL",
            per_app(&r.counters.postgres_transactions, "transactions"),
        ),
        (
            "AMQP published",
            per_app(&r.counters.amqp_published, "messages"),
        ),
        (
            "AMQP delivered",
            per_app(&r.counters.amqp_delivered, "messages"),
        ),
        (
            "Outbox events",
            per_app(&r.counters.outbox_events, "events"),
        ),
        ("Outbox bytes", per_app(&r.counters.outbox_bytes, "bytes")),
        (
            "Backlog at end",
            format!(
                "outbox {}{}, queues {}",
                count(r.backlog.outbox),
                if r.backlog.outbox_by_database.is_empty() {
                    String::new()
                } else {
                    let each: Vec<String> = r
                        .backlog
                        .outbox_by_database
                        .iter()
                        .map(|(db, n)| format!("{db} {n}"))
                        .collect();
                    format!(" ({})", each.join(", "))
                },
                count(r.backlog.queues)
            ),
        ),
    ]);
    summary.set_width(100);
    let mut lat = crate::output::table(&["Latency (ms)", "n", "p50", "p90", "p99", "max"]);
    let l = &r.latency_ms;
    for (name, s) in [
        ("submit", &l.submit),
        ("submit → first task", &l.submit_to_first_task),
        ("approved → all delivered", &l.approved_to_delivered),
        ("submit → all delivered", &l.submit_to_delivered),
    ] {
        lat.add_row(vec![
            name.to_string(),
            s.count.to_string(),
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max),
        ]);
    }
    let mut procs = crate::output::table(&["Process", "pids", "CPU s", "peak RSS MiB"]);
    for p in &r.processes {
        let pids: Vec<String> = p.pids.iter().map(u32::to_string).collect();
        procs.add_row(vec![
            p.name.clone(),
            crate::output::trunc(&pids.join(","), 24),
            format!("{:.2}", p.cpu_seconds),
            format!("{:.1}", p.peak_rss_mib),
        ]);
    }
    format!("{summary}\n{lat}\n{procs}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_the_sample_at_or_above_the_quantile() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.5), Some(50.0));
        assert_eq!(nearest_rank(&v, 0.9), Some(90.0));
        assert_eq!(nearest_rank(&v, 0.99), Some(99.0));
        assert_eq!(nearest_rank(&v, 1.0), Some(100.0));
        assert_eq!(nearest_rank(&[7.0], 0.99), Some(7.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
        // Ten samples: p99 is the largest, p50 the fifth.
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&ten, 0.99), Some(10.0));
        assert_eq!(nearest_rank(&ten, 0.5), Some(5.0));
    }

    #[test]
    fn spread_sorts_and_orders_its_percentiles() {
        let s = spread(&[30.0, 10.0, f64::NAN, 20.0, 40.0]);
        assert_eq!(s.count, 4);
        assert_eq!(s.p50, Some(20.0));
        assert_eq!(s.p90, Some(40.0));
        assert_eq!(s.max, Some(40.0));
        assert!(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.max);
        assert_eq!(spread(&[]), Spread::default());
    }

    #[test]
    fn pacing_spaces_applications_evenly() {
        assert_eq!(due_after(0, 50.0), Duration::ZERO);
        assert_eq!(due_after(50, 50.0), Duration::from_secs(1));
        assert_eq!(due_after(3, 2.0), Duration::from_millis(1500));
        assert_eq!(due_after(10, 0.0), Duration::ZERO);
    }

    #[test]
    fn throughput_and_per_application_figures() {
        assert_eq!(throughput(10, Duration::from_secs(2)), 5.0);
        assert_eq!(throughput(10, Duration::ZERO), 0.0);
        assert_eq!(PerApp::new(40.0, 4).per_application, Some(10.0));
        assert_eq!(PerApp::new(40.0, 0).per_application, None);
        assert!(Backlog::default().drained());
        assert!(
            !Backlog {
                outbox: Some(1),
                queues: Some(0),
                ..Backlog::default()
            }
            .drained()
        );
    }
}
