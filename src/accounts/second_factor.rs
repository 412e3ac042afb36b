//! The second factor's use cases: `startTotpEnrollment`, `confirmTotpEnrollment`,
//! `verifySecondFactor` (the login's second step), `regenerateRecoveryCodes`, `disableTotp`,
//! and `mfa` (what the caller has). Each owns its transaction; the arithmetic and storage are
//! [`crate::mfa`]'s.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use zeroize::Zeroizing;

use super::login::LoggedIn;
use super::{AccountService, codes};
use crate::audit::{self, Origin, Who};
use crate::entity::totp_device;
use crate::error::{AppError, FieldError};
use crate::mfa::{self, Keys, totp};
use crate::outbox::Kind;
use crate::password::Plaintext;
use crate::ratelimit::FailureKey;
use crate::sessions::Caller;

/// How the second factor is set up (start-up wires it).
#[derive(Clone)]
pub struct SecondFactorPolicy {
    /// Absent without a server secret: the second factor is unavailable.
    pub keys: Option<Keys>,
    /// `--mfa-challenge-ttl`: how long a login may wait for its second step.
    pub challenge_ttl: Duration,
    /// The issuer authenticator apps show (`--totp-issuer`).
    pub issuer: String,
}

/// How recently a password must have been entered (the session's login) to start an
/// enrolment without a second factor.
const RECENT_LOGIN: chrono::Duration = chrono::Duration::minutes(10);

/// What `startTotpEnrollment` shows, once.
pub struct Enrollment {
    pub secret: Zeroizing<String>,
    pub otpauth_uri: Zeroizing<String>,
}

/// What `mfa` answers.
pub struct MfaStatus {
    pub totp: bool,
    pub recovery_codes_left: u64,
}

/// The device's secret; a device sealed under another server secret (the secret was
/// replaced) opens nothing and is answered as a wrong code, logged for the operators
/// (`roster users reset-mfa` removes it).
fn open(keys: &Keys, device: &totp_device::Model) -> Result<totp::Secret, AppError> {
    keys.open(device).ok_or_else(|| {
        tracing::warn!(user_id = %device.user_id, "a TOTP secret does not open with this server secret; reset the user's second factor");
        code_error()
    })
}

/// On PostgreSQL, the user row is held for the rest of the transaction: a login inserting a
/// session for this user (which takes the row `FOR NO KEY UPDATE`) waits, and then sees the
/// change. SQLite runs one writer at a time already.
async fn lock_user(txn: &sea_orm::DatabaseTransaction, user: uuid::Uuid) -> Result<(), AppError> {
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT id FROM users WHERE id = $1 FOR UPDATE",
            [user.into()],
        ))
        .await?;
    }
    Ok(())
}

fn code_error() -> AppError {
    AppError::InvalidInput(vec![FieldError::new(
        "code",
        codes::SECOND_FACTOR_INVALID,
        "That code is not valid (or was used already).",
    )])
}

impl AccountService {
    fn mfa_keys(&self) -> Result<&Keys, AppError> {
        self.second_factor
            .keys
            .as_ref()
            .ok_or(AppError::SecondFactorUnavailable)
    }

    /// What the caller has enrolled.
    pub async fn mfa_status(&self, caller: &Caller) -> Result<MfaStatus, AppError> {
        let user = caller.user.id;
        Ok(MfaStatus {
            totp: mfa::enabled(&self.db, user).await?,
            recovery_codes_left: mfa::recovery_codes_left(&self.db, user).await?,
        })
    }

