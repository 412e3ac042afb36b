//! What both device importers share: the summary, the users by Django id, the report rows
//! and the one way a TOTP device is written.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement};
use uuid::Uuid;

use crate::import::{ImportError, Problem};
use crate::mfa::{Keys, totp};

/// What the devices half of an import brought over.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeviceSummary {
    pub totp: u64,
    /// django-otp's static tokens and allauth's recovery codes, as roster's recovery codes.
    pub recovery_codes: u64,
    pub not_imported: u64,
}

/// The users this import brought over (and earlier runs), by Django id: roster id, username.
pub type Users = HashMap<i64, (Uuid, String)>;

pub async fn has_table(source: &DatabaseConnection, table: &str) -> bool {
    source
        .query_all_raw(Statement::from_string(
            source.get_database_backend(),
            format!("SELECT 1 FROM {table} WHERE 1 = 0"),
        ))
        .await
        .is_ok()
}

pub fn problem(legacy_id: i64, username: &str, reason: String) -> Problem {
    Problem {
        legacy_id,
        username: username.to_owned(),
        reason,
        kind: "device_not_imported",
    }
}

/// Gives `user` a confirmed TOTP device with `secret` sealed for them.
pub async fn add_totp(
    txn: &DatabaseTransaction,
    keys: &Keys,
    user: Uuid,
    secret: totp::Secret,
    params: &totp::Params,
    last_step: Option<i64>,
) -> Result<(), ImportError> {
    let sealed = keys
        .seal(user, &secret)
        .map_err(|e| ImportError::Source(e.into()))?;
    txn.execute_raw(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "INSERT INTO totp_devices (user_id, secret, digits, step, t0, drift, confirmed, \
         last_step, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [
            user.into(),
            sealed.into(),
            (params.digits as i16).into(),
            (params.step as i32).into(),
            params.t0.into(),
            (params.drift as i32).into(),
            true.into(),
            last_step.into(),
            chrono::Utc::now().into(),
        ],
    ))
    .await?;
    Ok(())
}
