use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

use crate::m20261202_000001_create_mail::OUTBOX_DUE_INDEX;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// An outbox row may belong to no user: the goodbye email of a deleted account is written in
/// the transaction that deletes it, and must outlive it (the foreign key still deletes the
/// queued emails that do belong to the user). PostgreSQL drops the NOT NULL in place; SQLite
/// cannot alter a column, so the table is rebuilt with the same columns, key and index (the
/// documented twelve-step way, inside the migration's transaction; nothing references the
/// outbox, so its foreign keys need not be switched off).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// In a transaction on SQLite too (sea-orm-migration wraps only PostgreSQL's by default):
    /// a crash between the DROP and the RENAME must leave the old table, not none.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared("ALTER TABLE outbox ALTER COLUMN user_id DROP NOT NULL")
                .await?;
            return Ok(());
        }
        db.execute_unprepared(
            "CREATE TABLE outbox_rebuilt ( \
               id uuid_text NOT NULL PRIMARY KEY, \
               kind varchar(40) NOT NULL, \
               user_id uuid_text NULL, \
               recipient varchar(254) NOT NULL, \
               status varchar(16) NOT NULL, \
               attempts integer NOT NULL DEFAULT 0, \
               next_attempt_at timestamp_with_timezone_text NOT NULL, \
               locked_until timestamp_with_timezone_text NULL, \
               last_error varchar(512) NULL, \
               created_at timestamp_with_timezone_text NOT NULL, \
               delivered_at timestamp_with_timezone_text NULL, \
               CONSTRAINT outbox_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) \
                 ON DELETE CASCADE)",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO outbox_rebuilt (id, kind, user_id, recipient, status, attempts, \
               next_attempt_at, locked_until, last_error, created_at, delivered_at) \
             SELECT id, kind, user_id, recipient, status, attempts, next_attempt_at, \
               locked_until, last_error, created_at, delivered_at FROM outbox",
        )
        .await?;
        db.execute_unprepared("DROP TABLE outbox").await?;
        db.execute_unprepared("ALTER TABLE outbox_rebuilt RENAME TO outbox")
            .await?;
        db.execute_unprepared(&format!(
            "CREATE INDEX {OUTBOX_DUE_INDEX} ON outbox (status, next_attempt_at)"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Rows without a user cannot stay under a NOT NULL; they are goodbye emails.
        let db = manager.get_connection();
        db.execute_unprepared("DELETE FROM outbox WHERE user_id IS NULL")
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared("ALTER TABLE outbox ALTER COLUMN user_id SET NOT NULL")
                .await?;
        }
        Ok(())
    }
}
