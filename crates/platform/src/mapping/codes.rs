//! Code tables checked against the matters: every value a matter's form lets an applicant
//! choose must have an entry in each code table that translates that form field, or the
//! application is dead-lettered at delivery time, long after it was accepted.
//!
//! The check is pure. Its callers (dispatch at start-up, approval when a definition is
//! published) describe each matter's form as a [`MatterForm`]: the fields whose values form a
//! closed set (an enum's `allowed` values, a boolean's `true` / `false`). The matter crate is
//! an optional dependency (feature `matter`), only for building that from a definition.
//!
//! What is checked: a top-level rule with a code table (`map`) and no `default`, whose source
//! is exactly `/application/form/<field>`, on every platform whose `matter_codes` take the
//! matter. A table on `/application/matter_code` (the matter's name on the platform) is checked
//! the same way: every matter the platform takes needs an entry, or a new `env.eia.*` matter
//! would be dead-lettered there. Rules inside `each` are not checked: their pointers are relative to an array
//! element, and no form field type is an array, so they cannot read a form field this way.
//! A rule naming a field the form does not have is not a code-table gap (it is a missing
//! value, if anything) and is not reported here.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use super::compile::key_path;
use super::{FieldRule, Source};
use crate::config::PlatformConfig;

/// The pointer prefix under which the canonical document holds the form.
const FORM_PREFIX: &str = "/application/form/";
/// Where the canonical document holds the matter code.
const MATTER_CODE: &str = "/application/matter_code";

/// The values one form field can take, when they are a closed set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValues {
    /// An enum field: its `allowed` values.
    OneOf(Vec<String>),
    /// A boolean field; a code table keys it `"true"` / `"false"`.
    Boolean,
}

impl FieldValues {
    /// The values as code-table keys: the text the delivery-time lookup uses.
    fn keys(&self) -> Vec<String> {
        match self {
            Self::OneOf(values) => values.clone(),
            Self::Boolean => vec!["true".to_owned(), "false".to_owned()],
        }
    }
}

/// One matter definition's form, reduced to the fields with a closed set of values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatterForm {
    /// Matter code, matched against each platform's `matter_codes`.
    pub code: String,
    /// Definition version, for messages (several versions of a matter may be live at once).
    pub version: u32,
    /// Form field name → its values.
    pub fields: BTreeMap<String, FieldValues>,
}

#[cfg(feature = "matter")]
impl From<&tongban_matter::MatterDefinition> for MatterForm {
    /// Enum and boolean fields; the others take open-ended values no table could list.
    fn from(def: &tongban_matter::MatterDefinition) -> Self {
        use tongban_matter::FieldType;
        let fields = def
            .form
            .fields()
            .iter()
            .filter_map(|f| {
                let values = match &f.ty {
                    FieldType::Enum { allowed } => FieldValues::OneOf(allowed.clone()),
                    FieldType::Boolean => FieldValues::Boolean,
                    FieldType::String { .. }
                    | FieldType::Integer { .. }
                    | FieldType::Number { .. }
                    | FieldType::Date => return None,
                };
                Some((f.name.clone(), values))
            })
            .collect();
        Self {
            code: def.code.clone(),
            version: def.version,
            fields,
        }
    }
}

/// What a gap's value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GapSource {
    /// A value the matter's form field (named here, e.g. `construction_nature`) allows.
    FormField(String),
    /// The matter's own code (a table on `/application/matter_code`), which the platform's
    /// `matter_codes` take.
    MatterCode,
}

/// A value of a matter that a platform's code table cannot translate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeGap {
    /// The platform file, e.g. `eia.toml`.
    pub file: String,
    /// Platform id.
    pub platform: String,
    /// The mapping field, as in config errors: `mapping.xmlx`.
    pub field: String,
    /// The matter the value belongs to.
    pub matter_code: String,
    /// Its definition version.
    pub version: u32,
    /// Where the value comes from.
    pub source: GapSource,
    /// The value missing from the table, as its key would be written.
    pub value: String,
}

impl fmt::Display for CodeGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: `{}`: the code table has no entry for `{}` and no default, but ",
            self.file, self.field, self.value
        )?;
        match &self.source {
            GapSource::FormField(name) => write!(
                f,
                "form field `{name}` of matter {} (version {}) allows it",
                self.matter_code, self.version
            ),
            GapSource::MatterCode => write!(
                f,
                "matter {} (version {}) is one the platform's `matter_codes` take",
                self.matter_code, self.version
            ),
        }
    }
}

/// Every gap found, in platform, field, matter, value order; shown one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CodeGaps(pub Vec<CodeGap>);

impl fmt::Display for CodeGaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} value(s) would be dead-lettered at delivery: add them to the code table or give it a `default`",
            self.0.len()
        )?;
        for gap in &self.0 {
            write!(f, "\n  {gap}")?;
        }
        Ok(())
    }
}

