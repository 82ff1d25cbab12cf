//! Approval's side of the authorization table ([`tongban_authz`]): the scope of an instance and
//! of a task, built from approval's own tables, and the one place a denial becomes an error.

use tongban_auth::Identity;
use tongban_authz::{Action, Denied, Policy, Scope, TaskScope};

use crate::{
    error::ApprovalError,
    repository::{Instance, Task},
};

/// Every department and township office of the instance's workflow: its plan, and the tasks it
/// actually has (a delegation may have moved one elsewhere).
pub(crate) fn instance_scope(inst: &Instance, tasks: &[Task]) -> Scope {
    let mut departments: Vec<String> = Vec::new();
    let mut add = |d: &str| {
        if !d.is_empty() && !departments.iter().any(|x| x == d) {
            departments.push(d.to_string());
        }
    };
    for t in inst.plan.iter().flat_map(|s| &s.tasks) {
        add(&t.department);
        add(t.office.as_deref().unwrap_or(""));
    }
    for t in tasks {
        add(&t.department);
        add(&t.office);
    }
    add(&inst.lead_department);
    Scope::application(&inst.owner_credit_code, &inst.matter_code, departments)
        .with_lead(Some(inst.lead_department.clone()).filter(|l| !l.is_empty()))
}

/// A task as authorization sees it.
pub(crate) fn task_scope(task: &Task) -> Scope {
    Scope::departments(vec![task.department.clone()]).with_task(TaskScope {
        department: task.department.clone(),
        office: task.office.clone(),
        assignee: task.assignee.clone(),
        moves_department: false,
    })
}

/// Decides, and turns a denial into the error (see [`denied`]).
pub(crate) fn check(
    policy: &Policy,
    who: &Identity,
    action: Action,
    scope: &Scope,
    target: &str,
) -> Result<(), ApprovalError> {
    policy
        .authorize(who, action, scope)
        .map_err(|d| denied(who, action, target, d))
}

/// Refuses a role that never may do `action`, before the request is even parsed, so such a
/// caller learns nothing about what a valid request looks like.
pub(crate) fn check_role(who: &Identity, action: Action) -> Result<(), ApprovalError> {
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

/// The one place approval refuses a caller: the denial is recorded on the audit target (the
/// integrator routes this into the audit chain) and becomes `PERMISSION_DENIED` (or
/// `UNAUTHENTICATED` for a token missing a claim).
pub(crate) fn denied(who: &Identity, action: Action, target: &str, d: Denied) -> ApprovalError {
    tracing::warn!(
        target: "tongban::audit",
        actor = %who.actor_label(),
        action = %action,
        target,
        reason = %d,
        "denied"
    );
    ApprovalError::Denied(d)
}
