//! Whose webhook hears about which application: a webhook belongs to the principal that
//! registered it ([`Owner`]), and receives events of an application only when that application
//! is in the owner's scope ([`in_scope`], the one place the rule lives):
//!
//! | owner | applications in scope |
//! | --- | --- |
//! | applicant | its own credit code's |
//! | clerk, supervisor | those whose workflow has a task in its department |
//! | integrator | none yet: the registered enterprises and matters (`deploy/integrators.toml`) belong to `tongban-authz`, to be routed here |
//! | admin | all |
//!
//! What notification knows of an application ([`AppScope`]) comes from the events it already
//! consumes and keeps in its own tables: the credit code and matter from
//! `application.submitted`, the departments from every event that names one (`task.created`
//! and the task, supplement and decision events). A staff webhook therefore starts hearing of
//! an application once its department has a task there. Anything unknown is out of scope:
//! the filter fails closed.

use tongban_auth::{Identity, Role};

use crate::error::NotificationError;

/// The principal a webhook belongs to, as stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub subject: String,
    /// The role's name (`applicant`, `clerk`, ...); an unknown one matches nothing.
    pub role: String,
    /// Staff only; "" otherwise.
    pub department: String,
    /// Applicants only; "" otherwise.
    pub credit_code: String,
}

impl Owner {
    /// The owner `who` registers as. A token without the claim its role's scope needs is
    /// refused rather than read as "everything".
    pub fn of(who: &Identity) -> Result<Owner, NotificationError> {
        // A token without the claim its role's scope needs is refused, never read as "all".
        let missing = |claim: &'static str| {
            NotificationError::Denied(tongban_authz::Denied::MissingClaim {
                role: who.role,
                claim,
            })
        };
        let (department, credit_code) = match who.role {
            Role::Applicant => (
                String::new(),
                who.credit_code
                    .as_ref()
                    .map(|c| c.to_string())
                    .ok_or_else(|| missing("credit_code"))?,
            ),
            Role::Clerk | Role::Supervisor => (
                who.department
                    .clone()
                    .ok_or_else(|| missing("department"))?,
                String::new(),
            ),
            Role::Integrator | Role::Admin => (String::new(), String::new()),
        };
        Ok(Owner {
            subject: who.subject.clone(),
            role: who.role.as_str().to_string(),
            department,
            credit_code,
        })
    }

    /// Whether `who` is this owner (same subject, role, department and credit code).
    pub fn is(&self, who: &Identity) -> bool {
        Owner::of(who).is_ok_and(|o| o == *self)
    }

    /// `<role>:<subject>`, with `@<department>` for staff.
    pub fn label(&self) -> String {
        if self.department.is_empty() {
            format!("{}:{}", self.role, self.subject)
        } else {
            format!("{}:{}@{}", self.role, self.subject, self.department)
        }
    }
}

/// What notification knows about one application, for [`in_scope`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppScope {
    /// The applicant's credit code; `None` when `application.submitted` was not seen.
    pub credit_code: Option<String>,
    pub matter_code: Option<String>,
    /// Departments with a task in the application's workflow.
    pub departments: Vec<String>,
}

/// Whether `owner`'s webhook may receive events of the application described by `app`.
pub fn in_scope(owner: &Owner, app: &AppScope) -> bool {
    match owner.role.as_str() {
        "admin" => true,
        "applicant" => {
            !owner.credit_code.is_empty()
                && app
                    .credit_code
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&owner.credit_code))
        }
        "clerk" | "supervisor" => {
            !owner.department.is_empty() && app.departments.contains(&owner.department)
        }
        // Integrators: their registered enterprises and matters are `tongban-authz`'s to
        // decide; until that is routed here, nothing (never "all").
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(role: &str, department: &str, credit_code: &str) -> Owner {
        Owner {
            subject: "u".into(),
            role: role.into(),
            department: department.into(),
            credit_code: credit_code.into(),
        }
    }

    #[test]
    fn each_role_sees_its_own_scope() {
        let app = AppScope {
            credit_code: Some("91350100M000100Y43".into()),
            matter_code: Some("env.eia.report_form".into()),
            departments: vec!["eco_env".into()],
        };
        assert!(in_scope(&owner("admin", "", ""), &app));
        assert!(in_scope(
            &owner("applicant", "", "91350100M000100Y43"),
            &app
        ));
        assert!(!in_scope(
            &owner("applicant", "", "91440300708461136T"),
            &app
        ));
        assert!(!in_scope(&owner("applicant", "", ""), &app));
        assert!(in_scope(&owner("clerk", "eco_env", ""), &app));
        assert!(in_scope(&owner("supervisor", "eco_env", ""), &app));
        assert!(!in_scope(&owner("clerk", "dev_reform", ""), &app));
        assert!(!in_scope(&owner("integrator", "", ""), &app));
        assert!(!in_scope(&owner("", "", ""), &app));
        // Nothing known: only an admin.
        let unknown = AppScope::default();
        assert!(!in_scope(
            &owner("applicant", "", "91350100M000100Y43"),
            &unknown
        ));
        assert!(!in_scope(&owner("clerk", "eco_env", ""), &unknown));
        assert!(in_scope(&owner("admin", "", ""), &unknown));
    }
}
