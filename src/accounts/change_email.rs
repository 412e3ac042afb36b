//! `requestEmailChange` and `confirmEmailChange`: a signed-in user moves their account to a
//! new address. The account keeps its old address (login, reset, uniqueness) until the new one
//! is confirmed from the link sent to it; the old address is told at once.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, SqlErr, Statement};
use uuid::Uuid;

use super::email_tokens::{self, Lookup, Purpose};
use super::verify_email::token_error;
use super::{AccountService, Email, User, codes};
use crate::audit::{self, Origin, Who};
use crate::entity::user;
use crate::error::{AppError, FieldError};
use crate::outbox::Kind;
use crate::password::Plaintext;
use crate::sessions::Caller;

/// The account holding `canonical` as a login name (an email or a username), if any.
async fn holder(conn: &impl ConnectionTrait, canonical: &str) -> Result<Option<Uuid>, DbErr> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            format!(
                "SELECT user_id FROM {} WHERE name = $1",
                migration::m20261207_000002_create_login_names::TABLE
            ),
            [canonical.into()],
        ))
        .await?;
    row.map(|r| r.try_get_by_index::<Uuid>(0)).transpose()
}

impl AccountService {
    /// Asks to move the caller's account to `new_email`, with the password re-entered
    /// (field `password`, code `invalid`; throttled as `changePassword` is). The answer is
    /// `true` whether or not the address is free, and the same emails go out either way but
    /// one: a free address gets a confirmation link (`--email-change-ttl`; a newer request
    /// ends older links), an address another account holds gets a notice instead, and the
    /// account's current address is told in both cases. Limited per address as the other
    /// emails are (`--mail-address-limit`).
    #[tracing::instrument(name = "request_email_change", skip_all, fields(user_id = %caller.user.id))]
    pub async fn request_email_change(
        &self,
        caller: &Caller,
        new_email: &str,
        password: Plaintext,
        origin: &Origin,
    ) -> Result<bool, AppError> {
        let parsed = Email::parse(new_email).map_err(|errors| {
            AppError::InvalidInput(
                errors
                    .into_iter()
                    .map(|e| FieldError {
                        field: "newEmail",
                        ..e
                    })
                    .collect(),
            )
        });
        // Both problems at once: a bad address and a wrong password.
        let mut errors = match &parsed {
            Err(AppError::InvalidInput(errors)) => errors.clone(),
            _ => Vec::new(),
        };
        match self.password_again(caller, password).await {
            Ok(()) => {}
            Err(AppError::InvalidInput(wrong)) => errors.extend(wrong),
            Err(e) => return Err(e),
        }
        let email = match parsed {
            Ok(email) if errors.is_empty() => email,
            _ => return Err(AppError::InvalidInput(errors)),
        };
        let user_id = caller.user.id;
        if email.canonical() == caller.user.email_canonical {
            return Err(AppError::InvalidInput(vec![FieldError::new(
                "newEmail",
                codes::INVALID,
                "This is the account's address already.",
            )]));
        }
        self.email
            .address_limiter
            .check(&format!(
                "{}:{}",
                Kind::ChangeEmail.as_str(),
                email.canonical()
            ))
            .await
            .map_err(|retry_after| AppError::RateLimited { retry_after })?;

        let txn = crate::txn::begin_writing(&self.db).await?;
        // A newer request ends the older ones, whatever order their emails go out in.
        email_tokens::end_email_change(&txn, user_id).await?;
        match holder(&txn, email.canonical()).await? {
            Some(owner) if owner != user_id => {
                // Held by another account: its owner hears of it when it is that account's
                // address (a username that looks like an address reaches no inbox).
                if let Some(found) = user::Entity::find_by_id(owner).one(&txn).await?
                    && found.email_canonical == email.canonical()
                {
                    self.outbox
                        .notice(&txn, Kind::EmailInUse, found.id, &found.email)
                        .await?;
                }
            }
            _ => {
                self.outbox
                    .enqueue(&txn, Kind::ChangeEmail, user_id, email.as_str())
                    .await?;
            }
        }
        self.outbox
            .notice(
                &txn,
                Kind::EmailChangeRequested,
                user_id,
                &caller.user.email,
            )
            .await?;
        audit::record(
            &txn,
            &Who::user(user_id),
            "user.email_change_requested",
            Some(user_id),
            origin,
            None,
        )
        .await?;
        crate::deadline::commit_started();
        txn.commit().await?;
        self.outbox.wake();
        Ok(true)
    }

