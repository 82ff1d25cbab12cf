//! Who may do what, on whose data: Tongban's authorization in one table.
//!
//! Every RPC that needs a decision is an [`Action`]. What it touches is described by a
//! [`Scope`] (the enterprise, the matter, the departments and offices of the application's
//! workflow, its lead department, the task's department, office and assignee), which the
//! service builds from its own storage. [`TABLE`] says, for every action and every [`Role`],
//! which [`Rule`] applies; [`Policy::authorize`] evaluates it. Everything here is pure: no I/O
//! once the [`Integrators`] registry is loaded, so the table is unit-tested by walking it.
//!
//! Department claims: a clerk or supervisor token carries a department code (`eco_env`) or a
//! township office code (`eco_env.songyuan`). A scope lists both the department and the office
//! of each task (a routed task is in both), so a department's staff match their offices' work
//! while a township office's staff match only their office.

mod integrators;

use std::fmt;

pub use integrators::{Integrator, Integrators, IntegratorsError};
use tongban_auth::{Identity, Role};

/// Every RPC that needs an authorization decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    // intake
    SubmitApplication,
    GetApplication,
    ListApplications,
    WatchApplication,
    SupplementMaterials,
    WithdrawApplication,
    ListMatters,
    // approval
    ListTasks,
    ClaimTask,
    DecideTask,
    DelegateTask,
    GetWorkflow,
    GetAuditTrail,
    ListDefinitions,
    PublishDefinition,
    RateOutcome,
    ListLedgerItems,
    GetLedgerItem,
    RateService,
    RecordRectification,
    // dispatch
    ListPlatforms,
    ListDeliveries,
    RetryDelivery,
    ReplayDeadLetters,
    DiscardDelivery,
    Reconcile,
    // notification
    ListNotifications,
    Subscribe,
    MarkRead,
    RegisterWebhook,
    ListWebhooks,
    DeleteWebhook,
    // every service: the event consumer's dead-letter queue (DeadLetterService)
    ListDeadLetters,
    GetDeadLetter,
    /// DeadLetterService.ReplayDeadLetters (bus messages), not dispatch's [`Action::ReplayDeadLetters`].
    ReplayBusDeadLetters,
    DiscardDeadLetters,
    ListFailedDeliveries,
    ReplayFailedDeliveries,
}

impl Action {
    /// Every action, in table order.
    pub const ALL: [Action; 38] = [
        Action::SubmitApplication,
        Action::GetApplication,
        Action::ListApplications,
        Action::WatchApplication,
        Action::SupplementMaterials,
        Action::WithdrawApplication,
        Action::ListMatters,
        Action::ListTasks,
        Action::ClaimTask,
        Action::DecideTask,
        Action::DelegateTask,
        Action::GetWorkflow,
        Action::GetAuditTrail,
        Action::ListDefinitions,
        Action::PublishDefinition,
        Action::RateOutcome,
        Action::ListLedgerItems,
        Action::GetLedgerItem,
        Action::RateService,
        Action::RecordRectification,
        Action::ListPlatforms,
        Action::ListDeliveries,
        Action::RetryDelivery,
        Action::ReplayDeadLetters,
        Action::DiscardDelivery,
        Action::Reconcile,
        Action::ListNotifications,
        Action::Subscribe,
        Action::MarkRead,
        Action::RegisterWebhook,
        Action::ListWebhooks,
        Action::DeleteWebhook,
        Action::ListDeadLetters,
        Action::GetDeadLetter,
        Action::ReplayBusDeadLetters,
        Action::DiscardDeadLetters,
        Action::ListFailedDeliveries,
        Action::ReplayFailedDeliveries,
    ];