    /// A new, unconfirmed device for the caller (replacing an unconfirmed one): its secret
    /// as text and as an `otpauth://` URI, shown this once. Needs a password entered in the
    /// last ten minutes (the session's login) or a session at aal2; refused while a confirmed
    /// device exists (disable it first).
    pub async fn start_totp_enrollment(&self, caller: &Caller) -> Result<Enrollment, AppError> {
        let keys = self.mfa_keys()?;
        let recent = Utc::now() - caller.session.created_at < RECENT_LOGIN;
        if !(recent || caller.session.aal >= 2) {
            return Err(AppError::Forbidden(
                "Sign in again (or with your second factor) to set one up.",
            ));
        }
        let user = caller.user.id;
        let txn = crate::txn::begin_writing(&self.db).await?;
        if mfa::enabled(&txn, user).await? {
            return Err(AppError::Forbidden(
                "A second factor is set up already: disable it first.",
            ));
        }
        let secret = totp::Secret::generate().map_err(AppError::internal)?;
        let sealed = keys.seal(user, &secret).map_err(AppError::internal)?;
        let defaults = totp::Params::default();
        // Only an unconfirmed one is replaced (the check above and this delete are one
        // transaction; the condition keeps a confirmed device even so).
        totp_device::Entity::delete_many()
            .filter(totp_device::Column::UserId.eq(user))
            .filter(totp_device::Column::Confirmed.eq(false))
            .exec(&txn)
            .await?;
        totp_device::Entity::insert(totp_device::ActiveModel {
            user_id: Set(user),
            secret: Set(sealed),
            digits: Set(defaults.digits as i16),
            step: Set(defaults.step as i32),
            t0: Set(defaults.t0),
            drift: Set(0),
            confirmed: Set(false),
            last_step: Set(None),
            created_at: Set(Utc::now()),
        })
        .exec(&txn)
        .await?;
        txn.commit().await?;
        let account = if caller.user.email.is_empty() {
            caller.user.username.as_str()
        } else {
            caller.user.email.as_str()
        };
        Ok(Enrollment {
            otpauth_uri: totp::otpauth_uri(&secret, &self.second_factor.issuer, account),
            secret: secret.base32(),
        })
    }

    /// Confirms the caller's new device with a code from it: the device counts from now on,
    /// a fresh set of recovery codes is made (answered once), the caller's session becomes
    /// aal2 and every other session of the user ends (they knew only the password) — in one
    /// transaction, audited.
    pub async fn confirm_totp_enrollment(
        &self,
        caller: &Caller,
        code: &str,
        origin: &Origin,
    ) -> Result<Vec<Zeroizing<String>>, AppError> {
        let keys = self.mfa_keys()?;
        let user = caller.user.id;
        let key = FailureKey::SecondFactor(user);
        self.failures
            .begin(&key)
            .await
            .map_err(|retry_after| AppError::RateLimited { retry_after })?;
        let txn = crate::txn::begin_writing(&self.db).await?;
        lock_user(&txn, user).await?;
        let Some(device) = mfa::device(&txn, user).await?.filter(|d| !d.confirmed) else {
            return Err(AppError::InvalidInput(vec![FieldError::new(
                "code",
                codes::SECOND_FACTOR_INVALID,
                "Start an enrolment first.",
            )]));
        };
        let secret = open(keys, &device)?;
        let now = Utc::now().timestamp();
        let Some(step) = totp::matching_step(&secret, &mfa::params(&device), code, now, None)
        else {
            return Err(code_error());
        };
        // The very device the code was checked against, still unconfirmed.
        let confirmed = totp_device::Entity::update_many()
            .col_expr(
                totp_device::Column::Confirmed,
                sea_orm::sea_query::Expr::value(true),
            )
            .col_expr(
                totp_device::Column::LastStep,
                sea_orm::sea_query::Expr::value(step),
            )
            .filter(totp_device::Column::UserId.eq(user))
            .filter(totp_device::Column::Confirmed.eq(false))
            .filter(totp_device::Column::Secret.eq(device.secret.clone()))
            .exec(&txn)
            .await?;
        if confirmed.rows_affected != 1 {
            return Err(code_error());
        }
        let codes = mfa::new_recovery_codes(&txn, keys, user).await?;
        self.sessions.raise_to_aal2(&txn, caller.session.id).await?;
        let ended = self
            .sessions
            .revoke_all(&txn, user, Some(caller.session.id))
            .await?;
        audit::record(
            &txn,
            &Who::user(user),
            "mfa.totp_enabled",
            Some(user),
            origin,
            Some(serde_json::json!({ "other_sessions_ended": ended })),
        )
        .await?;
        crate::webhooks::events::sessions_ended(
            &txn,
            user,
            crate::webhooks::events::Ended::AllBut(caller.session.id),
            ended,
            "second_factor_added",
        )
        .await?;
        self.outbox
            .notice(&txn, Kind::SecondFactorAdded, user, &caller.user.email)
            .await?;
        txn.commit().await?;
        self.outbox.wake();
        self.failures.succeeded(&key).await;
        Ok(codes)
    }

