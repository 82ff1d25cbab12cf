//! Approval's side of the authorization table ([`tongban_authz`]): the scope of an instance and
//! of a task, built from approval's own tables. Decisions and refusals are the engine's `Policy`'s.

use tongban_authz::{Scope, TaskScope};

use crate::repository::{Instance, Task};

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
