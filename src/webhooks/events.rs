use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, Statement};
use uuid::Uuid;

/// What happened. Each type's payload is documented in `docs/webhooks.md`: always the user's
/// id, username, address and Django id (`legacy_id`, null for users made in roster), as they
/// are when the event happens, plus the fields named there; never a password, hash or token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    UserRegistered,
    UserEmailVerified,
    UserEmailChanged,
    UserPasswordChanged,
    UserPasswordReset,
    UserDeactivated,
    UserReactivated,
    UserDeleted,
    SessionCreated,
    SessionEnded,
}

impl EventType {
    pub const ALL: [Self; 10] = [
        Self::UserRegistered,
        Self::UserEmailVerified,
        Self::UserEmailChanged,
        Self::UserPasswordChanged,
        Self::UserPasswordReset,
        Self::UserDeactivated,
        Self::UserReactivated,
        Self::UserDeleted,
        Self::SessionCreated,
        Self::SessionEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRegistered => "user.registered",
            Self::UserEmailVerified => "user.email_verified",
            Self::UserEmailChanged => "user.email_changed",
            Self::UserPasswordChanged => "user.password_changed",
            Self::UserPasswordReset => "user.password_reset",
            Self::UserDeactivated => "user.deactivated",
            Self::UserReactivated => "user.reactivated",
            Self::UserDeleted => "user.deleted",
            Self::SessionCreated => "session.created",
            Self::SessionEnded => "session.ended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One delivery row per endpoint subscribed to the event (`$2`), with the user's names read
/// by the same statement. The names are fixed ASCII without `%` or `_` next to a comma, so
/// LIKE matches exactly the comma-wrapped name. Written out once per database: this runs in
/// every login.
const EMIT_SQLITE: &str = "INSERT INTO webhook_deliveries (event_id, endpoint_id, event_type, \
    user_id, username, email, legacy_id, data, occurred_at, status, attempts, next_attempt_at) \
    SELECT ?, e.id, ?, u.id, u.username, u.email, u.legacy_id, ?, ?, 'pending', 0, ? \
    FROM webhook_endpoints e, users u WHERE u.id = ? AND e.events LIKE '%,' || ? || ',%'";

/// [`EMIT_SQLITE`] on PostgreSQL, with the user row's lock clause appended
/// ([`postgres_sql`]). A user's events are delivered in `seq` order, which must be the order
/// their changes commit in; two transactions can insert in one order and commit in the other
/// (a deletion emits, then waits for a login holding the user row), so the user row is locked
/// before the sequence is drawn, and held to the commit (SQLite commits one writer at a time).
macro_rules! emit_postgres {
    ($lock:literal) => {
        concat!(
            "INSERT INTO webhook_deliveries (event_id, endpoint_id, event_type, \
    user_id, username, email, legacy_id, data, occurred_at, status, attempts, next_attempt_at) \
    SELECT $1, e.id, $2, u.id, u.username, u.email, u.legacy_id, $3, $4, 'pending', 0, $5 \
    FROM webhook_endpoints e, users u WHERE u.id = $6 AND e.events LIKE '%,' || $2 || ',%' ",
            $lock
        )
    };
}

/// The lock an event takes on its user row: the one the rest of its transaction takes, so
/// that no transaction upgrades its lock on the row while another waits for it. Upgrades
/// deadlock: a login holding `FOR NO KEY UPDATE` (its session insert) and asking `FOR UPDATE`
/// here waited for a transaction whose foreign-key check held `FOR KEY SHARE` on the row and
/// that waited for the login in turn (seen in CI, 2026-12-08: `deadlock detected`, the login
/// answered `INTERNAL_SERVER_ERROR`). Any of these modes conflicts with itself, which is all
/// the ordering of events needs. A deletion takes the delete's own lock; everything else
/// changes the row without its key, or only reads it.
fn postgres_sql(event: EventType) -> &'static str {
    match event {
        EventType::UserDeleted => emit_postgres!("FOR UPDATE OF u"),
        _ => emit_postgres!("FOR NO KEY UPDATE OF u"),
    }
}
/// Writes `event` about `user_id` for every endpoint subscribed to it, inside the caller's
/// transaction, in one statement (none when no endpoint wants it): the user's username and
/// Django id are read by the same statement, so call it while the user row exists (before
/// deleting it). `data` is the event's own fields, a JSON object.
pub async fn emit(
    conn: &impl ConnectionTrait,
    event: EventType,
    user_id: Uuid,
    data: serde_json::Value,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    let postgres = backend == sea_orm::DatabaseBackend::Postgres;
    let (sql, values) = emit_sql(backend, event, user_id, data);
    let done = conn
        .execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    if done.rows_affected() > 0 {
        if postgres {
            // A login commits without waiting for the disk (`Sessions::create_for_login`):
            // a crash may lose it, which is harmless for a session nobody heard of, but an
            // event sent before the crash would announce a session that never was.
            conn.execute_unprepared("SELECT set_config('synchronous_commit', 'on', true)")
                .await?;
        }
        super::wake::wake();
    }
    Ok(())
}

/// [`EMIT_SQLITE`], or on PostgreSQL its twin with the lock for `event` ([`postgres_sql`]),
/// and the values.
fn emit_sql(
    backend: sea_orm::DatabaseBackend,
    event: EventType,
    user_id: Uuid,
    data: serde_json::Value,
) -> (&'static str, Vec<sea_orm::Value>) {
    let now = occurred_now();
    let data = if data.is_object() {
        data.to_string()
    } else {
        "{}".to_owned()
    };
    let mut values: Vec<sea_orm::Value> = vec![
        Uuid::now_v7().into(),
        event.as_str().into(),
        data.into(),
        now.into(),
        now.into(),
        user_id.into(),
    ];
    if backend == sea_orm::DatabaseBackend::Postgres {
        (postgres_sql(event), values)
    } else {
        // SQLite's `?` are positional: the name is bound twice.
        values.push(event.as_str().into());
        (EMIT_SQLITE, values)
    }
}

/// On SQLite, [`emit`] as a statement for the transaction that has just inserted session
/// `session_id`, run after it: nothing when that session does not exist or waits for a
/// second factor (it is announced when that step completes). One row returned per delivery
/// written: the caller calls [`super::wake`] when there was any.
/// For `Sessions::create_for_login_with`, which sends it with the insert.
pub fn emit_for_session(
    event: EventType,
    user_id: Uuid,
    data: serde_json::Value,
    session_id: Uuid,
) -> Statement {
    let backend = sea_orm::DatabaseBackend::Sqlite;
    let (sql, mut values) = emit_sql(backend, event, user_id, data);
    values.push(session_id.into());
    let sql = format!(
        "{sql} AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = ? AND NOT s.mfa_pending) \
         RETURNING 1"
    );
    Statement::from_sql_and_values(backend, sql, values)
}

/// Which sessions a `session.ended` event reports.
#[derive(Debug, Clone, Copy)]
pub enum Ended {
    /// This one (`session_id`).
    One(Uuid),
    /// Every session of the user (`session_id` null).
    All,
    /// Every session but this one, the caller's (`session_id` null, `kept_session_id`).
    AllBut(Uuid),
}

/// `session.ended`, with the sessions and why (`logout`, `password_changed`, …); nothing
/// when `count`, the sessions the change ended, is zero.
pub async fn sessions_ended(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    ended: Ended,
    count: u64,
    reason: &'static str,
) -> Result<(), DbErr> {
    if count == 0 {
        return Ok(());
    }
    let (one, kept) = match ended {
        Ended::One(id) => (Some(id), None),
        Ended::All => (None, None),
        Ended::AllBut(id) => (None, Some(id)),
    };
    emit(
        conn,
        EventType::SessionEnded,
        user_id,
        serde_json::json!({ "session_id": one, "kept_session_id": kept, "reason": reason }),
    )
    .await
}

/// Both databases store microseconds.
fn occurred_now() -> DateTime<Utc> {
    crate::outbox::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_distinct_name_that_parses_back() {
        let mut names = std::collections::HashSet::new();
        for e in EventType::ALL {
            assert!(names.insert(e.as_str()));
            assert_eq!(EventType::parse(e.as_str()), Some(e));
            assert!(
                e.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
            );
        }
        assert_eq!(EventType::parse("user.*"), None);
    }
}
