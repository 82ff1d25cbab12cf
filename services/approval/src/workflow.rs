//! The workflow state machine, as plain data: no I/O, no clock.
//!
//! # Mental model
//! An *instance* follows the plan computed once at submission (a list of stages, each a set of
//! parallel department tasks). It sits on one stage at a time. Every input (a task decided, a
//! supplement arriving, a withdrawal, a rating) goes through [`InstanceStatus::apply`], which
//! either refuses the input (an invalid transition) or returns the new status and the
//! [`Command`]s the engine must carry out (open a stage's tasks, cancel open tasks, emit the
//! final event). The engine (`service.rs`) does the reading and writing; this module only
//! decides. Tasks have their own, smaller machine: [`TaskState`].

use serde::{Deserialize, Serialize};

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

/// Where an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceStatus {
    /// Working on the stage at this index of the plan.
    Running {
        stage: usize,
    },
    /// A clerk asked for materials; the stage resumes when they arrive.
    WaitingSupplement {
        stage: usize,
    },
    Approved,
    Rejected,
    Withdrawn,
    /// Enterprise request answered; waiting for the enterprise's rating.
    AwaitingRating,
    Closed,
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
}

/// An input the current status does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a workflow that is {from} cannot take {input:?}")]
pub struct InvalidTransition {
    pub from: &'static str,
    pub input: Input,
}

impl InstanceStatus {
    /// The status name stored in the database and shown in errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Running { .. } => "RUNNING",
            Self::WaitingSupplement { .. } => "WAITING_SUPPLEMENT",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::Withdrawn => "WITHDRAWN",
            Self::AwaitingRating => "AWAITING_RATING",
            Self::Closed => "CLOSED",
        }
    }

    /// Rebuilds the status from its stored name and stage index.
    pub fn from_stored(name: &str, stage: usize) -> Option<Self> {
        Some(match name {
            "RUNNING" => Self::Running { stage },
            "WAITING_SUPPLEMENT" => Self::WaitingSupplement { stage },
            "APPROVED" => Self::Approved,
            "REJECTED" => Self::Rejected,
            "WITHDRAWN" => Self::Withdrawn,
            "AWAITING_RATING" => Self::AwaitingRating,
            "CLOSED" => Self::Closed,
            _ => return None,
        })
    }

    /// The stage index the instance is on (the last one once it finished).
    pub fn stage(self) -> Option<usize> {
        match self {
            Self::Running { stage } | Self::WaitingSupplement { stage } => Some(stage),
            _ => None,
        }
    }

    pub fn to_proto(self) -> tongban_proto::approval::WorkflowStatus {
        use tongban_proto::approval::WorkflowStatus as W;
        match self {
            Self::Running { .. } => W::Running,
            Self::WaitingSupplement { .. } => W::WaitingSupplement,
            Self::Approved => W::Approved,
            Self::Rejected => W::Rejected,
            Self::Withdrawn => W::Withdrawn,
            Self::AwaitingRating => W::AwaitingRating,
            Self::Closed => W::Closed,
        }
    }

    /// Applies `input` to an instance whose plan has `stages` stages; `request` when the
    /// matter is an enterprise request (its last stage answers instead of approving).
    pub fn apply(
        self,
        input: Input,
        stages: usize,
        request: bool,
    ) -> Result<(Self, Vec<Command>), InvalidTransition> {
        let invalid = || InvalidTransition {
            from: self.name(),
            input,
        };
        match (self, input) {
            (Self::Running { stage: 0 }, Input::Started) if stages > 0 => {
                Ok((self, vec![Command::OpenStage(0)]))
            }
            // Commitment-based approval (告知承诺制): a plan with nothing to review is approved
            // at once; verification follows (see `Command::EmitApproved`).
            (Self::Running { stage: 0 }, Input::Started) if !request => {
                Ok((Self::Approved, vec![Command::EmitApproved]))
            }
            (
                Self::Running { stage },
                Input::TaskApproved {
                    stage_complete: false,
                },
            ) => Ok((Self::Running { stage }, vec![])),
            (
                Self::Running { stage },
                Input::TaskApproved {
                    stage_complete: true,
                },
            ) => {
                if stage + 1 < stages {
                    Ok((
                        Self::Running { stage: stage + 1 },
                        vec![Command::OpenStage(stage + 1)],
                    ))
                } else if request {
                    Ok((Self::AwaitingRating, vec![Command::EmitAnswered]))
                } else {
                    Ok((Self::Approved, vec![Command::EmitApproved]))
                }
            }
            // While one department waits for materials the others keep working; the stage cannot
            // complete until the waiting task is resumed and approved.
            (
                Self::WaitingSupplement { stage },
                Input::TaskApproved {
                    stage_complete: false,
                },
            ) => Ok((Self::WaitingSupplement { stage }, vec![])),
            (Self::Running { .. } | Self::WaitingSupplement { .. }, Input::TaskRejected) => {
                Ok((Self::Rejected, vec![Command::RejectApplication]))
            }
            (Self::Running { stage }, Input::SupplementRequested) => Ok((
                Self::WaitingSupplement { stage },
                vec![Command::EmitSupplementRequested],
            )),
            (Self::WaitingSupplement { stage }, Input::Supplemented) => {
                Ok((Self::Running { stage }, vec![Command::ResumeSupplementTask]))
            }
            (
                Self::Running { .. } | Self::WaitingSupplement { .. } | Self::AwaitingRating,
                Input::Withdrawn,
            ) => Ok((Self::Withdrawn, vec![Command::CancelOpenTasks])),
            (
                Self::AwaitingRating,
                Input::Rated {
                    reopen: true,
                    reopen_stage,
                },
            ) if reopen_stage < stages => Ok((
                Self::Running {
                    stage: reopen_stage,
                },
                vec![
                    Command::EmitRated { reopened: true },
                    Command::OpenStage(reopen_stage),
                ],
            )),
            (Self::AwaitingRating, Input::Rated { reopen: false, .. }) => {
                Ok((Self::Closed, vec![Command::EmitRated { reopened: false }]))
            }
            _ => Err(invalid()),
        }
    }
}

