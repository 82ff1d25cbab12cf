//! `docker-compose.yml` checked without a Docker engine: against the Compose Specification's
//! JSON Schema (`deploy/reference/compose-spec.json`), and against the code it runs. Every
//! command is a binary of the workspace; every `TONGBAN_*` variable a service gets is a key its
//! configuration loader reads (`check_env`) or a platform in `deploy/platforms`; dispatch
//! starts in production mode with the credentials compose gives it; healthchecks probe the
//! port the service listens on; mounted files exist and configured paths lie in a mount or in
//! the image; Prometheus scrapes only services that serve metrics, and the Grafana dashboard
//! asks only for metrics the services export. The negative tests break a copy of the compose
//! document, or of a file it uses, and expect the finding, so the check cannot pass silently.
//! The init step's script runs for real with the `tongban` binary.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use tongban_platform::{Mode, load_dir_in, load_dir_with_env};

/// The Prometheus series the services export (contract shared with the services' metrics).
/// Histograms are listed by base name; `_bucket`, `_sum` and `_count` are their series.
const HISTOGRAMS: &[&str] = &["rpc_server_call_duration_seconds"];
const SERIES: &[&str] = &[
    "messaging_client_sent_messages_total",
    "messaging_client_consumed_messages_total",
    "tongban_outbox_backlog",
    "tongban_outbox_oldest_age_seconds",
    "tongban_consumer_redeliveries_total",
    "tongban_dead_letters_total",
    "tongban_dispatch_deliveries_total",
    "tongban_dispatch_retries_total",
    "tongban_dispatch_circuit_state",
    "tongban_approval_tasks",
    "tongban_notifications_total",
    "tongban_health_serving",
];

/// Where a service binary serves `/metrics` unless `TONGBAN_METRICS_LISTEN` says otherwise.
const DEFAULT_METRICS_PORT: u16 = 9464;

/// The image the Tongban containers run.
const TONGBAN_IMAGE: &str = "tongban:local";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Reads YAML with anchors and `<<` merge keys resolved, as JSON (what the schema describes).
fn yaml_to_json(text: &str) -> anyhow::Result<Value> {
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
    // `apply_merge` resolves one level; a merged mapping may itself carry `<<`.
    for _ in 0..16 {
        if !has_merge_key(&doc) {
            return Ok(serde_json::to_value(doc)?);
        }
        doc.apply_merge()?;
    }
    anyhow::bail!("merge keys (<<) nested too deep")
}

fn has_merge_key(v: &serde_yaml_ng::Value) -> bool {
    match v {
        serde_yaml_ng::Value::Mapping(m) => m.contains_key("<<") || m.values().any(has_merge_key),
        serde_yaml_ng::Value::Sequence(s) => s.iter().any(has_merge_key),
        serde_yaml_ng::Value::Tagged(t) => has_merge_key(&t.value),
        _ => false,
    }
}

/// One `${…}` reference in the compose file.
#[derive(Debug, Clone)]
struct VarRef {
    name: String,
    /// `${X:?msg}` / `${X?msg}`: compose stops when it is missing.
    required: bool,
    /// `${X:-d}` / `${X-d}`.
    default: Option<String>,
}

/// Compose interpolation (`$$`, `$X`, `${X}`, `${X:-d}`, `${X-d}`, `${X:?m}`, `${X?m}`,
/// `${X:+r}`, `${X+r}`) of one string with `env`, recording every reference.
fn interpolate(
    s: &str,
    env: &BTreeMap<String, String>,
    refs: &mut Vec<VarRef>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (name, op, arg) = if let Some(r) = rest.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in `{s}`"))?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            let name_end = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, tail) = inner.split_at(name_end);
            let op = [":-", ":?", ":+", "-", "?", "+"]
                .into_iter()
                .find(|op| tail.starts_with(op));
            match op {
                Some(op) => (name.to_owned(), Some(op), tail[op.len()..].to_owned()),
                None if tail.is_empty() => (name.to_owned(), None, String::new()),
                None => return Err(format!("bad substitution `${{{inner}}}` in `{s}`")),
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = rest[..end].to_owned();
            rest = &rest[end..];
            (name, None, String::new())
        };
        if name.is_empty() {
            return Err(format!("`$` without a variable name in `{s}`"));
        }
        refs.push(VarRef {
            name: name.clone(),
            required: matches!(op, Some(":?" | "?")),
            default: matches!(op, Some(":-" | "-")).then(|| arg.clone()),
        });
        let value = env.get(&name);
        let set_nonempty = value.is_some_and(|v| !v.is_empty());
        let replaced = match op {
            None => value.cloned().unwrap_or_default(),
            Some(":-") if set_nonempty => value.cloned().unwrap_or_default(),
            Some(":-") => arg,
            Some("-") => value.cloned().unwrap_or(arg),
            Some(":?") if set_nonempty => value.cloned().unwrap_or_default(),
            Some("?") if value.is_some() => value.cloned().unwrap_or_default(),
            Some(":?" | "?") => return Err(format!("{name} is not set: {arg}")),
            Some(":+") if set_nonempty => arg,
            Some("+") if value.is_some() => arg,
            Some(_) => String::new(),
        };
        out.push_str(&replaced);
    }
    out.push_str(rest);
    Ok(out)
}

