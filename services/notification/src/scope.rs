//! Whose webhook hears about which application: a webhook belongs to the principal that
//! registered it ([`Owner`]), and receives events of an application only when that application
//! is in the owner's scope ([`in_scope`]). The rule is the one authorization table's
//! ([`tongban_authz`]): the owner, rebuilt as an [`Identity`], must be allowed
//! [`Action::GetApplication`] on the application's [`Scope`]. So:
//!
//! | owner | applications in scope |
//! | --- | --- |
//! | applicant | its own credit code's |
//! | clerk, supervisor | those whose workflow has (or had) a task in its department or office |
//! | integrator | its registered enterprises and matters (`deploy/integrators.toml`) |
//! | admin | all |
//!
//! (The table lets only integrators and admins register webhooks today; the other rows hold
//! should it open registration to them.)
//!
//! What notification knows of an application ([`AppScope`]) comes from the events it already
//! consumes and keeps in its own tables: the credit code and matter from
//! `application.submitted`, the departments from every event that names one (`task.created`
//! with its office, `task.moved`, and the task, supplement and decision events). A staff
//! webhook therefore starts hearing of an application once its department has a task there.
//! Anything unknown is out of scope: the filter fails closed.

use tongban_auth::{Identity, Role};
use tongban_authz::{Action, Policy, Scope};
use tongban_types::CreditCode;

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

impl Owner {
    /// The identity this owner registered with, as far as the stored claims tell: `None` for
    /// an owner whose role is unknown (a webhook registered before owners were recorded).
    pub fn identity(&self) -> Option<Identity> {
        let role: Role = self.role.parse().ok()?;
        let department = Some(self.department.trim())
            .filter(|d| !d.is_empty())
            .map(str::to_string);
        let credit_code = Some(self.credit_code.trim())
            .filter(|c| !c.is_empty())
            .and_then(|c| CreditCode::parse(c).ok());
        Some(Identity {
            subject: self.subject.clone(),
            role,
            department,
            region: None,
            credit_code,
        })
    }
}

impl AppScope {
    /// The authorization scope of the application (no lead department: notification does not
    /// hold matter definitions; every department that works on it is among `departments`).
    pub fn to_scope(&self) -> Scope {
        Scope {
            credit_code: self.credit_code.clone(),
            matter_code: self.matter_code.clone(),
            departments: self.departments.clone(),
            ..Scope::default()
        }
    }
}

/// Whether `owner`'s webhook may receive events of the application described by `app`: the
/// table's answer for `owner` reading the application.
pub fn in_scope(policy: &Policy, owner: &Owner, app: &AppScope) -> bool {
    owner
        .identity()
        .is_some_and(|who| policy.allows(&who, Action::GetApplication, &app.to_scope()))
}

#[cfg(test)]
mod tests {
    use tongban_authz::Integrators;

    use super::*;

    fn owner(role: &str, subject: &str, department: &str, credit_code: &str) -> Owner {
        Owner {
            subject: subject.into(),
            role: role.into(),
            department: department.into(),
            credit_code: credit_code.into(),
        }
    }

    fn policy() -> Policy {
        let integrators = Integrators::parse(
            r#"
            [[integrators]]
            sub = "fj-portal"
            name = "portal"
            enterprises = ["91350100M000100Y43"]
            matters = ["env.eia.report_form"]
            "#,
            "test",
        )
        .expect("valid integrators");
        Policy::new(integrators)
    }

    #[test]
    fn each_role_sees_its_own_scope() {
        let p = policy();
        let app = AppScope {
            credit_code: Some("91350100M000100Y43".into()),
            matter_code: Some("env.eia.report_form".into()),
            departments: vec!["eco_env".into(), "eco_env.songyuan".into()],
        };
        let yes = |o: Owner| assert!(in_scope(&p, &o, &app), "{o:?}");
        let no = |o: Owner| assert!(!in_scope(&p, &o, &app), "{o:?}");
        yes(owner("admin", "root", "", ""));
        yes(owner("applicant", "a", "", "91350100M000100Y43"));
        no(owner("applicant", "a", "", "91440300708461136T"));
        no(owner("applicant", "a", "", ""));
        yes(owner("clerk", "c", "eco_env", ""));
        yes(owner("clerk", "c", "eco_env.songyuan", ""));
        no(owner("clerk", "c", "eco_env.zhengdun", ""));
        yes(owner("supervisor", "s", "eco_env", ""));
        no(owner("clerk", "c", "dev_reform", ""));
        no(owner("clerk", "c", "", ""));
        // Integrators: exactly their registered enterprises and matters.
        yes(owner("integrator", "fj-portal", "", ""));
        no(owner("integrator", "unregistered", "", ""));
        no(owner("", "", "", ""));
        let other = AppScope {
            credit_code: Some("91440300708461136T".into()),
            ..app.clone()
        };
        assert!(!in_scope(
            &p,
            &owner("integrator", "fj-portal", "", ""),
            &other
        ));
        // Nothing known: only an admin.
        let unknown = AppScope::default();
        for o in [
            owner("applicant", "a", "", "91350100M000100Y43"),
            owner("clerk", "c", "eco_env", ""),
            owner("integrator", "fj-portal", "", ""),
        ] {
            assert!(!in_scope(&p, &o, &unknown), "{o:?}");
        }
        assert!(in_scope(&p, &owner("admin", "root", "", ""), &unknown));
    }
}
