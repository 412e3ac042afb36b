//! allauth's MFA authenticators (`mfa_authenticator`: one row per user and type, its state in a
//! JSON `data` column), after django-otp's devices and with their rules.
//!
//! - `totp`: `data.secret`, base32, stored as it is by allauth's default adapter (its
//!   `encrypt` hook returns the text unchanged) → a TOTP device with allauth's parameters
//!   (6 digits, 30 s, from the epoch). allauth remembers used codes in Django's cache, not the
//!   database: a code used in Django in the last minute could be used once more in roster.
//! - `recovery_codes`: the codes allauth has not marked used, derived as allauth derives them
//!   (HMAC-SHA1 over the hex `seed`, chained over `"  0,"`, `"  1,"`…, the first 4 bytes
//!   modulo 10⁸: 10 codes of 8 digits; `used_mask` bit *i* marks code *i* used), or the
//!   `migrated_codes` listed as they are → roster recovery codes, each usable once.
//!
//! Reported, never dropped (`device_not_imported`): `webauthn` (roster has no security keys),
//! a secret or seed the project's own adapter encrypted (not base32 / not hex: roster cannot
//! read it), a user who has a TOTP device already (from django-otp or roster; kept), a type
//! roster does not know. The settings allauth reads them with (`MFA_TOTP_DIGITS`,
//! `MFA_TOTP_PERIOD`, `MFA_RECOVERY_CODE_COUNT`, `MFA_RECOVERY_CODE_DIGITS`) live in the
//! project's settings, not its database: the import assumes allauth's defaults, as documented.

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, Statement};
use serde_json::Value;

use super::store::{DeviceSummary, Users, add_totp, problem};
use crate::import::{ImportError, Problem};
use crate::mfa::{self, Keys, totp};

/// allauth's defaults (`MFA_RECOVERY_CODE_COUNT`, `MFA_RECOVERY_CODE_DIGITS`).
const RECOVERY_CODE_COUNT: u32 = 10;
const RECOVERY_CODE_DIGITS: u32 = 8;

/// The codes allauth derives from a seed, in order (allauth.mfa.recovery_codes, `generate_codes`).
/// Not a new primitive: allauth's own construction over `ring`'s HMAC-SHA1, needed to carry its
/// codes over without the users re-enrolling.
fn codes_from_seed(seed: &str) -> Vec<String> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, seed.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    let modulus = 10u64.pow(RECOVERY_CODE_DIGITS);
    (0..RECOVERY_CODE_COUNT)
        .map(|i| {
            // Python's f"{i:3}," — right-aligned in three places.
            ctx.update(format!("{i:3},").as_bytes());
            let tag = ctx.clone().sign();
            let first = &tag.as_ref()[..4];
            let value = u64::from(u32::from_be_bytes([first[0], first[1], first[2], first[3]]));
            format!(
                "{:0width$}",
                value % modulus,
                width = RECOVERY_CODE_DIGITS as usize
            )
        })
        .collect()
}

/// The unused codes of a `recovery_codes` row, or why they cannot be read.
fn unused_codes(data: &Value) -> Result<Vec<String>, &'static str> {
    // allauth reads `migrated_codes` when it is there and not null.
    if let Some(migrated) = data.get("migrated_codes").filter(|v| !v.is_null()) {
        let codes = migrated.as_array().ok_or("migrated_codes is not a list")?;
        return codes
            .iter()
            .map(|c| match c.as_str() {
                Some(c) if c.chars().any(char::is_alphanumeric) && c.len() <= 64 => {
                    Ok(c.to_owned())
                }
                _ => Err("a migrated code that is empty, too long or not text"),
            })
            .collect();
    }
    let seed = data.get("seed").and_then(Value::as_str).ok_or("no seed")?;
    // allauth makes the seed with secrets.token_hex(40); anything else was encrypted by the
    // project's adapter, and codes derived from it would be wrong.
    if seed.len() != 80 || !seed.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("a seed encrypted by the project's MFA adapter (roster cannot read it)");
    }
    // Without its mask, which codes were used is unknown: none may come back to life.
    let used = data
        .get("used_mask")
        .and_then(Value::as_u64)
        .ok_or("no used_mask (which codes were used is unknown)")?;
    Ok(codes_from_seed(seed)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| used & (1 << i) == 0)
        .map(|(_, code)| code)
        .collect())
}