    /// The RPC's name, for logs and audit entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SubmitApplication => "SubmitApplication",
            Action::GetApplication => "GetApplication",
            Action::ListApplications => "ListApplications",
            Action::WatchApplication => "WatchApplication",
            Action::SupplementMaterials => "SupplementMaterials",
            Action::WithdrawApplication => "WithdrawApplication",
            Action::ListMatters => "ListMatters",
            Action::ListTasks => "ListTasks",
            Action::ClaimTask => "ClaimTask",
            Action::DecideTask => "DecideTask",
            Action::DelegateTask => "DelegateTask",
            Action::GetWorkflow => "GetWorkflow",
            Action::GetAuditTrail => "GetAuditTrail",
            Action::ListDefinitions => "ListDefinitions",
            Action::PublishDefinition => "PublishDefinition",
            Action::RateOutcome => "RateOutcome",
            Action::ListLedgerItems => "ListLedgerItems",
            Action::GetLedgerItem => "GetLedgerItem",
            Action::RateService => "RateService",
            Action::RecordRectification => "RecordRectification",
            Action::ListPlatforms => "ListPlatforms",
            Action::ListDeliveries => "ListDeliveries",
            Action::RetryDelivery => "RetryDelivery",
            Action::ReplayDeadLetters => "ReplayDeadLetters",
            Action::DiscardDelivery => "DiscardDelivery",
            Action::Reconcile => "Reconcile",
            Action::ListNotifications => "ListNotifications",
            Action::Subscribe => "Subscribe",
            Action::MarkRead => "MarkRead",
            Action::RegisterWebhook => "RegisterWebhook",
            Action::ListWebhooks => "ListWebhooks",
            Action::DeleteWebhook => "DeleteWebhook",
            Action::ListDeadLetters => "ListDeadLetters",
            Action::GetDeadLetter => "GetDeadLetter",
            Action::ReplayBusDeadLetters => "ReplayBusDeadLetters",
            Action::DiscardDeadLetters => "DiscardDeadLetters",
            Action::ListFailedDeliveries => "ListFailedDeliveries",
            Action::ReplayFailedDeliveries => "ReplayFailedDeliveries",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one role's request for one action is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Never allowed.
    Never,
    /// Any authenticated caller with the claims its role needs (reference data).
    Anyone,
    /// Always allowed (admins).
    Everything,
    /// Applicants: the scope's enterprise is the token's credit code.
    OwnEnterprise,
    /// Integrators: registered for the scope's enterprise and matter.
    Registered,
    /// Integrators: registered at all (their own webhooks, their own inbox).
    RegisteredIntegrator,
    /// Staff: the token's department or office is among the scope's departments (the
    /// application's workflow, or the department a list asks for).
    InWorkflow,
    /// Staff: the token's department or office is the task's department or office.
    TaskDepartment,
    /// Clerks delegating: a task of their department that is unclaimed or claimed by them,
    /// kept in its department.
    TaskAssigneeOrUnclaimed,
    /// Supervisors: the token's department is the application's lead department.
    LeadDepartment,
    /// The caller's own inbox: what is addressed to their credit code, department or role.
    OwnInbox,
}

/// One row of [`TABLE`]: the rule per role for one action.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub action: Action,
    pub applicant: Rule,
    pub clerk: Rule,
    pub supervisor: Rule,
    pub integrator: Rule,
    pub admin: Rule,
}

impl Row {
    /// The rule for `role`.
    pub fn rule(&self, role: Role) -> Rule {
        match role {
            Role::Applicant => self.applicant,
            Role::Clerk => self.clerk,
            Role::Supervisor => self.supervisor,
            Role::Integrator => self.integrator,
            Role::Admin => self.admin,
        }
    }
}

const fn row(action: Action, rules: [Rule; 5]) -> Row {
    let [applicant, clerk, supervisor, integrator, admin] = rules;
    Row {
        action,
        applicant,
        clerk,
        supervisor,
        integrator,
        admin,
    }
}

use Rule::*;

