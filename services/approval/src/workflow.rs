//! The workflow state machine, as plain data: no I/O, no clock.
//!
//! # Mental model
//! An *instance* follows the plan computed once at submission (a list of stages, each a set of
//! parallel department tasks). It sits on one stage at a time. Every input (a task decided, a
//! supplement arriving, a withdrawal, a rating) goes through [`InstanceState::apply`], which
//! either refuses the input (an invalid transition) or returns the new state and the
//! [`Command`]s the engine must carry out (open a stage's tasks, cancel open tasks, emit the
//! final event). The engine ([`crate::engine`]) does the reading and writing; this module only
//! decides. Tasks have their own, smaller machine: [`TaskState`]. The states themselves (and
//! how they are stored) are named in [`crate::model`].

use serde::{Deserialize, Serialize};

pub use crate::model::{InstanceStatus, TaskState};
use crate::model::{TaskDecision, Unspecified};

/// One stage of an instance's plan, frozen at submission so later stages never re-plan (a
/// definition published meanwhile, or a changed condition, cannot move a running instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePlan {
    pub stage_id: String,
    pub name: String,
    pub tasks: Vec<TaskPlan>,
}

/// One department task of a planned stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPlan {
    pub department: String,
    pub office: Option<String>,
    pub title: String,
    pub deadline_hours: u32,
}

impl From<&tongban_matter::PlannedStage> for StagePlan {
    fn from(s: &tongban_matter::PlannedStage) -> Self {
        Self {
            stage_id: s.stage_id.clone(),
            name: s.name.clone(),
            tasks: s
                .tasks
                .iter()
                .map(|t| TaskPlan {
                    department: t.department.clone(),
                    office: t.office.clone(),
                    title: t.title.clone(),
                    deadline_hours: t.deadline_hours,
                })
                .collect(),
        }
    }
}

/// The machine's state: the instance's status and its position in the plan. This is the one
/// owner of the stage index: running, it is the stage being worked on; finished, the last one
/// worked on (the workflow view shows the stages before it as done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceState {
    pub status: InstanceStatus,
    pub stage: usize,
}

/// What happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The instance was just created with its plan.
    Started,
    /// A review task of the current stage was approved; `stage_complete` when it was the last
    /// one of the stage still open.
    TaskApproved {
        stage_complete: bool,
    },
    TaskRejected,
    SupplementRequested,
    Supplemented,
    Withdrawn,
    /// The enterprise rated the answer; `reopen` when the rating is one the policy reopens on.
    Rated {
        reopen: bool,
        reopen_stage: usize,
    },
    /// Nobody rated the answer within the matter's waiting period.
    RatingLapsed,
}

/// What the engine must do after a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Create the tasks of this stage and emit `task.created` for each.
    OpenStage(usize),
    /// Emit `application.approved` (and the pledge follow-up when approved on pledge).
    EmitApproved,
    /// Emit `request.answered` (enterprise requests end their stages this way).
    EmitAnswered,
    /// Cancel the other open tasks and emit `application.rejected`.
    RejectApplication,
    /// Emit `application.supplement_requested`.
    EmitSupplementRequested,
    /// Reopen the task that asked for the supplement.
    ResumeSupplementTask,
    /// Cancel every task still open (follow-ups included).
    CancelOpenTasks,
    /// Emit `outcome.rated`, then (when not reopened) `application.closed`.
    EmitRated { reopened: bool },
    /// Emit `application.closed`, marked unrated.
    CloseUnrated,
}

/// An input the current status does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a workflow that is {from} cannot take {input:?}")]
pub struct InvalidTransition {
    pub from: InstanceStatus,
    pub input: Input,
}

impl InstanceState {
    /// A new instance, before [`Input::Started`].
    pub fn start() -> Self {
        Self::new(InstanceStatus::Running, 0)
    }

    pub fn new(status: InstanceStatus, stage: usize) -> Self {
        Self { status, stage }
    }

    /// The stage being worked on, while the instance runs (waiting for a supplement included).
    pub fn current_stage(self) -> Option<usize> {
        matches!(
            self.status,
            InstanceStatus::Running | InstanceStatus::WaitingSupplement
        )
        .then_some(self.stage)
    }