/// A `totp` row's secret, or why it cannot be read.
fn totp_secret(data: &Value) -> Result<totp::Secret, &'static str> {
    let text = data
        .get("secret")
        .and_then(Value::as_str)
        .ok_or("no secret")?;
    // base32 as allauth decodes it (casefold); padding optional.
    let upper = text.trim().trim_end_matches('=').to_ascii_uppercase();
    match data_encoding::BASE32_NOPAD.decode(upper.as_bytes()) {
        Ok(key) if (10..=64).contains(&key.len()) => Ok(totp::Secret::from_bytes(key)),
        _ => Err(
            "a secret encrypted by the project's MFA adapter, or not base32 (roster cannot read it)",
        ),
    }
}

/// Brings `mfa_authenticator` rows of the imported users into `txn`.
pub async fn import(
    source: &DatabaseConnection,
    txn: &DatabaseTransaction,
    keys: &Keys,
    users: &Users,
    report: &mut Vec<Problem>,
    summary: &mut DeviceSummary,
) -> Result<(), ImportError> {
    let src = |e: sea_orm::DbErr| ImportError::Source(e.to_string());
    let rows = source
        .query_all_raw(Statement::from_string(
            source.get_database_backend(),
            "SELECT CAST(user_id AS BIGINT), type, CAST(data AS TEXT) FROM mfa_authenticator \
             ORDER BY id",
        ))
        .await
        .map_err(src)?;
    for r in &rows {
        let legacy: i64 = r.try_get_by_index(0).map_err(src)?;
        let Some((user, username)) = users.get(&legacy) else {
            continue;
        };
        let kind: String = r.try_get_by_index(1).map_err(src)?;
        let data: String = r.try_get_by_index(2).map_err(src)?;
        let mut refuse = |why: &str| {
            report.push(problem(
                legacy,
                username,
                format!("allauth {kind} authenticator: {why}"),
            ));
            summary.not_imported += 1;
        };
        let Ok(data) = serde_json::from_str::<Value>(&data) else {
            refuse("its data is not JSON");
            continue;
        };
        match kind.as_str() {
            "totp" => {
                let secret = match totp_secret(&data) {
                    Ok(secret) => secret,
                    Err(why) => {
                        refuse(why);
                        continue;
                    }
                };
                if mfa::device(txn, *user).await?.is_some() {
                    refuse("the user has a TOTP device in roster already (kept)");
                    continue;
                }
                add_totp(txn, keys, *user, secret, &totp::Params::default(), None).await?;
                summary.totp += 1;
            }
            "recovery_codes" => match unused_codes(&data) {
                Ok(codes) => {
                    for code in codes {
                        if mfa::add_legacy_code(txn, keys, *user, &code).await? {
                            summary.recovery_codes += 1;
                        }
                    }
                }
                Err(why) => refuse(why),
            },
            "webauthn" => refuse(
                "a security key (WebAuthn): roster has none; the user keeps their other factors",
            ),
            _ => refuse("a type roster does not know"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// allauth's own output for a seed (tests/django/allauth_devices.json, aa_erin, made by
    /// allauth 65's generate_codes; code 3 was used in Django).
    #[test]
    fn codes_are_derived_as_allauth_derives_them() {
        let seed =
            "9a7973dc641daa9f05efa2a15661f82bc1e3dc90b43f5dfe91a5171bafefb1260b6ec009a4a96d8a";
        let data = serde_json::json!({ "seed": seed, "used_mask": 8 });
        assert_eq!(
            unused_codes(&data).unwrap(),
            [
                "01720226", "30786623", "86784433", "92543845", "89223867", "73353978", "59104146",
                "80604579", "40879046"
            ]
        );
        assert_eq!(codes_from_seed(seed)[3], "63286372");
    }

    #[test]
    fn what_roster_cannot_read_is_refused() {
        let encrypted = serde_json::json!({ "secret": "gAAAAABm-encrypted==" });
        assert!(totp_secret(&encrypted).is_err());
        assert!(unused_codes(&serde_json::json!({ "seed": "gAAAAABm+/encrypted" })).is_err());
        assert!(unused_codes(&serde_json::json!({ "migrated_codes": [""] })).is_err());
        let seed =
            "9a7973dc641daa9f05efa2a15661f82bc1e3dc90b43f5dfe91a5171bafefb1260b6ec009a4a96d8a";
        assert!(
            unused_codes(&serde_json::json!({ "seed": seed })).is_err(),
            "no mask"
        );
        assert!(unused_codes(&serde_json::json!({ "seed": &seed[..40], "used_mask": 0 })).is_err());
        let null = serde_json::json!({ "migrated_codes": null, "seed": seed, "used_mask": 0 });
        assert_eq!(unused_codes(&null).unwrap().len(), 10);
        let plain = serde_json::json!({ "secret": "qvfzbeoyyle6f5l2rnft2j6wkh66h62z" });
        assert_eq!(totp_secret(&plain).unwrap().as_bytes().len(), 20);
    }
}
