//! The field-mapping engine: canonical document in, platform payload out.
//!
//! A [`Mapping`] is a list of rules, one per target field. Each rule takes a value from the
//! canonical document (a JSON pointer, RFC 6901) or a constant, optionally translates it through
//! a code table (`map`, with an optional `default`), then optionally formats it (`format`), and
//! writes it at its target path; a dotted target (`jsdw.tyshxydm`) builds nested objects. A rule
//! whose source is an array may map each element with its own sub-rules (`each`), whose pointers
//! are relative to the element.
//!
//! All checking that can happen at start-up does (pointer syntax, formats, conflicting targets,
//! event types); what is left for delivery time is data: a missing required value, a code not in
//! a table, a value that cannot be formatted. Those surface as a [`MappingError`] naming the
//! platform, the field and the source path, which the pipeline dead-letters (retrying would not
//! help).
//!
//! A JSON `null` counts as absent.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, NaiveDate, TimeZone};
use chrono_tz::Asia::Shanghai;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::events::{DECISION_EVENT_TYPES, is_known_event_type};

/// Top-level sections of the canonical document a pointer may start with.
pub const CANONICAL_SECTIONS: &[&str] = &["event", "application", "approval"];

/// A compiled field mapping for one platform.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    platform: String,
    rules: Vec<FieldRule>,
}

/// One target field and how to fill it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRule {
    target: String,
    segments: Vec<String>,
    source: Source,
    optional: bool,
    code_table: Option<CodeTable>,
    format: Option<Format>,
    when_event: Option<Vec<String>>,
    each: Option<Vec<FieldRule>>,
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A JSON pointer into the canonical document (or, inside `each`, into the element).
    Pointer(String),
    /// A fixed value.
    Const(Value),
}

/// A code table: source value (as text) → platform code.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeTable {
    entries: BTreeMap<String, Value>,
    default: Option<Value>,
}

/// Output formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// `date[:<chrono format>]`: an RFC 3339 instant converted to Asia/Shanghai (or a plain
    /// `YYYY-MM-DD` date taken as is), formatted; default `%Y-%m-%d`.
    Date(String),
    /// `datetime[:<chrono format>]`: like `date`; default `%Y-%m-%dT%H:%M:%S%:z`.
    DateTime(String),
    /// A JSON number; numeric strings are converted.
    Number,
    /// A JSON string; numbers and booleans are written as text.
    String,
    /// Upper-cased string.
    Upper,
    /// Lower-cased string.
    Lower,
}

/// A delivery-time mapping failure: the data does not fit the platform's mapping.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("platform `{platform}`, field `{field}` (source `{path}`): {kind}")]
pub struct MappingError {
    /// Platform id.
    pub platform: String,
    /// Target field, e.g. `jsdw.tyshxydm` or `ATTACHMENTS[0].FILENAME`.
    pub field: String,
    /// Source pointer (absolute for `each` elements), or `const`.
    pub path: String,
    /// What went wrong.
    pub kind: MappingErrorKind,
}

/// What went wrong while mapping one field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingErrorKind {
    /// A non-optional source is absent or null.
    #[error("required value is missing")]
    Missing,
    /// The value is not in the code table, which has no default.
    #[error("value {value} is not in the code table and there is no default")]
    Unmapped {
        /// The value, as JSON.
        value: String,
    },
    /// The value cannot be formatted as asked.
    #[error("cannot format as `{format}`: {reason}")]
    Format {
        /// The format as written.
        format: String,
        /// Why, with the offending value (as JSON).
        reason: String,
    },
    /// `each` needs an array.
    #[error("expected an array for `each`, found {found}")]
    NotAnArray {
        /// The value, as JSON.
        found: String,
    },
}

/// A rule as written in TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    from: Option<String>,
    #[serde(rename = "const")]
    constant: Option<toml::Value>,
    #[serde(default)]
    optional: bool,
    format: Option<String>,
    map: Option<BTreeMap<String, toml::Value>>,
    default: Option<toml::Value>,
    when_event: Option<OneOrMany>,
    each: Option<BTreeMap<String, RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A start-up error in one rule: the dotted config field and what is wrong with it.
