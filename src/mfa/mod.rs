//! A second factor: TOTP devices and recovery codes, and how they are kept. The use cases
//! (enrol, confirm, the login's second step, regenerate, disable) are the account service's
//! (`accounts::second_factor`); this module is the arithmetic and the storage beneath them.
//!
//! Secrets never rest in the clear: a device's key is sealed with a key derived from the
//! server secret (purpose `totp`, the user id as associated data), and recovery codes are
//! kept as an HMAC keyed from it (purpose `recovery-codes`), so a database dump alone yields
//! neither. Without a server secret (PostgreSQL with none configured) the second factor is
//! unavailable and says so.

/// Recovery codes: generation, the forgiving parse.
pub mod recovery;
/// RFC 6238 codes over RFC 4226.
pub mod totp;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::entity::{recovery_code, totp_device};
use crate::secret::{Sealer, ServerSecret};

/// The keys the second factor is kept under.
#[derive(Clone)]
pub struct Keys {
    sealer: Sealer,
    codes: ring::hmac::Key,
}

impl Keys {
    pub fn new(secret: &ServerSecret) -> Self {
        Self {
            sealer: secret.sealer("totp"),
            codes: secret.mac_key("recovery-codes"),
        }
    }

    /// The device's secret sealed for `user`.
    pub fn seal(&self, user: Uuid, secret: &totp::Secret) -> Result<String, &'static str> {
        self.sealer.seal(secret.as_bytes(), user.as_bytes())
    }

    /// A device's secret, if it opens for its user with this server secret.
    pub fn open(&self, device: &totp_device::Model) -> Option<totp::Secret> {
        self.sealer
            .open(&device.secret, device.user_id.as_bytes())
            .map(|bytes| totp::Secret::from_bytes(bytes.to_vec()))
    }

    /// The stored form of a recovery code (its canonical form, keyed to its user).
    /// Codes brought over from Django are kept in their `legacy_form`.
    fn code_mac(&self, user: Uuid, canonical: &str) -> String {
        let mut ctx = ring::hmac::Context::with_key(&self.codes);
        ctx.update(user.as_bytes());
        ctx.update(canonical.as_bytes());
        ctx.sign()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The device's counting parameters.
pub fn params(device: &totp_device::Model) -> totp::Params {
    totp::Params {
        // 6–10 digits (what a u32 HOTP value can fill); anything else read from the
        // database counts as 6.
        digits: u32::try_from(device.digits)
            .ok()
            .filter(|d| (6..=10).contains(d))
            .unwrap_or(6),
        step: i64::from(device.step),
        t0: device.t0,
        drift: i64::from(device.drift),
    }
}

/// The user's device, confirmed or not.
pub async fn device(
    conn: &impl ConnectionTrait,
    user: Uuid,
) -> Result<Option<totp_device::Model>, DbErr> {
    totp_device::Entity::find_by_id(user).one(conn).await
}

/// Whether the user has a confirmed device: their logins need a second step.
pub async fn enabled(conn: &impl ConnectionTrait, user: Uuid) -> Result<bool, DbErr> {
    Ok(device(conn, user).await?.is_some_and(|d| d.confirmed))
}

/// Whether the user `$1` has a second factor, as an SQL condition: a confirmed device, or
/// recovery codes left. A user brought over from Django with backup codes but no device roster
/// can use (a security key) keeps them as their second factor rather than losing it; they may
/// enrol TOTP. [`required`] asks it; on SQLite a login's session insert asks it itself, with
/// `$1` replaced by the user's column (`Sessions::create_for_login_with`).
pub const FACTOR: &str = "(EXISTS (SELECT 1 FROM totp_devices WHERE user_id = $1 AND confirmed) \
    OR EXISTS (SELECT 1 FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL))";

/// Whether a login must take a second step ([`FACTOR`]).
///
/// One statement: it runs inside every login's transaction on PostgreSQL, next to a hash that
/// is the whole budget.
pub async fn required(conn: &impl ConnectionTrait, user: Uuid) -> Result<bool, DbErr> {
    let row = conn
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            conn.get_database_backend(),
            format!("SELECT CASE WHEN {FACTOR} THEN 1 ELSE 0 END"),
            [user.into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get_by_index::<i32>(0))
        .transpose()?
        .is_some_and(|v| v == 1))
}