/// Every value of every matter's closed-set form fields (and every matter code) that a code
/// table without default of a platform mapping that matter lacks. Empty when all is covered.
pub fn code_table_gaps(platforms: &[PlatformConfig], matters: &[MatterForm]) -> Vec<CodeGap> {
    let mut gaps = Vec::new();
    for platform in platforms {
        let file = Path::new(&platform.origin).file_name().map_or_else(
            || platform.origin.clone(),
            |f| f.to_string_lossy().into_owned(),
        );
        for rule in platform.mapping.rules() {
            let Some((read, entries)) = checked_rule(rule) else {
                continue;
            };
            for matter in matters {
                if !platform.wants_matter(&matter.code) {
                    continue;
                }
                let (source, values) = match &read {
                    Reads::FormField(name) => match matter.fields.get(name) {
                        Some(values) => (GapSource::FormField(name.clone()), values.keys()),
                        None => continue,
                    },
                    Reads::MatterCode => (GapSource::MatterCode, vec![matter.code.clone()]),
                };
                for value in values {
                    if !entries.contains_key(&value) {
                        gaps.push(CodeGap {
                            file: file.clone(),
                            platform: platform.id.clone(),
                            field: key_path("mapping", &rule.target),
                            matter_code: matter.code.clone(),
                            version: matter.version,
                            source: source.clone(),
                            value,
                        });
                    }
                }
            }
        }
    }
    gaps
}

/// [`code_table_gaps`] as a result: `Err` lists every gap.
pub fn check_code_tables(
    platforms: &[PlatformConfig],
    matters: &[MatterForm],
) -> Result<(), CodeGaps> {
    let gaps = code_table_gaps(platforms, matters);
    if gaps.is_empty() {
        Ok(())
    } else {
        Err(CodeGaps(gaps))
    }
}

/// What a checked rule translates.
enum Reads {
    /// A form field, by name.
    FormField(String),
    /// `/application/matter_code`.
    MatterCode,
}