#[derive(Debug)]
pub(crate) struct RuleError {
    pub(crate) field: String,
    pub(crate) message: String,
}

fn rule_err(field: impl Into<String>, message: impl Into<String>) -> RuleError {
    RuleError {
        field: field.into(),
        message: message.into(),
    }
}

/// `mapping.xmmc` or `mapping."jsdw.tyshxydm"`.
fn key_path(prefix: &str, key: &str) -> String {
    if key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        format!("{prefix}.{key}")
    } else {
        format!("{prefix}.\"{key}\"")
    }
}

impl Mapping {
    /// Compiles the `[mapping]` table of platform `platform`, which receives `event_types`.
    pub(crate) fn compile(
        platform: &str,
        raw: BTreeMap<String, RawRule>,
        event_types: &[String],
    ) -> Result<Self, RuleError> {
        if raw.is_empty() {
            return Err(rule_err("mapping", "at least one field is needed"));
        }
        let rules = compile_rules("mapping", raw, event_types, false)?;
        Ok(Self {
            platform: platform.to_owned(),
            rules,
        })
    }

    /// The platform this mapping belongs to.
    pub fn platform(&self) -> &str {
        &self.platform
    }

    /// The rules, in target-name order.
    pub fn rules(&self) -> &[FieldRule] {
        &self.rules
    }

    /// Builds the platform payload for one event from the canonical document. Rules with a
    /// `when_event` that does not list `event_type` are skipped.
    pub fn apply(&self, canonical: &Value, event_type: &str) -> Result<Value, MappingError> {
        let ctx = Ctx {
            platform: &self.platform,
            field_prefix: String::new(),
            path_prefix: String::new(),
        };
        apply_rules(&self.rules, canonical, event_type, &ctx).map(Value::Object)
    }
}

impl FieldRule {
    /// Target field as written (dotted for nested).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Where the value comes from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Whether an absent source omits the field instead of failing.
    pub fn optional(&self) -> bool {
        self.optional
    }

    /// Event types the rule is limited to, if any.
    pub fn when_event(&self) -> Option<&[String]> {
        self.when_event.as_deref()
    }
}

fn compile_rules(
    prefix: &str,
    raw: BTreeMap<String, RawRule>,
    event_types: &[String],
    inside_each: bool,
) -> Result<Vec<FieldRule>, RuleError> {
    let mut rules = Vec::with_capacity(raw.len());
    for (target, rule) in raw {
        let field = key_path(prefix, &target);
        rules.push(compile_rule(
            &field,
            target,
            rule,
            event_types,
            inside_each,
        )?);
    }
    check_target_conflicts(prefix, &rules)?;
    Ok(rules)
}

