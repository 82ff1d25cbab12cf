//! Approval's typed vocabulary: the states and kinds of instances and tasks, as stored and as
//! sent. Each is a Rust enum stored as a string column through `DeriveActiveEnum` (the stored
//! strings are the ones earlier versions wrote, so old rows still read), with `From`/`TryFrom`
//! both ways to the proto enum where the API has one. The transitions between states live in
//! [`crate::workflow`]; this module only names them.

use std::fmt;

use sea_orm::{ActiveEnum, DeriveActiveEnum, EnumIter};
use tongban_proto::{approval as pb, events};

/// A proto enum value that has no domain meaning (`*_UNSPECIFIED` or unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is unspecified or unknown")]
pub struct Unspecified(pub &'static str);

/// Where an instance is (its position in the plan is [`crate::workflow::InstanceState::stage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum InstanceStatus {
    /// Working on the current stage.
    #[sea_orm(string_value = "RUNNING")]
    Running,
    /// A clerk asked for materials; the stage resumes when they arrive.
    #[sea_orm(string_value = "WAITING_SUPPLEMENT")]
    WaitingSupplement,
    #[sea_orm(string_value = "APPROVED")]
    Approved,
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
    #[sea_orm(string_value = "WITHDRAWN")]
    Withdrawn,
    /// Enterprise request answered; waiting for the enterprise's rating.
    #[sea_orm(string_value = "AWAITING_RATING")]
    AwaitingRating,
    #[sea_orm(string_value = "CLOSED")]
    Closed,
}

/// Whether an instance runs an application (approved at the end) or an enterprise request
/// (answered, then rated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum InstanceKind {
    #[sea_orm(string_value = "application")]
    Application,
    #[sea_orm(string_value = "enterprise_request")]
    EnterpriseRequest,
}

/// A task's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum TaskState {
    #[sea_orm(string_value = "OPEN")]
    Open,
    #[sea_orm(string_value = "CLAIMED")]
    Claimed,
    #[sea_orm(string_value = "APPROVED")]
    Approved,
    #[sea_orm(string_value = "REJECTED")]
    Rejected,
    #[sea_orm(string_value = "SUPPLEMENT_REQUESTED")]
    SupplementRequested,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
    #[sea_orm(string_value = "DONE")]
    Done,
}

/// What a task is for. Stored under the proto names earlier versions wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum TaskKind {
    /// A department's review in a stage.
    #[sea_orm(string_value = "TASK_KIND_REVIEW")]
    Review,
    /// Checking, after approval on pledge, that the pledge holds (告知承诺核查).
    #[sea_orm(string_value = "TASK_KIND_VERIFY_PLEDGE")]
    VerifyPledge,
    /// Waiting for a material accepted as owed (容缺受理).
    #[sea_orm(string_value = "TASK_KIND_FOLLOW_UP_MATERIAL")]
    FollowUpMaterial,
    /// A step of an enterprise request.
    #[sea_orm(string_value = "TASK_KIND_HANDLE_REQUEST")]
    HandleRequest,
    /// Visiting the enterprise once its request closed, and evaluating (回访评估).
    #[sea_orm(string_value = "TASK_KIND_FOLLOW_UP_VISIT")]
    FollowUpVisit,
}

/// The decision recorded on a task: none yet, a clerk's, or `done` for an owed material that
/// arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum TaskDecision {
    #[default]
    #[sea_orm(string_value = "")]
    None,
    #[sea_orm(string_value = "approve")]
    Approve,
    #[sea_orm(string_value = "reject")]
    Reject,
    #[sea_orm(string_value = "request_supplement")]
    RequestSupplement,
    #[sea_orm(string_value = "done")]
    Done,
}

macro_rules! display_stored {
    ($($t:ty),*) => {$(
        /// Shown as stored (e.g. in "task is CLAIMED").
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_value())
            }
        }
    )*};
}
display_stored!(
    InstanceStatus,
    InstanceKind,
    TaskState,
    TaskKind,
    TaskDecision
);

impl From<InstanceStatus> for pb::WorkflowStatus {
    fn from(s: InstanceStatus) -> Self {
        match s {
            InstanceStatus::Running => Self::Running,
            InstanceStatus::WaitingSupplement => Self::WaitingSupplement,
            InstanceStatus::Approved => Self::Approved,
            InstanceStatus::Rejected => Self::Rejected,
            InstanceStatus::Withdrawn => Self::Withdrawn,
            InstanceStatus::AwaitingRating => Self::AwaitingRating,
            InstanceStatus::Closed => Self::Closed,
        }
    }
}

impl TryFrom<pb::WorkflowStatus> for InstanceStatus {
    type Error = Unspecified;

    fn try_from(s: pb::WorkflowStatus) -> Result<Self, Unspecified> {
        Ok(match s {
            pb::WorkflowStatus::Running => Self::Running,
            pb::WorkflowStatus::WaitingSupplement => Self::WaitingSupplement,
            pb::WorkflowStatus::Approved => Self::Approved,
            pb::WorkflowStatus::Rejected => Self::Rejected,
            pb::WorkflowStatus::Withdrawn => Self::Withdrawn,
            pb::WorkflowStatus::AwaitingRating => Self::AwaitingRating,
            pb::WorkflowStatus::Closed => Self::Closed,
            pb::WorkflowStatus::Unspecified => return Err(Unspecified("workflow status")),
        })
    }
}

