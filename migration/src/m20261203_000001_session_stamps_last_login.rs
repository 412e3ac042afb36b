use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The trigger's name, on both databases (and the PostgreSQL function's).
pub const TRIGGER: &str = "sessions_stamp_last_login";

/// A new session stamps its user's `last_login` (Django's `update_last_login`) in the same
/// statement that inserts it. Never backwards: of two logins committing out of order, the
/// later start stays (`GREATEST` ignores a NULL on PostgreSQL; SQLite's `MAX` does not, hence
/// the `COALESCE`; SQLite holds these times as RFC 3339 text in UTC, as sqlx writes them, in
/// which text order is time order).
///
/// Why a trigger: a login then commits with one statement (`INSERT … SELECT … FROM users`
/// guarded by the user's state) instead of `BEGIN`, `UPDATE`, `INSERT`, `COMMIT`. Each of
/// those is a round trip to the database — on SQLite a hand-off to sqlx's worker thread and
/// back — and under load every hand-off preempts a hash worker; the three saved per login
/// are a measurable part of login throughput (docs/benchmarks-log.md, "Login"). The statement stays
/// atomic: a trigger runs inside the statement that fired it.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match db.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(&format!(
                    "CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN \
                       UPDATE users SET last_login = GREATEST(last_login, NEW.created_at) \
                         WHERE id = NEW.user_id; \
                       RETURN NULL; \
                     END $$"
                ))
                .await?;
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TRIGGER} AFTER INSERT ON sessions \
                     FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"
                ))
                .await?;
            }
            DatabaseBackend::Sqlite => {
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {TRIGGER} AFTER INSERT ON sessions \
                     BEGIN \
                       UPDATE users \
                         SET last_login = MAX(COALESCE(last_login, NEW.created_at), NEW.created_at) \
                         WHERE id = NEW.user_id; \
                     END"
                ))
                .await?;
            }
            other => {
                return Err(DbErr::Migration(format!(
                    "roster supports PostgreSQL and SQLite, not {other:?}"
                )));
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::drop_triggers(
            manager.get_connection(),
            &[(TRIGGER, "sessions")],
            &[TRIGGER],
        )
        .await
    }
}
