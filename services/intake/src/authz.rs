//! Intake's side of the authorization table ([`tongban_authz`]): the scope of an application.
//! Decisions and refusals are the service's `Policy`'s.
//!
//! An application's scope is its enterprise and matter, the matter's lead department, and the
//! departments and township offices that have (or had) a task in its workflow as approval ran
//! it: recorded from `task.created` and `task.moved` ([`crate::repository::Involved`]).
//! A department whose stage a condition skipped never gets a task, so it never reads the
//! application; one a task was delegated to does, once the event has arrived.

use tongban_authz::Scope;
use tongban_proto::intake::Application;

use crate::matters::Matters;

/// The lead department of `app`'s matter (the version it was validated against, else the
/// latest); `None` when the matter is no longer known.
pub(crate) fn lead_department(matters: &Matters, app: &Application) -> Option<String> {
    matters
        .registry()
        .cached(&app.matter_code, app.matter_version)
        .or_else(|| matters.latest(&app.matter_code))
        .map(|def| def.lead_department.clone())
        .filter(|d| !d.is_empty())
}

/// The scope of `app`, whose workflow has recorded tasks in `recorded` (departments and
/// offices). A matter no longer known gives no lead: only the recorded departments, the
/// enterprise, its integrators and admins reach the application then.
pub(crate) fn application_scope(
    matters: &Matters,
    app: &Application,
    recorded: Vec<String>,
) -> Scope {
    let applicant = app.applicant.clone().unwrap_or_default();
    let lead = lead_department(matters, app);
    let mut departments: Vec<String> = lead.iter().cloned().collect();
    for d in recorded {
        if !departments.contains(&d) {
            departments.push(d);
        }
    }
    Scope::application(&applicant.credit_code, &app.matter_code, departments).with_lead(lead)
}
