//! `deleteAccount`: the signed-in user deletes their own account, with the password entered
//! again (and signed in with the second factor, when they have one). Under
//! `--deletion-grace` the account is closed first (deactivated: every session ends) and
//! deleted when the grace ends, unless its owner signs in before — which reopens it.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, QueryFilter, QuerySelect, Set,
};

use super::AccountService;
use crate::audit::{self, Origin, Who};
use crate::entity::{pending_deletion, user};
use crate::error::AppError;
use crate::outbox::{Kind, Outbox};
use crate::password::Plaintext;
use crate::sessions::Caller;

/// Most accounts [`complete_due_deletions`] deletes in one call (the next call takes the rest).
const DUE_BATCH: u64 = 100;

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
    /// (`FORBIDDEN`: another superuser first). Under `--deletion-grace` the account is closed
    /// instead, and deleted when the grace ends ([`complete_due_deletions`]).
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
        if !self.deletion_grace.is_zero() {
            return self.close_for_deletion(txn, found, origin).await;
        }
        erase(
            &txn,
            &self.outbox,
            &found,
            &Who::user(user_id),
            origin,
            false,
        )
        .await?;
        crate::deadline::commit_started();
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!("account deleted by its owner");
        Ok(true)
    }
}

impl AccountService {
    /// `--deletion-grace`: deactivates the account (its sessions end with it), notes when it
    /// is to be deleted, and tells a verified address how to keep it; all in the deletion's
    /// transaction.
    async fn close_for_deletion(
        &self,
        txn: DatabaseTransaction,
        found: user::Model,
        origin: &Origin,
    ) -> Result<bool, AppError> {
        let now = crate::outbox::now();
        let delete_after = crate::outbox::add(now, self.deletion_grace);
        user::Entity::update_many()
            .col_expr(user::Column::IsActive, Expr::value(false))
            .filter(user::Column::Id.eq(found.id))
            .exec(&txn)
            .await?;
        super::email_tokens::end_email_change(&txn, found.id).await?;
        pending_deletion::ActiveModel {
            user_id: Set(found.id),
            delete_after: Set(delete_after),
            requested_at: Set(now),
            held: Set(false),
        }
        .insert(&txn)
        .await?;
        audit::record(
            &txn,
            &Who::user(found.id),
            "user.deletion_scheduled",
            Some(found.id),
            origin,
            Some(serde_json::json!({ "delete_after": delete_after })),
        )
        .await?;
        crate::webhooks::emit(
            &txn,
            crate::webhooks::EventType::UserDeactivated,
            found.id,
            serde_json::json!({ "deletion_scheduled_for": delete_after }),
        )
        .await?;
        if found.email_verified {
            self.outbox
                .notice(&txn, Kind::AccountDeletionScheduled, found.id, &found.email)
                .await?;
        }
        crate::deadline::commit_started();
        txn.commit().await?;
        self.outbox.wake();
        tracing::info!(%delete_after, "account closed by its owner; deleted when the grace ends");
        Ok(true)
    }

    /// A login's password proved the owner of an account closed under `--deletion-grace`:
    /// the account reopens and the login goes on. Without a second factor the deletion is
    /// cancelled here; with one, the password alone does not undo what password and factor
    /// asked for: the account opens for the login's second step, whose success cancels the
    /// deletion ([`cancel_deletion`]) — otherwise it still happens when the grace ends.
    /// Answers the account as it is then (still inactive when there is nothing to reopen:
    /// deactivated by an operator, held by one, its grace over, or an address that
    /// `--require-verified-email` would refuse anyway).
    pub(super) async fn reopen_if_closed_for_deletion(
        &self,
        found: user::Model,
        origin: &Origin,
    ) -> Result<user::Model, AppError> {
        if self.email.require_verified && !found.email_verified {
            return Ok(found);
        }
        let txn = crate::txn::begin_writing(&self.db).await?;
        let pending = pending_deletion::Entity::find_by_id(found.id)
            .filter(pending_deletion::Column::DeleteAfter.gt(crate::outbox::now()))
            .filter(pending_deletion::Column::Held.eq(false))
            .one(&txn)
            .await?;
        if pending.is_none() {
            txn.rollback().await?;
            return Ok(found);
        }
        user::Entity::update_many()
            .col_expr(user::Column::IsActive, Expr::value(true))
            .filter(user::Column::Id.eq(found.id))
            .exec(&txn)
            .await?;
        if crate::mfa::required(&txn, found.id).await? {
            audit::record(
                &txn,
                &Who::user(found.id),
                "user.reopened_for_second_step",
                Some(found.id),
                origin,
                None,
            )
            .await?;
        } else {
            cancel_deletion(&txn, found.id, &Who::user(found.id), origin).await?;
        }
        txn.commit().await?;
        tracing::info!(user_id = %found.id, "a sign-in reopened an account closed for deletion");
        Ok(user::Model {
            is_active: true,
            ..found
        })
    }
}