/// Interpolates every string value of `doc`.
fn interpolate_doc(
    doc: &Value,
    env: &BTreeMap<String, String>,
    refs: &mut Vec<VarRef>,
    errors: &mut Vec<String>,
) -> Value {
    match doc {
        Value::String(s) => match interpolate(s, env, refs) {
            Ok(v) => Value::String(v),
            Err(e) => {
                errors.push(e);
                Value::String(String::new())
            }
        },
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| interpolate_doc(v, env, refs, errors))
                .collect(),
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), interpolate_doc(v, env, refs, errors)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `KEY=VALUE` lines (comments and blank lines skipped).
fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// A service's `environment`, map or list form, as strings.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match service.get("environment") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(|s| match s.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (s.to_owned(), String::new()),
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// `command` / `entrypoint` as words (the string form split on whitespace).
fn words(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|w| w.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// The host and port of `host:port` or a URL (`scheme://[user[:password]@]host:port[/path]`).
fn host_port(addr: &str) -> Option<(String, u16)> {
    let rest = addr.split_once("://").map_or(addr, |(_, r)| r);
    let rest = rest.split('/').next().unwrap_or(rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (host, port) = rest.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// One volume of a service.
#[derive(Debug, Clone)]
struct Mount {
    /// Host path (bind) or volume name; `None` for an anonymous volume.
    source: Option<String>,
    target: String,
    read_only: bool,
    bind: bool,
}

fn mounts(service: &Value) -> Vec<Mount> {
    let Some(Value::Array(vols)) = service.get("volumes") else {
        return Vec::new();
    };
    vols.iter()
        .filter_map(|v| match v {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                let (source, target, mode) = match parts.as_slice() {
                    [t] => (None, *t, ""),
                    [s, t] => (Some(*s), *t, ""),
                    [s, t, m, ..] => (Some(*s), *t, *m),
                    [] => return None,
                };
                Some(Mount {
                    bind: source.is_some_and(|s| s.starts_with(['.', '/', '~'])),
                    source: source.map(str::to_owned),
                    target: target.to_owned(),
                    read_only: mode.split(',').any(|m| m == "ro"),
                })
            }
            Value::Object(o) => Some(Mount {
                source: o.get("source").and_then(Value::as_str).map(str::to_owned),
                target: o.get("target")?.as_str()?.to_owned(),
                read_only: o.get("read_only").and_then(Value::as_bool) == Some(true),
                bind: o.get("type").and_then(Value::as_str) == Some("bind"),
            }),
            _ => None,
        })
        .collect()
}

/// `path` is `dir` or below it.
fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// What the Dockerfile's runtime stage puts in the image.
#[derive(Debug, Default)]
struct Image {
    /// (repository path, image path) of each `COPY` from the build context.
    copies: Vec<(String, String)>,
    /// Where the build stage's binaries go (`COPY --from=…`).
    bin_dirs: Vec<String>,
    /// Commands installed from scripts in the repository: name → repository path.
    scripts: BTreeMap<String, String>,
    /// The `USER` of the runtime stage.
    user: Option<String>,
    /// The build stage builds every binary of the workspace.
    builds_all_bins: bool,
}

fn parse_dockerfile(text: &str) -> Image {
    let mut image = Image::default();
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(l) => {
                current.push_str(l);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let stages: Vec<usize> = joined
        .iter()
        .enumerate()
        .filter(|(_, l)| l.to_ascii_uppercase().starts_with("FROM "))
        .map(|(i, _)| i)
        .collect();
    let runtime = stages.last().copied().unwrap_or(0);
    for (i, line) in joined.iter().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else { continue };
        match first.to_ascii_uppercase().as_str() {
            "RUN"
                if i < runtime && line.contains("cargo build") && line.contains("--workspace") =>
            {
                image.builds_all_bins |= line.contains("--bins");
            }
            "COPY" if i > runtime => {
                let from = words.iter().any(|w| w.starts_with("--from="));
                let args: Vec<&str> = words[1..]
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let [src, dst] = args.as_slice() else {
                    continue;
                };
                if from {
                    image.bin_dirs.push((*dst).to_owned());
                } else {
                    image.copies.push(((*src).to_owned(), (*dst).to_owned()));
                    if let Some(name) = dst.strip_prefix("/usr/local/bin/") {
                        image.scripts.insert(name.to_owned(), (*src).to_owned());
                    }
                }
            }
            "USER" if i > runtime => image.user = words.get(1).map(|s| (*s).to_owned()),
            _ => {}
        }
    }
    image
}

impl Image {
    /// The repository path an image path was copied from.
    fn repo_path(&self, path: &str) -> Option<String> {
        self.copies.iter().find_map(|(src, dst)| {
            under(path, dst).then(|| format!("{src}{}", &path[dst.trim_end_matches('/').len()..]))
        })
    }
}

/// Metric names an expression selects (functions, keywords, label names, strings, ranges and
/// the label lists of `by`, `without`, `on`, `ignoring`, `group_left`, `group_right` left out).
fn promql_metrics(expr: &str) -> Vec<String> {
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const KEYWORDS: &[&str] = &["bool", "and", "or", "unless", "offset", "inf", "nan"];
    // Aggregation operators may be followed by `by (…)` before their parenthesis.
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    // Strings, label matchers and ranges first.
    let mut plain = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        let close = match c {
            '"' | '\'' | '`' => c,
            '{' => '}',
            '[' => ']',
            _ => {
                plain.push(c);
                continue;
            }
        };
        let mut escaped = false;
        for d in chars.by_ref() {
            if escaped {
                escaped = false;
            } else if d == '\\' && close != '`' && matches!(c, '"' | '\'') {
                escaped = true;
            } else if d == close {
                break;
            }
        }
        plain.push(' ');
    }
    let bytes: Vec<char> = plain.chars().collect();
    let mut metrics = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() || c == '.' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], '_' | ':'))
        {
            i += 1;
        }
        let ident: String = bytes[start..i].iter().collect();
        let mut j = i;
        while j < bytes.len() && bytes[j].is_whitespace() {
            j += 1;
        }
        let call = bytes.get(j) == Some(&'(');
        if GROUPING.contains(&ident.as_str()) {
            if call {
                // Skip the label list.
                while j < bytes.len() && bytes[j] != ')' {
                    j += 1;
                }
                i = j + 1;
            }
        } else if !call
            && !KEYWORDS.contains(&ident.to_ascii_lowercase().as_str())
            && !AGGREGATIONS.contains(&ident.as_str())
        {
            metrics.push(ident);
        }
    }
    metrics
}

fn contract_metric(name: &str) -> bool {
    SERIES.contains(&name)
        || HISTOGRAMS.iter().any(|h| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name == format!("{h}{s}"))
        })
}

fn contract_base(name: &str) -> &str {
    HISTOGRAMS
        .iter()
        .find(|h| name.starts_with(*h))
        .copied()
        .unwrap_or(name)
}

/// Every `expr` in a Grafana dashboard, and every datasource uid it names.
fn dashboard_queries(v: &Value, exprs: &mut Vec<String>, uids: &mut BTreeSet<String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(e)) = o.get("expr") {
                exprs.push(e.clone());
            }
            if let Some(Value::String(uid)) = o.get("datasource").and_then(|d| d.get("uid")) {
                uids.insert(uid.clone());
            }
            for x in o.values() {
                dashboard_queries(x, exprs, uids);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| dashboard_queries(x, exprs, uids)),
        _ => {}
    }
}

/// `TONGBAN_*` names a binary's command-line arguments read (clap's `env = "…"`), from its
/// sources.
fn clap_env_names(root: &Path, dirs: &[&str]) -> anyhow::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    let mut stack: Vec<PathBuf> = dirs.iter().map(|d| root.join(d)).collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)?;
                for part in text.split("env = \"").skip(1) {
                    if let Some(name) = part.split('"').next()
                        && name.starts_with("TONGBAN_")
                    {
                        names.insert(name.to_owned());
                    }
                }
            }
        }
    }
    Ok(names)
}

/// Everything the checks compare the compose file with.
struct Project {
    root: PathBuf,
    /// Binary targets of the workspace.
    bins: BTreeSet<String>,
    /// Variables of `deploy/.env.example` (empty: a secret the operator must set).
    env_example: BTreeMap<String, String>,
    /// `TONGBAN_*` variables the `tongban` CLI and the simulator read.
    cli_env: BTreeSet<String>,
    sim_env: BTreeSet<String>,
    /// Files replaced in a test (repository path → text).
    overrides: BTreeMap<String, String>,
}

impl Project {
    fn load() -> anyhow::Result<Self> {
        let root = repo_root().canonicalize()?;
        let metadata = cargo_metadata::MetadataCommand::new()
            .manifest_path(root.join("Cargo.toml"))
            .no_deps()
            .exec()?;
        let bins = metadata
            .workspace_packages()
            .iter()
            .flat_map(|p| &p.targets)
            .filter(|t| t.is_bin())
            .map(|t| t.name.clone())
            .collect();
        let env_example =
            parse_env_file(&std::fs::read_to_string(root.join("deploy/.env.example"))?);
        let cli_env = clap_env_names(&root, &["crates/tongban/src", "crates/cli/src"])?;
        let sim_env = clap_env_names(&root, &["services/platform-sim/src"])?;
        Ok(Self {
            root,
            bins,
            env_example,
            cli_env,
            sim_env,
            overrides: BTreeMap::new(),
        })
    }

    fn read(&self, rel: &str) -> anyhow::Result<String> {
        match self.overrides.get(rel) {
            Some(text) => Ok(text.clone()),
            None => Ok(std::fs::read_to_string(self.root.join(rel))?),
        }
    }

