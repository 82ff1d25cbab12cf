//! [`AuditStore`] on sea-orm.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::AuditStore;
use crate::{
    audit::Entry,
    entity::audit::{self, Column},
};

impl<C: ConnectionTrait> AuditStore for C {
    async fn last_link(&self, application_id: &str) -> Result<Option<(i64, String)>, DbErr> {
        audit::Entity::find()
            .select_only()
            .column(Column::Seq)
            .column(Column::Hash)
            .filter(Column::ApplicationId.eq(application_id))
            .order_by_desc(Column::Seq)
            .limit(1)
            .into_tuple()
            .one(self)
            .await
    }

    async fn insert_entry(&self, application_id: &str, e: &Entry) -> Result<(), DbErr> {
        let row = audit::ActiveModel {
            application_id: Set(application_id.to_string()),
            seq: Set(e.seq),
            time_ms: Set(e.time_ms),
            actor: Set(e.actor.clone()),
            role: Set(e.role.clone()),
            action: Set(e.action.clone()),
            reason: Set(e.reason.clone()),
            task_id: Set(e.task_id.clone()),
            department: Set(e.department.clone()),
            prev_hash: Set(e.prev_hash.clone()),
            hash: Set(e.hash.clone()),
        };
        audit::Entity::insert(row)
            .exec_without_returning(self)
            .await?;
        Ok(())
    }

    async fn entries(&self, application_id: &str) -> Result<Vec<Entry>, DbErr> {
        let rows = audit::Entity::find()
            .filter(Column::ApplicationId.eq(application_id))
            .order_by_asc(Column::Seq)
            .all(self)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Entry {
                seq: r.seq,
                time_ms: r.time_ms,
                actor: r.actor,
                role: r.role,
                action: r.action,
                reason: r.reason,
                task_id: r.task_id,
                department: r.department,
                prev_hash: r.prev_hash,
                hash: r.hash,
            })
            .collect())
    }
}