    /// Applies `input` to an instance whose plan has `stages` stages; `request` when the
    /// matter is an enterprise request (its last stage answers instead of approving). A
    /// finished instance keeps the stage it finished on.
    pub fn apply(
        self,
        input: Input,
        stages: usize,
        request: bool,
    ) -> Result<(Self, Vec<Command>), InvalidTransition> {
        use InstanceStatus as S;
        let invalid = || InvalidTransition {
            from: self.status,
            input,
        };
        let stage = self.stage;
        let to = |status| Self::new(status, stage);
        match (self.status, input) {
            (S::Running, Input::Started) if stage == 0 && stages > 0 => {
                Ok((self, vec![Command::OpenStage(0)]))
            }
            // Commitment-based approval (告知承诺制): a plan with nothing to review is approved
            // at once; verification follows (see `Command::EmitApproved`).
            (S::Running, Input::Started) if stage == 0 && !request => {
                Ok((to(S::Approved), vec![Command::EmitApproved]))
            }
            (
                S::Running,
                Input::TaskApproved {
                    stage_complete: false,
                },
            ) => Ok((self, vec![])),
            (
                S::Running,
                Input::TaskApproved {
                    stage_complete: true,
                },
            ) => {
                if stage + 1 < stages {
                    Ok((
                        Self::new(S::Running, stage + 1),
                        vec![Command::OpenStage(stage + 1)],
                    ))
                } else if request {
                    Ok((to(S::AwaitingRating), vec![Command::EmitAnswered]))
                } else {
                    Ok((to(S::Approved), vec![Command::EmitApproved]))
                }
            }
            // While one department waits for materials the others keep working; the stage cannot
            // complete until the waiting task is resumed and approved.
            (
                S::WaitingSupplement,
                Input::TaskApproved {
                    stage_complete: false,
                },
            ) => Ok((self, vec![])),
            (S::Running | S::WaitingSupplement, Input::TaskRejected) => {
                Ok((to(S::Rejected), vec![Command::RejectApplication]))
            }
            (S::Running, Input::SupplementRequested) => Ok((
                to(S::WaitingSupplement),
                vec![Command::EmitSupplementRequested],
            )),
            (S::WaitingSupplement, Input::Supplemented) => {
                Ok((to(S::Running), vec![Command::ResumeSupplementTask]))
            }
            (S::Running | S::WaitingSupplement | S::AwaitingRating, Input::Withdrawn) => {
                Ok((to(S::Withdrawn), vec![Command::CancelOpenTasks]))
            }
            (
                S::AwaitingRating,
                Input::Rated {
                    reopen: true,
                    reopen_stage,
                },
            ) if reopen_stage < stages => Ok((
                Self::new(S::Running, reopen_stage),
                vec![
                    Command::EmitRated { reopened: true },
                    Command::OpenStage(reopen_stage),
                ],
            )),
            (S::AwaitingRating, Input::Rated { reopen: false, .. }) => {
                Ok((to(S::Closed), vec![Command::EmitRated { reopened: false }]))
            }
            (S::AwaitingRating, Input::RatingLapsed) => {
                Ok((to(S::Closed), vec![Command::CloseUnrated]))
            }
            _ => Err(invalid()),
        }
    }
}

/// A clerk's decision on a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
    RequestSupplement,
}

impl Decision {
    /// The word `task.decided` carries, and the audit action.
    pub fn event_name(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::RequestSupplement => "request_supplement",
        }
    }
}

/// The decision as recorded on the task.
impl From<Decision> for TaskDecision {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Approve => Self::Approve,
            Decision::Reject => Self::Reject,
            Decision::RequestSupplement => Self::RequestSupplement,
        }
    }
}

/// A clerk's decision from the API; `DECISION_UNSPECIFIED` is none.
impl TryFrom<tongban_proto::approval::Decision> for Decision {
    type Error = Unspecified;

