//! The transactional outbox: a use case that needs an email inserts a row here in its own
//! transaction (so the email exists exactly when the change that needs it does); the
//! delivery worker (`crate::mail::worker`) claims due rows, sends them and records the
//! outcome. A row says what to send to whom and nothing more: no token, no body.
//!
//! Claims are safe with several workers: on PostgreSQL `FOR UPDATE SKIP LOCKED` hands each
//! row to one claimer; on SQLite the claim is one `UPDATE … RETURNING`, and SQLite runs one
//! writer at a time. A claim is a lease: a row whose worker died is due again once
//! `locked_until` has passed (at-least-once delivery; receivers de-duplicate by the
//! `Message-ID`, which is fixed per row).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::entity::outbox;

/// What an outbox row asks to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The link that proves the user reads the address (`verifyEmail`).
    VerifyEmail,
    /// The link that sets a new password (`resetPassword`).
    ResetPassword,
    /// A notice (no link): a second factor was confirmed.
    SecondFactorAdded,
    /// A notice: the second factor was disabled or reset by an operator.
    SecondFactorRemoved,
    /// A notice: a recovery code completed a login.
    RecoveryCodeUsed,
    /// The link that confirms a new address (`requestEmailChange`), sent to that address.
    ChangeEmail,
    /// A notice to the old address: a change to another address was asked for.
    EmailChangeRequested,
    /// A notice to an address another account asked to move to, which has an account here
    /// already (instead of a link: the asker learns nothing either way).
    EmailInUse,
    /// The goodbye of a deleted account, to its last address (a row of no user).
    AccountDeleted,
    /// A notice to the old address: the account moved to another address.
    EmailChanged,
    /// A notice: the account was closed and will be deleted when `--deletion-grace` ends,
    /// unless its owner signs in (sent although the account is inactive).
    AccountDeletionScheduled,
}

impl Kind {
    pub const ALL: [Self; 11] = [
        Self::VerifyEmail,
        Self::ResetPassword,
        Self::SecondFactorAdded,
        Self::SecondFactorRemoved,
        Self::RecoveryCodeUsed,
        Self::ChangeEmail,
        Self::EmailChangeRequested,
        Self::EmailInUse,
        Self::AccountDeleted,
        Self::EmailChanged,
        Self::AccountDeletionScheduled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::SecondFactorAdded => "second_factor_added",
            Self::SecondFactorRemoved => "second_factor_removed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::ChangeEmail => "change_email",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailInUse => "email_in_use",
            Self::AccountDeleted => "account_deleted",
            Self::EmailChanged => "email_changed",
            Self::AccountDeletionScheduled => "account_deletion_scheduled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the email carries a link with a token (minted at sending time); notices
    /// carry none.
    pub fn has_link(self) -> bool {
        matches!(
            self,
            Self::VerifyEmail | Self::ResetPassword | Self::ChangeEmail
        )
    }
}

/// Row states.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const SENDING: &str = "sending";
    pub const DELIVERED: &str = "delivered";
    pub const FAILED: &str = "failed";
    /// Nothing to send any more (the address was verified meanwhile, the user deactivated).
    pub const SKIPPED: &str = "skipped";
}

/// Longest `last_error` kept, in bytes.
const MAX_ERROR_BYTES: usize = 500;

/// The outbox handle a use case enqueues through; wakes the local worker after a commit.
/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Outbox {
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues an email inside the caller's transaction. Call [`Outbox::wake`] after the
    /// commit so the local worker sends it at once (other processes find it by polling).
    pub async fn enqueue(
        &self,
        conn: &impl ConnectionTrait,
        kind: Kind,
        user_id: Uuid,
        recipient: &str,
    ) -> Result<Uuid, DbErr> {
        insert(conn, kind, Some(user_id), recipient).await
    }

    /// Queues a security notice (a kind without a link) to the user's address, inside the
    /// caller's transaction; nothing for a user without one. Call [`Outbox::wake`] after
    /// the commit.
    pub async fn notice(
        &self,
        conn: &impl ConnectionTrait,
        kind: Kind,
        user_id: Uuid,
        email: &str,
    ) -> Result<(), DbErr> {
        debug_assert!(!kind.has_link());
        if !email.trim().is_empty() {
            self.enqueue(conn, kind, user_id, email).await?;
        }
        Ok(())
    }

    /// Queues the goodbye of an account deleted in the caller's transaction: a row of no
    /// user, so the deletion does not take it along. Nothing for an account without an address.
    pub async fn farewell(&self, conn: &impl ConnectionTrait, email: &str) -> Result<(), DbErr> {
        if email.trim().is_empty() {
            return Ok(());
        }
        insert(conn, Kind::AccountDeleted, None, email).await?;
        Ok(())
    }

    /// Tells the local worker there is something to send.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`Outbox::wake`] was called (for the worker).
    pub async fn woken(&self) {
        self.wake.notified().await
    }
}

