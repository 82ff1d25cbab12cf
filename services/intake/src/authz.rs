//! Intake's side of the authorization table ([`tongban_authz`]): the scope of an application
//! (its enterprise, matter and the departments its matter's workflow names, see
//! [`tongban_authz::matter`]). Decisions and refusals are the service's `Policy`'s.

use tongban_authz::Scope;
use tongban_proto::intake::Application;

use crate::matters::Matters;

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
