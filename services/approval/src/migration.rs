//! Approval's schema: its own tables plus the shared outbox and inbox.
//!
//! Times are stored as Unix milliseconds (`BIGINT`) on both engines so that comparisons and
//! ordering (due timers, "soonest due first") are plain integer comparisons everywhere; flags
//! are 0/1 integers for the same reason. States are strings (see [`crate::model`]).
//!
//! The DDL is written with sea-query's schema builder; the migration names are the ones
//! databases already record, so an existing database sees nothing new to run.

use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(tongban_outbox::migration::OutboxInbox),
            Box::new(Workflow),
            Box::new(EscalateAt),
        ]
    }
}

struct Workflow;

/// `tasks.escalate_at`: when an overdue task is escalated, a grace period of working time
/// after `due_at` (the matter's `escalate_after_hours`). Rows from before it escalate at their
/// deadline, as they did.
struct EscalateAt;

#[derive(DeriveIden)]
enum Definitions {
    Table,
    Code,
    Version,
    Name,
    Source,
    PublishedAt,
    PublishedBy,
}

#[derive(DeriveIden)]
enum Instances {
    Table,
    InstanceId,
    ApplicationId,
    MatterCode,
    DefinitionVersion,
    Kind,
    Status,
    StageIndex,
    Plan,
    OnPledge,
    LeadDepartment,
    OwnerCreditCode,
    SupplementTaskId,
    Snapshot,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    TaskId,
    InstanceId,
    ApplicationId,
    MatterCode,
    StageIndex,
    StageId,
    StageName,
    Kind,
    Status,
    Department,
    Office,
    Assignee,
    Title,
    MaterialKind,
    DeadlineHours,
    Version,
    CreatedAt,
    DueAt,
    DueSoonAt,
    DecidedAt,
    Decision,
    Comment,
    DueSoonSent,
    OverdueSent,
    Escalated,
    EscalateAt,
}

#[derive(DeriveIden)]
enum Audit {
    Table,
    ApplicationId,
    Seq,
    TimeMs,
    Actor,
    Role,
    Action,
    Reason,
    TaskId,
    Department,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum Counters {
    Table,
    Name,
    Value,
}

fn text(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).text().not_null().to_owned()
}

fn bigint(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).big_integer().not_null().to_owned()
}