/// THE table. Columns: applicant, clerk, supervisor, integrator, admin.
pub const TABLE: [Row; 38] = [
    // intake
    row(
        Action::SubmitApplication,
        [OwnEnterprise, Never, Never, Registered, Everything],
    ),
    row(
        Action::GetApplication,
        [
            OwnEnterprise,
            InWorkflow,
            InWorkflow,
            Registered,
            Everything,
        ],
    ),
    row(
        Action::ListApplications,
        [
            OwnEnterprise,
            InWorkflow,
            InWorkflow,
            Registered,
            Everything,
        ],
    ),
    row(
        Action::WatchApplication,
        [
            OwnEnterprise,
            InWorkflow,
            InWorkflow,
            Registered,
            Everything,
        ],
    ),
    row(
        Action::SupplementMaterials,
        [OwnEnterprise, Never, Never, Registered, Everything],
    ),
    row(
        Action::WithdrawApplication,
        [OwnEnterprise, Never, Never, Registered, Everything],
    ),
    row(
        Action::ListMatters,
        [Anyone, Anyone, Anyone, Anyone, Everything],
    ),
    // approval
    row(
        Action::ListTasks,
        [Never, InWorkflow, InWorkflow, Never, Everything],
    ),
    row(
        Action::ClaimTask,
        [Never, TaskDepartment, TaskDepartment, Never, Everything],
    ),
    row(
        Action::DecideTask,
        [Never, TaskDepartment, TaskDepartment, Never, Everything],
    ),
    row(
        Action::DelegateTask,
        [
            Never,
            TaskAssigneeOrUnclaimed,
            TaskDepartment,
            Never,
            Everything,
        ],
    ),
    row(
        Action::GetWorkflow,
        [
            OwnEnterprise,
            InWorkflow,
            InWorkflow,
            Registered,
            Everything,
        ],
    ),
    row(
        Action::GetAuditTrail,
        [Never, InWorkflow, InWorkflow, Registered, Everything],
    ),
    row(
        Action::ListDefinitions,
        [Anyone, Anyone, Anyone, Anyone, Everything],
    ),
    row(
        Action::PublishDefinition,
        [Never, Never, Never, Never, Everything],
    ),
    // The enterprise rates its own outcome; nobody rates on its behalf.
    row(
        Action::RateOutcome,
        [OwnEnterprise, Never, Never, Never, Never],
    ),
    // The supervision ledger: staff of the units concerned; it is not the enterprise's view.
    row(
        Action::ListLedgerItems,
        [Never, InWorkflow, InWorkflow, Never, Everything],
    ),
    row(
        Action::GetLedgerItem,
        [Never, InWorkflow, InWorkflow, Never, Everything],
    ),
    // 好差评: the applicant rates its own application; the rated department answers a poor
    // rating.
    row(
        Action::RateService,
        [OwnEnterprise, Never, Never, Never, Never],
    ),
    row(
        Action::RecordRectification,
        [Never, InWorkflow, InWorkflow, Never, Everything],
    ),
    // dispatch
    row(
        Action::ListPlatforms,
        [Never, Anyone, Anyone, RegisteredIntegrator, Everything],
    ),
    row(
        Action::ListDeliveries,
        [Never, InWorkflow, InWorkflow, Registered, Everything],
    ),
    row(
        Action::RetryDelivery,
        [Never, Never, LeadDepartment, Never, Everything],
    ),
    row(
        Action::ReplayDeadLetters,
        [Never, Never, LeadDepartment, Never, Everything],
    ),
    row(
        Action::DiscardDelivery,
        [Never, Never, LeadDepartment, Never, Everything],
    ),
    row(Action::Reconcile, [Never, Never, Never, Never, Everything]),
    // notification
    row(
        Action::ListNotifications,
        [OwnInbox, OwnInbox, OwnInbox, OwnInbox, Everything],
    ),
    row(
        Action::Subscribe,
        [OwnInbox, OwnInbox, OwnInbox, OwnInbox, Everything],
    ),
    row(
        Action::MarkRead,
        [OwnInbox, OwnInbox, OwnInbox, OwnInbox, Everything],
    ),
    row(
        Action::RegisterWebhook,
        [
            OwnInbox,
            OwnInbox,
            OwnInbox,
            RegisteredIntegrator,
            Everything,
        ],
    ),
    row(
        Action::ListWebhooks,
        [
            OwnInbox,
            OwnInbox,
            OwnInbox,
            RegisteredIntegrator,
            Everything,
        ],
    ),
    row(
        Action::DeleteWebhook,
        [
            OwnInbox,
            OwnInbox,
            OwnInbox,
            RegisteredIntegrator,
            Everything,
        ],
    ),
    // every service: dead letters (admins only)
    row(
        Action::ListDeadLetters,
        [Never, Never, Never, Never, Everything],
    ),
    row(
        Action::GetDeadLetter,
        [Never, Never, Never, Never, Everything],
    ),
    row(
        Action::ReplayBusDeadLetters,
        [Never, Never, Never, Never, Everything],
    ),
    row(
        Action::DiscardDeadLetters,
        [Never, Never, Never, Never, Everything],
    ),
    row(
        Action::ListFailedDeliveries,
        [Never, Never, Never, Never, Everything],
    ),
    row(
        Action::ReplayFailedDeliveries,
        [Never, Never, Never, Never, Everything],
    ),
];

/// The row of `action`.
pub fn row_of(action: Action) -> &'static Row {
    // TABLE is in Action::ALL order; the unit tests hold it to that.
    &TABLE[action as usize]
}

/// The rule for `role` doing `action`.
pub fn rule(action: Action, role: Role) -> Rule {
    row_of(action).rule(role)
}

/// A task, as far as authorization cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskScope {
    pub department: String,
    /// Township office code; empty when not routed.
    pub office: String,
    /// Who claimed it; empty when unclaimed.
    pub assignee: String,
    /// A delegation that moves the task to another department.
    pub moves_department: bool,
}

