//! The `audit_log` and `audit_heads` tables; every service lists [`AuditLog`] in its own
//! migrator. The names below are this migration's own, frozen with it.

use sea_orm_migration::{prelude::*, schema::*};
use tongban_storage::schema::{drop_tables, millis};

/// Creates `audit_log` (the entries, keyed by chain and seq) and `audit_heads` (each chain's
/// last seq and hash, and the seq the last checkpoint anchored).
pub struct AuditLog;

impl MigrationName for AuditLog {
    fn name(&self) -> &str {
        "m20261130_000001_audit_log"
    }
}

#[derive(DeriveIden)]
enum AuditLogT {
    #[sea_orm(iden = "audit_log")]
    Table,
    Chain,
    Seq,
    TimeMs,
    ActorSubject,
    ActorRole,
    ActorDepartment,
    OnBehalfOf,
    Action,
    Target,
    Department,
    Reason,
    Outcome,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditHeads {
    Table,
    Chain,
    Seq,
    Hash,
    AnchoredSeq,
}

#[async_trait::async_trait]
impl MigrationTrait for AuditLog {
    /// In one transaction on SQLite too (sea-orm wraps only PostgreSQL's by default): a process
    /// killed half-way through leaves nothing behind for the next start to trip over.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLogT::Table)
                    .col(text(AuditLogT::Chain))
                    .col(big_integer(AuditLogT::Seq))
                    .col(millis(AuditLogT::TimeMs))
                    .col(text(AuditLogT::ActorSubject))
                    .col(text(AuditLogT::ActorRole))
                    .col(text(AuditLogT::ActorDepartment))
                    .col(text(AuditLogT::OnBehalfOf))
                    .col(text(AuditLogT::Action))
                    .col(text(AuditLogT::Target))
                    .col(text(AuditLogT::Department))
                    .col(text(AuditLogT::Reason))
                    .col(text(AuditLogT::Outcome))
                    .col(text(AuditLogT::PrevHash))
                    .col(text(AuditLogT::Hash))
                    .primary_key(Index::create().col(AuditLogT::Chain).col(AuditLogT::Seq))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditHeads::Table)
                    .col(text(AuditHeads::Chain).primary_key())
                    .col(big_integer(AuditHeads::Seq))
                    .col(text(AuditHeads::Hash))
                    .col(big_integer(AuditHeads::AnchoredSeq))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["audit_heads", "audit_log"]).await
    }
}
