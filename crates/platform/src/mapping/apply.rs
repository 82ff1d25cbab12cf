//! Applying a compiled [`Mapping`] to one canonical document: reading each rule's source,
//! translating through its code table, formatting, and writing the payload. Failures here are
//! data that does not fit, reported as a [`MappingError`] naming platform, field and source.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, TimeZone};
use chrono_tz::Asia::Shanghai;
use serde_json::{Map, Value};

use super::{CodeTable, FieldRule, Format, Mapping, MappingError, MappingErrorKind, Source};

impl Mapping {
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

impl Format {
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