/// What an action touches. Fields an action does not involve stay empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The enterprise's unified social credit code.
    pub credit_code: Option<String>,
    /// The matter code.
    pub matter_code: Option<String>,
    /// Departments and township offices of the application's workflow (or, for a list, the
    /// department asked for and the department it belongs to).
    pub departments: Vec<String>,
    /// The application's lead department (the first stage's).
    pub lead_department: Option<String>,
    /// The task acted on.
    pub task: Option<TaskScope>,
}

impl Scope {
    /// The scope of one application.
    pub fn application(
        credit_code: impl Into<String>,
        matter_code: impl Into<String>,
        departments: Vec<String>,
    ) -> Self {
        Self {
            credit_code: Some(credit_code.into()),
            matter_code: Some(matter_code.into()),
            departments,
            ..Self::default()
        }
    }

    /// Only departments (a department-wide list).
    pub fn departments(departments: Vec<String>) -> Self {
        Self {
            departments,
            ..Self::default()
        }
    }

    pub fn with_task(mut self, task: TaskScope) -> Self {
        self.task = Some(task);
        self
    }

    pub fn with_lead(mut self, lead: Option<String>) -> Self {
        self.lead_department = lead;
        self
    }
}

/// Why a request was refused, in plain words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The role may do this, but not on this scope (or never).
    #[error("{role} may not {action}: {why}")]
    Forbidden {
        role: Role,
        action: Action,
        why: String,
    },
    /// The token lacks a claim its role needs: never read as "everything".
    #[error("{role} token has no {claim} claim")]
    MissingClaim { role: Role, claim: &'static str },
}

impl Denied {
    /// The gRPC status: `UNAUTHENTICATED` for a token missing a claim, `PERMISSION_DENIED`
    /// otherwise, each with its ErrorInfo reason.
    pub fn to_status(&self) -> tonic::Status {
        use tonic_types::{ErrorDetails, StatusExt};
        let (code, reason) = match self {
            Denied::MissingClaim { .. } => (tonic::Code::Unauthenticated, "UNAUTHENTICATED"),
            Denied::Forbidden { .. } => (tonic::Code::PermissionDenied, "PERMISSION_DENIED"),
        };
        tonic::Status::with_error_details(
            code,
            self.to_string(),
            ErrorDetails::with_error_info(
                reason,
                "tongban.gov",
                std::collections::HashMap::<String, String>::new(),
            ),
        )
    }
}

/// A refused attempt, as it is handed to the [`DenialSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub who: Identity,
    pub action: Action,
    /// What was asked for: an application, task, delivery or webhook id, or a collection.
    pub target: String,
    pub why: Denied,
}

/// Where refused attempts are recorded. Services hand in the audit log's (see
/// `tongban_audit::DenialLog`); recording must not block the request that was refused.
pub trait DenialSink: Send + Sync + fmt::Debug {
    fn record(&self, denial: Denial);
}

impl From<Denied> for tonic::Status {
    fn from(d: Denied) -> Self {
        d.to_status()
    }
}

/// The table plus what it needs beyond the token: the registered integrators, and where
/// refusals are recorded.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    integrators: Integrators,
    denials: Option<std::sync::Arc<dyn DenialSink>>,
}

impl Policy {
    pub fn new(integrators: Integrators) -> Self {
        Self {
            integrators,
            denials: None,
        }
    }

    /// Records every refusal of [`Policy::check`], [`Policy::check_role`] and [`Policy::deny`]
    /// in `sink`.
    pub fn with_denials(mut self, sink: std::sync::Arc<dyn DenialSink>) -> Self {
        self.denials = Some(sink);
        self
    }

    pub fn integrators(&self) -> &Integrators {
        &self.integrators
    }

    /// Decides like [`Policy::authorize`]; a refusal is recorded (see [`Policy::deny`]).
    /// `target` names what was asked for in the record.
    pub fn check(
        &self,
        who: &Identity,
        action: Action,
        scope: &Scope,
        target: &str,
    ) -> Result<(), Denied> {
        self.authorize(who, action, scope)
            .map_err(|d| self.deny(who, action, target, d))
    }

    /// Refuses a role that never may do `action` before the request is even read, so such a
    /// caller learns nothing about what a valid request looks like. Recorded like any refusal.
    pub fn check_role(&self, who: &Identity, action: Action) -> Result<(), Denied> {
        if rule(action, who.role) == Rule::Never {
            let d = Denied::Forbidden {
                role: who.role,
                action,
                why: format!("the {} role never may", who.role),
            };
            return Err(self.deny(who, action, "", d));
        }
        Ok(())
    }