/// What a rule translates through a code table without default, and the table's entries;
/// `None` for any other rule.
fn checked_rule(rule: &FieldRule) -> Option<(Reads, &BTreeMap<String, serde_json::Value>)> {
    let table = rule.code_table.as_ref().filter(|t| t.default.is_none())?;
    let Source::Pointer(pointer) = &rule.source else {
        return None;
    };
    if pointer == MATTER_CODE {
        return Some((Reads::MatterCode, &table.entries));
    }
    let segment = pointer.strip_prefix(FORM_PREFIX)?;
    // Only a field of the form itself: deeper pointers address inside a value, and no closed
    // set field has an inside.
    if segment.contains('/') {
        return None;
    }
    // RFC 6901 unescaping, `~1` before `~0`.
    let field = segment.replace("~1", "/").replace("~0", "~");
    Some((Reads::FormField(field), &table.entries))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn platform(file: &str, matter_codes: &str, mapping: &str) -> PlatformConfig {
        let src = format!(
            r#"
            id = "p"
            name = "P"
            name_en = "P"
            endpoint = "http://127.0.0.1:1/in"
            event_types = ["application.submitted"]
            matter_codes = {matter_codes}
            auth = {{ kind = "bearer", token = "t" }}
            [mapping]
            {mapping}
            "#
        );
        PlatformConfig::parse_with_env(&src, file, &|_| None).unwrap()
    }

    fn eia_form(code: &str, natures: &[&str]) -> MatterForm {
        MatterForm {
            code: code.to_owned(),
            version: 2,
            fields: BTreeMap::from([
                (
                    "construction_nature".to_owned(),
                    FieldValues::OneOf(natures.iter().map(|s| (*s).to_owned()).collect()),
                ),
                ("uses_water".to_owned(), FieldValues::Boolean),
            ]),
        }
    }

    const XMLX: &str = r#"xmlx = { from = "/application/form/construction_nature", map = { new = "01", expansion = "02" } }"#;

    #[test]
    fn a_gap_names_file_field_matter_and_value_and_all_are_reported() {
        let p = platform("/deploy/platforms/eia.toml", "[]", XMLX);
        let form = eia_form(
            "env.eia.report_form",
            &["new", "expansion", "relocation", "x"],
        );
        let gaps = code_table_gaps(&[p], &[form]);
        assert_eq!(
            gaps.iter().map(|g| g.value.as_str()).collect::<Vec<_>>(),
            ["relocation", "x"]
        );
        let g = &gaps[0];
        assert_eq!(
            (
                g.file.as_str(),
                g.field.as_str(),
                g.matter_code.as_str(),
                g.version,
                &g.source
            ),
            (
                "eia.toml",
                "mapping.xmlx",
                "env.eia.report_form",
                2,
                &GapSource::FormField("construction_nature".into())
            )
        );
        let text = CodeGaps(gaps).to_string();
        for needle in [
            "eia.toml",
            "`mapping.xmlx`",
            "`relocation`",
            "`x`",
            "construction_nature",
            "env.eia.report_form",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
    }

    #[test]
    fn covered_tables_and_defaults_pass() {
        let form = eia_form("env.eia.report_form", &["new", "expansion"]);
        let p = platform("eia.toml", "[]", XMLX);
        assert_eq!(check_code_tables(&[p], std::slice::from_ref(&form)), Ok(()));

        let with_default = platform(
            "eia.toml",
            "[]",
            r#"xmlx = { from = "/application/form/construction_nature", map = { new = "01" }, default = "99" }"#,
        );
        let wide = eia_form("env.eia.report_form", &["new", "relocation"]);
        assert!(code_table_gaps(&[with_default], &[wide]).is_empty());
    }

    #[test]
    fn boolean_fields_need_true_and_false() {
        let form = eia_form("env.eia.report_form", &["new"]);
        let half = platform(
            "eia.toml",
            "[]",
            r#"sfqs = { from = "/application/form/uses_water", map = { "true" = "是" }, optional = true }"#,
        );
        let gaps = code_table_gaps(&[half], std::slice::from_ref(&form));
        assert_eq!(gaps.len(), 1);
        assert_eq!(
            (
                gaps[0].field.as_str(),
                &gaps[0].source,
                gaps[0].value.as_str()
            ),
            (
                "mapping.sfqs",
                &GapSource::FormField("uses_water".into()),
                "false"
            )
        );
        let both = platform(
            "eia.toml",
            "[]",
            r#"sfqs = { from = "/application/form/uses_water", map = { "true" = "是", "false" = "否" } }"#,
        );
        assert!(code_table_gaps(&[both], &[form]).is_empty());
    }

    #[test]
    fn only_matters_the_platform_takes_are_checked() {
        let globbed = platform("eia.toml", r#"["env.eia.*"]"#, XMLX);
        let gaps = code_table_gaps(
            std::slice::from_ref(&globbed),
            &[
                eia_form("env.eia.report_form", &["relocation"]),
                eia_form("env.eiax", &["other"]),
                eia_form("land.use", &["other"]),
            ],
        );
        assert_eq!(gaps.len(), 1);
        assert_eq!(
            (gaps[0].matter_code.as_str(), gaps[0].value.as_str()),
            ("env.eia.report_form", "relocation")
        );

        let exact = platform("eia.toml", r#"["land.use"]"#, XMLX);
        assert!(code_table_gaps(&[exact], &[eia_form("env.eia.report_form", &["x"])]).is_empty());
    }

    #[test]
    fn other_sources_and_fields_the_form_lacks_are_not_checked() {
        let p = platform(
            "p.toml",
            "[]",
            r#"
            state = { from = "/event/type", map = { "application.submitted" = "1" } }
            other = { from = "/application/form/not_in_form", map = { a = "1" } }
            deep = { from = "/application/form/construction_nature/x", map = { a = "1" }, optional = true }
            "#,
        );
        assert!(code_table_gaps(&[p], &[eia_form("m", &["z"])]).is_empty());
    }

    #[test]
    fn matter_code_tables_need_every_matter_the_platform_takes() {
        let p = platform(
            "provincial.toml",
            r#"["env.eia.*"]"#,
            r#"SERVICENAME = { from = "/application/matter_code", map = { "env.eia.report_form" = "报告表审批" } }"#,
        );
        let gaps = code_table_gaps(
            &[p],
            &[
                eia_form("env.eia.report_form", &["new"]),
                eia_form("env.eia.registration_form", &["new"]),
                eia_form("land.use", &["new"]),
            ],
        );
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(
            (
                gaps[0].field.as_str(),
                &gaps[0].source,
                gaps[0].value.as_str()
            ),
            (
                "mapping.SERVICENAME",
                &GapSource::MatterCode,
                "env.eia.registration_form"
            )
        );
        let text = gaps[0].to_string();
        assert!(
            text.contains("provincial.toml") && text.contains("`env.eia.registration_form`"),
            "{text}"
        );
    }

    #[test]
    fn escaped_pointers_name_the_form_field() {
        let p = platform(
            "p.toml",
            "[]",
            r#"k = { from = "/application/form/a~1b", map = { x = "1" } }"#,
        );
        let form = MatterForm {
            code: "m".into(),
            version: 1,
            fields: BTreeMap::from([("a/b".to_owned(), FieldValues::OneOf(vec!["y".into()]))]),
        };
        let gaps = code_table_gaps(&[p], &[form]);
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].source, GapSource::FormField("a/b".into()));
    }
}
