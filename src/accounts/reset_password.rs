//! `requestPasswordReset` and `resetPassword`.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::email_tokens::{self, Lookup, Purpose};
use super::login::pool_error;
use super::verify_email::{active_user_by_email, token_error};
use super::{AccountService, Password, codes};
use crate::entity::user;
use crate::error::{AppError, FieldError};
use crate::outbox::Kind;
use crate::password::Plaintext;
use crate::ratelimit::{Admission, FailureKey};

impl AccountService {
    /// Queues a password-reset email for the active account with this address and ends its
    /// older unused reset links, in one transaction; for any other address nothing is sent.
    /// Answered `true` before the lookup, as [`AccountService::resend_verification_email`].
    #[tracing::instrument(name = "request_password_reset", skip_all)]
    pub async fn request_password_reset(
        &self,
        raw_email: &str,
        admit: Admission,
    ) -> Result<bool, AppError> {
        let canonical = self
            .admit_mail_request(raw_email, Kind::ResetPassword, admit)
            .await?;
        let (db, outbox) = (self.db.clone(), self.outbox.clone());
        self.in_background("queueing a password-reset email", async move {
            let Some(found) = active_user_by_email(&db, &canonical).await? else {
                return Ok(());
            };
            let txn = db.begin().await?;
            email_tokens::invalidate(&txn, found.id, Purpose::ResetPassword).await?;
            outbox
                .enqueue(&txn, Kind::ResetPassword, found.id, &found.email)
                .await?;
            txn.commit().await?;
            outbox.wake();
            tracing::info!(user_id = %found.id, "password-reset email queued");
            Ok(())
        });
        Ok(true)
    }

    /// Sets a new password with a reset token. The registration policy applies to the new
    /// password (a refusal leaves the token usable); on success, in one transaction, the
    /// token is used up, the hash replaced, the address marked verified (the user read the
    /// email), every session of the user ended, and the other reset links invalidated.
    ///
    /// `admit` is the per-client budget (`--login-rate-limit`: this hashes, as a login does),
    /// spent once a hash-queue slot is reserved.
    #[tracing::instrument(name = "reset_password", skip_all)]
    pub async fn reset_password(
        &self,
        raw_token: &str,
        new: Plaintext,
        admit: Admission,
        origin: &crate::audit::Origin,
    ) -> Result<bool, AppError> {
        let slot = self.hasher.reserve().map_err(|_| AppError::ServerBusy)?;
        admit.check().await?;
        let token = match email_tokens::find(&self.db, raw_token, Purpose::ResetPassword).await? {
            Lookup::Valid(t) => t,
            Lookup::Invalid => return Err(token_error(codes::TOKEN_INVALID)),
            Lookup::Expired => return Err(token_error(codes::TOKEN_EXPIRED)),
        };
        let found = user::Entity::find_by_id(token.user_id)
            .one(&self.db)
            .await?
            .filter(|u| u.is_active)
            .ok_or_else(|| token_error(codes::TOKEN_INVALID))?;

        let policy = self.policy.clone();
        let (username, email) = (found.username.clone(), found.email.clone());
        let parsed = tokio::task::spawn_blocking(move || {
            Password::parse(new, &policy.password, Some(&username), Some(&email))
        })
        .await
        .map_err(AppError::internal)?
        .map_err(|errors| {
            AppError::InvalidInput(
                errors
                    .into_iter()
                    .map(|e| FieldError {
                        field: "newPassword",
                        ..e
                    })
                    .collect(),
            )
        })?;
        let hash = self
            .hasher
            .hash_reserved(slot, parsed.into_plaintext())
            .await
            .map_err(pool_error)?;

        crate::deadline::commit_started();
        let txn = self.db.begin().await?;
        if !email_tokens::consume(&txn, token.id).await? {
            txn.rollback().await?;
            return Err(token_error(codes::TOKEN_INVALID));
        }
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .col_expr(user::Column::EmailVerified, Expr::value(true))
            .filter(user::Column::Id.eq(found.id))
            .exec(&txn)
            .await?;
        email_tokens::invalidate(&txn, found.id, Purpose::ResetPassword).await?;
        // A change of address asked for with the old password dies with it.
        email_tokens::end_email_change(&txn, found.id).await?;
        let revoked = self.sessions.revoke_all(&txn, found.id, None).await?;
        crate::audit::record(
            &txn,
            &crate::audit::Who::user(found.id),
            "user.password_reset",
            Some(found.id),
            origin,
            Some(serde_json::json!({ "sessions_ended": revoked })),
        )
        .await?;
        crate::webhooks::emit(
            &txn,
            crate::webhooks::EventType::UserPasswordReset,
            found.id,
            serde_json::json!({}),
        )
        .await?;
        crate::webhooks::events::sessions_ended(
            &txn,
            found.id,
            crate::webhooks::events::Ended::All,
            revoked,
            "password_reset",
        )
        .await?;
        txn.commit().await?;
        // The owner proved control of the address: earlier failed logins no longer count.
        self.failures
            .succeeded(&FailureKey::Account(found.id))
            .await;
        tracing::info!(user_id = %found.id, sessions_revoked = revoked, "password reset");
        Ok(true)
    }
}
