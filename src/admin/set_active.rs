//! `deactivateUser` / `reactivateUser` (and `roster users deactivate|reactivate`): one
//! transaction that checks the privilege rules against the rows as they are, flips
//! `is_active`, and records the change. Deactivation ends every session and email link of the
//! user in the same statement (the `users` trigger of migration `m20261207_000001`), so the
//! user's next request is anonymous.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::{Actor, Origin, perms, rules};
use crate::audit;
use crate::entity::user;
use crate::error::AppError;

/// Sets `target`'s `is_active` to `active` on `actor`'s behalf. Refused (`FORBIDDEN`): a user
/// deactivating themselves (a lockout), anyone but a superuser changing a staff account or a
/// superuser, an acting user who is no longer active staff with `roster.change_user`, and the
/// deactivation of the last active staff superuser (by anyone, commands included).
pub async fn set_active(
    db: &DatabaseConnection,
    actor: &Actor,
    target: Uuid,
    active: bool,
    origin: &Origin,
) -> Result<user::Model, AppError> {
    let txn = crate::txn::begin_writing(db).await?;
    rules::serialize(&txn).await?;
    let acting = rules::acting(&txn, actor, perms::CHANGE_USER).await?;
    if acting.is(target) && !active {
        return Err(AppError::Forbidden(
            "You cannot deactivate your own account.",
        ));
    }
    let user = rules::target(&txn, target).await?;
    acting.may_touch(&user)?;
    let closed = crate::entity::pending_deletion::Entity::find_by_id(user.id)
        .one(&txn)
        .await?;
    if active && closed.is_some() {
        // The owner asked for the deletion; an operator does not overrule it.
        return Err(AppError::Forbidden(
            "This account is closed for deletion at its owner's request: only its owner can reopen it, by signing in.",
        ));
    }
    if user.is_active == active {
        if let Some(closed) = closed.filter(|c| !c.held) {
            // Deactivating a closed account holds it closed: its owner can no longer reopen
            // it, and it is deleted when the grace ends.
            crate::entity::pending_deletion::Entity::update_many()
                .col_expr(
                    crate::entity::pending_deletion::Column::Held,
                    Expr::value(true),
                )
                .filter(crate::entity::pending_deletion::Column::UserId.eq(closed.user_id))
                .exec(&txn)
                .await?;
            audit::record(
                &txn,
                &actor.who(),
                "user.deletion_held",
                Some(user.id),
                origin,
                None,
            )
            .await?;
            crate::deadline::commit_started();
            txn.commit().await?;
        }
        return Ok(user);
    }
    if !active {
        rules::keeps_a_superuser(
            &txn,
            &user,
            "The last active superuser cannot be deactivated.",
        )
        .await?;
    }
    user::Entity::update_many()
        .col_expr(user::Column::IsActive, Expr::value(active))
        .filter(user::Column::Id.eq(user.id))
        .exec(&txn)
        .await?;
    if !active {
        // A change of address pending at deactivation must not complete after a reactivation.
        crate::accounts::email_tokens::end_email_change(&txn, user.id).await?;
    }
    let action = if active {
        "user.reactivated"
    } else {
        "user.deactivated"
    };
    audit::record(&txn, &actor.who(), action, Some(user.id), origin, None).await?;
    if user.is_active != active {
        let event = if active {
            crate::webhooks::EventType::UserReactivated
        } else {
            crate::webhooks::EventType::UserDeactivated
        };
        crate::webhooks::emit(&txn, event, user.id, serde_json::json!({})).await?;
    }
    // Answered even past the request deadline: never "timed out" about a done change.
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(user::Model {
        is_active: active,
        ..user
    })
}
