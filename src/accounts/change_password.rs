//! `changePassword`: the signed-in user replaces their password; other sessions end.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::login::pool_error;
use super::{AccountService, Password, User, codes};
use crate::entity::{session, user};
use crate::error::{AppError, FieldError};
use crate::password::{HashError, Plaintext};
use crate::ratelimit::{Admission, FailureKey};
use crate::sessions::Caller;

impl AccountService {
    /// Checks `current` and applies the registration password policy to `new` (similarity
    /// against the user's own username and email); reports both at once as field errors
    /// `currentPassword` and `newPassword`. On success the new hash is stored and every
    /// other session of the user is revoked, in one transaction; the caller's session stays.
    ///
    /// Attempts are throttled like logins (`--login-failure-limit`, on a key of the user's
    /// own that strangers' failed logins do not touch), so a stolen session cannot guess the
    /// current password faster than the login form allows; `admit` is the caller's per-client
    /// budget (`--login-rate-limit`), since each attempt costs two hashes.
    #[tracing::instrument(name = "change_password", skip_all, fields(user_id = %caller.user.id))]
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: Plaintext,
        new: Plaintext,
        admit: Admission,
        origin: &crate::audit::Origin,
    ) -> Result<User, AppError> {
        let slot = self.hasher.reserve().map_err(|_| AppError::ServerBusy)?;
        admit.check().await?;
        let key = FailureKey::PasswordChange(caller.user.id);
        self.failures
            .begin(&key)
            .await
            .map_err(|retry_after| AppError::RateLimited { retry_after })?;

        let policy = self.policy.clone();
        let (username, email) = (caller.user.username.clone(), caller.user.email.clone());
        let parsed = tokio::task::spawn_blocking(move || {
            Password::parse(new, &policy.password, Some(&username), Some(&email))
        })
        .await
        .map_err(AppError::internal)?;

        let mut errors = Vec::new();
        let verified = self
            .hasher
            .verify_reserved(slot, current, &caller.user.password_hash)
            .await;
        match verified {
            Ok(v) if v.matches => {}
            Ok(_) | Err(HashError::Unverifiable(_)) => errors.push(wrong_current()),
            Err(e) => return Err(pool_error(e)),
        }
        let new = match parsed {
            Ok(p) if errors.is_empty() => p,
            Ok(_) => return Err(AppError::InvalidInput(errors)),
            Err(policy_errors) => {
                errors.extend(policy_errors.into_iter().map(|e| FieldError {
                    field: "newPassword",
                    ..e
                }));
                return Err(AppError::InvalidInput(errors));
            }
        };

        let hash = self
            .hasher
            .hash(new.into_plaintext())
            .await
            .map_err(pool_error)?;
        crate::deadline::commit_started();
        let txn = self.db.begin().await?;
        // The caller's session must still exist, and the stored hash still be the one just
        // verified: a change racing a logout-everywhere or another change must not win after
        // it. Touching the session row locks it on PostgreSQL, so a concurrent revocation
        // waits for this transaction or makes it find nothing.
        let live = session::Entity::update_many()
            .col_expr(
                session::Column::LastSeenAt,
                Expr::col(session::Column::LastSeenAt),
            )
            .filter(session::Column::Id.eq(caller.session.id))
            .exec(&txn)
            .await?;
        if live.rows_affected == 0 {
            txn.rollback().await?;
            return Err(AppError::Unauthenticated);
        }
        let changed = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .filter(user::Column::Id.eq(caller.user.id))
            .filter(user::Column::PasswordHash.eq(&caller.user.password_hash))
            .exec(&txn)
            .await?;
        if changed.rows_affected == 0 {
            txn.rollback().await?;
            return Err(AppError::InvalidInput(vec![wrong_current()]));
        }
        let revoked = self
            .sessions
            .revoke_all(&txn, caller.user.id, Some(caller.session.id))
            .await?;
        // A reset link mailed before the change must not undo it.
        super::email_tokens::invalidate(
            &txn,
            caller.user.id,
            super::email_tokens::Purpose::ResetPassword,
        )
        .await?;
        // Nor a change of address asked for with the old password (a phished one).
        super::email_tokens::end_email_change(&txn, caller.user.id).await?;
        crate::audit::record(
            &txn,
            &crate::audit::Who::user(caller.user.id),
            "user.password_changed",
            Some(caller.user.id),
            origin,
            Some(serde_json::json!({ "other_sessions_ended": revoked })),
        )
        .await?;
        crate::webhooks::emit(
            &txn,
            crate::webhooks::EventType::UserPasswordChanged,
            caller.user.id,
            serde_json::json!({}),
        )
        .await?;
        crate::webhooks::events::sessions_ended(
            &txn,
            caller.user.id,
            crate::webhooks::events::Ended::AllBut(caller.session.id),
            revoked,
            "password_changed",
        )
        .await?;
        txn.commit().await?;
        self.failures.succeeded(&key).await;
        tracing::info!(other_sessions_revoked = revoked, "password changed");
        Ok(caller.user.clone().into())
    }
}

fn wrong_current() -> FieldError {
    FieldError::new(
        "currentPassword",
        codes::INVALID,
        "The current password is not correct.",
    )
}