    /// The one place a refusal is recorded: a warning on the `tongban::audit` log target, and
    /// an entry through the [`DenialSink`] (the service's audit chain). Returns `denied` for
    /// the caller's error.
    pub fn deny(&self, who: &Identity, action: Action, target: &str, denied: Denied) -> Denied {
        tracing::warn!(
            target: "tongban::audit",
            actor = %who.actor_label(),
            action = %action,
            target,
            reason = %denied,
            "denied"
        );
        if let Some(sink) = &self.denials {
            sink.record(Denial {
                who: who.clone(),
                action,
                target: target.to_string(),
                why: denied.clone(),
            });
        }
        denied
    }

    /// Decides whether `who` may do `action` on `scope`.
    pub fn authorize(&self, who: &Identity, action: Action, scope: &Scope) -> Result<(), Denied> {
        let deny = |why: String| Denied::Forbidden {
            role: who.role,
            action,
            why,
        };
        let rule = rule(action, who.role);
        match rule {
            Never => Err(deny(format!("the {} role never may", who.role))),
            Everything => Ok(()),
            Anyone => Claims::of(who).map(|_| ()),
            OwnEnterprise => {
                let own = Claims::of(who)?.credit_code.unwrap_or_default();
                match scope.credit_code.as_deref() {
                    Some(c) if c == own => Ok(()),
                    _ => Err(deny("it concerns another enterprise".into())),
                }
            }
            Registered => {
                let reg = self.registered(who).map_err(deny)?;
                let enterprise = scope
                    .credit_code
                    .as_deref()
                    .is_some_and(|c| reg.covers_enterprise(c));
                let matter = scope
                    .matter_code
                    .as_deref()
                    .is_none_or(|m| reg.covers_matter(m));
                if enterprise && matter {
                    Ok(())
                } else {
                    Err(deny(format!(
                        "integrator {} is not registered for this enterprise and matter",
                        who.subject
                    )))
                }
            }
            RegisteredIntegrator | OwnInbox if who.role == Role::Integrator => {
                self.registered(who).map(|_| ()).map_err(deny)
            }
            RegisteredIntegrator | OwnInbox => Claims::of(who).map(|_| ()),
            InWorkflow => {
                let own = Claims::of(who)?.department.unwrap_or_default();
                if scope.departments.iter().any(|d| d == own) {
                    Ok(())
                } else {
                    Err(deny(format!("{own} is not among its departments")))
                }
            }
            TaskDepartment | TaskAssigneeOrUnclaimed => {
                let own = Claims::of(who)?.department.unwrap_or_default();
                let task = scope
                    .task
                    .as_ref()
                    .ok_or_else(|| deny("no task given".into()))?;
                if own != task.department && own != task.office {
                    return Err(deny(format!("the task belongs to {}", task.department)));
                }
                if rule == TaskAssigneeOrUnclaimed {
                    if !task.assignee.is_empty() && task.assignee != who.subject {
                        return Err(deny(format!(
                            "the task is claimed by {}; only they, a supervisor or an admin may",
                            task.assignee
                        )));
                    }
                    if task.moves_department {
                        return Err(deny(
                            "only a supervisor or an admin may move a task to another department"
                                .into(),
                        ));
                    }
                }
                Ok(())
            }
            LeadDepartment => {
                let own = Claims::of(who)?.department.unwrap_or_default();
                match scope.lead_department.as_deref() {
                    Some(lead) if lead == own => Ok(()),
                    Some(lead) => Err(deny(format!("the lead department is {lead}, not {own}"))),
                    None => Err(deny(
                        "only an admin may act without naming one application".into(),
                    )),
                }
            }
        }
    }

    /// Whether `who` may do `action` on `scope` (for filtering lists).
    pub fn allows(&self, who: &Identity, action: Action, scope: &Scope) -> bool {
        self.authorize(who, action, scope).is_ok()
    }

    fn registered(&self, who: &Identity) -> Result<&Integrator, String> {
        self.integrators
            .get(&who.subject)
            .ok_or_else(|| format!("integrator {} is not registered", who.subject))
    }
}

/// The claims a role needs, checked present.
struct Claims<'a> {
    department: Option<&'a str>,
    credit_code: Option<&'a str>,
}

impl<'a> Claims<'a> {
    fn of(who: &'a Identity) -> Result<Self, Denied> {
        let missing = |claim| Denied::MissingClaim {
            role: who.role,
            claim,
        };
        let department = who.department.as_deref().filter(|d| !d.trim().is_empty());
        let credit_code = who.credit_code.as_ref().map(|c| c.as_str());
        match who.role {
            Role::Applicant if credit_code.is_none() => Err(missing("credit_code")),
            Role::Clerk | Role::Supervisor if department.is_none() => Err(missing("department")),
            _ => Ok(Self {
                department,
                credit_code,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