fn compile_rule(
    field: &str,
    target: String,
    raw: RawRule,
    event_types: &[String],
    inside_each: bool,
) -> Result<FieldRule, RuleError> {
    let segments: Vec<String> = target.split('.').map(str::to_owned).collect();
    if segments
        .iter()
        .any(|s| s.trim().is_empty() || s.trim() != s)
    {
        return Err(rule_err(
            field,
            "target path segments must be non-empty and without surrounding spaces",
        ));
    }

    let source = match (raw.from, raw.constant) {
        (Some(_), Some(_)) => {
            return Err(rule_err(field, "`from` and `const` are mutually exclusive"));
        }
        (None, None) => return Err(rule_err(field, "needs `from` or `const`")),
        (Some(pointer), None) => {
            check_pointer(&pointer, inside_each)
                .map_err(|m| rule_err(format!("{field}.from"), m))?;
            Source::Pointer(pointer)
        }
        (None, Some(value)) => {
            for (present, key) in [
                (raw.optional, "optional"),
                (raw.map.is_some(), "map"),
                (raw.default.is_some(), "default"),
                (raw.format.is_some(), "format"),
                (raw.each.is_some(), "each"),
            ] {
                if present {
                    return Err(rule_err(
                        format!("{field}.{key}"),
                        "not allowed with `const` (a constant is written as it is)",
                    ));
                }
            }
            let value = toml_to_json(value).map_err(|m| rule_err(format!("{field}.const"), m))?;
            Source::Const(value)
        }
    };

    let code_table = match (raw.map, raw.default) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(rule_err(
                format!("{field}.default"),
                "`default` is the fallback of a code table: it needs `map`",
            ));
        }
        (Some(entries), default) => {
            if entries.is_empty() {
                return Err(rule_err(format!("{field}.map"), "code table is empty"));
            }
            let mut table = BTreeMap::new();
            for (code, value) in entries {
                let value = toml_to_json(value)
                    .map_err(|m| rule_err(key_path(&format!("{field}.map"), &code), m))?;
                table.insert(code, value);
            }
            let default = default
                .map(toml_to_json)
                .transpose()
                .map_err(|m| rule_err(format!("{field}.default"), m))?;
            Some(CodeTable {
                entries: table,
                default,
            })
        }
    };

    let format = raw
        .format
        .as_deref()
        .map(Format::parse)
        .transpose()
        .map_err(|m| rule_err(format!("{field}.format"), m))?;

    let when_event = match raw.when_event {
        None => None,
        Some(_) if inside_each => {
            return Err(rule_err(
                format!("{field}.when_event"),
                "not allowed inside `each` (set it on the enclosing field)",
            ));
        }
        Some(OneOrMany::One(one)) => Some(vec![one]),
        Some(OneOrMany::Many(many)) => Some(many),
    };
    if let Some(events) = &when_event {
        if events.is_empty() {
            return Err(rule_err(format!("{field}.when_event"), "is empty"));
        }
        for (i, event) in events.iter().enumerate() {
            let at = format!("{field}.when_event[{i}]");
            if !is_known_event_type(event) {
                return Err(rule_err(at, format!("unknown event type `{event}`")));
            }
            if !event_types.iter().any(|e| e == event) {
                return Err(rule_err(
                    at,
                    format!(
                        "`{event}` is not in this platform's event_types: the rule would never apply"
                    ),
                ));
            }
        }
    }

    // The approval section exists only on decision events: a required field read from it must
    // be limited to those, or every other event would fail at delivery time.
    if let Source::Pointer(pointer) = &source
        && !inside_each
        && !raw.optional
        && (pointer == "/approval" || pointer.starts_with("/approval/"))
    {
        let limited = when_event.as_ref().is_some_and(|events| {
            events
                .iter()
                .all(|e| DECISION_EVENT_TYPES.contains(&e.as_str()))
        });
        if !limited {
            return Err(rule_err(
                field,
                format!(
                    "reads the approval section, which exists only on {}: set `when_event` to those or `optional = true`",
                    DECISION_EVENT_TYPES.join(" / ")
                ),
            ));
        }
    }

    let each = match raw.each {
        None => None,
        Some(_) if !matches!(source, Source::Pointer(_)) => {
            return Err(rule_err(format!("{field}.each"), "needs `from`"));
        }
        Some(_) if code_table.is_some() || format.is_some() => {
            return Err(rule_err(
                format!("{field}.each"),
                "cannot be combined with `map` or `format` (put them on the sub-fields)",
            ));
        }
        Some(sub) if sub.is_empty() => {
            return Err(rule_err(
                format!("{field}.each"),
                "needs at least one field",
            ));
        }
        Some(sub) => Some(compile_rules(
            &format!("{field}.each"),
            sub,
            event_types,
            true,
        )?),
    };

    Ok(FieldRule {
        target,
        segments,
        source,
        optional: raw.optional,
        code_table,
        format,
        when_event,
        each,
    })
}

