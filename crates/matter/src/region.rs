//! The region table (`deploy/regions.toml`): the administrative divisions a deployment serves.
//!
//! A matter that declares `site_region_field` names its project site by one of these codes, and
//! intake refuses a code the table does not hold, so township routing only ever follows a real
//! division of the deployment. Every township office's `region_prefix` (departments file) must
//! name a region here too: [`Regions::check_offices`] is run at start-up, so an office cannot
//! silently cover nothing.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tongban_types::RegionCode;

use crate::department::Departments;
use crate::error::{DefinitionError, Problem};
use crate::util::line_of;

/// What level of division a region is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionKind {
    /// 县 / 区: a 6-digit code.
    County,
    /// 街道: a 9-digit code.
    Subdistrict,
    /// 镇: a 9-digit code.
    Town,
    /// 乡: a 9-digit code.
    Township,
}

impl RegionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::County => "county",
            Self::Subdistrict => "subdistrict",
            Self::Town => "town",
            Self::Township => "township",
        }
    }
}

/// One administrative division.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// 6 digits (county) or 9 digits (the county code followed by 3 digits).
    pub code: String,
    /// Chinese name, e.g. "郑墩镇".
    pub name: String,
    pub name_en: Option<String>,
    pub kind: RegionKind,
}

/// Every region of a deployment, by code.
#[derive(Debug, Clone, Default)]
pub struct Regions {
    by_code: BTreeMap<String, Region>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    regions: Vec<RawRegion>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    code: toml::Spanned<String>,
    name: String,
    name_en: Option<String>,
    kind: RegionKind,
}

impl Regions {
    /// Reads and validates a regions file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, DefinitionError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|source| DefinitionError::Io {
            origin: origin.clone(),
            source,
        })?;
        Self::parse(&source, &origin)
    }

    /// Parses and validates a regions file; `origin` names it in errors.
    pub fn parse(source: &str, origin: &str) -> Result<Self, DefinitionError> {
        let raw: RawFile = toml::from_str(source).map_err(|e| DefinitionError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        let mut problems = Vec::new();
        let mut by_code = BTreeMap::new();
        let mut lines = Vec::new();
        for r in raw.regions {
            let line = Some(line_of(source, r.code.span().start));
            let code = r.code.into_inner();
            let place = format!("region `{code}`");
            let mut problem = |message: String| {
                problems.push(Problem {
                    line,
                    place: place.clone(),
                    message,
                })
            };
            // Exactly as written: a code with spaces would never equal a normalised input.
            match RegionCode::parse(&code) {
                Ok(parsed) if parsed.as_str() == code => {}
                Ok(_) | Err(_) => problem(
                    "code must be 6 digits (county) or 9 digits (the county code and 3 more)"
                        .into(),
                ),
            }
            let county_level = code.len() == 6;
            if county_level != (r.kind == RegionKind::County) {
                problem(format!(
                    "kind `{}` does not fit a {}-digit code (6 digits: county; 9: subdistrict, \
                     town or township)",
                    r.kind.as_str(),
                    code.len()
                ));
            }
            if r.name.trim().is_empty() {
                problem("name must not be empty".into());
            }
            if by_code.contains_key(&code) {
                problem("code is listed twice".into());
                continue;
            }
            lines.push((code.clone(), line));
            by_code.insert(
                code.clone(),
                Region {
                    code,
                    name: r.name,
                    name_en: r.name_en,
                    kind: r.kind,
                },
            );
        }
        // A township belongs to a county the table also lists, so the table is one tree.
        for (code, line) in lines {
            if code.len() == 9 && !by_code.contains_key(&code[..6]) {
                problems.push(Problem {
                    line,
                    place: format!("region `{code}`"),
                    message: format!("its county `{}` is not in the table", &code[..6]),
                });
            }
        }
        if !problems.is_empty() {
            return Err(DefinitionError::Invalid {
                origin: origin.to_owned(),
                problems,
            });
        }
        Ok(Self { by_code })
    }

    /// The region with this code (exactly; no trimming).
    pub fn get(&self, code: &str) -> Option<&Region> {
        self.by_code.get(code)
    }

    /// Whether the table holds this code.
    pub fn contains(&self, code: &str) -> bool {
        self.by_code.contains_key(code)
    }

    /// All regions, by code.
    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.by_code.values()
    }

    /// Checks that every township office's `region_prefix` names a region in this table;
    /// `origin` names the departments file in the error.
    pub fn check_offices(
        &self,
        departments: &Departments,
        origin: &str,
    ) -> Result<(), DefinitionError> {
        let problems: Vec<Problem> = departments
            .iter()
            .flat_map(|d| d.offices.iter().map(move |o| (d, o)))
            .filter(|(_, o)| !self.contains(&o.region_prefix))
            .map(|(d, o)| Problem {
                line: None,
                place: format!("department `{}` office `{}`", d.code, o.code),
                message: format!(
                    "region_prefix `{}` is not a region in the region table",
                    o.region_prefix
                ),
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DefinitionError::Invalid {
                origin: origin.to_owned(),
                problems,
            })
        }
    }
}