impl From<TaskState> for pb::TaskStatus {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Open => Self::Open,
            TaskState::Claimed => Self::Claimed,
            TaskState::Approved => Self::Approved,
            TaskState::Rejected => Self::Rejected,
            TaskState::SupplementRequested => Self::SupplementRequested,
            TaskState::Cancelled => Self::Cancelled,
            TaskState::Done => Self::Done,
        }
    }
}

impl TryFrom<pb::TaskStatus> for TaskState {
    type Error = Unspecified;

    fn try_from(s: pb::TaskStatus) -> Result<Self, Unspecified> {
        Ok(match s {
            pb::TaskStatus::Open => Self::Open,
            pb::TaskStatus::Claimed => Self::Claimed,
            pb::TaskStatus::Approved => Self::Approved,
            pb::TaskStatus::Rejected => Self::Rejected,
            pb::TaskStatus::SupplementRequested => Self::SupplementRequested,
            pb::TaskStatus::Cancelled => Self::Cancelled,
            pb::TaskStatus::Done => Self::Done,
            pb::TaskStatus::Unspecified => return Err(Unspecified("task status")),
        })
    }
}

impl From<TaskKind> for pb::TaskKind {
    fn from(k: TaskKind) -> Self {
        match k {
            TaskKind::Review => Self::Review,
            TaskKind::VerifyPledge => Self::VerifyPledge,
            TaskKind::FollowUpMaterial => Self::FollowUpMaterial,
            TaskKind::HandleRequest => Self::HandleRequest,
            TaskKind::FollowUpVisit => Self::FollowUpVisit,
        }
    }
}

impl TryFrom<pb::TaskKind> for TaskKind {
    type Error = Unspecified;

    fn try_from(k: pb::TaskKind) -> Result<Self, Unspecified> {
        Ok(match k {
            pb::TaskKind::Review => Self::Review,
            pb::TaskKind::VerifyPledge => Self::VerifyPledge,
            pb::TaskKind::FollowUpMaterial => Self::FollowUpMaterial,
            pb::TaskKind::HandleRequest => Self::HandleRequest,
            pb::TaskKind::FollowUpVisit => Self::FollowUpVisit,
            pb::TaskKind::Unspecified => return Err(Unspecified("task kind")),
        })
    }
}

impl TaskKind {
    /// The kind events carry (`task.created`, `task.due_soon`, `task.overdue`).
    pub fn event_kind(self) -> events::TaskKind {
        match self {
            Self::Review => events::TaskKind::Review,
            Self::VerifyPledge => events::TaskKind::VerifyPledge,
            Self::FollowUpMaterial => events::TaskKind::FollowUpMaterial,
            Self::HandleRequest => events::TaskKind::HandleRequest,
            Self::FollowUpVisit => events::TaskKind::FollowUpVisit,
        }
    }
}

/// `None` and `Done` have no proto decision: they show as `DECISION_UNSPECIFIED`.
impl From<TaskDecision> for pb::Decision {
    fn from(d: TaskDecision) -> Self {
        match d {
            TaskDecision::Approve => Self::Approve,
            TaskDecision::Reject => Self::Reject,
            TaskDecision::RequestSupplement => Self::RequestSupplement,
            TaskDecision::None | TaskDecision::Done => Self::Unspecified,
        }
    }
}

impl TryFrom<pb::Decision> for TaskDecision {
    type Error = Unspecified;

    fn try_from(d: pb::Decision) -> Result<Self, Unspecified> {
        Ok(match d {
            pb::Decision::Approve => Self::Approve,
            pb::Decision::Reject => Self::Reject,
            pb::Decision::RequestSupplement => Self::RequestSupplement,
            pb::Decision::Unspecified => return Err(Unspecified("decision")),
        })
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::Iterable;

    use super::*;

    #[test]
    fn stored_strings_are_the_ones_older_versions_wrote() {
        let names = |v: Vec<String>| v.join(",");
        assert_eq!(
            names(TaskState::iter().map(|s| s.to_value()).collect()),
            "OPEN,CLAIMED,APPROVED,REJECTED,SUPPLEMENT_REQUESTED,CANCELLED,DONE"
        );
        assert_eq!(
            names(InstanceStatus::iter().map(|s| s.to_value()).collect()),
            "RUNNING,WAITING_SUPPLEMENT,APPROVED,REJECTED,WITHDRAWN,AWAITING_RATING,CLOSED"
        );
        for k in TaskKind::iter() {
            assert_eq!(k.to_value(), pb::TaskKind::from(k).as_str_name());
        }
        assert_eq!(
            InstanceKind::EnterpriseRequest.to_value(),
            "enterprise_request"
        );
        assert_eq!(TaskDecision::None.to_value(), "");
        assert_eq!(
            TaskState::try_from_value(&"CLAIMED".to_string()).ok(),
            Some(TaskState::Claimed)
        );
    }

    #[test]
    fn proto_round_trips() {
        for s in TaskState::iter() {
            assert_eq!(TaskState::try_from(pb::TaskStatus::from(s)), Ok(s));
        }
        for s in InstanceStatus::iter() {
            assert_eq!(InstanceStatus::try_from(pb::WorkflowStatus::from(s)), Ok(s));
        }
        for k in TaskKind::iter() {
            assert_eq!(TaskKind::try_from(pb::TaskKind::from(k)), Ok(k));
        }
        assert!(TaskState::try_from(pb::TaskStatus::Unspecified).is_err());
        assert_eq!(
            pb::Decision::from(TaskDecision::Done),
            pb::Decision::Unspecified
        );
    }
}
