use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The trigger's name, on both databases (and the PostgreSQL function's).
pub const TRIGGER: &str = "users_deactivation_ends_sessions";
/// The guard on `email_tokens`: a token minted for an inactive user is deleted at once.
pub const TOKEN_GUARD: &str = "email_tokens_for_active_users_only";

/// Deactivating a user (`is_active` from true to false) deletes their sessions and their
/// email-link tokens in the same statement.
///
/// Why a trigger: until now a deactivated user's sessions were only *suspended* (every
/// lookup checks `is_active`), so reactivating the account revived every old token, and the
/// links in emails sent before the deactivation. Deactivation is done today by SQL (or by the
/// admin's tools to come); a trigger makes it end what it must whichever way it is done, in
/// the statement that does it.
///
/// The mail worker reads a user's state, then mints the link's token in a later
/// transaction: a deactivation in between would run its `DELETE` before the token exists.
/// A second trigger closes that: a token inserted for an inactive user is deleted in the
/// statement that inserts it (on PostgreSQL after taking a share lock on the user row, so
/// it waits for a deactivation in flight and sees its outcome). The email then goes out
/// with a link that confirms nothing.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match db.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN \
                       DELETE FROM sessions WHERE user_id = NEW.id; \
                       DELETE FROM email_tokens WHERE user_id = NEW.id; \
                       RETURN NULL; \
                     END $$"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TRIGGER} AFTER UPDATE OF is_active ON users \
                     FOR EACH ROW WHEN (OLD.is_active AND NOT NEW.is_active) \
                     EXECUTE FUNCTION {TRIGGER}()"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE FUNCTION {TOKEN_GUARD}() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN \
                       PERFORM 1 FROM users WHERE id = NEW.user_id AND is_active FOR SHARE; \
                       IF NOT FOUND THEN DELETE FROM email_tokens WHERE id = NEW.id; END IF; \
                       RETURN NULL; \
                     END $$"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TOKEN_GUARD} AFTER INSERT ON email_tokens \
                     FOR EACH ROW EXECUTE FUNCTION {TOKEN_GUARD}()"
                ))
                .await?;
            }
            DatabaseBackend::Sqlite => {
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TRIGGER} AFTER UPDATE OF is_active ON users \
                     WHEN OLD.is_active AND NOT NEW.is_active \
                     BEGIN \
                       DELETE FROM sessions WHERE user_id = NEW.id; \
                       DELETE FROM email_tokens WHERE user_id = NEW.id; \
                     END"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TOKEN_GUARD} AFTER INSERT ON email_tokens \
                     WHEN NOT (SELECT is_active FROM users WHERE id = NEW.user_id) \
                     BEGIN DELETE FROM email_tokens WHERE id = NEW.id; END"
                ))
                .await?;
            }
            other => {
                return Err(DbErr::Migration(format!(
                    "roster supports PostgreSQL and SQLite, not {other:?}"
                )));
            }
        }
        // Users deactivated before this migration: their sessions and links end now.
        db.execute_unprepared(
            "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE NOT is_active)",
        )
        .await?;
        db.execute_unprepared(
            "DELETE FROM email_tokens WHERE user_id IN (SELECT id FROM users WHERE NOT is_active)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_triggers(
            manager.get_connection(),
            &[(TRIGGER, "users"), (TOKEN_GUARD, "email_tokens")],
            &[TRIGGER, TOKEN_GUARD],
        )
        .await
    }
}
