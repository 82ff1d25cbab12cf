//! The departments file (`deploy/departments.toml`): who can be given a task.
//!
//! A department is identified by a short code (`eco_env`). It may delegate work to township
//! offices, each covering the region codes (the project site's, or else the applicant's; see
//! [`crate::MatterDefinition::site_region_field`]) that start with the office's
//! `region_prefix`, which must be a code of the region table ([`crate::Regions`]). [`Departments::route`] picks the office with the longest matching prefix, or
//! the department itself when no office covers the region.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::error::{DefinitionError, Problem};
use crate::util::{is_identifier, line_of};

/// A government department that receives tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    /// Stable code, e.g. "eco_env".
    pub code: String,
    /// Chinese name, e.g. "生态环境局".
    pub name: String,
    pub name_en: String,
    /// Role key of the department's supervisors, who receive escalations.
    pub supervisor_role: Option<String>,
    /// Township offices that take the department's region-routed tasks.
    pub offices: Vec<Office>,
}

/// A township office of a department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Office {
    /// Stable code, unique across all departments and offices, e.g. "eco_env.songyuan".
    pub code: String,
    pub name: String,
    pub name_en: Option<String>,
    /// Routing regions starting with these digits are routed here, e.g. "350724100".
    pub region_prefix: String,
}

/// Where a task goes: the department and, when routed by region, its township office.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub department: String,
    pub office: Option<String>,
}