    /// The environment compose would get from a `.env` made from the example: every secret
    /// given a value.
    fn test_env(&self) -> BTreeMap<String, String> {
        self.env_example
            .iter()
            .map(|(k, v)| {
                let v = if v.is_empty() {
                    format!("test-{}", k.to_ascii_lowercase().replace('_', "-"))
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }

    fn compose(&self) -> anyhow::Result<Value> {
        yaml_to_json(&self.read("docker-compose.yml")?)
    }
}

/// The configuration check of a Tongban service binary (`check_env` of its crate).
fn check_service_env(bin: &str, vars: &[(String, String)]) -> Option<Result<(), String>> {
    let result = match bin {
        "tongban-intake" => tongban_intake::config::check_env(vars),
        "tongban-approval" => tongban_approval::config::check_env(vars),
        "tongban-dispatch" => tongban_dispatch::config::check_env(vars),
        "tongban-notification" => tongban_notification::config::check_env(vars),
        _ => return None,
    };
    Some(result.map_err(|e| e.to_string()))
}

/// Every problem found in `raw` (the compose document, merge keys resolved, before
/// interpolation). Empty when all is well.
fn check(project: &Project, raw: &Value) -> anyhow::Result<Vec<String>> {
    let mut findings = Vec::new();

    // The schema, on the document as written.
    let schema: Value = serde_json::from_str(&project.read("deploy/reference/compose-spec.json")?)?;
    let validator = jsonschema::validator_for(&schema)?;
    for e in validator.iter_errors(raw) {
        findings.push(format!("schema: {}: {e}", e.instance_path()));
    }

    // Interpolation with the example's variables, secrets filled in.
    let mut refs = Vec::new();
    let mut errors = Vec::new();
    let doc = interpolate_doc(raw, &project.test_env(), &mut refs, &mut errors);
    findings.extend(errors.into_iter().map(|e| format!("interpolation: {e}")));
    let referenced: BTreeSet<&str> = refs.iter().map(|r| r.name.as_str()).collect();
    for r in &refs {
        match project.env_example.get(&r.name) {
            None => findings.push(format!(
                "variables: ${{{}}} is not in deploy/.env.example",
                r.name
            )),
            Some(v) if v.is_empty() && (!r.required || r.default.is_some()) => {
                findings.push(format!(
                    "variables: secret {} must be required (${{{}:?message}}), never defaulted",
                    r.name, r.name
                ))
            }
            Some(_) => {}
        }
    }
    for name in project.env_example.keys() {
        if !referenced.contains(name.as_str()) {
            findings.push(format!(
                "variables: {name} in deploy/.env.example is used nowhere"
            ));
        }
    }

    let image = parse_dockerfile(&project.read("deploy/Dockerfile")?);
    if !image.builds_all_bins {
        findings.push(
            "Dockerfile: the build stage does not build every binary (--workspace --bins)".into(),
        );
    }
    if image.bin_dirs.is_empty() {
        findings.push("Dockerfile: the runtime stage copies no binaries".into());
    }
    match image.user.as_deref() {
        None | Some("root" | "0" | "0:0" | "root:root") => {
            findings.push("Dockerfile: the runtime stage must run as a non-root USER".into())
        }
        Some(_) => {}
    }
    for (name, src) in &image.scripts {
        if !project.root.join(src).is_file() {
            findings.push(format!("Dockerfile: {name} is copied from missing {src}"));
        }
    }

    let empty = serde_json::Map::new();
    let services = doc
        .get("services")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let declared_volumes: BTreeSet<&str> = doc
        .get("volumes")
        .and_then(Value::as_object)
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let platforms_dir = project.root.join("deploy/platforms");
    let platforms = load_dir_with_env(&platforms_dir, &|_| None)?;

    // Who writes each named volume (a service mounting it read-write).
    let mut writers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, svc) in services {
        for m in mounts(svc) {
            if let (false, false, Some(src)) = (m.bind, m.read_only, &m.source) {
                writers.entry(src.clone()).or_default().push(name.clone());
            }
        }
    }

    // Start order: a service reading a volume that a one-shot step fills, or publishing to
    // the bus the topology step declares, waits for that step to finish.
    let one_shot = |svc: &Value| svc.get("restart").and_then(Value::as_str) == Some("no");
    let waits_for = |svc: &Value, step: &str| {
        svc.get("depends_on")
            .and_then(|d| d.get(step))
            .and_then(|d| d.get("condition"))
            .and_then(Value::as_str)
            == Some("service_completed_successfully")
    };
    let topology_steps: Vec<&String> = services
        .iter()
        .filter(|(_, s)| words(s.get("command")) == ["tongban", "topology", "declare"])
        .map(|(n, _)| n)
        .collect();
    if topology_steps.is_empty() {
        findings.push("no service runs `tongban topology declare` before the services".into());
    }
    for (name, svc) in services.iter().filter(|(_, s)| !one_shot(s)) {
        for m in mounts(svc).iter().filter(|m| !m.bind && m.read_only) {
            let Some(src) = &m.source else { continue };
            for w in writers.get(src).into_iter().flatten() {
                if one_shot(&services[w]) && !waits_for(svc, w) {
                    findings.push(format!(
                        "{name}: reads volume {src}, which {w} fills, but does not wait for {w} to complete"
                    ));
                }
            }
        }
        if environment(svc).contains_key("TONGBAN_BUS_URL") {
            for step in &topology_steps {
                if !waits_for(svc, step) {
                    findings.push(format!(
                        "{name}: uses the bus but does not wait for {step} (the queues) to complete"
                    ));
                }
            }
        }
    }

    // A configuration file an off-the-shelf image is told to read (`--config…=PATH`) is one
    // this repository mounts there; its host path is what the checks below read.
    let mut config_sources: BTreeMap<String, String> = BTreeMap::new();
    for (name, svc) in services {
        for w in words(svc.get("command")) {
            let Some((flag, path)) = w.split_once('=') else {
                continue;
            };
            if !(flag.starts_with("--config") && path.starts_with('/')) {
                continue;
            }
            match mounts(svc).iter().find(|m| m.bind && m.target == path) {
                Some(m) => {
                    let src = m.source.clone().unwrap_or_default();
                    config_sources.insert(name.clone(), src.trim_start_matches("./").to_owned());
                }
                None => findings.push(format!(
                    "{name}: {flag}={path} is not a file mounted from the repository"
                )),
            }
        }
    }
    let config_of = |service: &str, findings: &mut Vec<String>| -> Option<String> {
        let found = config_sources.get(service).cloned();
        if found.is_none() {
            findings.push(format!(
                "{service}: no configuration file mounted from the repository"
            ));
        }
        found
    };

    // Facts gathered across services for the cross-service checks below.
    let mut metrics_ports: BTreeMap<String, u16> = BTreeMap::new();
    let mut platform_secrets: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();

    for (name, svc) in services {
        let env = environment(svc);
        let svc_mounts = mounts(svc);
        let is_tongban = svc.get("image").and_then(Value::as_str) == Some(TONGBAN_IMAGE)
            || svc.get("build").is_some();

        // Mounts: host paths exist, named volumes are declared.
        for m in &svc_mounts {
            match (&m.source, m.bind) {
                (Some(src), true) => {
                    let rel = src.trim_start_matches("./");
                    if src.starts_with('/') || src.starts_with('~') {
                        findings.push(format!(
                            "{name}: mounts host path {src} outside the repository"
                        ));
                    } else if !project.root.join(rel).exists() {
                        findings.push(format!("{name}: mounted host path {src} does not exist"));
                    }
                }
                (Some(src), false) if !declared_volumes.contains(src.as_str()) => findings.push(
                    format!("{name}: volume {src} is not declared under top-level volumes"),
                ),
                _ => {}
            }
        }

        if !is_tongban {
            continue;
        }

        // The command: a binary of the workspace, or a script the image installs (whose
        // own `tongban…` commands are binaries of the workspace).
        let mut command = words(svc.get("entrypoint"));
        command.extend(words(svc.get("command")));
        let bin = command.first().cloned().unwrap_or_default();
        if let Some(script) = image.scripts.get(&bin) {
            let text = project.read(script).unwrap_or_default();
            for line in text.lines() {
                let first = line.split_whitespace().next().unwrap_or_default();
                if first.starts_with("tongban") && !project.bins.contains(first) {
                    findings.push(format!(
                        "{name}: {script} runs `{first}`, which is not a binary of the workspace"
                    ));
                }
            }
        } else if !project.bins.contains(&bin) {
            findings.push(format!(
                "{name}: command `{bin}` is not a binary of the workspace ({})",
                project.bins.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }

        // Configuration: every TONGBAN_* variable is read by the program it is given to.
        let vars: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let platform_var = |k: &str| {
            platforms.iter().find(|p| {
                let id = p.id.to_ascii_uppercase();
                k == p.secret_env
                    || k == format!("TONGBAN_PLATFORM_{id}_ENDPOINT")
                    || k == format!("TONGBAN_PLATFORM_{id}_QUERY_ENDPOINT")
            })
        };
        for (k, v) in &env {
            if k.starts_with("TONGBAN_PLATFORM_") {
                match platform_var(k) {
                    None => findings.push(format!(
                        "{name}: {k} names no platform of deploy/platforms (nor a variable one reads)"
                    )),
                    Some(p) if *k == p.secret_env => {
                        platform_secrets
                            .entry(p.id.clone())
                            .or_default()
                            .insert(name.clone(), v.clone());
                    }
                    Some(p) => {
                        // An endpoint on the simulator must be the port it serves the
                        // platform on (the file's).
                        if let Some((host, port)) = host_port(v)
                            && services.get(&host).is_some_and(|s| {
                                words(s.get("command")).first().map(String::as_str)
                                    == Some("tongban-platform-sim")
                            })
                            && port != p.endpoint_url.port
                        {
                            findings.push(format!(
                                "{name}: {k}: the simulator serves {} on port {}, not {port}",
                                p.id, p.endpoint_url.port
                            ));
                        }
                    }
                }
            }
        }
        let other_known: Option<&BTreeSet<String>> = match bin.as_str() {
            "tongban" => Some(&project.cli_env),
            "tongban-platform-sim" => Some(&project.sim_env),
            _ => None,
        };
        match check_service_env(&bin, &vars) {
            Some(Err(e)) => findings.push(format!("{name}: configuration: {e}")),
            Some(Ok(())) => {}
            None => {
                for k in env.keys() {
                    let known = other_known.is_some_and(|set| set.contains(k))
                        || (k.starts_with("TONGBAN_PLATFORM_") && platform_var(k).is_some());
                    if k.starts_with("TONGBAN_") && !known {
                        findings.push(format!("{name}: {k} is not read by `{bin}`"));
                    }
                }
            }
        }

        // Dispatch starts in production mode: every platform's credential must come from
        // the environment, and not be the files' development value.
        if bin == "tongban-dispatch" {
            let lookup = |n: &str| env.get(n).cloned();
            if let Err(e) = load_dir_in(&platforms_dir, &lookup, Mode::Production) {
                findings.push(format!("{name}: platforms refused in production: {e}"));
            }
        }

        // Configured paths: in a mount of this service, or in the image.
        for (k, v) in &env {
            let last = k.rsplit("__").next().unwrap_or(k);
            if !(k.starts_with("TONGBAN_") && (last.ends_with("_FILE") || last.ends_with("_DIR"))) {
                continue;
            }
            if !v.starts_with('/') {
                findings.push(format!("{name}: {k}={v} is not an absolute path"));
                continue;
            }
            let mount = svc_mounts
                .iter()
                .filter(|m| under(v, &m.target))
                .max_by_key(|m| m.target.len());
            match (mount, image.repo_path(v)) {
                (Some(m), _) => {
                    if let (false, true, Some(src)) = (m.bind, m.read_only, &m.source)
                        && !writers.contains_key(src)
                    {
                        findings.push(format!(
                            "{name}: {k}={v} is on volume {src}, which no service writes"
                        ));
                    }
                }
                (None, Some(repo)) => {
                    if !project.root.join(&repo).exists() {
                        findings.push(format!(
                            "{name}: {k}={v} is baked from {repo}, which does not exist"
                        ));
                    }
                }
                (None, None) => findings.push(format!(
                    "{name}: {k}={v} is neither in a volume of the service nor in the image"
                )),
            }
        }

        // gRPC services: the healthcheck asks `tongban health` on the port listened on, and
        // a published port is that port.
        if let Some(listen) = env.get("TONGBAN_LISTEN") {
            let Some((_, port)) = host_port(listen) else {
                findings.push(format!("{name}: TONGBAN_LISTEN={listen} has no port"));
                continue;
            };
            let test = words(svc.get("healthcheck").and_then(|h| h.get("test")));
            let want = [
                "CMD".to_owned(),
                "tongban".to_owned(),
                "health".to_owned(),
                "--server".to_owned(),
                format!("http://127.0.0.1:{port}"),
            ];
            if test != want {
                findings.push(format!(
                    "{name}: healthcheck {test:?} should be {want:?} (TONGBAN_LISTEN port {port})"
                ));
            }
            if !project.bins.contains("tongban") {
                findings.push(format!("{name}: the healthcheck's `tongban` is not built"));
            }
            if let Some(Value::Array(ports)) = svc.get("ports") {
                for p in ports.iter().filter_map(Value::as_str) {
                    let container = p.rsplit(':').next().unwrap_or(p);
                    if container.split('/').next() != Some(port.to_string().as_str()) {
                        findings.push(format!(
                            "{name}: publishes container port {container}, but listens on {port}"
                        ));
                    }
                }
            }
            match svc.get("restart").and_then(Value::as_str) {
                Some("always" | "unless-stopped") => {}
                Some(r) if r.starts_with("on-failure") => {}
                other => findings.push(format!(
                    "{name}: restart policy {other:?}; a service must come back by itself"
                )),
            }
            let metrics = env
                .get("TONGBAN_METRICS_LISTEN")
                .and_then(|m| host_port(m).map(|(_, p)| p))
                .unwrap_or(DEFAULT_METRICS_PORT);
            metrics_ports.insert(name.clone(), metrics);

            // Its own database, as its own role.
            if let Some(url) = env.get("TONGBAN_DATABASE_URL") {
                let svc_name = bin.trim_start_matches("tongban-");
                let role = format!("tongban_{svc_name}");
                let rest = url.split_once("://").map_or("", |(_, r)| r);
                let user = rest.split([':', '@']).next().unwrap_or_default();
                let db = rest.rsplit('/').next().unwrap_or_default();
                if user != role || db != role {
                    findings.push(format!(
                        "{name}: TONGBAN_DATABASE_URL should connect as {role} to database {role}"
                    ));
                }
            }

            // Traces go to a collector of this stack.
            if let Some(otlp) = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
                match host_port(otlp) {
                    Some((host, 4317)) if services.contains_key(&host) => {}
                    _ => findings.push(format!(
                        "{name}: OTEL_EXPORTER_OTLP_ENDPOINT={otlp} is not a compose service's OTLP/gRPC port 4317"
                    )),
                }
            } else {
                findings.push(format!("{name}: no OTEL_EXPORTER_OTLP_ENDPOINT"));
            }
        }
    }

    // The simulators check the credentials dispatch sends.
    for (platform, by_service) in &platform_secrets {
        let values: BTreeSet<&String> = by_service.values().collect();
        if values.len() > 1 {
            findings.push(format!(
                "platform {platform}: services get different credentials: {:?}",
                by_service.keys().collect::<Vec<_>>()
            ));
        }
    }

    // Prometheus scrapes exactly the services serving metrics, on their metrics port.
    let prometheus: Value = match config_of("prometheus", &mut findings) {
        Some(file) => yaml_to_json(&project.read(&file)?)?,
        None => Value::Null,
    };
    let mut scraped = BTreeSet::new();
    for job in prometheus
        .get("scrape_configs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for sc in job
            .get("static_configs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for t in sc
                .get("targets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                match host_port(t) {
                    Some((host, port)) if metrics_ports.get(&host) == Some(&port) => {
                        scraped.insert(host);
                    }
                    Some((host, port)) => findings.push(format!(
                        "prometheus: target {t}: {host} is not a compose service serving metrics on {port}"
                    )),
                    None => findings.push(format!("prometheus: target {t} has no port")),
                }
            }
        }
    }
    for svc in metrics_ports.keys() {
        if !scraped.contains(svc) {
            findings.push(format!(
                "prometheus: {svc} serves metrics but is not scraped"
            ));
        }
    }

    // The collector forwards traces to a service of this stack.
    let otel: Value = match config_of("otel-collector", &mut findings) {
        Some(file) => yaml_to_json(&project.read(&file)?)?,
        None => Value::Null,
    };
    let trace_exporters = otel
        .pointer("/service/pipelines/traces/exporters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if trace_exporters.is_empty() {
        findings.push("otel-collector: no traces pipeline with exporters".into());
    }
    for e in trace_exporters.iter().filter_map(Value::as_str) {
        let endpoint = otel
            .pointer(&format!(
                "/exporters/{}/endpoint",
                e.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match host_port(endpoint) {
            Some((host, _)) if services.contains_key(&host) => {}
            _ => findings.push(format!(
                "otel-collector: exporter {e} sends to `{endpoint}`, not a compose service"
            )),
        }
    }

    // Grafana: every query names contract metrics only, every contract metric is shown, and
    // the data sources are provisioned.
    // Grafana reads its provisioning from /etc/grafana/provisioning, and the dashboard
    // provider's path is where the dashboards are mounted.
    let grafana_mounts = services.get("grafana").map(mounts).unwrap_or_default();
    let mounted_from = |target: &str| {
        grafana_mounts
            .iter()
            .find(|m| m.bind && m.target.trim_end_matches('/') == target)
            .and_then(|m| m.source.clone())
            .map(|s| s.trim_start_matches("./").to_owned())
    };
    let provisioning = mounted_from("/etc/grafana/provisioning").unwrap_or_else(|| {
        findings
            .push("grafana: /etc/grafana/provisioning is not mounted from the repository".into());
        "deploy/grafana/provisioning".into()
    });
    let providers: Value =
        yaml_to_json(&project.read(&format!("{provisioning}/dashboards/tongban.yml"))?)?;
    let mut dashboard_dirs = Vec::new();
    for p in providers
        .get("providers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let path = p
            .pointer("/options/path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match mounted_from(path) {
            Some(dir) => dashboard_dirs.push(dir),
            None => findings.push(format!(
                "grafana: dashboard provider path {path} is not mounted from the repository"
            )),
        }
    }
    if !dashboard_dirs
        .iter()
        .any(|d| d == "deploy/grafana/dashboards")
    {
        findings.push("grafana: deploy/grafana/dashboards is not provisioned".into());
    }
    let datasources: Value =
        yaml_to_json(&project.read(&format!("{provisioning}/datasources/tongban.yml"))?)?;
    let provisioned: BTreeSet<String> = datasources
        .get("datasources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("uid").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let dashboard_text = project.read("deploy/grafana/dashboards/tongban.json")?;
    match serde_json::from_str::<Value>(&dashboard_text) {
        Err(e) => findings.push(format!("grafana: tongban.json does not parse: {e}")),
        Ok(dashboard) => {
            let (mut exprs, mut uids) = (Vec::new(), BTreeSet::new());
            dashboard_queries(&dashboard, &mut exprs, &mut uids);
            let mut shown = BTreeSet::new();
            for expr in &exprs {
                let metrics = promql_metrics(expr);
                if metrics.is_empty() {
                    findings.push(format!("grafana: query `{expr}` names no metric"));
                }
                for m in metrics {
                    if contract_metric(&m) {
                        shown.insert(contract_base(&m).to_owned());
                    } else {
                        findings.push(format!(
                            "grafana: query `{expr}` names `{m}`, which no service exports"
                        ));
                    }
                }
            }
            for m in HISTOGRAMS.iter().chain(SERIES) {
                if !shown.contains(*m) {
                    findings.push(format!("grafana: no panel shows {m}"));
                }
            }
            for uid in uids.difference(&provisioned) {
                findings.push(format!("grafana: data source uid {uid} is not provisioned"));
            }
        }
    }

    Ok(findings)
}

#[test]
fn the_compose_file_matches_the_schema_and_the_code() -> anyhow::Result<()> {
    let project = Project::load()?;
    let findings = check(&project, &project.compose()?)?;
    assert!(findings.is_empty(), "findings:\n{}", findings.join("\n"));
    Ok(())
}

#[test]
fn merge_keys_are_resolved() -> anyhow::Result<()> {
    let project = Project::load()?;
    let doc = project.compose()?;
    let intake = &doc["services"]["intake"];
    // From x-service (<<: *service, itself merging x-tongban-image) and x-service-env.
    assert_eq!(intake["image"], TONGBAN_IMAGE);
    assert_eq!(intake["restart"], "unless-stopped");
    assert!(intake["depends_on"]["init"].is_object(), "{intake}");
    let env = environment(intake);
    assert_eq!(env["TONGBAN_LISTEN"], "0.0.0.0:50051");
    assert_eq!(env["TONGBAN_EXCHANGE"], "tongban.events");
    assert_eq!(intake["healthcheck"]["interval"], "10s");
    assert!(!serde_json::to_string(&doc)?.contains("\"<<\""));
    // Chained merges resolve too.
    let chained = yaml_to_json("a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n")?;
    assert_eq!(chained["c"], serde_json::json!({"x": 1, "y": 2, "z": 3}));
    Ok(())
}

#[test]
fn interpolation_follows_compose() {
    let env: BTreeMap<String, String> = [("A", "1"), ("E", "")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut refs = Vec::new();
    let mut i = |s: &str| interpolate(s, &env, &mut refs);
    assert_eq!(i("x${A}y$A$$z").as_deref(), Ok("x1y1$z"));
    assert_eq!(i("${E:-d}/${E-d}/${U-d}").as_deref(), Ok("d//d"));
    assert_eq!(i("${A:+r}${E:+r}${E+s}").as_deref(), Ok("rs"));
    assert!(i("${E:?needed}").is_err_and(|e| e.contains("E is not set: needed")));
    assert_eq!(i("${E?needed}").as_deref(), Ok(""));
    assert!(i("${U?gone}").is_err());
    assert!(i("${A").is_err());
}

#[test]
fn compose_without_env_stops_naming_each_secret() -> anyhow::Result<()> {
    let project = Project::load()?;
    let raw = project.compose()?;
    let mut refs = Vec::new();
    let mut errors = Vec::new();
    interpolate_doc(&raw, &BTreeMap::new(), &mut refs, &mut errors);
    for (name, value) in &project.env_example {
        if value.is_empty() {
            assert!(
                errors
                    .iter()
                    .any(|e| e.starts_with(&format!("{name} is not set: set {name} in .env"))),
                "{name}: {errors:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn promql_metric_names() {
    assert_eq!(
        promql_metrics(
            r#"histogram_quantile(0.95, sum by (le, rpc_method) (rate(rpc_server_call_duration_seconds_bucket{rpc_service="x"}[$__rate_interval])))"#
        ),
        ["rpc_server_call_duration_seconds_bucket"]
    );
    assert_eq!(
        promql_metrics("a_total / on (x) group_left (y) b + 1e3 * c offset 5m"),
        ["a_total", "b", "c"]
    );
}

// --- negative: each mutation must be reported ----------------------------------------------

/// Applies `mutate` to a copy of the compose document and returns the findings.
fn findings_after(
    mutate: impl FnOnce(&mut Value),
    files: &[(&str, &str, &str)],
) -> anyhow::Result<Vec<String>> {
    let mut project = Project::load()?;
    for (file, from, to) in files {
        let text = project.read(file)?;
        anyhow::ensure!(text.contains(from), "{file} has no `{from}`");
        project
            .overrides
            .insert((*file).to_owned(), text.replacen(from, to, 1));
    }
    let mut doc = project.compose()?;
    mutate(&mut doc);
    check(&project, &doc)
}

fn assert_reported(findings: &[String], needles: &[&str]) {
    assert!(
        findings
            .iter()
            .any(|f| needles.iter().all(|n| f.contains(n))),
        "no finding with {needles:?} in:\n{}",
        findings.join("\n")
    );
}

fn env_of<'a>(doc: &'a mut Value, service: &str) -> &'a mut serde_json::Map<String, Value> {
    doc["services"][service]["environment"]
        .as_object_mut()
        .expect("environment map")
}

#[test]
fn a_misspelt_configuration_key_is_reported() -> anyhow::Result<()> {
    let f = findings_after(
        |doc| {
            let env = env_of(doc, "notification");
            env.insert("TONGBAN_WEBHOOKS__ALOW".into(), "10.0.0.0/8".into());
        },
        &[],
    )?;
    assert_reported(&f, &["notification: configuration", "webhooks.alow"]);
    // A value of the wrong type, too.
    let f = findings_after(
        |doc| {
            env_of(doc, "intake").insert("TONGBAN_LISTEN".into(), "everywhere".into());
        },
        &[],
    )?;
    assert_reported(&f, &["intake: configuration", "listen"]);
    let f = findings_after(
        |doc| {
            let env = env_of(doc, "intake");
            let v = env.remove("TONGBAN_JWKS_FILE").expect("jwks");
            env.insert("TONGBAN_JWKS_FLIE".into(), v);
        },
        &[],
    )?;
    assert_reported(&f, &["intake: configuration", "jwks_flie"]);
    // Variables of the CLI are checked against what it reads.
    let f = findings_after(
        |doc| {
            env_of(doc, "topology").insert("TONGBAN_EXCHANG".into(), "x".into());
        },
        &[],
    )?;
    assert_reported(&f, &["topology: TONGBAN_EXCHANG is not read by `tongban`"]);
    Ok(())
}

#[test]
fn a_healthcheck_on_the_wrong_port_is_reported() -> anyhow::Result<()> {
    let f = findings_after(
        |doc| {
            doc["services"]["approval"]["healthcheck"]["test"][4] = "http://127.0.0.1:50051".into();
        },
        &[],
    )?;
    assert_reported(&f, &["approval: healthcheck", "50052"]);
    let f = findings_after(
        |doc| {
            env_of(doc, "dispatch").insert("TONGBAN_LISTEN".into(), "0.0.0.0:50055".into());
        },
        &[],
    )?;
    assert_reported(&f, &["dispatch: healthcheck", "50055"]);
    assert_reported(&f, &["dispatch: publishes container port 50054"]);
    Ok(())
}

#[test]
fn an_unknown_binary_is_reported() -> anyhow::Result<()> {
    let f = findings_after(
        |doc| doc["services"]["intake"]["command"] = serde_json::json!(["tongban-intak"]),
        &[],
    )?;
    assert_reported(&f, &["intake: command `tongban-intak` is not a binary"]);
    let f = findings_after(
        |_| {},
        &[(
            "deploy/compose-init.sh",
            "tongban keys generate",
            "tongban-keys generate",
        )],
    )?;
    assert_reported(&f, &["init:", "`tongban-keys`"]);
    Ok(())
}

#[test]
fn platform_variables_and_production_credentials_are_checked() -> anyhow::Result<()> {
    let f = findings_after(
        |doc| {
            env_of(doc, "dispatch").insert("TONGBAN_PLATFORM_EIAX_SECRET".into(), "s".into());
        },
        &[],
    )?;
    assert_reported(&f, &["TONGBAN_PLATFORM_EIAX_SECRET names no platform"]);
    // A secret left out: production refuses the file's development value.
    let f = findings_after(
        |doc| {
            env_of(doc, "dispatch").remove("TONGBAN_PLATFORM_EIA_SECRET");
        },
        &[],
    )?;
    assert_reported(
        &f,
        &[
            "dispatch: platforms refused in production",
            "TONGBAN_PLATFORM_EIA_SECRET",
        ],
    );
    // The simulator given another credential than dispatch.
    let f = findings_after(
        |doc| {
            env_of(doc, "platform-sim").insert(
                "TONGBAN_PLATFORM_EIA_SECRET".into(),
                "${PLATFORM_EIA_SECRET:?x}-other".into(),
            );
        },
        &[],
    )?;
    assert_reported(&f, &["platform eia: services get different credentials"]);
    // An endpoint on the simulator's wrong port.
    let f = findings_after(
        |doc| {
            env_of(doc, "dispatch").insert(
                "TONGBAN_PLATFORM_EIA_ENDPOINT".into(),
                "http://platform-sim:18081/api/eia/projects".into(),
            );
        },
        &[],
    )?;
    assert_reported(&f, &["serves eia on port 18082, not 18081"]);
    Ok(())
}

#[test]
fn secrets_must_be_required_and_declared() -> anyhow::Result<()> {
    let f = findings_after(
        |doc| {
            env_of(doc, "grafana").insert(
                "GF_SECURITY_ADMIN_PASSWORD".into(),
                "${GRAFANA_ADMIN_PASSWORD:-admin}".into(),
            );
        },
        &[],
    )?;
    assert_reported(&f, &["secret GRAFANA_ADMIN_PASSWORD must be required"]);
    let f = findings_after(
        |doc| {
            env_of(doc, "grafana").insert("GF_X".into(), "${NOT_IN_EXAMPLE:?x}".into());
        },
        &[],
    )?;
    assert_reported(&f, &["NOT_IN_EXAMPLE} is not in deploy/.env.example"]);
    Ok(())
}

#[test]
fn paths_mounts_and_volumes_are_checked() -> anyhow::Result<()> {
    // A configured file outside every mount and the image.
    let f = findings_after(
        |doc| {
            env_of(doc, "approval").insert(
                "TONGBAN_JWKS_FILE".into(),
                "/var/lib/tongban/keys/jwks.json".into(),
            );
        },
        &[],
    )?;
    assert_reported(&f, &["approval: TONGBAN_JWKS_FILE", "neither in a volume"]);
    // Baked into the image, but missing from the repository.
    let f = findings_after(
        |doc| {
            env_of(doc, "approval").insert(
                "TONGBAN_DEPLOY_DIR".into(),
                "/etc/tongban/deploy/nowhere".into(),
            );
        },
        &[],
    )?;
    assert_reported(&f, &["baked from deploy/nowhere"]);
    // A read-only volume nobody fills.
    let f = findings_after(
        |doc| {
            let init = doc["services"]["init"]["volumes"]
                .as_array_mut()
                .expect("volumes");
            init.retain(|v| v.as_str().is_none_or(|s| !s.starts_with("jwks:")));
        },
        &[],
    )?;
    assert_reported(&f, &["on volume jwks, which no service writes"]);
    // A missing host path and an undeclared volume.
    let f = findings_after(
        |doc| {
            let vols = doc["services"]["prometheus"]["volumes"]
                .as_array_mut()
                .expect("volumes");
            vols.push("./deploy/prometheus/rules.yml:/etc/prometheus/rules.yml:ro".into());
            vols.push("prom-extra:/extra".into());
        },
        &[],
    )?;
    assert_reported(&f, &["./deploy/prometheus/rules.yml does not exist"]);
    assert_reported(&f, &["volume prom-extra is not declared"]);
    Ok(())
}

#[test]
fn schema_violations_are_reported() -> anyhow::Result<()> {
    let f = findings_after(
        |doc| {
            doc["services"]["intake"]["comand"] = serde_json::json!(["tongban-intake"]);
            doc["services"]["approval"]["depends_on"]["postgres"]["condition"] =
                "service_ready".into();
        },
        &[],
    )?;
    assert_reported(&f, &["schema: /services/intake", "comand"]);
    assert_reported(
        &f,
        &["schema: /services/approval/depends_on", "service_ready"],
    );
    Ok(())
}

#[test]
fn observability_files_are_checked() -> anyhow::Result<()> {
    let f = findings_after(
        |_| {},
        &[(
            "deploy/prometheus/prometheus.yml",
            "dispatch:9464",
            "dispatcher:9464",
        )],
    )?;
    assert_reported(&f, &["prometheus: target dispatcher:9464"]);
    assert_reported(
        &f,
        &["prometheus: dispatch serves metrics but is not scraped"],
    );
    let f = findings_after(
        |_| {},
        &[(
            "deploy/grafana/dashboards/tongban.json",
            "tongban_outbox_backlog",
            "tongban_outbox_backlog_rows",
        )],
    )?;
    assert_reported(
        &f,
        &[
            "grafana:",
            "`tongban_outbox_backlog_rows`, which no service exports",
        ],
    );
    assert_reported(&f, &["grafana: no panel shows tongban_outbox_backlog"]);
    let f = findings_after(
        |_| {},
        &[(
            "deploy/grafana/dashboards/tongban.json",
            "\"uid\": \"prometheus\"",
            "\"uid\": \"prom\"",
        )],
    )?;
    assert_reported(&f, &["grafana: data source uid prom is not provisioned"]);
    let f = findings_after(
        |doc| {
            env_of(doc, "intake").insert(
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                "http://collector:4317".into(),
            );
        },
        &[(
            "deploy/otel-collector.yaml",
            "endpoint: jaeger:4317",
            "endpoint: tempo:4317",
        )],
    )?;
    assert_reported(
        &f,
        &["intake: OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317"],
    );
    assert_reported(
        &f,
        &["otel-collector: exporter otlp/jaeger sends to `tempo:4317`"],
    );
    Ok(())
}

#[test]
fn start_order_and_mounted_configuration_are_checked() -> anyhow::Result<()> {
    let f = findings_after(
        |doc| {
            let deps = doc["services"]["intake"]["depends_on"]
                .as_object_mut()
                .expect("depends_on");
            deps.remove("init");
            deps.remove("topology");
        },
        &[],
    )?;
    assert_reported(
        &f,
        &["intake: reads volume jwks, which init fills, but does not wait for init"],
    );
    assert_reported(&f, &["intake: uses the bus but does not wait for topology"]);
    let f = findings_after(
        |doc| {
            doc["services"]["prometheus"]["command"][0] =
                "--config.file=/etc/prometheus/other.yml".into();
        },
        &[],
    )?;
    assert_reported(
        &f,
        &["prometheus: --config.file=/etc/prometheus/other.yml is not a file mounted"],
    );
    assert_reported(&f, &["prometheus: no configuration file mounted"]);
    let f = findings_after(
        |_| {},
        &[(
            "deploy/grafana/provisioning/dashboards/tongban.yml",
            "path: /var/lib/grafana/dashboards",
            "path: /var/lib/grafana/boards",
        )],
    )?;
    assert_reported(
        &f,
        &["grafana: dashboard provider path /var/lib/grafana/boards is not mounted"],
    );
    assert_reported(
        &f,
        &["grafana: deploy/grafana/dashboards is not provisioned"],
    );
    Ok(())
}

#[test]
fn the_image_runs_unprivileged_and_builds_every_binary() -> anyhow::Result<()> {
    let f = findings_after(
        |_| {},
        &[("deploy/Dockerfile", "USER 10001:10001", "USER root")],
    )?;
    assert_reported(
        &f,
        &["Dockerfile: the runtime stage must run as a non-root USER"],
    );
    let f = findings_after(
        |_| {},
        &[("deploy/Dockerfile", "--workspace --bins", "-p tongban")],
    )?;
    assert_reported(
        &f,
        &["Dockerfile: the build stage does not build every binary"],
    );
    Ok(())
}

// --- the init step, for real ----------------------------------------------------------------

/// Runs deploy/compose-init.sh on `state` with the built `tongban` first on PATH.
fn run_init(state: &Path) -> anyhow::Result<String> {
    let tongban = tongban_e2e::binary("tongban")?;
    let bin_dir = tongban
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no parent of {}", tongban.display()))?;
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg(repo_root().join("deploy/compose-init.sh"))
        .arg(state)
        .env("PATH", path)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "init failed: {text}");
    Ok(text)
}

#[test]
fn init_creates_every_key_once_and_keeps_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let state = dir.path();
    let first = run_init(state)?;
    assert!(first.contains("Generated: kid"), "{first}");

    let issuer = state
        .join("issuer")
        .join(tongban_auth::keys::ISSUER_KEY_FILE);
    let jwks = state.join("jwks").join(tongban_auth::keys::JWKS_FILE);
    assert!(issuer.is_file() && jwks.is_file());
    // The published set is the issuer's, and the services can verify with it.
    assert_eq!(
        std::fs::read(&jwks)?,
        std::fs::read(state.join("issuer").join(tongban_auth::keys::JWKS_FILE))?
    );
    tongban_auth::Authenticator::from_jwks_file(&jwks, &tongban_auth::TokenRules::default())?;

    let mut keys = BTreeMap::new();
    for svc in ["intake", "approval", "dispatch", "notification"] {
        let key = state.join("audit").join(svc).join(format!("{svc}.key"));
        let signing = tongban_audit::anchor::load_signing_key(&key)?;
        let public = tongban_audit::anchor::load_verifying_key(
            &tongban_audit::anchor::public_key_path(&key),
        )?;
        assert_eq!(signing.verifying_key(), public, "{svc}: .pub is the key's");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&key)?.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{svc}: private key mode {mode:o}");
        }
        keys.insert(svc, std::fs::read(&key)?);
    }
    let distinct: BTreeSet<_> = keys.values().collect();
    assert_eq!(distinct.len(), 4, "one key per service");

    // The second start changes nothing.
    let issuer_before = std::fs::read(&issuer)?;
    let second = run_init(state)?;
    assert!(second.contains("Kept: kid"), "{second}");
    assert_eq!(std::fs::read(&issuer)?, issuer_before);
    for (svc, before) in &keys {
        let key = state.join("audit").join(svc).join(format!("{svc}.key"));
        assert_eq!(&std::fs::read(&key)?, before, "{svc}: key kept");
        assert!(
            second.contains(&format!("audit key for {svc} kept")),
            "{second}"
        );
    }
    Ok(())
}

// --- the databases, for real ------------------------------------------------------------------

/// A private PostgreSQL cluster in a temporary directory (the shared server's roles are left
/// alone), started the way the postgres image runs its initdb scripts: superuser `postgres`
/// with a password, password authentication over TCP.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// `runuser -u postgres --` when the test runs as root (initdb refuses root).
    as_postgres: bool,
}

const SUPERUSER_PASSWORD: &str = "test-superuser";

impl Cluster {
    fn start() -> anyhow::Result<Self> {
        let bindir = Command::new("pg_config").arg("--bindir").output()?;
        anyhow::ensure!(bindir.status.success(), "pg_config --bindir failed");
        let bin = PathBuf::from(String::from_utf8(bindir.stdout)?.trim());
        anyhow::ensure!(
            bin.join("initdb").is_file(),
            "initdb not found in {}",
            bin.display()
        );
        let as_postgres = Command::new("id").arg("-u").output()?.stdout.trim_ascii() == b"0";
        let dir = tempfile::tempdir()?;
        if as_postgres {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(st.success(), "chown to postgres failed");
        }
        let port = tongban_e2e::free_ports(1)?[0];
        let cluster = Self {
            dir,
            bin,
            port,
            as_postgres,
        };
        let pwfile = cluster.dir.path().join("pw");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD)?;
        cluster.run_tool(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
            ],
        )?;
        cluster.run_tool(
            "pg_ctl",
            &[
                "-D",
                &cluster.data(),
                "-l",
                &cluster.dir.path().join("log").display().to_string(),
                "-w",
                "-o",
                &format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1",
                    cluster.port,
                    cluster.dir.path().display()
                ),
                "start",
            ],
        )?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn run_tool(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = self.command(&self.bin.join(tool)).args(args).output()?;
        anyhow::ensure!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// `psql -c sql` over TCP as `user` with `password` on `database`: Ok(output) or
    /// Err(error text).
    fn psql(
        &self,
        user: &str,
        password: &str,
        database: &str,
        sql: &str,
    ) -> anyhow::Result<Result<String, String>> {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args(["-p", &self.port.to_string(), "-U", user, "-d", database])
            .args(["-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
        Ok(if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run_tool("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
    }
}

#[test]
fn each_service_gets_its_own_database_and_nothing_else() -> anyhow::Result<()> {
    let cluster = Cluster::start()?;
    let services = ["intake", "approval", "dispatch", "notification"];
    let password = |svc: &str| format!("pw-{svc}-'\"quoted");

    // The script as the image's entrypoint runs it: over the local socket as POSTGRES_USER.
    // Copied beside the cluster, where the postgres user can read it wherever the checkout is.
    let script_path = cluster.dir.path().join("10-tongban-databases.sh");
    std::fs::copy(
        repo_root().join("deploy/postgres/10-tongban-databases.sh"),
        &script_path,
    )?;
    let mut script = cluster.command(Path::new("sh"));
    script
        .arg(&script_path)
        .env("POSTGRES_USER", "postgres")
        .env("PGHOST", cluster.dir.path())
        .env("PGPORT", cluster.port.to_string());
    for svc in services {
        script.env(format!("{}_DB_PASSWORD", svc.to_uppercase()), password(svc));
    }
    let out = script.output()?;
    anyhow::ensure!(
        out.status.success(),
        "init script failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    for svc in services {
        let role = format!("tongban_{svc}");
        let pw = password(svc);
        // Its own database: it connects, and may create and use tables (migrations).
        let own = cluster.psql(
            &role,
            &pw,
            &role,
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1); SELECT count(*) FROM t;",
        )?;
        assert_eq!(own.as_deref(), Ok("1"), "{svc}: own database");
        // Not a superuser, cannot create databases or roles.
        let attrs = cluster.psql(
            &role,
            &pw,
            &role,
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls \
             FROM pg_roles WHERE rolname = current_user",
        )?;
        assert_eq!(attrs.as_deref(), Ok("f|f|f|f|f"), "{svc}: role attributes");
        // No other database, not even postgres or another service's.
        for other in services.iter().filter(|o| **o != svc) {
            let denied = cluster.psql(&role, &pw, &format!("tongban_{other}"), "SELECT 1")?;
            assert!(
                denied
                    .as_ref()
                    .is_err_and(|e| e.contains("permission denied for database")),
                "{svc} reached tongban_{other}: {denied:?}"
            );
        }
        for db in ["postgres", "template1"] {
            let denied = cluster.psql(&role, &pw, db, "SELECT 1")?;
            assert!(denied.is_err(), "{svc} reached {db}: {denied:?}");
        }
        // The password is required.
        let wrong = cluster.psql(&role, "wrong", &role, "SELECT 1")?;
        assert!(
            wrong
                .as_ref()
                .is_err_and(|e| e.contains("password authentication failed")),
            "{wrong:?}"
        );
    }
    // The superuser is untouched.
    let su = cluster.psql("postgres", SUPERUSER_PASSWORD, "postgres", "SELECT 1")?;
    assert_eq!(su.as_deref(), Ok("1"));

    // A missing password stops initdb with the variable named.
    let mut script = cluster.command(Path::new("sh"));
    let out = script
        .arg(&script_path)
        .env("POSTGRES_USER", "postgres")
        .env("PGHOST", cluster.dir.path())
        .env("PGPORT", cluster.port.to_string())
        .output()?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("INTAKE_DB_PASSWORD is not set"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn compose_env_script_writes_a_complete_env() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("scripts"))?;
    std::fs::create_dir_all(dir.path().join("deploy"))?;
    for file in ["scripts/compose-env.sh", "deploy/.env.example"] {
        std::fs::copy(repo_root().join(file), dir.path().join(file))?;
    }
    let run = || {
        Command::new("sh")
            .arg(dir.path().join("scripts/compose-env.sh"))
            .output()
    };
    let out = run()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = parse_env_file(&std::fs::read_to_string(dir.path().join(".env"))?);
    let project = Project::load()?;
    assert_eq!(
        env.keys().collect::<Vec<_>>(),
        project.env_example.keys().collect::<Vec<_>>()
    );
    // Every secret filled, each with its own value; compose interpolates without an error.
    let secrets: BTreeSet<&String> = project
        .env_example
        .iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(k, _)| &env[k])
        .collect();
    assert_eq!(
        secrets.len(),
        project
            .env_example
            .values()
            .filter(|v| v.is_empty())
            .count()
    );
    assert!(secrets.iter().all(|v| v.len() == 48), "{secrets:?}");
    let (mut refs, mut errors) = (Vec::new(), Vec::new());
    interpolate_doc(&project.compose()?, &env, &mut refs, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    // A second run keeps the existing file.
    let before = std::fs::read(dir.path().join(".env"))?;
    assert!(!run()?.status.success());
    assert_eq!(std::fs::read(dir.path().join(".env"))?, before);
    Ok(())
}
