use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `auditLog(action: …)`: the entries of one action, newest first, from an index (the log
/// grows with every login; a filter by action must not read it all).
pub const AUDIT_ACTION_INDEX: &str = "audit_log_action_id_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(AUDIT_ACTION_INDEX)
                    .table(AuditLog::Table)
                    .col(AuditLog::Action)
                    .col(AuditLog::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(AUDIT_ACTION_INDEX)
                    .table(AuditLog::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Action,
    Id,
}
