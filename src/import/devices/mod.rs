//! Second-factor devices, after the users, in the import's transaction: a user who had a second
//! factor in Django has the same one in roster and is asked for it at the first login.
//! django-otp's (`django_otp.rs`):
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
//!
//! django-allauth's MFA authenticators come after django-otp's devices (`allauth.rs`), with
//! the same rules.

mod allauth;
mod django_otp;
mod store;

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement};
use uuid::Uuid;

pub use store::DeviceSummary;
use store::{Users, has_table, problem};

use super::{ImportError, Problem};
use crate::mfa::Keys;

/// Brings django-otp's and django-allauth's devices from `source` into `txn` for the users
/// this run created (`created`, by Django id): a device comes over with its user, once, so a
/// re-run never brings back a factor the user or an operator removed or replaced in roster.
/// Problems go to `report`.
pub async fn import(
    source: &DatabaseConnection,
    txn: &DatabaseTransaction,
    keys: Option<&Keys>,
    created: &std::collections::BTreeSet<i64>,
    report: &mut Vec<Problem>,
) -> Result<DeviceSummary, ImportError> {
    let mut summary = DeviceSummary::default();
    let totp_table = has_table(source, "otp_totp_totpdevice").await;
    let static_table = has_table(source, "otp_static_statictoken").await
        && has_table(source, "otp_static_staticdevice").await;
    let allauth_table = has_table(source, "mfa_authenticator").await;
    if (!totp_table && !static_table && !allauth_table) || created.is_empty() {
        return Ok(summary);
    }
    let get = |e: sea_orm::DbErr| ImportError::Source(e.to_string());
    // The users this run created, by Django id.
    let users: Users = txn
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
        .filter(|row: &Result<(i64, (Uuid, String)), ImportError>| {
            row.as_ref()
                .map_or(true, |(legacy, _)| created.contains(legacy))
        })
        .collect::<Result<_, ImportError>>()?;
    let Some(keys) = keys else {
        report.push(problem(
            0,
            "",
            "second-factor devices (django-otp, allauth) were not imported: no server secret is \
             configured to seal them (--secret-key-file or ROSTER_SECRET_KEY)"
                .into(),
        ));
        summary.not_imported += 1;
        return Ok(summary);
    };
    if totp_table || static_table {
        django_otp::import(
            source,
            txn,
            keys,
            &users,
            (totp_table, static_table),
            report,
            &mut summary,
        )
        .await?;
    }
    if allauth_table {
        allauth::import(source, txn, keys, &users, report, &mut summary).await?;
    }
    Ok(summary)
}
