//! The audit log: who did what to whom, when and from where — written with the same
//! connection (the same transaction) as the change it records, so neither exists without the
//! other. Never a password, token or hash. The table grows by insert only; entries older than
//! `--audit-retention` are the one thing ever deleted. Below the use cases that write it
//! (accounts, sessions, admin), it knows only the entities (its own, and the session a
//! login's entry waits on).

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use uuid::Uuid;

use crate::entity::{audit_entry, session};

/// Who acted, as the log names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who {
    /// `user`, `api_key`, `system` (a command where the server runs) or `anonymous`
    /// (a failed login: nobody proved who they are).
    pub kind: &'static str,
    pub user_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
}

impl Who {
    pub fn user(id: Uuid) -> Self {
        Self {
            kind: "user",
            user_id: Some(id),
            api_key_id: None,
        }
    }

    pub fn api_key(id: Uuid) -> Self {
        Self {
            kind: "api_key",
            user_id: None,
            api_key_id: Some(id),
        }
    }

    pub fn system() -> Self {
        Self {
            kind: "system",
            user_id: None,
            api_key_id: None,
        }
    }

    pub fn anonymous() -> Self {
        Self {
            kind: "anonymous",
            user_id: None,
            api_key_id: None,
        }
    }
}

/// Where an action came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

/// Entries per page, at most.
pub const MAX_PAGE: u64 = 100;

/// Records `action` (a stable dotted name, e.g. `user.deactivated`) on `conn`.
pub async fn record(
    conn: &impl ConnectionTrait,
    who: &Who,
    action: &'static str,
    target: Option<Uuid>,
    origin: &Origin,
    detail: Option<serde_json::Value>,
) -> Result<(), DbErr> {
    audit_entry::Entity::insert(audit_entry::ActiveModel {
        id: Set(Uuid::now_v7()),
        at: Set(Utc::now()),
        actor_kind: Set(who.kind.to_owned()),
        actor_user_id: Set(who.user_id),
        actor_api_key_id: Set(who.api_key_id),
        action: Set(action.to_owned()),
        target_user_id: Set(target),
        ip: Set(origin.ip.clone()),
        request_id: Set(origin.request_id.clone()),
        detail: Set(detail.map(|d| d.to_string())),
    })
    .exec(conn)
    .await?;
    Ok(())
}

/// [`record`] as a statement for the transaction that has just inserted session
/// `session_id`, run after it: the entry is `waiting` when that session waits for a second
/// factor, else `done`, and there is none when the session does not exist (the login found
/// its user changed). For `Sessions::create_for_login_with`, which sends it with the insert.
pub fn record_for_session(
    backend: DbBackend,
    who: &Who,
    (waiting, done): (&'static str, &'static str),
    target: Option<Uuid>,
    origin: &Origin,
    detail: Option<serde_json::Value>,
    session_id: Uuid,
) -> Result<Statement, DbErr> {
    use sea_orm::sea_query::{Expr, Query};
    let entry = Query::select()
        .expr(Expr::val(Uuid::now_v7()))
        .expr(Expr::val(Utc::now()))
        .expr(Expr::val(who.kind))
        .expr(Expr::val(who.user_id))
        .expr(Expr::val(who.api_key_id))
        .expr(Expr::case(session::Column::MfaPending.eq(true), waiting).finally(done))
        .expr(Expr::val(target))
        .expr(Expr::val(origin.ip.clone()))
        .expr(Expr::val(origin.request_id.clone()))
        .expr(Expr::val(detail.map(|d| d.to_string())))
        .from(session::Entity)
        .and_where(session::Column::Id.eq(session_id))
        .to_owned();
    let mut insert = Query::insert();
    insert.into_table(audit_entry::Entity).columns([
        audit_entry::Column::Id,
        audit_entry::Column::At,
        audit_entry::Column::ActorKind,
        audit_entry::Column::ActorUserId,
        audit_entry::Column::ActorApiKeyId,
        audit_entry::Column::Action,
        audit_entry::Column::TargetUserId,
        audit_entry::Column::Ip,
        audit_entry::Column::RequestId,
        audit_entry::Column::Detail,
    ]);
    insert
        .select_from(entry)
        .map_err(|e| DbErr::Custom(format!("audit entry insert: {e}")))?;
    Ok(backend.build(&insert))
}

/// Newest first: up to `first` entries older than the `after` entry, optionally about one
/// user and of one action; and whether more follow.
pub async fn list(
    conn: &impl ConnectionTrait,
    about: Option<Uuid>,
    action: Option<&str>,
    first: u64,
    after: Option<Uuid>,
) -> Result<(Vec<audit_entry::Model>, bool), DbErr> {
    let first = first.clamp(1, MAX_PAGE);
    let mut query = audit_entry::Entity::find().order_by_desc(audit_entry::Column::Id);
    if let Some(user) = about {
        query = query.filter(audit_entry::Column::TargetUserId.eq(user));
    }
    if let Some(action) = action {
        query = query.filter(audit_entry::Column::Action.eq(action));
    }
    if let Some(after) = after {
        query = query.filter(audit_entry::Column::Id.lt(after));
    }
    let mut rows = query.limit(first + 1).all(conn).await?;
    let more = rows.len() as u64 > first;
    rows.truncate(first as usize);
    Ok((rows, more))
}

/// Entries deleted per statement by [`purge_older_than`].
const PURGE_BATCH: u64 = 5_000;

/// Deletes the entries older than `age` (`--audit-retention`); answers how many. The ids are
/// UUIDv7, ordered by their creation time, so "older than" is a range of the primary key
/// (no scan of the table); the deletion goes in batches, so SQLite's write lock is never
/// held for long while logins wait to write their entries.
pub async fn purge_older_than(
    conn: &impl ConnectionTrait,
    age: std::time::Duration,
) -> Result<u64, DbErr> {
    // A retention longer than the calendar reaches deletes nothing.
    let Some(cutoff) = chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| Utc::now().checked_sub_signed(age))
    else {
        return Ok(0);
    };
    let Ok(millis) = u64::try_from(cutoff.timestamp_millis()) else {
        return Ok(0);
    };
    // The smallest UUIDv7 of that millisecond: every id below it was made before.
    let below = Uuid::from_u128(u128::from(millis) << 80);
    let mut deleted = 0;
    loop {
        let done = conn
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                conn.get_database_backend(),
                format!(
                    "DELETE FROM audit_log WHERE id IN \
                     (SELECT id FROM audit_log WHERE id < $1 ORDER BY id LIMIT {PURGE_BATCH})"
                ),
                [below.into()],
            ))
            .await?
            .rows_affected();
        deleted += done;
        if done < PURGE_BATCH {
            return Ok(deleted);
        }
    }
}