/// Two targets conflict when one is the other or lies inside it (`a` and `a.b`).
fn check_target_conflicts(prefix: &str, rules: &[FieldRule]) -> Result<(), RuleError> {
    for (i, a) in rules.iter().enumerate() {
        for b in &rules[i + 1..] {
            let (short, long) = if a.segments.len() <= b.segments.len() {
                (a, b)
            } else {
                (b, a)
            };
            if long.segments.starts_with(&short.segments) {
                return Err(rule_err(
                    key_path(prefix, &long.target),
                    format!(
                        "target conflicts with `{}`: a field cannot be both a value and an object",
                        short.target
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// RFC 6901 syntax, plus: top-level pointers start with a canonical section.
fn check_pointer(pointer: &str, inside_each: bool) -> Result<(), String> {
    if pointer.is_empty() {
        return if inside_each {
            Ok(())
        } else {
            Err("the whole document cannot be a field; point into `/event`, `/application` or `/approval`".to_owned())
        };
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "invalid JSON pointer `{pointer}`: must start with `/`"
        ));
    };
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "invalid JSON pointer `{pointer}`: `~` must be followed by `0` or `1`"
            ));
        }
    }
    if !inside_each {
        let section = rest.split('/').next().unwrap_or_default();
        if !CANONICAL_SECTIONS.contains(&section) {
            return Err(format!(
                "JSON pointer `{pointer}` must start with one of /{}",
                CANONICAL_SECTIONS.join(", /")
            ));
        }
    }
    Ok(())
}

fn toml_to_json(value: toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} cannot be represented in JSON"))?,
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(toml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(k, v)| toml_to_json(v).map(|v| (k, v)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

impl Format {
    /// Parses `date[:fmt]`, `datetime[:fmt]`, `number`, `string`, `upper`, `lower`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (name, arg) = match spec.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (spec, None),
        };
        let pattern = |default: &str| -> Result<String, String> {
            let pattern = arg.unwrap_or(default);
            if pattern.is_empty() {
                return Err(format!("`{spec}`: empty date pattern"));
            }
            if StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error)) {
                return Err(format!(
                    "`{spec}`: invalid chrono format pattern `{pattern}`"
                ));
            }
            Ok(pattern.to_owned())
        };
        let no_arg = |format: Self| match arg {
            None => Ok(format),
            Some(_) => Err(format!("`{name}` takes no argument")),
        };
        match name {
            "date" => pattern("%Y-%m-%d").map(Self::Date),
            "datetime" => pattern("%Y-%m-%dT%H:%M:%S%:z").map(Self::DateTime),
            "number" => no_arg(Self::Number),
            "string" => no_arg(Self::String),
            "upper" => no_arg(Self::Upper),
            "lower" => no_arg(Self::Lower),
            _ => Err(format!(
                "unknown format `{spec}` (known: date[:fmt], datetime[:fmt], number, string, upper, lower)"
            )),
        }
    }

    fn name(&self) -> String {
        match self {
            Self::Date(p) => format!("date:{p}"),
            Self::DateTime(p) => format!("datetime:{p}"),
            Self::Number => "number".to_owned(),
            Self::String => "string".to_owned(),
            Self::Upper => "upper".to_owned(),
            Self::Lower => "lower".to_owned(),
        }
    }

    fn apply(&self, value: Value) -> Result<Value, String> {
        match self {
            Self::Date(pattern) | Self::DateTime(pattern) => {
                let Value::String(text) = &value else {
                    return Err("expected an RFC 3339 or YYYY-MM-DD string".to_owned());
                };
                let instant = parse_instant(text)?;
                let mut out = String::new();
                write!(out, "{}", instant.format(pattern))
                    .map_err(|_| format!("pattern `{pattern}` cannot format this value"))?;
                Ok(Value::String(out))
            }
            Self::Number => match value {
                Value::Number(_) => Ok(value),
                Value::String(s) => {
                    let s = s.trim();
                    if let Ok(i) = s.parse::<i64>() {
                        Ok(Value::from(i))
                    } else {
                        s.parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                            .map(Value::Number)
                            .ok_or_else(|| "not a number".to_owned())
                    }
                }
                _ => Err("not a number".to_owned()),
            },
            Self::String => match value {
                Value::String(_) => Ok(value),
                Value::Number(n) => Ok(Value::String(n.to_string())),
                Value::Bool(b) => Ok(Value::String(b.to_string())),
                _ => Err("only strings, numbers and booleans can be written as text".to_owned()),
            },
            Self::Upper | Self::Lower => match value {
                Value::String(s) if matches!(self, Self::Upper) => {
                    Ok(Value::String(s.to_uppercase()))
                }
                Value::String(s) => Ok(Value::String(s.to_lowercase())),
                _ => Err("expected a string".to_owned()),
            },
        }
    }
}

