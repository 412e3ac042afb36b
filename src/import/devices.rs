//! django-otp's devices, after the users, in the import's transaction: a user who had a second
//! factor in Django has the same one in roster and is asked for it at the first login.
//!
//! - `otp_totp_totpdevice` (confirmed): the key (hex), step, `t0`, digits, drift and `last_t`
//!   (the last step used, so a code used in Django is not accepted again) become the user's
//!   TOTP device, its key sealed with the server secret.
//! - `otp_static_staticdevice` / `otp_static_statictoken` (confirmed devices): the tokens become
//!   recovery codes (kept as HMACs; typed as in Django, case-insensitively), each usable once.
//!
//! Reported, never dropped silently (`device_not_imported` rows of the report): a second
//! confirmed TOTP device of one user (roster keeps one), an unconfirmed device, a key or
//! parameters roster cannot use, a user who already has a device in roster (kept), and every
//! device when no server secret is configured. Database sources only (dumpdata does not
//! carry django-otp's tables unless asked; the tables are read where they are).

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement};
use uuid::Uuid;

use super::{ImportError, Problem};
use crate::mfa::{self, Keys, totp};

/// What the devices half of an import brought over.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeviceSummary {
    pub totp: u64,
    pub static_tokens: u64,
    pub not_imported: u64,
}

async fn has_table(source: &DatabaseConnection, table: &str) -> bool {
    source
        .query_all_raw(Statement::from_string(
            source.get_database_backend(),
            format!("SELECT 1 FROM {table} WHERE 1 = 0"),
        ))
        .await
        .is_ok()
}

fn problem(legacy_id: i64, username: &str, reason: String) -> Problem {
    Problem {
        legacy_id,
        username: username.to_owned(),
        reason,
        kind: "device_not_imported",
    }
}

/// Brings django-otp's devices from `source` into `txn` for the users imported (by
/// `legacy_id`); problems go to `report`.
pub async fn import(
    source: &DatabaseConnection,
    txn: &DatabaseTransaction,
    keys: Option<&Keys>,
    report: &mut Vec<Problem>,
) -> Result<DeviceSummary, ImportError> {
    let mut summary = DeviceSummary::default();
    let totp_table = has_table(source, "otp_totp_totpdevice").await;
    let static_table = has_table(source, "otp_static_statictoken").await
        && has_table(source, "otp_static_staticdevice").await;
    if !totp_table && !static_table {
        return Ok(summary);
    }
    let src = |e: sea_orm::DbErr| ImportError::Source(e.to_string());
    let get = |e: sea_orm::DbErr| ImportError::Source(e.to_string());
    // The users this database has, by Django id.
    let users: HashMap<i64, (Uuid, String)> = txn
        .query_all_raw(Statement::from_string(
            txn.get_database_backend(),
            "SELECT id, legacy_id, username FROM users WHERE legacy_id IS NOT NULL",
        ))
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get_by_index::<i64>(1).map_err(get)?,
                (
                    r.try_get_by_index::<Uuid>(0).map_err(get)?,
                    r.try_get_by_index::<String>(2).map_err(get)?,
                ),
            ))
        })
        .collect::<Result<_, ImportError>>()?;
    let Some(keys) = keys else {
        if totp_table || static_table {
            report.push(problem(
                0,
                "",
                "django-otp devices were not imported: no server secret is configured to seal them \
                 (--secret-key-file or ROSTER_SECRET_KEY)"
                    .into(),
            ));
            summary.not_imported += 1;
        }
        return Ok(summary);
    };
    if totp_table {
        let rows = source
            .query_all_raw(Statement::from_string(
                source.get_database_backend(),
                "SELECT CAST(user_id AS BIGINT), key, CAST(step AS BIGINT), CAST(t0 AS BIGINT), \
                 CAST(digits AS BIGINT), CAST(drift AS BIGINT), CAST(last_t AS BIGINT), confirmed \
                 FROM otp_totp_totpdevice ORDER BY id",
            ))
            .await
            .map_err(src)?;
        let mut done: std::collections::HashSet<i64> = Default::default();
        for r in &rows {
            let legacy: i64 = r.try_get_by_index(0).map_err(get)?;
            let Some((user, username)) = users.get(&legacy) else {
                continue;
            };
            let confirmed: bool = r.try_get_by_index(7).map_err(get)?;
            let mut refuse = |why: &str| {
                report.push(problem(legacy, username, format!("TOTP device: {why}")));
                summary.not_imported += 1;
            };
            if !confirmed {
                refuse("unconfirmed in Django (never used to sign in)");
                continue;
            }
            if done.contains(&legacy) {
                refuse("a second confirmed device; roster keeps one per user (the first)");
                continue;
            }
            if mfa::device(txn, *user).await?.is_some() {
                refuse("the user has a device in roster already (kept)");
                continue;
            }
            let key_hex: String = r.try_get_by_index(1).map_err(get)?;
            let (step, t0, digits, drift, last_t): (i64, i64, i64, i64, i64) = (
                r.try_get_by_index(2).map_err(get)?,
                r.try_get_by_index(3).map_err(get)?,
                r.try_get_by_index(4).map_err(get)?,
                r.try_get_by_index(5).map_err(get)?,
                r.try_get_by_index(6).map_err(get)?,
            );
            let key = data_encoding::HEXLOWER_PERMISSIVE.decode(key_hex.trim().as_bytes());
            let usable = (1..=3600).contains(&step)
                && (6..=10).contains(&digits)
                && drift.abs() <= 100
                && matches!(&key, Ok(k) if (10..=64).contains(&k.len()));
            let Some(key) = key.ok().filter(|_| usable) else {
                refuse(
                    "a key or parameters roster cannot use (step 1–3600 s, 6–10 digits, a 10–64-byte key)",
                );
                continue;
            };
            let secret = totp::Secret::from_bytes(key);
            let sealed = keys
                .seal(*user, &secret)
                .map_err(|e| ImportError::Source(e.into()))?;
            txn.execute_raw(Statement::from_sql_and_values(
                txn.get_database_backend(),
                "INSERT INTO totp_devices (user_id, secret, digits, step, t0, drift, confirmed, \
                 last_step, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                [
                    (*user).into(),
                    sealed.into(),
                    (digits as i16).into(),
                    (step as i32).into(),
                    t0.into(),
                    (drift as i32).into(),
                    true.into(),
                    (last_t >= 0).then_some(last_t).into(),
                    chrono::Utc::now().into(),
                ],
            ))
            .await?;
            done.insert(legacy);
            summary.totp += 1;
        }
    }
    if static_table {
        let rows = source
            .query_all_raw(Statement::from_string(
                source.get_database_backend(),
                "SELECT CAST(d.user_id AS BIGINT), t.token, d.confirmed FROM otp_static_statictoken t \
                 JOIN otp_static_staticdevice d ON d.id = t.device_id ORDER BY t.id",
            ))
            .await
            .map_err(src)?;
        for r in &rows {
            let legacy: i64 = r.try_get_by_index(0).map_err(get)?;
            let Some((user, username)) = users.get(&legacy) else {
                continue;
            };
            let confirmed: bool = r.try_get_by_index(2).map_err(get)?;
            let token: String = r.try_get_by_index(1).map_err(get)?;
            if !confirmed || token.trim().is_empty() || token.len() > 64 {
                report.push(problem(
                    legacy,
                    username,
                    "static token: of an unconfirmed device, or empty or too long".into(),
                ));
                summary.not_imported += 1;
                continue;
            }
            if mfa::add_legacy_code(txn, keys, *user, &token).await? {
                summary.static_tokens += 1;
            }
        }
    }
    Ok(summary)
}