/// A pending row, due now.
async fn insert(
    conn: &impl ConnectionTrait,
    kind: Kind,
    user_id: Option<Uuid>,
    recipient: &str,
) -> Result<Uuid, DbErr> {
    let now = now();
    let id = Uuid::now_v7();
    outbox::ActiveModel {
        id: Set(id),
        kind: Set(kind.as_str().to_owned()),
        user_id: Set(user_id),
        recipient: Set(recipient.to_owned()),
        status: Set(status::PENDING.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        locked_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        delivered_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(id)
}

/// Claims up to `batch` due rows for `lease`: pending rows whose time has come, and rows
/// whose previous claimer's lease ran out. Each claim counts one attempt.
pub async fn claim(
    db: &DatabaseConnection,
    batch: u64,
    lease: Duration,
) -> Result<Vec<outbox::Model>, DbErr> {
    let now = now();
    let until = add(now, lease);
    let backend = db.get_database_backend();
    // One statement on both databases; only PostgreSQL needs (and has) row locks to keep
    // two claimers apart.
    let (p, lock) = match backend {
        DatabaseBackend::Postgres => (["$1", "$2", "$3", "$4", "$5"], " FOR UPDATE SKIP LOCKED"),
        _ => (["?", "?", "?", "?", "?"], ""),
    };
    let sql = format!(
        "UPDATE outbox SET status = '{sending}', attempts = attempts + 1, locked_until = {p0} \
         WHERE id IN (SELECT id FROM outbox \
           WHERE (status = '{pending}' AND next_attempt_at <= {p1}) \
              OR (status = '{sending}' AND locked_until <= {p2}) \
           ORDER BY next_attempt_at LIMIT {p3}{lock}) \
         AND (status = '{pending}' OR locked_until <= {p4}) \
         RETURNING *",
        sending = status::SENDING,
        pending = status::PENDING,
        p0 = p[0],
        p1 = p[1],
        p2 = p[2],
        p3 = p[3],
        p4 = p[4],
    );
    outbox::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            backend,
            sql,
            [
                until.into(),
                now.into(),
                now.into(),
                (batch as i64).into(),
                now.into(),
            ],
        ))
        .all(db)
        .await
}