/// An RFC 3339 instant in Asia/Shanghai, or a plain date at midnight there.
fn parse_instant(text: &str) -> Result<DateTime<chrono_tz::Tz>, String> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(instant.with_timezone(&Shanghai));
    }
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| "expected an RFC 3339 timestamp or a YYYY-MM-DD date".to_owned())?;
    Shanghai
        .from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .earliest()
        .ok_or_else(|| "date has no midnight in Asia/Shanghai".to_owned())
}

impl CodeTable {
    fn lookup(&self, value: &Value) -> Option<Value> {
        let key = match value {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => return self.default.clone(),
        };
        self.entries
            .get(&key)
            .cloned()
            .or_else(|| self.default.clone())
    }
}

struct Ctx<'a> {
    platform: &'a str,
    /// `ATTACHMENTS[0].` inside `each`.
    field_prefix: String,
    /// Absolute pointer of the current `each` element.
    path_prefix: String,
}

impl Ctx<'_> {
    fn error(&self, rule: &FieldRule, kind: MappingErrorKind) -> MappingError {
        let path = match &rule.source {
            Source::Pointer(p) => format!("{}{p}", self.path_prefix),
            Source::Const(_) => "const".to_owned(),
        };
        MappingError {
            platform: self.platform.to_owned(),
            field: format!("{}{}", self.field_prefix, rule.target),
            path,
            kind,
        }
    }
}

fn apply_rules(
    rules: &[FieldRule],
    doc: &Value,
    event_type: &str,
    ctx: &Ctx<'_>,
) -> Result<Map<String, Value>, MappingError> {
    let mut out = Map::new();
    for rule in rules {
        if let Some(events) = &rule.when_event
            && !events.iter().any(|e| e == event_type)
        {
            continue;
        }
        if let Some(value) = evaluate(rule, doc, event_type, ctx)? {
            insert(&mut out, &rule.segments, value);
        }
    }
    Ok(out)
}

fn evaluate(
    rule: &FieldRule,
    doc: &Value,
    event_type: &str,
    ctx: &Ctx<'_>,
) -> Result<Option<Value>, MappingError> {
    let pointer = match &rule.source {
        Source::Const(value) => return Ok(Some(value.clone())),
        Source::Pointer(pointer) => pointer,
    };
    let value = match doc.pointer(pointer) {
        None | Some(Value::Null) if rule.optional => return Ok(None),
        None | Some(Value::Null) => return Err(ctx.error(rule, MappingErrorKind::Missing)),
        Some(value) => value,
    };

    if let Some(sub_rules) = &rule.each {
        let Value::Array(items) = value else {
            return Err(ctx.error(
                rule,
                MappingErrorKind::NotAnArray {
                    found: value.to_string(),
                },
            ));
        };
        let mut mapped = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_ctx = Ctx {
                platform: ctx.platform,
                field_prefix: format!("{}{}[{i}].", ctx.field_prefix, rule.target),
                path_prefix: format!("{}{pointer}/{i}", ctx.path_prefix),
            };
            mapped.push(Value::Object(apply_rules(
                sub_rules, item, event_type, &item_ctx,
            )?));
        }
        return Ok(Some(Value::Array(mapped)));
    }

    let mut value = value.clone();
    if let Some(table) = &rule.code_table {
        value = table.lookup(&value).ok_or_else(|| {
            ctx.error(
                rule,
                MappingErrorKind::Unmapped {
                    value: value.to_string(),
                },
            )
        })?;
    }
    if let Some(format) = &rule.format {
        let shown = value.to_string();
        value = format.apply(value).map_err(|reason| {
            ctx.error(
                rule,
                MappingErrorKind::Format {
                    format: format.name(),
                    reason: format!("{reason} (value {shown})"),
                },
            )
        })?;
    }
    Ok(Some(value))
}

