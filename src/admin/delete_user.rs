//! `deleteUser`: removes a user and everything keyed to them (sessions, email links, queued
//! emails, group and permission links: the foreign keys cascade) in one transaction. The
//! audit log keeps its entries about the user, by id only; the username and address become
//! free again.

use sea_orm::{DatabaseConnection, EntityTrait};
use uuid::Uuid;

use super::{Actor, Origin, perms, rules};
use crate::audit;
use crate::entity::user;
use crate::error::AppError;

/// Deletes `target`. Refused (`FORBIDDEN`): oneself, a staff account or a superuser unless
/// the actor is a superuser, and the last active staff superuser.
pub async fn delete_user(
    db: &DatabaseConnection,
    actor: &Actor,
    target: Uuid,
    origin: &Origin,
) -> Result<(), AppError> {
    let txn = crate::txn::begin_writing(db).await?;
    rules::serialize(&txn).await?;
    let acting = rules::acting(&txn, actor, perms::DELETE_USER).await?;
    if acting.is(target) {
        return Err(AppError::Forbidden(
            "You cannot delete your own account here.",
        ));
    }
    let user = rules::target(&txn, target).await?;
    acting.may_touch(&user)?;
    rules::keeps_a_superuser(&txn, &user, "The last active superuser cannot be deleted.").await?;
    if let Some(legacy_id) = user.legacy_id {
        crate::tombstones::record(&txn, legacy_id).await?;
    }
    // Written while the row exists: the event carries the user's names.
    crate::webhooks::emit(
        &txn,
        crate::webhooks::EventType::UserDeleted,
        user.id,
        serde_json::json!({ "by": "operator" }),
    )
    .await?;
    user::Entity::delete_by_id(user.id).exec(&txn).await?;
    audit::record(
        &txn,
        &actor.who(),
        "user.deleted",
        Some(user.id),
        origin,
        None,
    )
    .await?;
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(())
}
