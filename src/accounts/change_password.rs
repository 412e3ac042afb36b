//! `changePassword`: the signed-in user replaces their password; other sessions end.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::login::pool_error;
use super::{AccountService, Password, User, codes};
use crate::entity::user;
use crate::error::{AppError, FieldError};
use crate::password::{HashError, Plaintext};
use crate::sessions::Caller;

impl AccountService {
    /// Checks `current` and applies the registration password policy to `new` (similarity
    /// against the user's own username and email); reports both at once as field errors
    /// `currentPassword` and `newPassword`. On success the new hash is stored and every
    /// other session of the user is revoked, in one transaction; the caller's session stays.
    ///
    /// A wrong current password counts as a failed login for the account, so a stolen
    /// session cannot be used to guess the password faster than the login form allows.
    #[tracing::instrument(name = "change_password", skip_all, fields(user_id = %caller.user.id))]
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: Plaintext,
        new: Plaintext,
    ) -> Result<User, AppError> {
        let slot = self.hasher.reserve().map_err(|_| AppError::ServerBusy)?;
        let key = format!("user:{}", caller.user.id);
        self.failures
            .check(&key)
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
            Ok(v) if v.matches => self.failures.reset(&key),
            Ok(_) | Err(HashError::Unverifiable(_)) => {
                self.failures.record_failure(&key);
                errors.push(FieldError::new(
                    "currentPassword",
                    codes::INVALID,
                    "The current password is not correct.",
                ));
            }
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
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .filter(user::Column::Id.eq(caller.user.id))
            .exec(&txn)
            .await?;
        let revoked = self
            .sessions
            .revoke_all(&txn, caller.user.id, Some(caller.session.id))
            .await?;
        txn.commit().await?;
        tracing::info!(other_sessions_revoked = revoked, "password changed");
        Ok(caller.user.clone().into())
    }
}