/// The claim of `row` (same attempt, still ours) ends in `status`.
fn finish(row: &outbox::Model) -> sea_orm::UpdateMany<outbox::Entity> {
    outbox::Entity::update_many()
        .filter(outbox::Column::Id.eq(row.id))
        .filter(outbox::Column::Status.eq(status::SENDING))
        .filter(outbox::Column::Attempts.eq(row.attempts))
        .col_expr(
            outbox::Column::LockedUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
}

/// Extends a claim by `lease` from now; `false` when the claim is no longer ours (its lease
/// ran out and another worker took the row).
pub async fn renew(
    db: &DatabaseConnection,
    row: &outbox::Model,
    lease: Duration,
) -> Result<bool, DbErr> {
    let done = outbox::Entity::update_many()
        .filter(outbox::Column::Id.eq(row.id))
        .filter(outbox::Column::Status.eq(status::SENDING))
        .filter(outbox::Column::Attempts.eq(row.attempts))
        .col_expr(outbox::Column::LockedUntil, Expr::value(add(now(), lease)))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// These emails were handed to the transport: one statement for a batch, each row only
/// while its claim (same attempt) is still the one that sent it.
pub async fn delivered_all(db: &DatabaseConnection, rows: &[outbox::Model]) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut claims = sea_orm::Condition::any();
    for row in rows {
        claims = claims.add(
            sea_orm::Condition::all()
                .add(outbox::Column::Id.eq(row.id))
                .add(outbox::Column::Attempts.eq(row.attempts)),
        );
    }
    outbox::Entity::update_many()
        .filter(outbox::Column::Status.eq(status::SENDING))
        .filter(claims)
        .col_expr(
            outbox::Column::LockedUntil,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(outbox::Column::Status, Expr::value(status::DELIVERED))
        .col_expr(outbox::Column::DeliveredAt, Expr::value(now()))
        .col_expr(outbox::Column::LastError, Expr::value(None::<String>))
        .exec(db)
        .await?;
    Ok(())
}

/// Nothing needs sending any more; `why` is kept for `roster outbox list`.
pub async fn skipped(db: &DatabaseConnection, row: &outbox::Model, why: &str) -> Result<(), DbErr> {
    finish(row)
        .col_expr(outbox::Column::Status, Expr::value(status::SKIPPED))
        .col_expr(outbox::Column::LastError, Expr::value(bounded(why)))
        .exec(db)
        .await?;
    Ok(())
}

/// An attempt failed: due again at `retry_at`, or failed for good when `None`.
pub async fn attempt_failed(
    db: &DatabaseConnection,
    row: &outbox::Model,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    let mut update = finish(row).col_expr(outbox::Column::LastError, Expr::value(bounded(error)));
    update = match retry_at {
        Some(at) => update
            .col_expr(outbox::Column::Status, Expr::value(status::PENDING))
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(at)),
        None => update.col_expr(outbox::Column::Status, Expr::value(status::FAILED)),
    };
    update.exec(db).await?;
    Ok(())
}

/// Gives a claimed row back unsent and uncounted (the worker is stopping).
pub async fn release(db: &DatabaseConnection, row: &outbox::Model) -> Result<(), DbErr> {
    finish(row)
        .col_expr(outbox::Column::Status, Expr::value(status::PENDING))
        .col_expr(outbox::Column::Attempts, Expr::value(row.attempts - 1))
        .exec(db)
        .await?;
    Ok(())
}

/// Rows still to send, being sent, or failed: what `roster outbox list` shows, oldest first.
pub async fn unfinished(db: &DatabaseConnection, limit: u64) -> Result<Vec<outbox::Model>, DbErr> {
    outbox::Entity::find()
        .filter(outbox::Column::Status.is_in([status::PENDING, status::SENDING, status::FAILED]))
        .order_by_asc(outbox::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

/// Makes failed rows due now with a fresh attempt budget: one (`Some(id)`) or all of them.
/// Returns how many rows were requeued.
pub async fn retry_failed(db: &DatabaseConnection, id: Option<Uuid>) -> Result<u64, DbErr> {
    let mut update = outbox::Entity::update_many()
        .filter(outbox::Column::Status.eq(status::FAILED))
        .col_expr(outbox::Column::Status, Expr::value(status::PENDING))
        .col_expr(outbox::Column::Attempts, Expr::value(0))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(now()));
    if let Some(id) = id {
        update = update.filter(outbox::Column::Id.eq(id));
    }
    Ok(update.exec(db).await?.rows_affected)
}

/// How many emails wait (pending or being sent) and how many failed for good.
pub async fn backlog(db: &DatabaseConnection) -> Result<(i64, i64), DbErr> {
    use sea_orm::PaginatorTrait;
    let waiting = outbox::Entity::find()
        .filter(outbox::Column::Status.is_in([status::PENDING, status::SENDING]))
        .count(db)
        .await?;
    let failed = outbox::Entity::find()
        .filter(outbox::Column::Status.eq(status::FAILED))
        .count(db)
        .await?;
    Ok((
        i64::try_from(waiting).unwrap_or(i64::MAX),
        i64::try_from(failed).unwrap_or(i64::MAX),
    ))
}

/// Deletes delivered and skipped rows older than `age` (they are history).
pub async fn purge_finished(db: &DatabaseConnection, age: Duration) -> Result<u64, DbErr> {
    let before = chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| now().checked_sub_signed(age))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let done = outbox::Entity::delete_many()
        .filter(outbox::Column::Status.is_in([status::DELIVERED, status::SKIPPED]))
        .filter(outbox::Column::CreatedAt.lt(before))
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

fn bounded(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_ERROR_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// Longest wait between retries, whatever the attempt count.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The retry policy of every outbox (emails, webhooks). Exponential backoff with jitter: `base · 2^(attempt−1)`, at most an hour (or `base` if
/// longer), then a random point in its upper half so retries of many rows spread out.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let full = base.saturating_mul(1u32 << exp).min(MAX_BACKOFF.max(base));
    let mut byte = [0u8; 1];
    let jitter = if getrandom::fill(&mut byte).is_ok() {
        f64::from(byte[0]) / 255.0
    } else {
        1.0
    };
    full.mul_f64(0.5 + 0.5 * jitter)
}

/// Both databases store microseconds; truncate so what is compared equals the row.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub(crate) fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let base = Duration::from_secs(30);
        for attempt in 1..=30u32 {
            let full = base
                .saturating_mul(1 << attempt.saturating_sub(1).min(20))
                .min(MAX_BACKOFF);
            let d = backoff(base, attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }
}
