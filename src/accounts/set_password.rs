//! `roster changepassword USERNAME`: an operator sets a user's password where the server runs,
//! as Django's `manage.py changepassword`. The password policy applies; every session of the
//! user ends, their reset links stop working, and the change is in the audit log — all in one
//! transaction with the new hash.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use uuid::Uuid;

use super::email_tokens::{self, Purpose};
use super::login::pool_error;
use super::{AccountService, Password};
use crate::audit::{self, Origin, Who};
use crate::entity::user;
use crate::error::AppError;
use crate::password::Plaintext;

impl AccountService {
    /// Sets `user_id`'s password to `new` on `who`'s behalf; answers how many sessions were
    /// live. `BAD_USER_INPUT` on `password` when the policy refuses it; `NOT_FOUND` when the
    /// user is gone.
    pub async fn set_password(
        &self,
        user_id: Uuid,
        new: Plaintext,
        who: &Who,
        origin: &Origin,
    ) -> Result<u64, AppError> {
        let found = user::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
            .ok_or(AppError::NotFound)?;
        let policy = self.policy.clone();
        let (username, email) = (found.username.clone(), found.email.clone());
        let parsed = tokio::task::spawn_blocking(move || {
            Password::parse(new, &policy.password, Some(&username), Some(&email))
        })
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::InvalidInput)?;
        let slot = self.hasher.reserve().map_err(|_| AppError::ServerBusy)?;
        let hash = self
            .hasher
            .hash_reserved(slot, parsed.into_plaintext())
            .await
            .map_err(pool_error)?;
        let txn = self.db.begin().await?;
        let changed = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash))
            .filter(user::Column::Id.eq(user_id))
            .exec(&txn)
            .await?
            .rows_affected;
        if changed == 0 {
            return Err(AppError::NotFound);
        }
        email_tokens::invalidate(&txn, user_id, Purpose::ResetPassword).await?;
        email_tokens::end_email_change(&txn, user_id).await?;
        let ended = self.sessions.revoke_all(&txn, user_id, None).await?;
        audit::record(
            &txn,
            who,
            "user.password_changed",
            Some(user_id),
            origin,
            None,
        )
        .await?;
        crate::webhooks::emit(
            &txn,
            crate::webhooks::EventType::UserPasswordChanged,
            user_id,
            serde_json::json!({ "by_operator": true }),
        )
        .await?;
        crate::webhooks::events::sessions_ended(
            &txn,
            user_id,
            crate::webhooks::events::Ended::All,
            ended,
            "password_changed",
        )
        .await?;
        txn.commit().await?;
        Ok(ended)
    }
}
