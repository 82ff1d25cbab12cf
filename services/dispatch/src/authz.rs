//! Dispatch's side of the authorization table ([`tongban_authz`]): the scope of an application
//! from the canonical section dispatch stores (enterprise, matter, region, form) and the matter
//! definitions of the deploy directory, and the one place a denial becomes an error.
//!
//! Dispatch does not run workflows, so the departments come from the matter definition (see
//! [`tongban_authz::matter`]). A matter dispatch has no file for (one only published over gRPC)
//! gives no departments and no lead: only admins and the enterprise's integrators reach it.

use std::{collections::HashMap, path::Path};

use tongban_auth::Identity;
use tongban_authz::{Action, Denied, Policy, Scope};
use tongban_matter::{Departments, MatterDefinition};

use crate::error::DispatchError;

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

    /// Decides, and turns a denial into the error (see [`denied`]).
    pub fn check(
        &self,
        who: &Identity,
        action: Action,
        scope: &Scope,
        target: &str,
    ) -> Result<(), DispatchError> {
        self.policy
            .authorize(who, action, scope)
            .map_err(|d| denied(who, action, target, d))
    }

    /// Refuses a role that never may do `action`, before anything is read.
    pub fn check_role(&self, who: &Identity, action: Action) -> Result<(), DispatchError> {
        if tongban_authz::rule(action, who.role) == tongban_authz::Rule::Never {
            let d = Denied::Forbidden {
                role: who.role,
                action,
                why: format!("the {} role never may", who.role),
            };
            return Err(denied(who, action, "", d));
        }
        Ok(())
    }
}

/// The one place dispatch refuses a caller: the denial is recorded on the audit target (the
/// integrator routes this into the audit chain) and becomes `PERMISSION_DENIED` (or
/// `UNAUTHENTICATED` for a token missing a claim).
pub fn denied(who: &Identity, action: Action, target: &str, d: Denied) -> DispatchError {
    tracing::warn!(
        target: "tongban::audit",
        actor = %who.actor_label(),
        action = %action,
        target,
        reason = %d,
        "denied"
    );
    DispatchError::Denied(d)
}
