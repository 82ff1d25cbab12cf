//! Form schemas: the fields an application of a matter carries, and their validation.
//!
//! Forms arrive as JSON objects (a protobuf `Struct`), so every number is an `f64`: an
//! `integer` field accepts `12.0` and rejects `12.5`. A JSON `null` counts as absent. A
//! `string` field holding only white space counts as absent too, so a required one cannot be
//! satisfied by blanks. Validation never stops at the first problem: it reports one
//! [`FieldViolation`] per offending field, fields in schema order, then unknown fields by name.

use std::fmt;

use chrono::NaiveDate;
use serde_json::{Map, Value};

/// A field of a form that breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, e.g. "form.total_investment_wan".
    pub field: String,
    /// What is wrong, for the applicant.
    pub description: String,
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// The form fields of a matter.
#[derive(Debug, Clone, Default)]
pub struct FormSchema {
    pub(crate) fields: Vec<FieldDef>,
}

/// One form field.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// Key in the form object, e.g. "project_name".
    pub name: String,
    /// Label shown to applicants (Chinese).
    pub label: String,
    pub label_en: Option<String>,
    /// Help text.
    pub description: Option<String>,
    pub required: bool,
    pub ty: FieldType,
}

/// The type of a field, with its constraints.
#[derive(Debug, Clone)]
pub enum FieldType {
    /// Text; lengths count characters, not bytes.
    String {
        min_length: Option<u32>,
        max_length: Option<u32>,
        pattern: Option<Pattern>,
    },
    /// A whole number (a JSON number without fraction).
    Integer {
        min: Option<f64>,
        max: Option<f64>,
    },
    /// Any finite number.
    Number {
        min: Option<f64>,
        max: Option<f64>,
    },
    Boolean,
    /// A calendar date written `YYYY-MM-DD`.
    Date,
    /// One of a fixed list of strings.
    Enum {
        allowed: Vec<String>,
    },
}

impl FieldType {
    /// The name used in definition files ("string", "integer", ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::String { .. } => "string",
            Self::Integer { .. } => "integer",
            Self::Number { .. } => "number",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::Enum { .. } => "enum",
        }
    }
}

/// A regular expression that must match a whole string value.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source`, anchored at both ends.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let regex = regex::Regex::new(&format!("^(?:{source})$"))?;
        Ok(Self {
            source: source.to_owned(),
            regex,
        })
    }

    /// The pattern as written in the definition.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

impl FormSchema {
    /// The fields, in definition order.
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// The field with this name.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Every way `form` breaks the schema; empty when it is valid.
    pub fn validate(&self, form: &Map<String, Value>) -> Vec<FieldViolation> {
        let mut violations = Vec::new();
        for field in &self.fields {
            let value = match form.get(&field.name) {
                None | Some(Value::Null) => None,
                Some(Value::String(s))
                    if s.trim().is_empty() && matches!(field.ty, FieldType::String { .. }) =>
                {
                    None
                }
                Some(v) => Some(v),
            };
            let problem = match value {
                None if field.required => Some("is required".to_owned()),
                None => None,
                Some(v) => check(&field.ty, v),
            };
            if let Some(description) = problem {
                violations.push(FieldViolation {
                    field: format!("form.{}", field.name),
                    description,
                });
            }
        }
        let mut unknown: Vec<&String> = form.keys().filter(|k| self.field(k).is_none()).collect();
        unknown.sort();
        violations.extend(unknown.into_iter().map(|k| FieldViolation {
            field: format!("form.{k}"),
            description: "is not in the form schema".to_owned(),
        }));
        violations
    }
}

/// Checks a present value against its type; `Some(description)` when it does not fit.
fn check(ty: &FieldType, value: &Value) -> Option<String> {
    match ty {
        FieldType::String {
            min_length,
            max_length,
            pattern,
        } => {
            let Value::String(s) = value else {
                return Some(format!("must be a string, got {}", kind_of(value)));
            };
            let len = s.chars().count();
            if let Some(min) = min_length
                && len < *min as usize
            {
                return Some(format!("must be at least {min} characters, got {len}"));
            }
            if let Some(max) = max_length
                && len > *max as usize
            {
                return Some(format!("must be at most {max} characters, got {len}"));
            }
            if let Some(p) = pattern
                && !p.is_match(s)
            {
                return Some(format!("must match the pattern `{}`", p.as_str()));
            }
            None
        }
        FieldType::Integer { min, max } | FieldType::Number { min, max } => {
            let integer = matches!(ty, FieldType::Integer { .. });
            let Some(n) = value.as_f64().filter(|n| n.is_finite()) else {
                let what = if integer {
                    "a whole number"
                } else {
                    "a number"
                };
                return Some(format!("must be {what}, got {}", kind_of(value)));
            };
            if integer && n.fract() != 0.0 {
                return Some(format!("must be a whole number, got {n}"));
            }
            if let Some(min) = min
                && n < *min
            {
                return Some(format!("must be at least {min}, got {n}"));
            }
            if let Some(max) = max
                && n > *max
            {
                return Some(format!("must be at most {max}, got {n}"));
            }
            None
        }
        FieldType::Boolean => {
            (!value.is_boolean()).then(|| format!("must be true or false, got {}", kind_of(value)))
        }
        FieldType::Date => match value {
            Value::String(s) if is_date(s) => None,
            Value::String(s) => Some(format!("must be a date written YYYY-MM-DD, got `{s}`")),
            _ => Some(format!(
                "must be a date written YYYY-MM-DD, got {}",
                kind_of(value)
            )),
        },
        FieldType::Enum { allowed } => match value {
            Value::String(s) if allowed.iter().any(|a| a == s) => None,
            Value::String(s) => Some(format!("must be one of {}, got `{s}`", allowed.join(", "))),
            _ => Some(format!(
                "must be one of {}, got {}",
                allowed.join(", "),
                kind_of(value)
            )),
        },
    }
}

/// `YYYY-MM-DD` exactly (zero-padded), and a real calendar date.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
        && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_strict() {
        assert!(is_date("2026-02-28"));
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2026-02-29"));
        assert!(!is_date("2026-2-28"));
        assert!(!is_date("2026/02/28"));
        assert!(!is_date("2026-02-28T00:00"));
    }

    #[test]
    fn patterns_match_whole_values() {
        let p = Pattern::new(r"\d{4}").unwrap();
        assert!(p.is_match("2026"));
        assert!(!p.is_match("x2026"));
        assert!(!p.is_match("20261"));
    }
}
