//! [`TaskStore`] on sea-orm.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::{DueTimer, Task, TaskFilter, TaskStore};
use crate::{
    entity::task::{self, Column},
    error::ApprovalError,
    model::TaskState,
};

fn to_row(t: &Task) -> task::ActiveModel {
    task::ActiveModel {
        task_id: Set(t.task_id.clone()),
        instance_id: Set(t.instance_id.clone()),
        application_id: Set(t.application_id.clone()),
        matter_code: Set(t.matter_code.clone()),
        stage_index: Set(t.stage_index),
        stage_id: Set(t.stage_id.clone()),
        stage_name: Set(t.stage_name.clone()),
        kind: Set(t.kind),
        status: Set(t.status),
        department: Set(t.department.clone()),
        office: Set(t.office.clone()),
        assignee: Set(t.assignee.clone()),
        title: Set(t.title.clone()),
        material_kind: Set(t.material_kind.clone()),
        deadline_hours: Set(i64::from(t.deadline_hours)),
        version: Set(t.version),
        created_at: Set(t.created_at),
        due_at: Set(t.due_at),
        due_soon_at: Set(t.due_soon_at),
        decided_at: Set(t.decided_at),
        decision: Set(t.decision),
        comment: Set(t.comment.clone()),
        due_soon_sent: Set(i64::from(t.due_soon_sent)),
        overdue_sent: Set(i64::from(t.overdue_sent)),
        escalated: Set(i64::from(t.escalated)),
        escalate_at: Set(t.escalate_at),
    }
}

fn from_row(r: task::Model) -> Task {
    Task {
        task_id: r.task_id,
        instance_id: r.instance_id,
        application_id: r.application_id,
        matter_code: r.matter_code,
        stage_index: r.stage_index,
        stage_id: r.stage_id,
        stage_name: r.stage_name,
        kind: r.kind,
        status: r.status,
        department: r.department,
        office: r.office,
        assignee: r.assignee,
        title: r.title,
        material_kind: r.material_kind,
        deadline_hours: r.deadline_hours as u32,
        version: r.version,
        created_at: r.created_at,
        due_at: r.due_at,
        due_soon_at: r.due_soon_at,
        escalate_at: r.escalate_at,
        decided_at: r.decided_at,
        decision: r.decision,
        comment: r.comment,
        due_soon_sent: r.due_soon_sent != 0,
        overdue_sent: r.overdue_sent != 0,
        escalated: r.escalated != 0,
    }
}

/// A stored value that no longer decodes (an unknown state string) is corruption, not an
/// outage.
pub(super) fn decode_err(e: DbErr) -> ApprovalError {
    match e {
        DbErr::Type(why) => ApprovalError::Corrupt(why),
        other => ApprovalError::Db(other),
    }
}

impl<C: ConnectionTrait> TaskStore for C {
    async fn insert_task(&self, t: &Task) -> Result<(), DbErr> {
        task::Entity::insert(to_row(t))
            .exec_without_returning(self)
            .await?;
        Ok(())
    }

    async fn find_task(&self, task_id: &str) -> Result<Option<Task>, ApprovalError> {
        Ok(task::Entity::find_by_id(task_id)
            .one(self)
            .await
            .map_err(decode_err)?
            .map(from_row))
    }

    async fn tasks_of_instance(&self, instance_id: &str) -> Result<Vec<Task>, ApprovalError> {
        let rows = task::Entity::find()
            .filter(Column::InstanceId.eq(instance_id))
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::TaskId)
            .all(self)
            .await
            .map_err(decode_err)?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    async fn update_task_if_version(&self, t: &Task, expected_version: i64) -> Result<bool, DbErr> {
        let changed = task::ActiveModel {
            status: Set(t.status),
            department: Set(t.department.clone()),
            office: Set(t.office.clone()),
            assignee: Set(t.assignee.clone()),
            version: Set(t.version),
            due_at: Set(t.due_at),
            due_soon_at: Set(t.due_soon_at),
            decided_at: Set(t.decided_at),
            decision: Set(t.decision),
            comment: Set(t.comment.clone()),
            due_soon_sent: Set(i64::from(t.due_soon_sent)),
            overdue_sent: Set(i64::from(t.overdue_sent)),
            escalated: Set(i64::from(t.escalated)),
            escalate_at: Set(t.escalate_at),
            ..Default::default()
        };
        let res = task::Entity::update_many()
            .set(changed)
            .filter(Column::TaskId.eq(&t.task_id))
            .filter(Column::Version.eq(expected_version))
            .exec(self)
            .await?;
        Ok(res.rows_affected == 1)
    }

