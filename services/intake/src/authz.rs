//! Intake's side of the authorization table ([`tongban_authz`]): the scope of an application
//! (its enterprise, matter and the departments its matter's workflow names, see
//! [`tongban_authz::matter`]) and the one place a denial becomes an error.

use tongban_auth::Identity;
use tongban_authz::{Action, Denied, Policy, Scope};
use tongban_proto::intake::Application;

use crate::{error::IntakeError, matters::Matters};

/// The scope of `app`. A matter no longer known gives no departments: only the enterprise, its
/// integrators and admins reach the application then.
pub(crate) fn application_scope(matters: &Matters, app: &Application) -> Scope {
    let applicant = app.applicant.clone().unwrap_or_default();
    let def = matters
        .registry()
        .cached(&app.matter_code, app.matter_version)
        .or_else(|| matters.latest(&app.matter_code));
    match def {
        Some(def) => {
            let form = tongban_proto::structs::struct_to_json(app.form.as_ref());
            tongban_authz::matter::application_scope(
                &def,
                matters.registry().departments(),
                &applicant.credit_code,
                &applicant.region_code,
                |field| form.get(field).and_then(|v| v.as_str()).map(str::to_string),
            )
        }
        None => Scope::application(&applicant.credit_code, &app.matter_code, Vec::new()),
    }
}

/// Decides, and turns a denial into the error (see [`denied`]).
pub(crate) fn check(
    policy: &Policy,
    who: &Identity,
    action: Action,
    scope: &Scope,
    target: &str,
) -> Result<(), IntakeError> {
    policy
        .authorize(who, action, scope)
        .map_err(|d| denied(who, action, target, d))
}

/// The one place intake refuses a caller: the denial is recorded on the audit target (the
/// integrator routes this into the audit chain) and becomes `PERMISSION_DENIED` (or
/// `UNAUTHENTICATED` for a token missing a claim).
pub(crate) fn denied(who: &Identity, action: Action, target: &str, d: Denied) -> IntakeError {
    tracing::warn!(
        target: "tongban::audit",
        actor = %who.actor_label(),
        action = %action,
        target,
        reason = %d,
        "denied"
    );
    IntakeError::Denied(d)
}