    fn try_from(d: tongban_proto::approval::Decision) -> Result<Self, Unspecified> {
        use tongban_proto::approval::Decision as D;
        match d {
            D::Approve => Ok(Self::Approve),
            D::Reject => Ok(Self::Reject),
            D::RequestSupplement => Ok(Self::RequestSupplement),
            D::Unspecified => Err(Unspecified("decision")),
        }
    }
}

/// A task change the task's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task is {from}; cannot {action}")]
pub struct InvalidTaskChange {
    pub from: TaskState,
    pub action: &'static str,
}

impl TaskState {
    /// The states of a task still waiting for someone to act.
    pub const ACTIVE: [Self; 2] = [Self::Open, Self::Claimed];

    /// Still waiting for someone to act.
    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }

    pub fn claim(self) -> Result<Self, InvalidTaskChange> {
        match self {
            Self::Open => Ok(Self::Claimed),
            _ => Err(InvalidTaskChange {
                from: self,
                action: "claim it",
            }),
        }
    }

    /// The state after `decision`; follow-up tasks (`follow_up`) are completed (`Done`) by
    /// approving them and cannot ask for supplements.
    pub fn decide(self, decision: Decision, follow_up: bool) -> Result<Self, InvalidTaskChange> {
        if !self.is_active() {
            return Err(InvalidTaskChange {
                from: self,
                action: "decide it",
            });
        }
        match (decision, follow_up) {
            (Decision::Approve, false) => Ok(Self::Approved),
            (Decision::Approve, true) => Ok(Self::Done),
            (Decision::Reject, _) => Ok(Self::Rejected),
            (Decision::RequestSupplement, false) => Ok(Self::SupplementRequested),
            (Decision::RequestSupplement, true) => Err(InvalidTaskChange {
                from: self,
                action: "request a supplement on a follow-up task",
            }),
        }
    }

    /// Materials arrived: the task that asked for them is open again.
    pub fn resume(self) -> Result<Self, InvalidTaskChange> {
        match self {
            Self::SupplementRequested => Ok(Self::Open),
            _ => Err(InvalidTaskChange {
                from: self,
                action: "resume it",
            }),
        }
    }

    pub fn cancel(self) -> Result<Self, InvalidTaskChange> {
        match self {
            Self::Open | Self::Claimed | Self::SupplementRequested => Ok(Self::Cancelled),
            _ => Err(InvalidTaskChange {
                from: self,
                action: "cancel it",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_opens_the_first_stage_or_approves_an_empty_plan() {
        let start = InstanceState::start();
        assert_eq!(
            start.apply(Input::Started, 3, false).unwrap(),
            (start, vec![Command::OpenStage(0)])
        );
        // Commitment-based approval: nothing to review, approved at once.
        assert_eq!(
            start.apply(Input::Started, 0, false).unwrap(),
            (
                InstanceState::new(InstanceStatus::Approved, 0),
                vec![Command::EmitApproved]
            )
        );
        // A request always has someone to answer it; an empty plan is a broken definition.
        assert!(start.apply(Input::Started, 0, true).is_err());
        assert!(
            InstanceState::new(InstanceStatus::Approved, 0)
                .apply(Input::Started, 3, false)
                .is_err()
        );
    }

    #[test]
    fn stages_advance_then_approve() {
        let s = InstanceState::new(InstanceStatus::Running, 0);
        let (s, c) = s
            .apply(
                Input::TaskApproved {
                    stage_complete: false,
                },
                2,
                false,
            )
            .unwrap();
        assert!(c.is_empty());
        let (s, c) = s
            .apply(
                Input::TaskApproved {
                    stage_complete: true,
                },
                2,
                false,
            )
            .unwrap();
        assert_eq!(
            (s, c),
            (
                InstanceState::new(InstanceStatus::Running, 1),
                vec![Command::OpenStage(1)]
            )
        );
        let (s, c) = s
            .apply(
                Input::TaskApproved {
                    stage_complete: true,
                },
                2,
                false,
            )
            .unwrap();
        assert_eq!(
            (s, c),
            (
                InstanceState::new(InstanceStatus::Approved, 1),
                vec![Command::EmitApproved]
            ),
            "a finished instance keeps the stage it finished on"
        );
    }

    #[test]
    fn request_answers_then_reopens_or_closes() {
        let (s, c) = InstanceState::new(InstanceStatus::Running, 3)
            .apply(
                Input::TaskApproved {
                    stage_complete: true,
                },
                4,
                true,
            )
            .unwrap();
        assert_eq!(
            (s, c),
            (
                InstanceState::new(InstanceStatus::AwaitingRating, 3),
                vec![Command::EmitAnswered]
            )
        );
        let (r, c) = s
            .apply(
                Input::Rated {
                    reopen: true,
                    reopen_stage: 2,
                },
                4,
                true,
            )
            .unwrap();
        assert_eq!(r, InstanceState::new(InstanceStatus::Running, 2));
        assert_eq!(
            c,
            vec![Command::EmitRated { reopened: true }, Command::OpenStage(2)]
        );
        let (r, _) = s
            .apply(
                Input::Rated {
                    reopen: false,
                    reopen_stage: 2,
                },
                4,
                true,
            )
            .unwrap();
        assert_eq!(r, InstanceState::new(InstanceStatus::Closed, 3));
        let (r, c) = s.apply(Input::RatingLapsed, 4, true).unwrap();
        assert_eq!(
            (r, c),
            (
                InstanceState::new(InstanceStatus::Closed, 3),
                vec![Command::CloseUnrated]
            ),
            "an answer nobody rated closes, marked unrated"
        );
        for status in [
            InstanceStatus::Running,
            InstanceStatus::Closed,
            InstanceStatus::Approved,
        ] {
            assert!(
                InstanceState::new(status, 3)
                    .apply(Input::RatingLapsed, 4, true)
                    .is_err(),
                "{status}"
            );
        }
    }

    #[test]
    fn invalid_transitions_are_refused() {
        let rated = Input::Rated {
            reopen: false,
            reopen_stage: 0,
        };
        for (from, input) in [
            (
                InstanceState::new(InstanceStatus::Approved, 0),
                Input::TaskApproved {
                    stage_complete: true,
                },
            ),
            (
                InstanceState::new(InstanceStatus::Rejected, 0),
                Input::Withdrawn,
            ),
            (
                InstanceState::new(InstanceStatus::Withdrawn, 0),
                Input::Supplemented,
            ),
            (
                InstanceState::new(InstanceStatus::Running, 0),
                Input::Supplemented,
            ),
            (InstanceState::new(InstanceStatus::Running, 0), rated),
            (
                InstanceState::new(InstanceStatus::WaitingSupplement, 0),
                Input::TaskApproved {
                    stage_complete: true,
                },
            ),
            (InstanceState::new(InstanceStatus::Closed, 0), rated),
            (
                InstanceState::new(InstanceStatus::AwaitingRating, 0),
                Input::Rated {
                    reopen: true,
                    reopen_stage: 9,
                },
            ),
        ] {
            assert!(
                from.apply(input, 4, true).is_err(),
                "{from:?} accepted {input:?}"
            );
        }
    }

    #[test]
    fn task_changes() {
        assert_eq!(TaskState::Open.claim(), Ok(TaskState::Claimed));
        assert!(TaskState::Claimed.claim().is_err());
        assert_eq!(
            TaskState::Claimed.decide(Decision::Approve, false),
            Ok(TaskState::Approved)
        );
        assert_eq!(
            TaskState::Open.decide(Decision::Approve, true),
            Ok(TaskState::Done)
        );
        assert!(TaskState::Approved.decide(Decision::Reject, false).is_err());
        assert!(
            TaskState::Cancelled
                .decide(Decision::Approve, false)
                .is_err()
        );
        assert!(
            TaskState::Open
                .decide(Decision::RequestSupplement, true)
                .is_err()
        );
        assert_eq!(TaskState::SupplementRequested.resume(), Ok(TaskState::Open));
        assert!(TaskState::Open.resume().is_err());
        assert!(TaskState::Done.cancel().is_err());
        for s in ["OPEN", "CLAIMED", "DONE"] {
            use sea_orm::ActiveEnum;
            assert_eq!(
                TaskState::try_from_value(&s.to_string())
                    .ok()
                    .map(|t| t.to_value()),
                Some(s.to_string())
            );
        }
    }
}
