//! Compiling a platform's `[mapping]` table: every check that can run at start-up does
//! (pointer syntax, formats, code tables, conflicting targets, event types), so that what is
//! left for delivery time is data.

use std::collections::BTreeMap;

use chrono::format::{Item, StrftimeItems};
use serde::Deserialize;
use serde_json::Value;

use super::{CANONICAL_SECTIONS, CodeTable, FieldRule, Format, Mapping, Source};
use crate::events::{EVENT_SECTIONS, is_known_event_type};

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
pub(super) fn key_path(prefix: &str, key: &str) -> String {
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

    // Some sections exist only on some events (`approval` on decisions, `withdrawal` on the
    // withdrawal...): a required field read from one must be limited to those events, or every
    // other event would fail at delivery time.
    if let Source::Pointer(pointer) = &source
        && !inside_each
        && !raw.optional
        && let Some((section, events)) = EVENT_SECTIONS.iter().find(|(section, _)| {
            pointer.strip_prefix('/').is_some_and(|p| {
                p == *section || p.strip_prefix(section).is_some_and(|r| r.starts_with('/'))
            })
        })
    {
        let limited = when_event
            .as_ref()
            .is_some_and(|wanted| wanted.iter().all(|e| events.contains(&e.as_str())));
        if !limited {
            return Err(rule_err(
                field,
                format!(
                    "reads the {section} section, which exists only on {}: set `when_event` to those or `optional = true`",
                    events.join(" / ")
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
pub(super) fn check_pointer(pointer: &str, inside_each: bool) -> Result<(), String> {
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
}
