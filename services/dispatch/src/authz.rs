//! Dispatch's side of the authorization table ([`tongban_authz`]): the scope of an application.
//! Decisions and refusals are its [`Policy`]'s.
//!
//! An application's scope is its enterprise and matter (from the canonical section dispatch
//! stores), the matter's lead department (from the matter definitions of the deploy directory),
//! and the departments and township offices that have (or had) a task in its workflow, recorded
//! from `task.created` and `task.moved` ([`crate::ledger::Involved`]). A matter
//! dispatch has no file for (one only published over gRPC) gives no lead: only the recorded
//! departments, admins and the enterprise's integrators reach it.

use std::{collections::HashMap, path::Path};

use tongban_authz::{Policy, Scope};
use tongban_matter::Departments;

/// The table, the registered integrators and what scopes are built from.
#[derive(Debug, Default)]
pub struct Authz {
    policy: Policy,
    /// The lead department of the latest definition of each matter code.
    leads: HashMap<String, String>,
}

impl Authz {
    /// Reads `integrators.toml`, `departments.toml` and `matters/` from the deploy directory.
    pub fn load(deploy_dir: &Path) -> anyhow::Result<Self> {
        let integrators = tongban_authz::Integrators::load(deploy_dir.join("integrators.toml"))?;
        let departments = Departments::load(deploy_dir.join("departments.toml"))?;
        let mut latest: HashMap<String, (u32, String)> = HashMap::new();
        for def in tongban_matter::load_dir(deploy_dir.join("matters"), &departments)? {
            if latest
                .get(&def.code)
                .is_none_or(|(version, _)| *version < def.version)
            {
                latest.insert(def.code.clone(), (def.version, def.lead_department.clone()));
            }
        }
        Ok(Self {
            policy: Policy::new(integrators),
            leads: latest
                .into_iter()
                .map(|(code, (_, lead))| (code, lead))
                .collect(),
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

    /// The scope of an application from its stored canonical section (`None`: not known, an
    /// empty scope) and the departments and offices `recorded` in its workflow.
    pub fn application_scope(
        &self,
        section: Option<&serde_json::Value>,
        recorded: Vec<String>,
    ) -> Scope {
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
        let lead = self
            .leads
            .get(&matter_code)
            .filter(|l| !l.is_empty())
            .cloned();
        let mut departments: Vec<String> = lead.iter().cloned().collect();
        for d in recorded {
            if !departments.contains(&d) {
                departments.push(d);
            }
        }
        Scope::application(credit_code, matter_code, departments).with_lead(lead)
    }
}
