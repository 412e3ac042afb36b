//! `deleteAccount`: the signed-in user deletes their own account, with the password entered
//! again (and signed in with the second factor, when they have one).

use sea_orm::EntityTrait;

use super::AccountService;
use crate::audit::{self, Origin, Who};
use crate::entity::user;
use crate::error::AppError;
use crate::password::Plaintext;
use crate::sessions::Caller;

impl AccountService {
    /// Deletes the caller's account and everything keyed to it (sessions, email links,
    /// queued emails, factors, group and permission links: the foreign keys cascade), in one
    /// transaction that also queues a goodbye to the account's address (when verified) and writes
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
        self.password_again(caller, password).await?;

        let txn = crate::txn::begin_writing(&self.db).await?;
        // In turn with the admin changes that could take the other superusers away.
        crate::superusers::serialize(&txn).await?;
        // Read again inside the transaction: the row as it is now decides.
        let Some(found) = user::Entity::find_by_id(user_id).one(&txn).await? else {
            return Err(AppError::Unauthenticated);
        };
        crate::superusers::keeps_a_superuser(
            &txn,
            &found,
            "The last active superuser cannot be deleted: make another one first.",
        )
        .await?;
        // Only to an address the account proved it reads: a stranger who registered with
        // someone else's address gets them no email by deleting that account.
        if found.email_verified {
            self.outbox.farewell(&txn, &found.email).await?;
        }
        if let Some(legacy_id) = found.legacy_id {
            crate::tombstones::record(&txn, legacy_id).await?;
        }
        // Written while the row exists: the event carries the user's names.
        crate::webhooks::emit(
            &txn,
            crate::webhooks::EventType::UserDeleted,
            user_id,
            serde_json::json!({ "by": "self" }),
        )
        .await?;
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
