//! `sendPasswordReset`: an operator sends a user the password-reset email the self-service
//! `requestPasswordReset` sends (through the outbox, older unused links ended), in the
//! transaction that records it. The operator never sees the link.

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::{Actor, Origin, perms, rules};
use crate::accounts::email_tokens::{self, Purpose};
use crate::audit;
use crate::error::{AppError, FieldError};
use crate::outbox::{Kind, Outbox};

/// Queues a reset email for `target`. Refused: a staff account's or a superuser's unless
/// the actor is a superuser (`FORBIDDEN`); a deactivated user or one without an address
/// (`BAD_USER_INPUT` on `id`: nothing could be sent).
pub async fn send_reset(
    db: &DatabaseConnection,
    outbox: &Outbox,
    actor: &Actor,
    target: Uuid,
    origin: &Origin,
) -> Result<(), AppError> {
    let txn = crate::txn::begin_writing(db).await?;
    let acting = rules::acting(&txn, actor, perms::CHANGE_USER).await?;
    let user = rules::target(&txn, target).await?;
    acting.may_touch(&user)?;
    if !user.is_active || user.email.is_empty() {
        return Err(AppError::InvalidInput(vec![FieldError::new(
            "id",
            crate::accounts::codes::INVALID,
            "This user is deactivated or has no email address.",
        )]));
    }
    email_tokens::invalidate(&txn, user.id, Purpose::ResetPassword).await?;
    outbox
        .enqueue(&txn, Kind::ResetPassword, user.id, &user.email)
        .await?;
    audit::record(
        &txn,
        &actor.who(),
        "user.password_reset_sent",
        Some(user.id),
        origin,
        None,
    )
    .await?;
    crate::deadline::commit_started();
    txn.commit().await?;
    outbox.wake();
    Ok(())
}
