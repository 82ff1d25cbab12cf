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
//! help). A code missing from a table for a value a matter's form allows is found earlier, by
//! [`check_code_tables`] (dispatch start-up, approval publishing); what remains at delivery is a
//! value no form declared.
//!
//! A JSON `null` counts as absent.
//!
//! # Layout
//! - `compile`: the rules as written in TOML, checked and compiled into a [`Mapping`] at
//!   start-up.
//! - `apply`: a compiled [`Mapping`] applied to one canonical document, at delivery time.
//! - `codes`: code tables checked against the values the matters' forms allow, so that a value
//!   no table translates stops start-up (dispatch) or publishing (approval) instead of
//!   dead-lettering deliveries.

mod apply;
mod codes;
mod compile;

pub use codes::{
    CodeGap, CodeGaps, FieldValues, GapSource, MatterForm, check_code_tables, code_table_gaps,
};

use std::collections::BTreeMap;

use serde_json::Value;

pub(crate) use compile::RawRule;

/// Top-level sections of the canonical document a pointer may start with.
pub const CANONICAL_SECTIONS: &[&str] = &[
    "event",
    "application",
    "approval",
    "withdrawal",
    "supplement",
];

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

impl Mapping {
    /// The platform this mapping belongs to.
    pub fn platform(&self) -> &str {
        &self.platform
    }

    /// The rules, in target-name order.
    pub fn rules(&self) -> &[FieldRule] {
        &self.rules
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::compile::{RuleError, check_pointer};
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
