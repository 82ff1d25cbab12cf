//! [`InstanceStore`] on sea-orm.

use prost::Message;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{LockBehavior, LockType, OnConflict},
};
use tongban_proto::events::ApplicationSnapshot;

use super::{Instance, InstanceStore, Lock};
use crate::{
    entity::instance::{self, Column},
    error::ApprovalError,
    model::InstanceStatus,
    workflow::InstanceState,
};

fn to_row(i: &Instance) -> Result<instance::ActiveModel, ApprovalError> {
    let plan = serde_json::to_string(&i.plan).map_err(|e| ApprovalError::Corrupt(e.to_string()))?;
    Ok(instance::ActiveModel {
        instance_id: Set(i.instance_id.clone()),
        application_id: Set(i.application_id.clone()),
        matter_code: Set(i.matter_code.clone()),
        definition_version: Set(i64::from(i.definition_version)),
        kind: Set(i.kind),
        status: Set(i.state.status),
        stage_index: Set(i.state.stage as i64),
        plan: Set(plan),
        on_pledge: Set(i64::from(i.on_pledge)),
        lead_department: Set(i.lead_department.clone()),
        owner_credit_code: Set(i.owner_credit_code.clone()),
        supplement_task_id: Set(i.supplement_task_id.clone()),
        snapshot: Set(i.snapshot.encode_to_vec()),
        version: Set(i.version),
        created_at: Set(i.created_at),
        updated_at: Set(i.updated_at),
        answer_due_at: Set(i.answer_due_at),
        rating_due_at: Set(i.rating_due_at),
    })
}

fn from_row(r: instance::Model) -> Result<Instance, ApprovalError> {
    Ok(Instance {
        state: InstanceState::new(r.status, r.stage_index.max(0) as usize),
        plan: serde_json::from_str(&r.plan)
            .map_err(|e| ApprovalError::Corrupt(format!("plan: {e}")))?,
        snapshot: ApplicationSnapshot::decode(r.snapshot.as_slice())
            .map_err(|e| ApprovalError::Corrupt(format!("snapshot: {e}")))?,
        instance_id: r.instance_id,
        application_id: r.application_id,
        matter_code: r.matter_code,
        definition_version: r.definition_version as u32,
        kind: r.kind,
        on_pledge: r.on_pledge != 0,
        lead_department: r.lead_department,
        owner_credit_code: r.owner_credit_code,
        supplement_task_id: r.supplement_task_id,
        version: r.version,
        created_at: r.created_at,
        updated_at: r.updated_at,
        answer_due_at: r.answer_due_at,
        rating_due_at: r.rating_due_at,
    })
}

impl<C: ConnectionTrait> InstanceStore for C {
    async fn insert_instance(&self, i: &Instance) -> Result<bool, ApprovalError> {
        let inserted = instance::Entity::insert(to_row(i)?)
            .on_conflict(
                OnConflict::column(Column::ApplicationId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(self)
            .await;
        match inserted {
            Ok(n) => Ok(n == 1),
            // Some drivers report "nothing inserted" as an error rather than zero rows.
            Err(DbErr::RecordNotInserted) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn find_instance(
        &self,
        application_id: &str,
        lock: Lock,
    ) -> Result<Option<Instance>, ApprovalError> {
        let q = instance::Entity::find().filter(Column::ApplicationId.eq(application_id));
        let q = match lock {
            Lock::None => q,
            Lock::Update => q.lock(LockType::Update),
            Lock::SkipLocked => q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked),
        };
        q.one(self)
            .await
            .map_err(super::tasks::decode_err)?
            .map(from_row)
            .transpose()
    }

    async fn update_instance(&self, i: &Instance) -> Result<(), DbErr> {
        // The plan changes when a request's handling departments are assigned (分类交办).
        let plan = serde_json::to_string(&i.plan).map_err(|e| DbErr::Custom(e.to_string()))?;
        let changed = instance::ActiveModel {
            plan: Set(plan),
            status: Set(i.state.status),
            stage_index: Set(i.state.stage as i64),
            supplement_task_id: Set(i.supplement_task_id.clone()),
            version: Set(i.version),
            updated_at: Set(i.updated_at),
            answer_due_at: Set(i.answer_due_at),
            rating_due_at: Set(i.rating_due_at),
            ..Default::default()
        };
        instance::Entity::update_many()
            .set(changed)
            .filter(Column::InstanceId.eq(&i.instance_id))
            .exec(self)
            .await?;
        Ok(())
    }

    async fn lapsed_ratings(&self, now: i64, limit: u64) -> Result<Vec<String>, DbErr> {
        instance::Entity::find()
            .select_only()
            .column(Column::ApplicationId)
            .filter(Column::Status.eq(InstanceStatus::AwaitingRating))
            .filter(Column::RatingDueAt.gt(0))
            .filter(Column::RatingDueAt.lte(now))
            .order_by_asc(Column::RatingDueAt)
            .limit(limit)
            .into_tuple()
            .all(self)
            .await
    }
}