/// Loads `departments.toml` and `regions.toml` from a deploy directory and checks the one
/// against the other: what intake and approval do at start-up. Any problem stops start-up,
/// naming the file and the field.
pub fn load_departments_and_regions(
    deploy_dir: &Path,
) -> Result<(Departments, Regions), DefinitionError> {
    let departments_file = deploy_dir.join("departments.toml");
    let departments = Departments::load(&departments_file)?;
    let regions = Regions::load(deploy_dir.join("regions.toml"))?;
    regions.check_offices(&departments, &departments_file.display().to_string())?;
    Ok((departments, regions))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"
[[regions]]
code = "350724"
name = "松溪县"
kind = "county"
[[regions]]
code = "350724100"
name = "松源街道"
kind = "subdistrict"
[[regions]]
code = "350724101"
name = "郑墩镇"
name_en = "Zhengdun Town"
kind = "town"
"#;

    #[test]
    fn loads_and_looks_up_exact_codes() {
        let r = Regions::parse(SRC, "regions.toml").unwrap();
        assert_eq!(r.get("350724101").map(|x| x.name.as_str()), Some("郑墩镇"));
        assert_eq!(r.get("350724").map(|x| x.kind), Some(RegionKind::County));
        assert!(!r.contains("350724102"));
        assert!(!r.contains(" 350724101"));
        assert_eq!(r.iter().count(), 3);
    }

    #[test]
    fn bad_codes_kinds_names_and_orphans_are_named_with_lines() {
        let src = r#"
[[regions]]
code = "35072"
name = "x"
kind = "county"
[[regions]]
code = "350725100"
name = " "
kind = "county"
[[regions]]
code = "350724"
name = "松溪县"
kind = "county"
[[regions]]
code = "350724"
name = "again"
kind = "county"
"#;
        let err = Regions::parse(src, "regions.toml").unwrap_err().to_string();
        assert!(err.starts_with("regions.toml: "), "{err}");
        assert!(
            err.contains("line 3: region `35072`: code must be 6 digits"),
            "{err}"
        );
        assert!(
            err.contains("line 7: region `350725100`: kind `county` does not fit a 9-digit code"),
            "{err}"
        );
        assert!(
            err.contains("line 7: region `350725100`: name must not be empty"),
            "{err}"
        );
        assert!(
            err.contains("line 7: region `350725100`: its county `350725` is not in the table"),
            "{err}"
        );
        assert!(
            err.contains("line 15: region `350724`: code is listed twice"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_kinds_are_syntax_errors() {
        let err = Regions::parse(
            "[[regions]]\ncode = \"350724\"\nname = \"x\"\nkind = \"county\"\nnmae = \"y\"\n",
            "regions.toml",
        )
        .unwrap_err();
        assert!(matches!(err, DefinitionError::Syntax { .. }), "{err}");
        assert!(err.to_string().contains("nmae"), "{err}");
        let err = Regions::parse(
            "[[regions]]\ncode = \"350724\"\nname = \"x\"\nkind = \"village\"\n",
            "regions.toml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("village"), "{err}");
    }

    #[test]
    fn an_office_outside_the_table_is_named() {
        let regions = Regions::parse(SRC, "regions.toml").unwrap();
        let deps = Departments::parse(
            r#"
[[departments]]
code = "eco_env"
name = "生态环境局"
name_en = "Eco"
  [[departments.offices]]
  code = "eco_env.zhengdun"
  name = "郑墩站"
  region_prefix = "350724101"
  [[departments.offices]]
  code = "eco_env.nowhere"
  name = "无"
  region_prefix = "350724199"
"#,
            "departments.toml",
        )
        .unwrap();
        let err = regions
            .check_offices(&deps, "departments.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "departments.toml: department `eco_env` office `eco_env.nowhere`: region_prefix \
             `350724199` is not a region in the region table"
        );
    }

    #[test]
    fn the_shipped_tables_agree() {
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
        let (departments, regions) = load_departments_and_regions(&deploy).unwrap();
        for code in ["350724", "350724100", "350724101"] {
            assert!(regions.contains(code), "{code}");
        }
        assert!(departments.contains("eco_env"));
    }

    #[test]
    fn a_missing_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("departments.toml"), "").unwrap();
        let err = load_departments_and_regions(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("regions.toml: cannot read"), "{err}");
    }
}
