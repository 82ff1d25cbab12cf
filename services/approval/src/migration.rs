//! Approval's schema: its own tables plus the shared outbox, inbox and parked events.
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
            Box::new(DefinitionRequestId),
            Box::new(tongban_audit::migration::AuditLog),
            Box::new(MoveAuditTrail),
            Box::new(tongban_outbox::parked::Migration::named(
                "m20261201_000007_approval_parked_events",
            )),
            Box::new(RequestDeadlines),
            Box::new(CreateServiceRatings),
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
    AnswerDueAt,
    RatingDueAt,
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
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
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

/// `definitions.request_id`: the client idempotency key PublishDefinition was called with
/// ("" for definitions loaded from files or published without one), so that a retried
/// publication returns the definition it published instead of ALREADY_EXISTS.
struct DefinitionRequestId;

impl MigrationName for DefinitionRequestId {
    fn name(&self) -> &str {
        "m20261130_000005_approval_definition_request_id"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for DefinitionRequestId {
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE definitions ADD COLUMN request_id TEXT NOT NULL DEFAULT ''",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX definitions_request_id ON definitions (request_id) WHERE request_id <> ''",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX definitions_request_id")
            .await?;
        db.execute_unprepared("ALTER TABLE definitions DROP COLUMN request_id")
            .await?;
        Ok(())
    }
}

/// Moves the trail of the old per-application `audit` table into the shared log
/// (`audit_log`, chain `application/<id>`), re-hashed in the log's canonical form, in the
/// order it was kept. An old chain that no longer verified under the old hashing is moved
/// as it stands, with an entry saying so, so the break stays visible. The old table is left
/// in place, untouched, for the record.
struct MoveAuditTrail;

impl MigrationName for MoveAuditTrail {
    fn name(&self) -> &str {
        "m20261130_000006_approval_move_audit_trail"
    }
}

/// The old table's hash: `sha256(prev_hash || length-prefixed fields)`.
fn legacy_hash(prev: &str, app: &str, f: &[String; 9]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update((app.len() as u64).to_be_bytes());
    h.update(app.as_bytes());
    // seq, time, actor, role, action, reason, task_id, department
    for field in &f[..8] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// `clerk:alice@eco_env` → (role, subject, department); `system` → the system actor.
fn legacy_actor(label: &str, role: &str) -> tongban_audit::Actor {
    if label == "system" {
        return tongban_audit::Actor::system();
    }
    let rest = label.split_once(':').map(|(_, r)| r).unwrap_or(label);
    let (subject, department) = rest.split_once('@').unwrap_or((rest, ""));
    tongban_audit::Actor {
        subject: subject.into(),
        role: role.into(),
        department: department.into(),
        on_behalf_of: String::new(),
    }
}

#[async_trait::async_trait]
impl MigrationTrait for MoveAuditTrail {
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if !manager.has_table("audit").await? {
            return Ok(());
        }
        let db = manager.get_connection();
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT application_id, seq, time_ms, actor, role, action, reason, task_id, \
                 department, prev_hash, hash FROM audit ORDER BY application_id, seq",
            ))
            .await?;
        let mut current = String::new();
        let (mut legacy_prev, mut prev, mut seq, mut broken) =
            (String::new(), String::new(), 0i64, false);
        let mut last_time = 0i64;
        for r in &rows {
            let app: String = r.try_get("", "application_id")?;
            if app != current {
                if !current.is_empty() {
                    finish_moved_chain(db, &current, &mut seq, &mut prev, broken, last_time)
                        .await?;
                }
                current = app.clone();
                (legacy_prev, prev, seq, broken) = (String::new(), String::new(), 0, false);
            }
            let old_seq: i64 = r.try_get("", "seq")?;
            let time_ms: i64 = r.try_get("", "time_ms")?;
            let f: [String; 9] = [
                old_seq.to_string(),
                time_ms.to_string(),
                r.try_get("", "actor")?,
                r.try_get("", "role")?,
                r.try_get("", "action")?,
                r.try_get("", "reason")?,
                r.try_get("", "task_id")?,
                r.try_get("", "department")?,
                r.try_get("", "hash")?,
            ];
            let old_prev: String = r.try_get("", "prev_hash")?;
            if old_seq != seq + 1
                || old_prev != legacy_prev
                || legacy_hash(&legacy_prev, &app, &f) != f[8]
            {
                broken = true;
            }
            legacy_prev = f[8].clone();
            seq += 1;
            last_time = time_ms;
            let mut e = tongban_audit::Entry {
                chain: tongban_audit::application_chain(&app),
                seq,
                time_ms,
                actor: legacy_actor(&f[2], &f[3]),
                action: f[4].clone(),
                target: f[6].clone(),
                department: f[7].clone(),
                reason: f[5].clone(),
                outcome: "done".into(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            e.hash = tongban_audit::hash(&prev, &e);
            tongban_audit::insert_entry(db, &e).await?;
            prev = e.hash;
        }
        if !current.is_empty() {
            finish_moved_chain(db, &current, &mut seq, &mut prev, broken, last_time).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DELETE FROM audit_log").await?;
        db.execute_unprepared("DELETE FROM audit_heads").await?;
        Ok(())
    }
}

/// Sets a moved chain's head, first noting in the chain when the old one did not verify.
async fn finish_moved_chain(
    db: &SchemaManagerConnection<'_>,
    app: &str,
    seq: &mut i64,
    prev: &mut String,
    broken: bool,
    time_ms: i64,
) -> Result<(), DbErr> {
    let chain = tongban_audit::application_chain(app);
    if broken {
        *seq += 1;
        let mut e = tongban_audit::Entry {
            chain: chain.clone(),
            seq: *seq,
            time_ms,
            actor: tongban_audit::Actor::system(),
            action: "migrated".into(),
            target: String::new(),
            department: String::new(),
            reason: "the old trail did not verify when it was moved".into(),
            outcome: "done".into(),
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        e.hash = tongban_audit::hash(prev, &e);
        tongban_audit::insert_entry(db, &e).await?;
        *prev = e.hash;
    }
    tongban_audit::set_head(db, &chain, *seq, prev).await
}

impl MigrationName for Workflow {
    fn name(&self) -> &str {
        "m20261126_000003_approval_workflow"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Workflow {
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
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

/// `instances.answer_due_at` and `instances.rating_due_at` (Unix ms, 0 = none): an enterprise
/// request's answer deadline, counted from its acceptance (its tasks are due by it at the
/// latest), and the moment an answered request that is still unrated closes itself.
struct RequestDeadlines;

impl MigrationName for RequestDeadlines {
    fn name(&self) -> &str {
        "m20261202_000008_approval_request_deadlines"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for RequestDeadlines {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for col in [Instances::AnswerDueAt, Instances::RatingDueAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Instances::Table)
                        .add_column(bigint(col).default(0))
                        .to_owned(),
                )
                .await?;
        }
        // The timers look for lapsed ratings every second: a range on this index, where the
        // zeros (nothing awaited) fall outside it.
        manager
            .create_index(
                Index::create()
                    .name("instances_rating_due")
                    .table(Instances::Table)
                    .col(Instances::RatingDueAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("instances_rating_due")
                    .table(Instances::Table)
                    .to_owned(),
            )
            .await?;
        for col in [Instances::AnswerDueAt, Instances::RatingDueAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Instances::Table)
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// `service_ratings`: an applicant's rating of the service on one finished application
/// (好差评), one per application, and the rated department's rectification of a poor one.
/// `reasons` is the reason codes joined by commas (each a fixed code without commas);
/// `rectify_due_at` the end of the period a poor rating is to be rectified in.
struct CreateServiceRatings;

#[derive(DeriveIden)]
enum ServiceRatings {
    Table,
    ApplicationId,
    Score,
    Reasons,
    Comment,
    Department,
    Poor,
    RatedBy,
    RatedAt,
    Rectification,
    RectifiedBy,
    RectifiedAt,
    RectifyDueAt,
}

impl MigrationName for CreateServiceRatings {
    fn name(&self) -> &str {
        "m20261202_000009_approval_service_ratings"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateServiceRatings {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ServiceRatings::Table)
                    .col(
                        ColumnDef::new(ServiceRatings::ApplicationId)
                            .text()
                            .primary_key(),
                    )
                    .col(bigint(ServiceRatings::Score))
                    .col(text(ServiceRatings::Reasons))
                    .col(text(ServiceRatings::Comment))
                    .col(text(ServiceRatings::Department))
                    .col(bigint(ServiceRatings::Poor))
                    .col(text(ServiceRatings::RatedBy))
                    .col(bigint(ServiceRatings::RatedAt))
                    .col(text(ServiceRatings::Rectification).default(""))
                    .col(text(ServiceRatings::RectifiedBy).default(""))
                    .col(
                        ColumnDef::new(ServiceRatings::RectifiedAt)
                            .big_integer()
                            .null(),
                    )
                    .col(bigint(ServiceRatings::RectifyDueAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("service_ratings_department")
                    .table(ServiceRatings::Table)
                    .col(ServiceRatings::Department)
                    .col(ServiceRatings::RatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ServiceRatings::Table).to_owned())
            .await
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

    /// The old `audit` table's rows move into the log, re-chained; an old chain that no longer
    /// verified is moved with an entry saying so.
    #[tokio::test]
    async fn old_audit_rows_move_into_the_log() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, Some(4)).await.unwrap();
        let mut prev = String::new();
        for (app, seq, reason) in [("a", 1, "ok"), ("a", 2, "fine"), ("b", 1, "x")] {
            if seq == 1 {
                prev.clear();
            }
            let f: [String; 9] = [
                seq.to_string(),
                "1000".into(),
                "clerk:alice@eco_env".into(),
                "clerk".into(),
                "approve".into(),
                reason.into(),
                "t1".into(),
                "eco_env".into(),
                String::new(),
            ];
            let mut hash = legacy_hash(&prev, app, &f);
            if app == "b" {
                hash = "tampered".into();
            }
            db.execute_unprepared(&format!(
                "INSERT INTO audit (application_id, seq, time_ms, actor, role, action, reason, \
                 task_id, department, prev_hash, hash) VALUES ('{app}', {seq}, 1000, \
                 'clerk:alice@eco_env', 'clerk', 'approve', '{reason}', 't1', 'eco_env', \
                 '{prev}', '{hash}')"
            ))
            .await
            .unwrap();
            prev = hash;
        }
        Migrator::up(&db, None).await.unwrap();
        for (app, n, last) in [("a", 2, "approve"), ("b", 2, "migrated")] {
            let chain = tongban_audit::application_chain(app);
            let e = tongban_audit::entries(&db, &chain).await.unwrap();
            assert_eq!(tongban_audit::verify_chain(&chain, &e), None, "{app}");
            assert_eq!(e.len(), n, "{app}");
            assert_eq!(e.last().map(|e| e.action.as_str()), Some(last));
            assert_eq!(e[0].actor.subject, "alice");
            assert_eq!(e[0].actor.department, "eco_env");
        }
        // Appends continue the moved chain.
        let next = tongban_audit::append_alone(
            &db,
            &tongban_audit::application_chain("a"),
            2000,
            tongban_audit::Act::done(tongban_audit::Actor::system(), "approved", ""),
        )
        .await
        .unwrap();
        assert_eq!(next.seq, 3);
    }

    #[tokio::test]
    async fn migrates_up_down_and_up_again() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        let tasks = columns(&db, "tasks").await;
        assert_eq!(tasks.first().map(String::as_str), Some("task_id"));
        assert_eq!(tasks.last().map(String::as_str), Some("escalate_at"));
        assert_eq!(tasks.len(), 26);
        assert_eq!(
            columns(&db, "definitions").await.last().map(String::as_str),
            Some("request_id")
        );
        assert_eq!(columns(&db, "audit_heads").await.len(), 4);
        assert_eq!(columns(&db, "parked_events").await.len(), 4);
        let instances = columns(&db, "instances").await;
        assert_eq!(
            instances[instances.len() - 2..],
            ["answer_due_at".to_string(), "rating_due_at".to_string()]
        );
        assert_eq!(columns(&db, "service_ratings").await.len(), 12);
        Migrator::down(&db, Some(1)).await.unwrap();
        assert!(columns(&db, "service_ratings").await.is_empty());
        Migrator::down(&db, Some(1)).await.unwrap();
        assert_eq!(columns(&db, "instances").await.len(), 16);
        Migrator::down(&db, Some(1)).await.unwrap();
        assert!(columns(&db, "parked_events").await.is_empty());
        Migrator::down(&db, Some(2)).await.unwrap();
        assert!(columns(&db, "audit_log").await.is_empty());
        Migrator::down(&db, Some(1)).await.unwrap();
        assert!(
            !columns(&db, "definitions")
                .await
                .contains(&"request_id".to_string())
        );
        Migrator::down(&db, Some(1)).await.unwrap();
        assert!(
            !columns(&db, "tasks")
                .await
                .contains(&"escalate_at".to_string())
        );
        Migrator::down(&db, None).await.unwrap();
        assert!(columns(&db, "instances").await.is_empty());
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(columns(&db, "instances").await.len(), 18);
    }
}
