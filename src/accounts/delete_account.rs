//! `deleteAccount`: the signed-in user deletes their own account, with the password entered
//! again (and signed in with the second factor, when they have one).

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::login::pool_error;
use super::{AccountService, codes};
use crate::audit::{self, Origin, Who};
use crate::entity::user;
use crate::error::{AppError, FieldError};
use crate::password::{HashError, Plaintext};
use crate::ratelimit::FailureKey;
use crate::sessions::Caller;

impl AccountService {
    /// Deletes the caller's account and everything keyed to it (sessions, email links,
    /// queued emails, factors, group and permission links: the foreign keys cascade), in one
    /// transaction that also queues a goodbye to the account's address and writes
    /// `user.deleted` to the audit log, whose entries about the user stay, by id only. The
    /// username and the address become free again.
    ///
    /// The password must be entered again (field `password`, code `invalid`; throttled as
    /// `changePassword` is); a user with a second factor must be signed in with it
    /// (`FORBIDDEN` otherwise); the last active superuser cannot delete themselves
    /// (`FORBIDDEN`: another superuser first).
    #[tracing::instrument(name = "delete_account", skip_all, fields(user_id = %caller.user.id))]
    pub async fn delete_account(
        &self,
        caller: &Caller,
        password: Plaintext,
        origin: &Origin,
    ) -> Result<bool, AppError> {
        let user_id = caller.user.id;
        if caller.session.aal < 2 && crate::mfa::required(&self.db, user_id).await? {
            return Err(AppError::Forbidden(
                "This needs a session signed in with the second factor.",
            ));
        }
        let slot = self.hasher.reserve().map_err(|_| AppError::ServerBusy)?;
        let key = FailureKey::PasswordChange(user_id);
        self.failures
            .begin(&key)
            .await
            .map_err(|retry_after| AppError::RateLimited { retry_after })?;
        let verified = self
            .hasher
            .verify_reserved(slot, password, &caller.user.password_hash)
            .await;
        match verified {
            Ok(v) if v.matches => {}
            Ok(_) | Err(HashError::Unverifiable(_)) => {
                return Err(AppError::InvalidInput(vec![FieldError::new(
                    "password",
                    codes::INVALID,
                    "The password is not right.",
                )]));
            }
            Err(e) => return Err(pool_error(e)),
        }
        self.failures.succeeded(&key).await;

        let txn = crate::txn::begin_writing(&self.db).await?;
        // Read again inside the transaction: the row as it is now decides.
        let Some(found) = user::Entity::find_by_id(user_id).one(&txn).await? else {
            return Err(AppError::Unauthenticated);
        };
        if found.is_superuser && found.is_active {
            let others = user::Entity::find()
                .filter(user::Column::IsSuperuser.eq(true))
                .filter(user::Column::IsActive.eq(true))
                .filter(user::Column::Id.ne(user_id))
                .count(&txn)
                .await?;
            if others == 0 {
                return Err(AppError::Forbidden(
                    "The last active superuser cannot be deleted: make another one first.",
                ));
            }
        }
        self.outbox.farewell(&txn, &found.email).await?;
        user::Entity::delete_by_id(user_id).exec(&txn).await?;
        audit::record(
            &txn,
            &Who::user(user_id),
            "user.deleted",
            Some(user_id),
            origin,
            Some(serde_json::json!({ "by": "self" })),
        )
        .await?;
        crate::deadline::commit_started();
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!("account deleted by its owner");
        Ok(true)
    }
}