/// Cancels `user_id`'s pending deletion inside the caller's transaction (its owner signed
/// in, with the second factor when there is one), recorded and announced; `false` when there
/// was none.
pub(crate) async fn cancel_deletion(
    txn: &impl ConnectionTrait,
    user_id: uuid::Uuid,
    who: &Who,
    origin: &Origin,
) -> Result<bool, DbErr> {
    let cancelled = pending_deletion::Entity::delete_many()
        .filter(pending_deletion::Column::UserId.eq(user_id))
        .filter(pending_deletion::Column::Held.eq(false))
        .exec(txn)
        .await?;
    if cancelled.rows_affected == 0 {
        return Ok(false);
    }
    audit::record(
        txn,
        who,
        "user.deletion_cancelled",
        Some(user_id),
        origin,
        None,
    )
    .await?;
    crate::webhooks::emit(
        txn,
        crate::webhooks::EventType::UserReactivated,
        user_id,
        serde_json::json!({ "deletion_cancelled": true }),
    )
    .await?;
    Ok(true)
}

/// Deletes the accounts whose `--deletion-grace` has ended, each in its own transaction
/// (as `deleteAccount` without a grace would have: goodbye, tombstone, `user.deleted`);
/// answers how many. Run by the server's housekeeping every minute.
pub async fn complete_due_deletions(
    db: &DatabaseConnection,
    outbox: &Outbox,
) -> Result<u64, DbErr> {
    use sea_orm::QueryOrder;
    let now = crate::outbox::now();
    let due = pending_deletion::Entity::find()
        .filter(pending_deletion::Column::DeleteAfter.lte(now))
        .order_by_asc(pending_deletion::Column::DeleteAfter)
        .limit(DUE_BATCH)
        .all(db)
        .await?;
    let mut deleted = 0;
    for pending in due {
        let erased = async {
            let txn = crate::txn::begin_writing(db).await?;
            // The row is claimed by deleting it: of two processes (or a sign-in reopening
            // the account, which deletes it too), one wins, and only the winner erases.
            let claimed = pending_deletion::Entity::delete_many()
                .filter(pending_deletion::Column::UserId.eq(pending.user_id))
                .filter(pending_deletion::Column::DeleteAfter.lte(now))
                .exec(&txn)
                .await?;
            let found = match claimed.rows_affected {
                0 => None,
                _ => user::Entity::find_by_id(pending.user_id).one(&txn).await?,
            };
            let Some(found) = found else {
                txn.rollback().await?;
                return Ok::<_, DbErr>(false);
            };
            erase(
                &txn,
                outbox,
                &found,
                &Who::system(),
                &Origin::default(),
                true,
            )
            .await?;
            txn.commit().await?;
            Ok(true)
        }
        .await;
        match erased {
            Ok(true) => deleted += 1,
            Ok(false) => {}
            // One account that cannot be deleted now does not hold up the others.
            Err(e) => {
                tracing::warn!(user_id = %pending.user_id, error = %e, "a due deletion failed; retried at the next sweep")
            }
        }
    }
    if deleted > 0 {
        outbox.wake();
    }
    Ok(deleted)
}

/// Deletes `found` and everything keyed to it inside `txn` (the foreign keys cascade): a
/// goodbye to a verified address, the Django id kept so no import brings it back,
/// `user.deleted` for the webhooks (written while the row exists: it carries the names) and
/// the audit log.
async fn erase(
    txn: &impl ConnectionTrait,
    outbox: &Outbox,
    found: &user::Model,
    who: &Who,
    origin: &Origin,
    after_grace: bool,
) -> Result<(), DbErr> {
    // Only to an address the account proved it reads: a stranger who registered with
    // someone else's address gets them no email by deleting that account.
    if found.email_verified {
        outbox.farewell(txn, &found.email).await?;
    }
    if let Some(legacy_id) = found.legacy_id {
        crate::tombstones::record(txn, legacy_id).await?;
    }
    let detail = if after_grace {
        serde_json::json!({ "by": "self", "after_grace": true })
    } else {
        serde_json::json!({ "by": "self" })
    };
    crate::webhooks::emit(
        txn,
        crate::webhooks::EventType::UserDeleted,
        found.id,
        detail.clone(),
    )
    .await?;
    user::Entity::delete_by_id(found.id).exec(txn).await?;
    audit::record(
        txn,
        who,
        "user.deleted",
        Some(found.id),
        origin,
        Some(detail),
    )
    .await?;
    Ok(())
}
