//! Notification's side of the authorization table ([`tongban_authz`]): each caller reads its
//! own inbox (what is addressed to its credit code, department or role), webhooks are for
//! registered integrators and admins; and the one place a denial becomes an error.

use tongban_auth::Identity;
use tongban_authz::{Action, Denied, Policy, Scope};

use crate::error::NotificationError;

/// Decides, and turns a denial into the error (see [`denied`]).
pub(crate) fn check(
    policy: &Policy,
    who: &Identity,
    action: Action,
    scope: &Scope,
    target: &str,
) -> Result<(), NotificationError> {
    policy
        .authorize(who, action, scope)
        .map_err(|d| denied(who, action, target, d))
}

/// The one place notification refuses a caller: the denial is recorded on the audit target
/// (the integrator routes this into the audit chain) and becomes `PERMISSION_DENIED` (or
/// `UNAUTHENTICATED` for a token missing a claim).
pub(crate) fn denied(who: &Identity, action: Action, target: &str, d: Denied) -> NotificationError {
    tracing::warn!(
        target: "tongban::audit",
        actor = %who.actor_label(),
        action = %action,
        target,
        reason = %d,
        "denied"
    );
    NotificationError::Denied(d)
}