    /// The login's second step: a TOTP code (each time step accepted once) or an unused
    /// recovery code (used up). The waiting session gets a new token at aal2; the old token
    /// stops working. Throttled per user like passwords (`--login-failure-limit`).
    pub async fn verify_second_factor(
        &self,
        caller: &Caller,
        code: &str,
        origin: &Origin,
    ) -> Result<LoggedIn, AppError> {
        if !caller.session.mfa_pending {
            return Err(AppError::InvalidInput(vec![FieldError::new(
                "code",
                codes::SECOND_FACTOR_INVALID,
                "This session is not waiting for a second step.",
            )]));
        }
        let keys = self.mfa_keys()?;
        let user = caller.user.id;
        let key = FailureKey::SecondFactor(user);
        self.failures
            .begin(&key)
            .await
            .map_err(|retry_after| AppError::RateLimited { retry_after })?;
        let txn = crate::txn::begin_writing(&self.db).await?;
        // A TOTP code (digits), else one of roster's recovery codes, else a code brought over
        // from django-otp (its static tokens have their own shape).
        let trimmed = code.trim();
        let digits = !trimmed.is_empty()
            && trimmed.len() <= 10
            && trimmed.bytes().all(|b| b.is_ascii_digit());
        let mut method = None;
        if digits && let Some(device) = mfa::device(&txn, user).await?.filter(|d| d.confirmed) {
            let secret = open(keys, &device)?;
            let now = Utc::now().timestamp();
            let params = mfa::params(&device);
            if let Some(step) =
                totp::matching_step(&secret, &params, trimmed, now, device.last_step)
                && mfa::use_step(&txn, user, step).await?
            {
                method = Some("totp");
            }
        }
        if method.is_none()
            && (mfa::use_recovery_code(&txn, keys, user, code).await?
                || mfa::use_legacy_code(&txn, keys, user, code).await?)
        {
            method = Some("recovery_code");
        }
        let Some(method) = method else {
            return Err(code_error());
        };
        let Some((token, session)) = self
            .sessions
            .complete_second_step(&txn, caller.session.id)
            .await?
        else {
            return Err(AppError::Unauthenticated);
        };
        let left = mfa::recovery_codes_left(&txn, user).await?;
        audit::record(
            &txn,
            &Who::user(user),
            "login.second_factor",
            Some(user),
            origin,
            Some(serde_json::json!({
                "method": method, "session": session.id, "recovery_codes_left": left,
            })),
        )
        .await?;
        if method == "recovery_code" {
            self.outbox
                .notice(&txn, Kind::RecoveryCodeUsed, user, &caller.user.email)
                .await?;
        }
        // An account closed for deletion and reopened by the password waited for this step.
        super::delete_account::cancel_deletion(&txn, user, &Who::user(user), origin).await?;
        // The session exists for other services from here (before, it could do nothing).
        crate::webhooks::emit(
            &txn,
            crate::webhooks::EventType::SessionCreated,
            user,
            serde_json::json!({ "session_id": session.id, "aal": 2 }),
        )
        .await?;
        crate::deadline::commit_started();
        txn.commit().await?;
        self.outbox.wake();
        self.failures.succeeded(&key).await;
        Ok(LoggedIn {
            token,
            session,
            user: caller.user.clone().into(),
            mfa_required: false,
        })
    }

    /// A fresh set of recovery codes (the old set stops working). Needs aal2.
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        origin: &Origin,
    ) -> Result<Vec<Zeroizing<String>>, AppError> {
        let keys = self.mfa_keys()?;
        if caller.session.aal < 2 {
            return Err(AppError::Forbidden(
                "This needs a session signed in with the second factor.",
            ));
        }
        let user = caller.user.id;
        let txn = crate::txn::begin_writing(&self.db).await?;
        if !mfa::required(&txn, user).await? {
            return Err(AppError::Forbidden("No second factor is set up."));
        }
        let codes = mfa::new_recovery_codes(&txn, keys, user).await?;
        audit::record(
            &txn,
            &Who::user(user),
            "mfa.recovery_codes_regenerated",
            Some(user),
            origin,
            None,
        )
        .await?;
        txn.commit().await?;
        Ok(codes)
    }

    /// Removes the caller's device and recovery codes. Needs aal2 and the password (field
    /// `password`, code `invalid`, throttled as `changePassword` is).
    pub async fn disable_totp(
        &self,
        caller: &Caller,
        password: Plaintext,
        origin: &Origin,
    ) -> Result<(), AppError> {
        if caller.session.aal < 2 {
            return Err(AppError::Forbidden(
                "This needs a session signed in with the second factor.",
            ));
        }
        let user = caller.user.id;
        self.password_again(caller, password).await?;
        let txn = crate::txn::begin_writing(&self.db).await?;
        mfa::remove(&txn, user).await?;
        audit::record(
            &txn,
            &Who::user(user),
            "mfa.totp_disabled",
            Some(user),
            origin,
            None,
        )
        .await?;
        self.outbox
            .notice(&txn, Kind::SecondFactorRemoved, user, &caller.user.email)
            .await?;
        txn.commit().await?;
        self.outbox.wake();
        Ok(())
    }
}
