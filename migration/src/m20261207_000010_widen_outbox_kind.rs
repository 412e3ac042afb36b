use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Security notices (`second_factor_removed`, …) have longer kind names than the two link
/// emails the column was sized for. SQLite does not enforce a varchar's length; PostgreSQL
/// widens a varchar without rewriting the table.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE outbox ALTER COLUMN kind TYPE varchar(40)")
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE outbox ALTER COLUMN kind TYPE varchar(16)")
            .await
            .map(|_| ())
    }
}
