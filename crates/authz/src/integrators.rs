//! The integrator registry (`deploy/integrators.toml`): which other government systems may call
//! Tongban, keyed by their token's `sub`, and for which enterprises and matters. An integrator
//! that is not listed is denied everything but reference data.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

/// One registered integrator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integrator {
    /// The token `sub` it calls with.
    pub sub: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Unified social credit codes it acts for; `"*"` for every enterprise.
    pub enterprises: Vec<String>,
    /// Matter codes it acts for; `"*"` for every matter.
    pub matters: Vec<String>,
}

const ANY: &str = "*";

impl Integrator {
    pub fn covers_enterprise(&self, credit_code: &str) -> bool {
        self.enterprises
            .iter()
            .any(|e| e == ANY || e == credit_code)
    }

    pub fn covers_matter(&self, matter_code: &str) -> bool {
        self.matters.iter().any(|m| m == ANY || m == matter_code)
    }
}

/// All registered integrators, by `sub`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Integrators {
    by_sub: BTreeMap<String, Integrator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    integrators: Vec<Integrator>,
}

/// A registry file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IntegratorsError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
}

impl Integrators {
    /// Reads the registry; a file that does not exist is an empty registry (every integrator is
    /// denied), never "everyone".
    pub fn load(path: impl AsRef<Path>) -> Result<Self, IntegratorsError> {
        let path = path.as_ref();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "no integrator registry: every integrator is denied");
                Ok(Self::default())
            }
            Err(source) => Err(IntegratorsError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    pub fn parse(source: &str, origin: &str) -> Result<Self, IntegratorsError> {
        let parse_err = |message: String| IntegratorsError::Parse {
            origin: origin.to_string(),
            message,
        };
        let raw: RawFile = toml::from_str(source).map_err(|e| parse_err(e.to_string()))?;
        let mut by_sub = BTreeMap::new();
        for i in raw.integrators {
            let sub = i.sub.trim().to_string();
            if sub.is_empty() {
                return Err(parse_err("an integrator has an empty `sub`".into()));
            }
            if i.enterprises.is_empty() || i.matters.is_empty() {
                return Err(parse_err(format!(
                    "integrator {sub}: `enterprises` and `matters` must each list at least one \
                     entry (\"*\" for all)"
                )));
            }
            if by_sub.insert(sub.clone(), i).is_some() {
                return Err(parse_err(format!("integrator {sub} is listed twice")));
            }
        }
        Ok(Self { by_sub })
    }

    pub fn get(&self, sub: &str) -> Option<&Integrator> {
        self.by_sub.get(sub)
    }

    pub fn len(&self) -> usize {
        self.by_sub.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sub.is_empty()
    }
}
