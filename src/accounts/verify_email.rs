//! `verifyEmail` and `resendVerificationEmail`.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::canonical::email_canonical;
use super::email_tokens::{self, Lookup, Purpose};
use super::{AccountService, User, codes};
use crate::entity::user;
use crate::error::{AppError, FieldError};
use crate::outbox::Kind;
use crate::ratelimit::Admission;

/// No stored address is longer (RFC 5321).
const MAX_EMAIL_CHARS: usize = 254;

impl AccountService {
    /// Marks the address of the token's user verified and uses the token up, in one
    /// transaction: of two concurrent uses of one token, one succeeds.
    #[tracing::instrument(name = "verify_email", skip_all)]
    pub async fn verify_email(
        &self,
        raw_token: &str,
        origin: &crate::audit::Origin,
    ) -> Result<User, AppError> {
        let token = match email_tokens::find(&self.db, raw_token, Purpose::VerifyEmail).await? {
            Lookup::Valid(t) => t,
            Lookup::Invalid => return Err(token_error(codes::TOKEN_INVALID)),
            Lookup::Expired => return Err(token_error(codes::TOKEN_EXPIRED)),
        };
        crate::deadline::commit_started();
        let txn = self.db.begin().await?;
        if !email_tokens::consume(&txn, token.id).await? {
            txn.rollback().await?;
            return Err(token_error(codes::TOKEN_INVALID));
        }
        // A deactivated account's link confirms nothing (and says nothing about it).
        let verified = user::Entity::update_many()
            .col_expr(user::Column::EmailVerified, Expr::value(true))
            .filter(user::Column::Id.eq(token.user_id))
            .filter(user::Column::IsActive.eq(true))
            .exec(&txn)
            .await?;
        if verified.rows_affected == 0 {
            txn.rollback().await?;
            return Err(token_error(codes::TOKEN_INVALID));
        }
        crate::audit::record(
            &txn,
            &crate::audit::Who::user(token.user_id),
            "user.email_verified",
            Some(token.user_id),
            origin,
            None,
        )
        .await?;
        crate::webhooks::emit(
            &txn,
            crate::webhooks::EventType::UserEmailVerified,
            token.user_id,
            serde_json::json!({}),
        )
        .await?;
        txn.commit().await?;
        let user = user::Entity::find_by_id(token.user_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| token_error(codes::TOKEN_INVALID))?;
        tracing::info!(user_id = %user.id, "email verified");
        Ok(user.into())
    }

    /// Queues a new verification email for an active, unverified account with this address;
    /// for any other address nothing is sent. The answer is the same either way, and it is
    /// given before the address is even looked up, so neither the answer nor its timing says
    /// whether the address has an account.
    ///
    /// `admit` is the per-client limit (`--mail-rate-limit`); the per-address limit
    /// (`--mail-address-limit`) applies to every address, known or not.
    #[tracing::instrument(name = "resend_verification_email", skip_all)]
    pub async fn resend_verification_email(
        &self,
        raw_email: &str,
        admit: Admission,
    ) -> Result<bool, AppError> {
        let canonical = self
            .admit_mail_request(raw_email, Kind::VerifyEmail, admit)
            .await?;
        let (db, outbox) = (self.db.clone(), self.outbox.clone());
        self.in_background("queueing a verification email", async move {
            let Some(found) = active_user_by_email(&db, &canonical).await? else {
                return Ok(());
            };
            if found.email_verified {
                return Ok(());
            }
            let txn = db.begin().await?;
            outbox
                .enqueue(&txn, Kind::VerifyEmail, found.id, &found.email)
                .await?;
            txn.commit().await?;
            outbox.wake();
            tracing::info!(user_id = %found.id, "verification email queued");
            Ok(())
        });
        Ok(true)
    }

    /// The checks shared by the two mutations that send email on request: the per-client
    /// budget, the address's shape (nothing is looked up for garbage), the per-address
    /// budget (a bucket per kind of email, so asking for one kind never blocks the other).
    /// Returns the canonical address to look up.
    pub(super) async fn admit_mail_request(
        &self,
        raw_email: &str,
        kind: Kind,
        admit: Admission,
    ) -> Result<String, AppError> {
        admit.check().await?;
        let trimmed = raw_email.trim();
        let plausible = !trimmed.is_empty()
            && trimmed.chars().nth(MAX_EMAIL_CHARS).is_none()
            && trimmed.contains('@')
            && !trimmed.chars().any(char::is_control);
        if !plausible {
            return Err(AppError::InvalidInput(vec![FieldError::new(
                "email",
                codes::EMAIL_INVALID,
                "Enter a valid email address.",
            )]));
        }
        let canonical = email_canonical(trimmed);
        self.email
            .address_limiter
            .check(&format!("{}:{canonical}", kind.as_str()))
            .await
            .map_err(|retry_after| AppError::RateLimited { retry_after })?;
        Ok(canonical)
    }

    /// Runs `work` after the request has been answered; a failure is logged (the client was
    /// already told `true`, as it would be for an unknown address). At most
    /// [`super::service::BACKGROUND_SLOTS`] may be pending: past that the request is dropped
    /// (logged), so a flood cannot pile up tasks without bound.
    pub(super) fn in_background(
        &self,
        what: &'static str,
        work: impl Future<Output = Result<(), sea_orm::DbErr>> + Send + 'static,
    ) {
        use tracing::Instrument;
        let Ok(permit) = self.background.clone().try_acquire_owned() else {
            tracing::warn!("too many email requests pending; this one is dropped");
            return;
        };
        tokio::spawn(
            async move {
                let _permit = permit;
                if let Err(e) = work.await {
                    tracing::error!(error = %e, "{what} failed");
                }
            }
            .instrument(tracing::Span::current()),
        );
    }
}

/// The active account whose canonical address this is.
pub(super) async fn active_user_by_email(
    db: &sea_orm::DatabaseConnection,
    canonical: &str,
) -> Result<Option<user::Model>, sea_orm::DbErr> {
    user::Entity::find()
        .filter(user::Column::EmailCanonical.eq(canonical))
        .filter(user::Column::IsActive.eq(true))
        .one(db)
        .await
}

/// A `BAD_USER_INPUT` error on the `token` field.
pub(super) fn token_error(code: &'static str) -> AppError {
    let message = if code == codes::TOKEN_EXPIRED {
        "This link has expired; ask for a new one."
    } else {
        "This link is not valid: it was already used, replaced by a newer one, or mistyped."
    };
    AppError::InvalidInput(vec![FieldError::new("token", code, message)])
}