/// All departments of a deployment, by code.
#[derive(Debug, Clone, Default)]
pub struct Departments {
    list: Vec<Department>,
    by_code: BTreeMap<String, usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    departments: Vec<RawDepartment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDepartment {
    code: toml::Spanned<String>,
    name: String,
    name_en: String,
    supervisor_role: Option<String>,
    #[serde(default)]
    offices: Vec<RawOffice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOffice {
    code: toml::Spanned<String>,
    name: String,
    name_en: Option<String>,
    region_prefix: String,
}

impl Departments {
    /// Reads and validates a departments file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DefinitionError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|source| DefinitionError::Io {
            origin: origin.clone(),
            source,
        })?;
        Self::parse(&source, &origin)
    }

    /// Parses and validates a departments file; `origin` names it in errors.
    pub fn parse(source: &str, origin: &str) -> Result<Self, DefinitionError> {
        let raw: RawFile = toml::from_str(source).map_err(|e| DefinitionError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        let mut problems = Vec::new();
        let mut codes = BTreeSet::new();
        let mut list = Vec::new();
        for d in raw.departments {
            let line = Some(line_of(source, d.code.span().start));
            let code = d.code.into_inner();
            let place = format!("department `{code}`");
            if !is_identifier(&code) {
                problems.push(Problem {
                    line,
                    place: place.clone(),
                    message:
                        "code must be lower case letters, digits and `_`, starting with a letter"
                            .into(),
                });
            }
            if !codes.insert(code.clone()) {
                problems.push(Problem {
                    line,
                    place: place.clone(),
                    message: "code is used twice".into(),
                });
            }
            if d.name.trim().is_empty() {
                problems.push(Problem {
                    line,
                    place: place.clone(),
                    message: "name must not be empty".into(),
                });
            }
            let mut prefixes = BTreeSet::new();
            let mut offices = Vec::new();
            for o in d.offices {
                let oline = Some(line_of(source, o.code.span().start));
                let ocode = o.code.into_inner();
                let oplace = format!("{place} office `{ocode}`");
                if ocode.is_empty() || ocode.chars().any(char::is_whitespace) {
                    problems.push(Problem {
                        line: oline,
                        place: oplace.clone(),
                        message: "code must be non-empty without spaces".into(),
                    });
                }
                if !codes.insert(ocode.clone()) {
                    problems.push(Problem {
                        line: oline,
                        place: oplace.clone(),
                        message: "code is used twice".into(),
                    });
                }
                let p = &o.region_prefix;
                if !(2..=12).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()) {
                    problems.push(Problem {
                        line: oline,
                        place: oplace.clone(),
                        message: format!("region_prefix `{p}` must be 2 to 12 digits"),
                    });
                }
                if !prefixes.insert(p.clone()) {
                    problems.push(Problem {
                        line: oline,
                        place: oplace.clone(),
                        message: format!(
                            "region_prefix `{p}` is already covered by another office"
                        ),
                    });
                }
                offices.push(Office {
                    code: ocode,
                    name: o.name,
                    name_en: o.name_en,
                    region_prefix: o.region_prefix,
                });
            }
            list.push(Department {
                code,
                name: d.name,
                name_en: d.name_en,
                supervisor_role: d.supervisor_role,
                offices,
            });
        }
        if !problems.is_empty() {
            return Err(DefinitionError::Invalid {
                origin: origin.to_owned(),
                problems,
            });
        }
        let by_code = list
            .iter()
            .enumerate()
            .map(|(i, d)| (d.code.clone(), i))
            .collect();
        Ok(Self { list, by_code })
    }

    /// The department with this code.
    pub fn get(&self, code: &str) -> Option<&Department> {
        self.by_code.get(code).map(|&i| &self.list[i])
    }

    /// Whether a department with this code exists.
    pub fn contains(&self, code: &str) -> bool {
        self.by_code.contains_key(code)
    }

    /// All departments, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &Department> {
        self.list.iter()
    }

    /// The office of `department` covering `region_code` (longest `region_prefix` that the
    /// region code starts with), or the department itself when none does or the department is
    /// unknown.
    pub fn route(&self, department: &str, region_code: &str) -> Routed {
        let office = self.get(department).and_then(|d| {
            d.offices
                .iter()
                .filter(|o| region_code.starts_with(&o.region_prefix))
                .max_by_key(|o| o.region_prefix.len())
                .map(|o| o.code.clone())
        });
        Routed {
            department: department.to_owned(),
            office,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"
[[departments]]
code = "eco_env"
name = "生态环境局"
name_en = "Ecology and Environment Bureau"
supervisor_role = "eco_env.supervisor"
  [[departments.offices]]
  code = "eco_env.county"
  name = "县域"
  region_prefix = "350724"
  [[departments.offices]]
  code = "eco_env.songyuan"
  name = "松源街道"
  region_prefix = "350724100"
[[departments]]
code = "water"
name = "水利局"
name_en = "Water Resources Bureau"
"#;

    #[test]
    fn routes_by_longest_prefix() {
        let d = Departments::parse(SRC, "t.toml").unwrap();
        assert_eq!(
            d.route("eco_env", "350724100").office.as_deref(),
            Some("eco_env.songyuan")
        );
        assert_eq!(
            d.route("eco_env", "350724101").office.as_deref(),
            Some("eco_env.county")
        );
        assert_eq!(d.route("eco_env", "350725").office, None);
        assert_eq!(d.route("water", "350724100").office, None);
        assert_eq!(d.route("nobody", "350724100").office, None);
    }

    #[test]
    fn duplicate_codes_and_bad_prefixes_are_named() {
        let src = r#"
[[departments]]
code = "water"
name = "水利局"
name_en = "Water"
[[departments]]
code = "water"
name = "水利局"
name_en = "Water"
  [[departments.offices]]
  code = "water.x"
  name = "x"
  region_prefix = "35a"
"#;
        let err = Departments::parse(src, "deps.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("deps.toml"), "{err}");
        assert!(
            err.contains("line 7: department `water`: code is used twice"),
            "{err}"
        );
        assert!(
            err.contains("office `water.x`: region_prefix `35a` must be 2 to 12 digits"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_syntax_errors() {
        let src = "[[departments]]\ncode = \"a\"\nname = \"x\"\nname_en = \"x\"\nnmae = \"y\"\n";
        let err = Departments::parse(src, "deps.toml").unwrap_err();
        assert!(matches!(err, DefinitionError::Syntax { .. }), "{err}");
        assert!(err.to_string().contains("nmae"), "{err}");
    }
}
