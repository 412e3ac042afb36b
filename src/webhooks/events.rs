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
    let p: Vec<String> = (1..=6)
        .map(|i| match backend {
            sea_orm::DatabaseBackend::Postgres => format!("${i}"),
            _ => "?".to_owned(),
        })
        .collect();
    // The names are fixed ASCII without `%` or `_` next to a comma, so LIKE matches exactly
    // the comma-wrapped name.
    let sql = format!(
        "INSERT INTO webhook_deliveries (event_id, endpoint_id, event_type, user_id, username, \
           email, legacy_id, data, occurred_at, status, attempts, next_attempt_at) \
         SELECT {p0}, e.id, {p1}, u.id, u.username, u.email, u.legacy_id, {p2}, {p3}, 'pending', 0, {p4} \
         FROM webhook_endpoints e, users u \
         WHERE u.id = {p5} AND e.events LIKE '%,' || {p1b} || ',%'{lock}",
        p0 = p[0],
        p1 = p[1],
        p2 = p[2],
        p3 = p[3],
        p4 = p[4],
        p5 = p[5],
        // PostgreSQL reuses `$2`; SQLite's `?` are positional, so the name is bound twice.
        p1b = match backend {
            sea_orm::DatabaseBackend::Postgres => "$2".to_owned(),
            _ => "?".to_owned(),
        },
        // A user's events are delivered in `seq` order, which must be the order their
        // changes commit in. On PostgreSQL two transactions can insert in one order and
        // commit in the other (a deletion emits, then waits for a login holding the user
        // row): the user row is locked before the sequence is drawn, and held to the commit.
        // SQLite commits one writer at a time.
        lock = match backend {
            sea_orm::DatabaseBackend::Postgres => " FOR UPDATE OF u",
            _ => "",
        },
    );
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
    if backend != sea_orm::DatabaseBackend::Postgres {
        values.push(event.as_str().into());
    }
    let done = conn
        .execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    if done.rows_affected() > 0 {
        if backend == sea_orm::DatabaseBackend::Postgres {
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

/// `session.ended`, with the sessions and why (`logout`, `password_changed`, …).
pub async fn sessions_ended(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    ended: Ended,
    reason: &'static str,
) -> Result<(), DbErr> {
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
