//! Dispatch's side of the authorization table ([`tongban_authz`]): the scope of an application
//! from the canonical section dispatch stores (enterprise, matter, region, form) and the matter
//! definitions of the deploy directory. Decisions and refusals are its [`Policy`]'s.
//!
//! Dispatch does not run workflows, so the departments come from the matter definition (see
//! [`tongban_authz::matter`]). A matter dispatch has no file for (one only published over gRPC)
//! gives no departments and no lead: only admins and the enterprise's integrators reach it.

use std::{collections::HashMap, path::Path};

use tongban_authz::{Policy, Scope};
use tongban_matter::{Departments, MatterDefinition};

/// The table, the registered integrators and what scopes are built from.
#[derive(Debug, Default)]
pub struct Authz {
    policy: Policy,
    departments: Departments,
    /// The latest definition of each matter code.
    matters: HashMap<String, MatterDefinition>,
}

impl Authz {
    /// Reads `integrators.toml`, `departments.toml` and `matters/` from the deploy directory.
    pub fn load(deploy_dir: &Path) -> anyhow::Result<Self> {
        let integrators = tongban_authz::Integrators::load(deploy_dir.join("integrators.toml"))?;
        let departments = Departments::load(deploy_dir.join("departments.toml"))?;
        let mut matters: HashMap<String, MatterDefinition> = HashMap::new();
        for def in tongban_matter::load_dir(deploy_dir.join("matters"), &departments)? {
            if matters
                .get(&def.code)
                .is_none_or(|d| d.version < def.version)
            {
                matters.insert(def.code.clone(), def);
            }
        }
        Ok(Self {
            policy: Policy::new(integrators),
            departments,
            matters,
        })
    }

    /// Records refusals in `sink` (see [`Policy::with_denials`]).
    pub fn with_denials(mut self, sink: std::sync::Arc<dyn tongban_authz::DenialSink>) -> Self {
        self.policy = self.policy.with_denials(sink);
        self
    }

    /// Decides and records refusals.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The scope of an application from its stored canonical section (`None`: not known).
    pub fn application_scope(&self, section: Option<&serde_json::Value>) -> Scope {
        let Some(section) = section else {
            return Scope::default();
        };
        let text = |v: &serde_json::Value, k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let applicant = section.get("applicant").cloned().unwrap_or_default();
        let credit_code = text(&applicant, "credit_code");
        let matter_code = text(section, "matter_code");
        match self.matters.get(&matter_code) {
            Some(def) => tongban_authz::matter::application_scope(
                def,
                &self.departments,
                &credit_code,
                &text(&applicant, "region_code"),
                |field| {
                    section
                        .get("form")
                        .and_then(|f| f.get(field))
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_string)
                },
            ),
            None => Scope::application(credit_code, matter_code, Vec::new()),
        }
    }
}
