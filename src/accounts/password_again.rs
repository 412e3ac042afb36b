//! The password entered again before a sensitive change of one's own account (a new address,
//! disabling the second factor, deleting the account).

use super::login::pool_error;
use super::{AccountService, codes};
use crate::error::{AppError, FieldError};
use crate::password::{HashError, Plaintext};
use crate::ratelimit::FailureKey;
use crate::sessions::Caller;

impl AccountService {
    /// Checks `password` against the caller's: one hash on the pool, throttled per user as
    /// `changePassword` is (`--login-failure-limit`, on a key strangers' failed logins do not
    /// touch), so a stolen session cannot guess faster than the login form allows. A wrong
    /// one is `BAD_USER_INPUT` on `password`, code `invalid`.
    pub(super) async fn password_again(
        &self,
        caller: &Caller,
        password: Plaintext,
    ) -> Result<(), AppError> {
        let slot = self.hasher.reserve().map_err(|_| AppError::ServerBusy)?;
        let key = FailureKey::PasswordChange(caller.user.id);
        self.failures
            .begin(&key)
            .await
            .map_err(|retry_after| AppError::RateLimited { retry_after })?;
        let verified = self
            .hasher
            .verify_reserved(slot, password, &caller.user.password_hash)
            .await;
        match verified {
            Ok(v) if v.matches => {
                self.failures.succeeded(&key).await;
                Ok(())
            }
            Ok(_) | Err(HashError::Unverifiable(_)) => {
                Err(AppError::InvalidInput(vec![FieldError::new(
                    "password",
                    codes::INVALID,
                    "The password is not right.",
                )]))
            }
            Err(e) => Err(pool_error(e)),
        }
    }
}
