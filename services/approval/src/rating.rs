//! 好差评: the applicant rates the service it got on a finished application, once, 1 to 5
//! with reasons from a fixed list. A poor rating (差评, 1 or 2) is the rated department's to
//! put right within [`RECTIFY_WITHIN_WORKING_DAYS`]: it stays on the supervision ledger
//! ([`crate::ledger`]) until the department records its rectification, and the applicant is
//! told (`rating.rectified`).
//!
//! The department rated is the one that decided: the rejecting task's department for a
//! rejection, else the matter's lead department (which issues the approval or the answer).

use tongban_auth::Identity;
use tongban_authz::{Action, Scope};
use tongban_outbox::new_envelope;
use tongban_proto::events::{self, envelope::Payload};
use tongban_storage::begin_write;

use crate::{
    audit::{self, Record},
    engine::{Approval, PRODUCER},
    error::ApprovalError,
    model::{InstanceStatus, TaskDecision},
    repository::{InstanceStore, Lock, TaskStore, ms, ratings},
    requests::{RateService, Rectify},
};

/// The reason codes a rating may give, with their Chinese labels.
pub const REASONS: [(&str, &str); 6] = [
    ("slow", "办理慢"),
    ("unclear_guidance", "告知不清"),
    ("repeated_materials", "重复提交材料"),
    ("attitude", "服务态度"),
    ("outcome", "结果"),
    ("other", "其他"),
];

/// The Chinese label of a reason code (the code itself if unknown).
pub fn label(code: &str) -> &str {
    REASONS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(code, |(_, l)| l)
}

/// Scores at or below this are poor (差评).
pub const POOR_AT_MOST: i32 = 2;

/// The period a poor rating is to be rectified and answered in (commonly 15 working days).
pub const RECTIFY_WITHIN_WORKING_DAYS: u32 = 15;

/// One application's rating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRating {
    pub application_id: String,
    pub score: i32,
    pub reasons: Vec<String>,
    pub comment: String,
    pub department: String,
    pub poor: bool,
    pub rated_by: String,
    /// Unix milliseconds, as every time here.
    pub rated_at: i64,
    /// Empty until recorded.
    pub rectification: String,
    pub rectified_by: String,
    pub rectified_at: Option<i64>,
    /// When a poor rating's rectification is due.
    pub rectify_due_at: i64,
}

impl Approval {
    /// `RateService`.
    pub async fn rate_service(
        &self,
        who: &Identity,
        req: RateService,
    ) -> Result<ServiceRating, ApprovalError> {
        self.policy.check_role(who, Action::RateService)?;
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        let inst = txn
            .find_instance(&req.application_id, Lock::Update)
            .await?
            .ok_or_else(|| {
                ApprovalError::NotFound(format!("workflow of application {}", req.application_id))
            })?;
        self.policy.check(
            who,
            Action::RateService,
            &crate::authz::instance_scope(&inst, &[]),
            &inst.application_id,
        )?;
        let status = inst.state.status;
        if !matches!(
            status,
            InstanceStatus::Approved | InstanceStatus::Rejected | InstanceStatus::Closed
        ) {
            return Err(ApprovalError::FailedPrecondition(format!(
                "application {} is {status}: only a finished application can be rated",
                inst.application_id
            )));
        }
        if ratings::find(&txn, &inst.application_id).await?.is_some() {
            return Err(ApprovalError::AlreadyExists(format!(
                "application {} is already rated",
                inst.application_id
            )));
        }
        let department = if status == InstanceStatus::Rejected {
            txn.tasks_of_instance(&inst.instance_id)
                .await?
                .into_iter()
                .find(|t| t.decision == TaskDecision::Reject)
                .map_or(inst.lead_department.clone(), |t| t.department)
        } else {
            inst.lead_department.clone()
        };
        let poor = req.score <= POOR_AT_MOST;
        let rating = ServiceRating {
            application_id: inst.application_id.clone(),
            score: req.score,
            reasons: req.reasons,
            comment: req.comment,
            department,
            poor,
            rated_by: who.subject.clone(),
            rated_at: ms(now),
            rectification: String::new(),
            rectified_by: String::new(),
            rectified_at: None,
            rectify_due_at: ms(self
                .calendar
                .add_working_days(now, RECTIFY_WITHIN_WORKING_DAYS)),
        };
        ratings::insert(&txn, &rating).await?;
        audit::append(
            &txn,
            &inst.application_id,
            ms(now),
            Record::by(
                who,
                "rate_service",
                format!("{}: {}", rating.score, rating.comment),
                "",
                &rating.department,
            ),
        )
        .await?;
        let event = new_envelope(
            PRODUCER,
            &inst.application_id,
            Payload::ServiceRated(events::ServiceRated {
                score: rating.score,
                reasons: rating.reasons.clone(),
                comment: rating.comment.clone(),
                department: rating.department.clone(),
                poor,
                reason_labels: rating
                    .reasons
                    .iter()
                    .map(|r| label(r).to_string())
                    .collect(),
            }),
        );
        self.finish(txn, &[event]).await?;
        Ok(rating)
    }

    /// `RecordRectification`.
    pub async fn record_rectification(
        &self,
        who: &Identity,
        req: Rectify,
    ) -> Result<ServiceRating, ApprovalError> {
        self.policy.check_role(who, Action::RecordRectification)?;
        let now = self.now();
        let txn = begin_write(&self.db).await?;
        // The instance row is the application's mutex (its audit chain changes under it).
        txn.find_instance(&req.application_id, Lock::Update)
            .await?
            .ok_or_else(|| {
                ApprovalError::NotFound(format!("workflow of application {}", req.application_id))
            })?;
        let mut rating = ratings::find(&txn, &req.application_id)
            .await?
            .ok_or_else(|| {
                ApprovalError::NotFound(format!("rating of application {}", req.application_id))
            })?;
        let mut units = vec![rating.department.clone()];
        units.extend(
            self.defs
                .departments()
                .iter()
                .filter(|d| d.code == rating.department)
                .flat_map(|d| d.offices.iter().map(|o| o.code.clone())),
        );
        self.policy.check(
            who,
            Action::RecordRectification,
            &Scope::departments(units),
            &req.application_id,
        )?;
        if !rating.poor {
            return Err(ApprovalError::FailedPrecondition(format!(
                "the rating of application {} is not poor ({}): nothing to rectify",
                req.application_id, rating.score
            )));
        }
        if rating.rectified_at.is_some() {
            return Err(ApprovalError::FailedPrecondition(format!(
                "the poor rating of application {} is already rectified",
                req.application_id
            )));
        }
        rating.rectification = req.rectification;
        rating.rectified_by = who.subject.clone();
        rating.rectified_at = Some(ms(now));
        ratings::record_rectification(&txn, &rating).await?;
        audit::append(
            &txn,
            &rating.application_id,
            ms(now),
            Record::by(
                who,
                "rectify",
                rating.rectification.clone(),
                "",
                &rating.department,
            ),
        )
        .await?;
        let event = new_envelope(
            PRODUCER,
            &rating.application_id,
            Payload::RatingRectified(events::RatingRectified {
                department: rating.department.clone(),
                rectification: rating.rectification.clone(),
                score: rating.score,
            }),
        );
        self.finish(txn, &[event]).await?;
        Ok(rating)
    }
}