/// Records that `step` was used; `false` when it (or a later one) already was (a replay, or
/// a concurrent request that used the same code first).
pub async fn use_step(conn: &impl ConnectionTrait, user: Uuid, step: i64) -> Result<bool, DbErr> {
    let done = totp_device::Entity::update_many()
        .col_expr(totp_device::Column::LastStep, Expr::value(step))
        .filter(totp_device::Column::UserId.eq(user))
        .filter(
            sea_orm::Condition::any()
                .add(totp_device::Column::LastStep.is_null())
                .add(totp_device::Column::LastStep.lt(step)),
        )
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Replaces the user's recovery codes with a fresh set; answers the codes, to show once.
pub async fn new_recovery_codes(
    conn: &impl ConnectionTrait,
    keys: &Keys,
    user: Uuid,
) -> Result<Vec<Zeroizing<String>>, DbErr> {
    let codes = recovery::generate().map_err(|e| DbErr::Custom(format!("OS RNG: {e}")))?;
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user))
        .exec(conn)
        .await?;
    let rows = codes.iter().map(|code| {
        let canonical = recovery::normalize(code).unwrap_or_default();
        recovery_code::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user),
            code_mac: Set(keys.code_mac(user, &canonical)),
            used_at: Set(None),
        }
    });
    recovery_code::Entity::insert_many(rows).exec(conn).await?;
    Ok(codes)
}

/// Uses up the recovery code `typed`, if it is one of the user's unused ones.
pub async fn use_recovery_code(
    conn: &impl ConnectionTrait,
    keys: &Keys,
    user: Uuid,
    typed: &str,
) -> Result<bool, DbErr> {
    let Some(canonical) = recovery::normalize(typed) else {
        return Ok(false);
    };
    let done = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::UsedAt, Expr::value(Utc::now()))
        .filter(recovery_code::Column::UserId.eq(user))
        .filter(recovery_code::Column::CodeMac.eq(keys.code_mac(user, &canonical)))
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// The form a code brought over from Django (a django-otp static token, an allauth recovery
/// code) is kept and compared in: without spaces or punctuation (allauth strips them, RFC 8628
/// §6.1), in lower case (django-otp's tokens are; typing them in capitals still works).
/// `None` for one with nothing left, or longer than any Django makes.
fn legacy_form(token: &str) -> Option<String> {
    if token.len() > 64 {
        return None;
    }
    let bare: String = token
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation())
        .flat_map(char::to_lowercase)
        .collect();
    (!bare.is_empty()).then(|| format!("legacy:{bare}"))
}

/// Adds a code brought over from Django as one of the user's recovery codes (import); `false`
/// when the user has it already (a re-run).
pub async fn add_legacy_code(
    conn: &impl ConnectionTrait,
    keys: &Keys,
    user: Uuid,
    token: &str,
) -> Result<bool, DbErr> {
    let Some(form) = legacy_form(token) else {
        return Ok(false);
    };
    let mac = keys.code_mac(user, &form);
    let exists = recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user))
        .filter(recovery_code::Column::CodeMac.eq(mac.clone()))
        .one(conn)
        .await?
        .is_some();
    if exists {
        return Ok(false);
    }
    recovery_code::Entity::insert(recovery_code::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user),
        code_mac: Set(mac),
        used_at: Set(None),
    })
    .exec(conn)
    .await?;
    Ok(true)
}

/// Uses up a code brought over from Django, if `typed` is one of the user's unused ones.
pub async fn use_legacy_code(
    conn: &impl ConnectionTrait,
    keys: &Keys,
    user: Uuid,
    typed: &str,
) -> Result<bool, DbErr> {
    let Some(form) = legacy_form(typed) else {
        return Ok(false);
    };
    let done = recovery_code::Entity::update_many()
        .col_expr(recovery_code::Column::UsedAt, Expr::value(Utc::now()))
        .filter(recovery_code::Column::UserId.eq(user))
        .filter(recovery_code::Column::CodeMac.eq(keys.code_mac(user, &form)))
        .filter(recovery_code::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Recovery codes the user has left.
pub async fn recovery_codes_left(conn: &impl ConnectionTrait, user: Uuid) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user))
        .filter(recovery_code::Column::UsedAt.is_null())
        .count(conn)
        .await
}

/// Removes the user's device and recovery codes.
pub async fn remove(conn: &impl ConnectionTrait, user: Uuid) -> Result<(), DbErr> {
    totp_device::Entity::delete_by_id(user).exec(conn).await?;
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user))
        .exec(conn)
        .await?;
    Ok(())
}