    /// Makes the token's new address the account's (verified), uses the token up and ends
    /// every session of the user, in one transaction. The address must still be free
    /// (checked by the database's unique index, so two confirmations racing for one address
    /// cannot both win): otherwise `BAD_USER_INPUT` on `token`, code `taken`. Links mailed to
    /// the old address (confirmation, reset) stop working.
    #[tracing::instrument(name = "confirm_email_change", skip_all)]
    pub async fn confirm_email_change(
        &self,
        raw_token: &str,
        origin: &Origin,
    ) -> Result<User, AppError> {
        let token = match email_tokens::find(&self.db, raw_token, Purpose::ChangeEmail).await? {
            Lookup::Valid(t) => t,
            Lookup::Invalid => return Err(token_error(codes::TOKEN_INVALID)),
            Lookup::Expired => return Err(token_error(codes::TOKEN_EXPIRED)),
        };
        let Some(address) = token.new_email.clone() else {
            return Err(token_error(codes::TOKEN_INVALID));
        };
        // Stored by roster from a parsed address; parsed again for its canonical form.
        let email = Email::parse(&address).map_err(|_| token_error(codes::TOKEN_INVALID))?;
        let txn = crate::txn::begin_writing(&self.db).await?;
        // The link works only while the email that carried it stands (a password change or a
        // newer request cancels it) and only once.
        if !email_tokens::carrier_stands(&txn, token.outbox_id).await?
            || !email_tokens::consume(&txn, token.id).await?
        {
            return Err(token_error(codes::TOKEN_INVALID));
        }
        let Some(before) = user::Entity::find_by_id(token.user_id)
            .filter(user::Column::IsActive.eq(true))
            .one(&txn)
            .await?
        else {
            // A deactivated account's link changes nothing (and says nothing about it).
            return Err(token_error(codes::TOKEN_INVALID));
        };
        let changed = user::Entity::update_many()
            .col_expr(user::Column::Email, Expr::value(email.as_str()))
            .col_expr(user::Column::EmailCanonical, Expr::value(email.canonical()))
            .col_expr(user::Column::EmailVerified, Expr::value(true))
            .filter(user::Column::Id.eq(token.user_id))
            .filter(user::Column::IsActive.eq(true))
            .exec(&txn)
            .await;
        let changed = match changed {
            Ok(done) => done.rows_affected,
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Err(AppError::InvalidInput(vec![FieldError::new(
                    "token",
                    codes::TAKEN,
                    "This address belongs to another account now.",
                )]));
            }
            Err(e) => return Err(e.into()),
        };
        if changed == 0 {
            return Err(token_error(codes::TOKEN_INVALID));
        }
        // Links mailed to the old address, and any other pending change, end here.
        for purpose in [Purpose::VerifyEmail, Purpose::ResetPassword] {
            email_tokens::invalidate(&txn, token.user_id, purpose).await?;
        }
        email_tokens::end_email_change(&txn, token.user_id).await?;
        let ended = self.sessions.revoke_all(&txn, token.user_id, None).await?;
        // The old address hears that it no longer has the account.
        self.outbox
            .notice(&txn, Kind::EmailChanged, token.user_id, &before.email)
            .await?;
        audit::record(
            &txn,
            &Who::user(token.user_id),
            "user.email_changed",
            Some(token.user_id),
            origin,
            Some(serde_json::json!({ "sessions_ended": ended })),
        )
        .await?;
        crate::webhooks::emit(
            &txn,
            crate::webhooks::EventType::UserEmailChanged,
            token.user_id,
            serde_json::json!({ "previous_email": before.email }),
        )
        .await?;
        crate::webhooks::events::sessions_ended(
            &txn,
            token.user_id,
            crate::webhooks::events::Ended::All,
            ended,
            "email_changed",
        )
        .await?;
        crate::deadline::commit_started();
        txn.commit().await?;
        self.outbox.wake();
        let user = user::Entity::find_by_id(token.user_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| token_error(codes::TOKEN_INVALID))?;
        tracing::info!(user_id = %user.id, sessions_ended = ended, "email changed");
        Ok(user.into())
    }
}