impl MigrationName for EscalateAt {
    fn name(&self) -> &str {
        "m20261126_000004_approval_task_escalate_at"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for EscalateAt {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Tasks::Table)
                    .add_column(bigint(Tasks::EscalateAt).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(Tasks::Table)
                    .value(Tasks::EscalateAt, Expr::col(Tasks::DueAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Tasks::Table)
                    .drop_column(Tasks::EscalateAt)
                    .to_owned(),
            )
            .await
    }
}

impl MigrationName for Workflow {
    fn name(&self) -> &str {
        "m20261126_000003_approval_workflow"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Workflow {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Definitions::Table)
                    .col(text(Definitions::Code))
                    .col(bigint(Definitions::Version))
                    .col(text(Definitions::Name))
                    .col(text(Definitions::Source))
                    .col(bigint(Definitions::PublishedAt))
                    .col(text(Definitions::PublishedBy))
                    .primary_key(
                        Index::create()
                            .col(Definitions::Code)
                            .col(Definitions::Version),
                    )
                    .to_owned(),
            )
            .await?;
        // `plan` is the JSON of the stages planned at submission; `snapshot` the encoded
        // ApplicationSnapshot (pledge, owner, form) the instance was started from.
        manager
            .create_table(
                Table::create()
                    .table(Instances::Table)
                    .col(ColumnDef::new(Instances::InstanceId).text().primary_key())
                    .col(text(Instances::ApplicationId).unique_key())
                    .col(text(Instances::MatterCode))
                    .col(bigint(Instances::DefinitionVersion))
                    .col(text(Instances::Kind))
                    .col(text(Instances::Status))
                    .col(bigint(Instances::StageIndex))
                    .col(text(Instances::Plan))
                    .col(bigint(Instances::OnPledge))
                    .col(text(Instances::LeadDepartment))
                    .col(text(Instances::OwnerCreditCode))
                    .col(text(Instances::SupplementTaskId))
                    .col(ColumnDef::new(Instances::Snapshot).blob().not_null())
                    .col(bigint(Instances::Version))
                    .col(bigint(Instances::CreatedAt))
                    .col(bigint(Instances::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // stage_index -1: a follow-up outside the stages. Timer state lives on the task row so
        // that it changes in the same transaction as the outbox rows it causes.
        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .col(ColumnDef::new(Tasks::TaskId).text().primary_key())
                    .col(text(Tasks::InstanceId))
                    .col(text(Tasks::ApplicationId))
                    .col(text(Tasks::MatterCode))
                    .col(bigint(Tasks::StageIndex))
                    .col(text(Tasks::StageId))
                    .col(text(Tasks::StageName))
                    .col(text(Tasks::Kind))
                    .col(text(Tasks::Status))
                    .col(text(Tasks::Department))
                    .col(text(Tasks::Office))
                    .col(text(Tasks::Assignee))
                    .col(text(Tasks::Title))
                    .col(text(Tasks::MaterialKind))
                    .col(bigint(Tasks::DeadlineHours))
                    .col(bigint(Tasks::Version))
                    .col(bigint(Tasks::CreatedAt))
                    .col(bigint(Tasks::DueAt))
                    .col(bigint(Tasks::DueSoonAt))
                    .col(ColumnDef::new(Tasks::DecidedAt).big_integer())
                    .col(text(Tasks::Decision))
                    .col(text(Tasks::Comment))
                    .col(bigint(Tasks::DueSoonSent))
                    .col(bigint(Tasks::OverdueSent))
                    .col(bigint(Tasks::Escalated))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("tasks_instance", vec![Tasks::InstanceId, Tasks::StageIndex]),
            (
                "tasks_due",
                vec![Tasks::Status, Tasks::DueAt, Tasks::TaskId],
            ),
            (
                "tasks_department",
                vec![Tasks::Department, Tasks::Status, Tasks::DueAt],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(Tasks::Table);
            for c in cols {
                index.col(c);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Audit::Table)
                    .col(text(Audit::ApplicationId))
                    .col(bigint(Audit::Seq))
                    .col(bigint(Audit::TimeMs))
                    .col(text(Audit::Actor))
                    .col(text(Audit::Role))
                    .col(text(Audit::Action))
                    .col(text(Audit::Reason))
                    .col(text(Audit::TaskId))
                    .col(text(Audit::Department))
                    .col(text(Audit::PrevHash))
                    .col(text(Audit::Hash))
                    .primary_key(Index::create().col(Audit::ApplicationId).col(Audit::Seq))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Counters::Table)
                    .col(ColumnDef::new(Counters::Name).text().primary_key())
                    .col(bigint(Counters::Value))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Counters::Table.into_iden(),
            Audit::Table.into_iden(),
            Tasks::Table.into_iden(),
            Instances::Table.into_iden(),
            Definitions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

    use super::*;

    async fn columns(db: &impl ConnectionTrait, table: &str) -> Vec<String> {
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.try_get::<String>("", "name").unwrap())
            .collect()
    }

    #[tokio::test]
    async fn migrates_up_down_and_up_again() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        let tasks = columns(&db, "tasks").await;
        assert_eq!(tasks.first().map(String::as_str), Some("task_id"));
        assert_eq!(tasks.last().map(String::as_str), Some("escalate_at"));
        assert_eq!(tasks.len(), 26);
        Migrator::down(&db, Some(1)).await.unwrap();
        assert!(
            !columns(&db, "tasks")
                .await
                .contains(&"escalate_at".to_string())
        );
        Migrator::down(&db, None).await.unwrap();
        assert!(columns(&db, "instances").await.is_empty());
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(columns(&db, "instances").await.len(), 16);
    }
}
