//! Tokens in email links: 256 bits from the OS RNG (the session token's format), stored only
//! as a SHA-256, single-use, expiring. Minted by the delivery worker when it sends, so no
//! token rests in clear anywhere, the outbox included; minting one invalidates the user's
//! older unused tokens of the same purpose, so only the latest email's link works.

use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::entity::email_token;
use crate::outbox::{add, now};
use crate::sessions::Token;

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    /// The link sent to a new address (`requestEmailChange`); the token's row holds it.
    ChangeEmail,
}

impl Purpose {
    pub const ALL: [Self; 3] = [Self::VerifyEmail, Self::ResetPassword, Self::ChangeEmail];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
        }
    }
}

/// One token to mint: for whom, what for, how long, and (email change) the new address.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub user_id: Uuid,
    pub purpose: Purpose,
    pub ttl: Duration,
    pub new_email: Option<String>,
    /// The outbox row of the email carrying the link (email change).
    pub outbox_id: Option<Uuid>,
}

/// A token as looked up.
pub(super) enum Lookup {
    /// Unused and unexpired.
    Valid(email_token::Model),
    /// Unknown, malformed, of another purpose, or used.
    Invalid,
    /// Unused but past its expiry.
    Expired,
}

/// Mints one token per email of a batch, inside the caller's transaction, ending each user's
/// older unused tokens of the same purpose: one `DELETE` per purpose, one multi-row
/// `INSERT`. Each `(user, purpose)` must appear at most once (the caller keeps the newest
/// email of each).
pub async fn mint_many(
    conn: &impl ConnectionTrait,
    wanted: &[Wanted],
) -> Result<Vec<Token>, DbErr> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    for purpose in Purpose::ALL {
        let users: Vec<Uuid> = wanted
            .iter()
            .filter(|w| w.purpose == purpose)
            .map(|w| w.user_id)
            .collect();
        if users.is_empty() {
            continue;
        }
        email_token::Entity::delete_many()
            .filter(email_token::Column::UserId.is_in(users))
            .filter(email_token::Column::Purpose.eq(purpose.as_str()))
            .filter(email_token::Column::UsedAt.is_null())
            .exec(conn)
            .await?;
    }
    let now = now();
    let mut tokens = Vec::with_capacity(wanted.len());
    let mut rows = Vec::with_capacity(wanted.len());
    for w in wanted {
        let token = Token::generate().map_err(|e| DbErr::Custom(format!("OS RNG: {e}")))?;
        rows.push(email_token::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(w.user_id),
            purpose: Set(w.purpose.as_str().to_owned()),
            token_hash: Set(token.digest()),
            created_at: Set(now),
            expires_at: Set(add(now, w.ttl)),
            used_at: Set(None),
            new_email: Set(w.new_email.clone()),
            outbox_id: Set(w.outbox_id),
        });
        tokens.push(token);
    }
    email_token::Entity::insert_many(rows).exec(conn).await?;
    Ok(tokens)
}

/// Ends every unused token of `purpose` for the user (a newer one was asked for, or the
/// password changed).
pub async fn invalidate(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    purpose: Purpose,
) -> Result<u64, DbErr> {
    Ok(email_token::Entity::delete_many()
        .filter(email_token::Column::UserId.eq(user_id))
        .filter(email_token::Column::Purpose.eq(purpose.as_str()))
        .filter(email_token::Column::UsedAt.is_null())
        .exec(conn)
        .await?
        .rows_affected)
}

/// Ends a pending address change of the user: its unused links stop working and its emails
/// not sent yet are cancelled, in the caller's transaction (a newer request, a password
/// change or reset, a confirmed change). A link minted by a worker that was sending one of
/// those emails at that moment dies with it: a change link works only while its email stands.
pub async fn end_email_change(conn: &impl ConnectionTrait, user_id: Uuid) -> Result<(), DbErr> {
    use crate::entity::outbox;
    invalidate(conn, user_id, Purpose::ChangeEmail).await?;
    outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Status,
            Expr::value(crate::outbox::status::SKIPPED),
        )
        .col_expr(
            outbox::Column::LastError,
            Expr::value("cancelled: a newer request, a password change or a confirmed change"),
        )
        .col_expr(
            outbox::Column::LockedUntil,
            Expr::value(None::<chrono::DateTime<chrono::Utc>>),
        )
        .filter(outbox::Column::UserId.eq(user_id))
        .filter(outbox::Column::Kind.eq(crate::outbox::Kind::ChangeEmail.as_str()))
        .filter(outbox::Column::Status.is_in([
            crate::outbox::status::PENDING,
            crate::outbox::status::SENDING,
        ]))
        .exec(conn)
        .await?;
    Ok(())
}

/// Whether the email that carried a change link still stands (sending or delivered).
pub(super) async fn carrier_stands(
    conn: &impl ConnectionTrait,
    outbox_id: Option<Uuid>,
) -> Result<bool, DbErr> {
    use crate::entity::outbox;
    let Some(id) = outbox_id else {
        return Ok(false);
    };
    Ok(outbox::Entity::find_by_id(id)
        .one(conn)
        .await?
        .is_some_and(|row| {
            row.status == crate::outbox::status::SENDING
                || row.status == crate::outbox::status::DELIVERED
        }))
}

/// Looks a token up; the raw text is checked for the exact token shape first, so garbage
/// never reaches the database.
pub(super) async fn find(
    conn: &impl ConnectionTrait,
    raw: &str,
    purpose: Purpose,
) -> Result<Lookup, DbErr> {
    let Some(token) = Token::parse(raw) else {
        return Ok(Lookup::Invalid);
    };
    let found = email_token::Entity::find()
        .filter(email_token::Column::TokenHash.eq(token.digest()))
        .one(conn)
        .await?;
    Ok(match found {
        Some(t) if t.purpose == purpose.as_str() && t.used_at.is_none() => {
            if t.expires_at <= now() {
                Lookup::Expired
            } else {
                Lookup::Valid(t)
            }
        }
        _ => Lookup::Invalid,
    })
}

/// Marks the token used, inside the transaction of its effect; `false` when it was used (or
/// removed) meanwhile, so of two concurrent uses one succeeds.
pub(super) async fn consume(conn: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    let now = now();
    let done = email_token::Entity::update_many()
        .col_expr(email_token::Column::UsedAt, Expr::value(now))
        .filter(email_token::Column::Id.eq(id))
        .filter(email_token::Column::UsedAt.is_null())
        .filter(email_token::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// How long an expired token is kept, so that using it still answers `token_expired`
/// (rather than `token_invalid`) for a while.
const KEEP_EXPIRED: Duration = Duration::from_secs(7 * 86_400);

/// Deletes used tokens, and tokens expired more than a week ago (they can never work again).
pub async fn purge(conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let long_ago = chrono::Duration::from_std(KEEP_EXPIRED)
        .ok()
        .and_then(|keep| now().checked_sub_signed(keep))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    Ok(email_token::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(email_token::Column::UsedAt.is_not_null())
                .add(email_token::Column::ExpiresAt.lte(long_ago)),
        )
        .exec(conn)
        .await?
        .rows_affected)
}