/// A task's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Open,
    Claimed,
    Approved,
    Rejected,
    SupplementRequested,
    Cancelled,
    Done,
}

/// A clerk's decision on a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
    RequestSupplement,
}

impl Decision {
    /// The word `task.decided` carries.
    pub fn event_name(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::RequestSupplement => "request_supplement",
        }
    }
}

/// A task change the task's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task is {from}; cannot {action}")]
pub struct InvalidTaskChange {
    pub from: &'static str,
    pub action: &'static str,
}

impl TaskState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Claimed => "CLAIMED",
            Self::Approved => "APPROVED",
            Self::Rejected => "REJECTED",
            Self::SupplementRequested => "SUPPLEMENT_REQUESTED",
            Self::Cancelled => "CANCELLED",
            Self::Done => "DONE",
        }
    }

    pub fn from_stored(s: &str) -> Option<Self> {
        [
            Self::Open,
            Self::Claimed,
            Self::Approved,
            Self::Rejected,
            Self::SupplementRequested,
            Self::Cancelled,
            Self::Done,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }

    pub fn from_proto(s: tongban_proto::approval::TaskStatus) -> Option<Self> {
        Self::from_stored(s.as_str_name().trim_start_matches("TASK_STATUS_"))
    }

    pub fn to_proto(self) -> tongban_proto::approval::TaskStatus {
        use tongban_proto::approval::TaskStatus as T;
        match self {
            Self::Open => T::Open,
            Self::Claimed => T::Claimed,
            Self::Approved => T::Approved,
            Self::Rejected => T::Rejected,
            Self::SupplementRequested => T::SupplementRequested,
            Self::Cancelled => T::Cancelled,
            Self::Done => T::Done,
        }
    }

    /// Still waiting for someone to act.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Open | Self::Claimed)
    }

    pub fn claim(self) -> Result<Self, InvalidTaskChange> {
        match self {
            Self::Open => Ok(Self::Claimed),
            _ => Err(InvalidTaskChange {
                from: self.name(),
                action: "claim it",
            }),
        }
    }

    /// The state after `decision`; follow-up tasks (`follow_up`) are completed (`Done`) by
    /// approving them and cannot ask for supplements.
    pub fn decide(self, decision: Decision, follow_up: bool) -> Result<Self, InvalidTaskChange> {
        if !self.is_active() {
            return Err(InvalidTaskChange {
                from: self.name(),
                action: "decide it",
            });
        }
        match (decision, follow_up) {
            (Decision::Approve, false) => Ok(Self::Approved),
            (Decision::Approve, true) => Ok(Self::Done),
            (Decision::Reject, _) => Ok(Self::Rejected),
            (Decision::RequestSupplement, false) => Ok(Self::SupplementRequested),
            (Decision::RequestSupplement, true) => Err(InvalidTaskChange {
                from: self.name(),
                action: "request a supplement on a follow-up task",
            }),
        }
    }

    /// Materials arrived: the task that asked for them is open again.
    pub fn resume(self) -> Result<Self, InvalidTaskChange> {
        match self {
            Self::SupplementRequested => Ok(Self::Open),
            _ => Err(InvalidTaskChange {
                from: self.name(),
                action: "resume it",
            }),
        }
    }

    pub fn cancel(self) -> Result<Self, InvalidTaskChange> {
        match self {
            Self::Open | Self::Claimed | Self::SupplementRequested => Ok(Self::Cancelled),
            _ => Err(InvalidTaskChange {
                from: self.name(),
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
        let start = InstanceStatus::Running { stage: 0 };
        assert_eq!(
            start.apply(Input::Started, 3, false).unwrap(),
            (start, vec![Command::OpenStage(0)])
        );
        // Commitment-based approval: nothing to review, approved at once.
        assert_eq!(
            start.apply(Input::Started, 0, false).unwrap(),
            (InstanceStatus::Approved, vec![Command::EmitApproved])
        );
        // A request always has someone to answer it; an empty plan is a broken definition.
        assert!(start.apply(Input::Started, 0, true).is_err());
        assert!(
            InstanceStatus::Approved
                .apply(Input::Started, 3, false)
                .is_err()
        );
    }

    #[test]
    fn stages_advance_then_approve() {
        let s = InstanceStatus::Running { stage: 0 };
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
                InstanceStatus::Running { stage: 1 },
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
            (InstanceStatus::Approved, vec![Command::EmitApproved])
        );
    }

    #[test]
    fn request_answers_then_reopens_or_closes() {
        let (s, c) = InstanceStatus::Running { stage: 3 }
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
            (InstanceStatus::AwaitingRating, vec![Command::EmitAnswered])
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
        assert_eq!(r, InstanceStatus::Running { stage: 2 });
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
        assert_eq!(r, InstanceStatus::Closed);
    }

    #[test]
    fn invalid_transitions_are_refused() {
        let rated = Input::Rated {
            reopen: false,
            reopen_stage: 0,
        };
        for (from, input) in [
            (
                InstanceStatus::Approved,
                Input::TaskApproved {
                    stage_complete: true,
                },
            ),
            (InstanceStatus::Rejected, Input::Withdrawn),
            (InstanceStatus::Withdrawn, Input::Supplemented),
            (InstanceStatus::Running { stage: 0 }, Input::Supplemented),
            (InstanceStatus::Running { stage: 0 }, rated),
            (
                InstanceStatus::WaitingSupplement { stage: 0 },
                Input::TaskApproved {
                    stage_complete: true,
                },
            ),
            (InstanceStatus::Closed, rated),
            (
                InstanceStatus::AwaitingRating,
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
            assert_eq!(TaskState::from_stored(s).map(TaskState::name), Some(s));
        }
    }
}