    async fn list_tasks(&self, f: &TaskFilter) -> Result<Vec<Task>, ApprovalError> {
        let mut q = task::Entity::find();
        if let Some(d) = &f.department {
            q = q.filter(
                Condition::any()
                    .add(Column::Department.eq(d))
                    .add(Column::Office.eq(d)),
            );
        }
        if let Some(a) = &f.assignee {
            q = q.filter(Column::Assignee.eq(a));
        }
        if !f.statuses.is_empty() {
            q = q.filter(Column::Status.is_in(f.statuses.iter().copied()));
        }
        if let Some(t) = f.due_before {
            q = q.filter(Column::DueAt.lt(t));
        }
        if let Some(a) = &f.application_id {
            q = q.filter(Column::ApplicationId.eq(a));
        }
        if !f.kinds.is_empty() {
            q = q.filter(Column::Kind.is_in(f.kinds.iter().copied()));
        }
        if let Some((due, id)) = &f.after {
            q = q.filter(
                Condition::any().add(Column::DueAt.gt(*due)).add(
                    Condition::all()
                        .add(Column::DueAt.eq(*due))
                        .add(Column::TaskId.gt(id)),
                ),
            );
        }
        let rows = q
            .order_by_asc(Column::DueAt)
            .order_by_asc(Column::TaskId)
            .limit(f.limit)
            .all(self)
            .await
            .map_err(decode_err)?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    async fn due_timers(
        &self,
        now: i64,
        after: Option<(i64, String)>,
        limit: u64,
    ) -> Result<Vec<DueTimer>, DbErr> {
        let due = |sent: Column, at: Column| Condition::all().add(sent.eq(0)).add(at.lte(now));
        let mut q = task::Entity::find()
            .select_only()
            .column(Column::ApplicationId)
            .column(Column::TaskId)
            .column(Column::DueAt)
            .filter(Column::Status.is_in(TaskState::ACTIVE))
            .filter(
                Condition::any()
                    .add(due(Column::DueSoonSent, Column::DueSoonAt))
                    .add(due(Column::OverdueSent, Column::DueAt))
                    .add(due(Column::Escalated, Column::EscalateAt)),
            );
        if let Some((due_at, task_id)) = after {
            q = q.filter(
                Condition::any().add(Column::DueAt.gt(due_at)).add(
                    Condition::all()
                        .add(Column::DueAt.eq(due_at))
                        .add(Column::TaskId.gt(task_id)),
                ),
            );
        }
        let rows: Vec<(String, String, i64)> = q
            .order_by_asc(Column::DueAt)
            .order_by_asc(Column::TaskId)
            .limit(limit)
            .into_tuple()
            .all(self)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(application_id, task_id, due_at)| DueTimer {
                application_id,
                task_id,
                due_at,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database};
    use sea_orm_migration::MigratorTrait;

    use super::*;
    use crate::{migration::Migrator, model::TaskKind};

    /// A row as earlier versions wrote it (state strings in the columns) still reads, and the
    /// typed filters select it.
    #[tokio::test]
    async fn rows_written_by_earlier_versions_read_as_typed_tasks() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        db.execute_unprepared(
            "INSERT INTO tasks VALUES ('t1', 'i1', 'a1', 'm', 0, 's', 'S', 'TASK_KIND_REVIEW',
             'CLAIMED', 'eco_env', '', 'clerk', 'T', '', 24, 2, 1000, 5000, 4000, NULL, '', '',
             0, 0, 0, 9000)",
        )
        .await
        .unwrap();
        let t = db.find_task("t1").await.unwrap().unwrap();
        assert_eq!(t.status, TaskState::Claimed);
        assert_eq!(t.kind, TaskKind::Review);
        assert_eq!(t.decision, crate::model::TaskDecision::None);
        let listed = db
            .list_tasks(&TaskFilter {
                statuses: TaskState::ACTIVE.to_vec(),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        let due = db.due_timers(4000, None, 10).await.unwrap();
        assert_eq!(
            due,
            [DueTimer {
                application_id: "a1".into(),
                task_id: "t1".into(),
                due_at: 5000
            }]
        );
        assert!(db.due_timers(3999, None, 10).await.unwrap().is_empty());
        assert!(
            db.due_timers(4000, Some(due[0].key()), 10)
                .await
                .unwrap()
                .is_empty(),
            "nothing after the last key"
        );

        let mut done = t.clone();
        done.status = TaskState::Approved;
        done.decision = crate::model::TaskDecision::Approve;
        done.version = 3;
        assert!(db.update_task_if_version(&done, 2).await.unwrap());
        assert!(!db.update_task_if_version(&done, 2).await.unwrap(), "stale");
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT status, decision FROM tasks WHERE task_id = 't1'",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<String>("", "status").unwrap(), "APPROVED");
        assert_eq!(row.try_get::<String>("", "decision").unwrap(), "approve");
        db.execute_unprepared("UPDATE tasks SET status = 'BOGUS'")
            .await
            .unwrap();
        assert!(matches!(
            db.find_task("t1").await,
            Err(ApprovalError::Corrupt(_))
        ));
    }
}

/// Open work of one department at one moment (for the workload gauges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartmentLoad {
    pub department: String,
    /// Open or claimed tasks.
    pub open: u64,
    /// Of those, past their due-soon mark but not yet due.
    pub due_soon: u64,
    /// Of those, past due.
    pub overdue: u64,
}

/// Open tasks per department at `now_ms`.
pub async fn department_load<C: ConnectionTrait>(
    db: &C,
    now_ms: i64,
) -> Result<Vec<DepartmentLoad>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(tongban_storage::stmt(
            backend,
            "SELECT department, COUNT(*) AS open, \
             SUM(CASE WHEN due_soon_at <= ? AND due_at > ? THEN 1 ELSE 0 END) AS due_soon, \
             SUM(CASE WHEN due_at <= ? THEN 1 ELSE 0 END) AS overdue \
             FROM tasks WHERE status IN ('OPEN', 'CLAIMED') GROUP BY department",
            vec![now_ms.into(), now_ms.into(), now_ms.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let n = |col: &str| r.try_get::<i64>("", col).map(|v| v.max(0) as u64);
            Ok(DepartmentLoad {
                department: r.try_get("", "department")?,
                open: n("open")?,
                due_soon: n("due_soon")?,
                overdue: n("overdue")?,
            })
        })
        .collect()
}
