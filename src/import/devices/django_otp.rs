//! django-otp's `TOTPDevice` and `StaticDevice`/`StaticToken` rows (see the module above).

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement};

use super::store::{DeviceSummary, Users, add_totp, problem};
use crate::import::{ImportError, Problem};
use crate::mfa::{self, Keys, totp};

/// Brings the django-otp tables that exist (`totp_table`, `static_table`) into `txn`.
pub async fn import(
    source: &DatabaseConnection,
    txn: &DatabaseTransaction,
    keys: &Keys,
    users: &Users,
    (totp_table, static_table): (bool, bool),
    report: &mut Vec<Problem>,
    summary: &mut DeviceSummary,
) -> Result<(), ImportError> {
    let src = |e: sea_orm::DbErr| ImportError::Source(e.to_string());
    let get = src;
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
            let params = totp::Params {
                digits: digits as u32,
                step,
                t0,
                drift,
            };
            let last_step = (last_t >= 0).then_some(last_t);
            add_totp(
                txn,
                keys,
                *user,
                totp::Secret::from_bytes(key),
                &params,
                last_step,
            )
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
            let typable = token.chars().any(char::is_alphanumeric);
            if !confirmed || !typable || token.len() > 64 {
                report.push(problem(
                    legacy,
                    username,
                    "static token: of an unconfirmed device, or empty, without a letter or digit, \
                     or too long"
                        .into(),
                ));
                summary.not_imported += 1;
                continue;
            }
            if mfa::add_legacy_code(txn, keys, *user, &token).await? {
                summary.recovery_codes += 1;
            }
        }
    }
    Ok(())
}