/// Writes `value` at `segments`, creating objects on the way. Start-up checks guarantee no
/// target is both a value and an object, so intermediate values are always objects.
fn insert(out: &mut Map<String, Value>, segments: &[String], value: Value) {
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut node = out;
    for segment in parents {
        let slot = node
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else {
            return;
        };
        node = next;
    }
    node.insert(last.clone(), value);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(src: &str, events: &[&str]) -> Result<Mapping, RuleError> {
        let raw: BTreeMap<String, RawRule> = toml::from_str(src).unwrap();
        let events: Vec<String> = events.iter().map(|s| (*s).to_owned()).collect();
        Mapping::compile("p", raw, &events)
    }

    #[test]
    fn formats_parse() {
        assert_eq!(
            Format::parse("date:%Y年%m月%d日"),
            Ok(Format::Date("%Y年%m月%d日".into()))
        );
        assert_eq!(Format::parse("date"), Ok(Format::Date("%Y-%m-%d".into())));
        assert!(Format::parse("date:%Q").is_err());
        assert!(Format::parse("number:2").is_err());
        assert!(Format::parse("money").is_err());
    }

    #[test]
    fn pointers_checked() {
        assert!(check_pointer("/application/form/a~1b", false).is_ok());
        assert!(check_pointer("/application/form/a~2b", false).is_err());
        assert!(check_pointer("application/form", false).is_err());
        assert!(check_pointer("/applicaton/form", false).is_err());
        assert!(check_pointer("", true).is_ok());
        assert!(check_pointer("/name", true).is_ok());
    }

    #[test]
    fn number_string_and_case_formats() {
        let m = compile(
            r#"
            n = { from = "/application/form/n", format = "number" }
            s = { from = "/application/form/n", format = "string" }
            u = { from = "/application/form/c", format = "upper" }
            b = { from = "/application/form/flag", map = { "true" = "1", "false" = "0" } }
            d = { from = "/application/form/x", map = { a = "A" }, default = "Z" }
            "#,
            &["application.submitted"],
        )
        .map_err(|e| e.message)
        .unwrap();
        let doc =
            json!({"application": {"form": {"n": "12.5", "c": "91abc", "flag": true, "x": "q"}}});
        assert_eq!(
            m.apply(&doc, "application.submitted").unwrap(),
            json!({"n": 12.5, "s": "12.5", "u": "91ABC", "b": "1", "d": "Z"})
        );
        let bad = json!({"application": {"form": {"n": "abc", "c": "x", "flag": true, "x": "a"}}});
        let err = m.apply(&bad, "application.submitted").unwrap_err();
        assert_eq!(err.field, "n");
        assert!(matches!(err.kind, MappingErrorKind::Format { .. }));
    }

    #[test]
    fn conflicts_and_each() {
        let err = compile(
            r#"
            "a" = { const = 1 }
            "a.b" = { const = 2 }
            "#,
            &[],
        )
        .unwrap_err();
        assert_eq!(err.field, "mapping.\"a.b\"");
        let m = compile(
            r#"
            [files]
            from = "/application/materials"
            each = { n = { from = "/name" }, k = { from = "/kind", map = { x = "X" } } }
            "#,
            &[],
        )
        .map_err(|e| e.message)
        .unwrap();
        let doc = json!({"application": {"materials": [{"name": "a", "kind": "x"}, {"name": "b", "kind": "y"}]}});
        let err = m.apply(&doc, "application.submitted").unwrap_err();
        assert_eq!(err.field, "files[1].k");
        assert_eq!(err.path, "/application/materials/1/kind");
    }
}
