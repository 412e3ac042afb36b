//! `deactivateUser` / `reactivateUser` (and `roster users deactivate|reactivate`): one
//! transaction that checks the privilege rules against the rows as they are, flips
//! `is_active`, and records the change. Deactivation ends every session and email link of the
//! user in the same statement (the `users` trigger of migration `m20261207_000001`), so the
//! user's next request is anonymous.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter,
};
use uuid::Uuid;

use super::{Actor, Origin, audit};
use crate::entity::user;
use crate::error::AppError;

/// Sets `target`'s `is_active` to `active` on `actor`'s behalf. Refused (`FORBIDDEN`): a user
/// deactivating themselves (a lockout), anyone but a superuser changing a staff account or a
/// superuser, an acting user who is no longer active staff with `roster.change_user` (read
/// again inside the transaction, not from the start of the request), and the deactivation of
/// the last active staff superuser (by anyone, commands included).
pub async fn set_active(
    db: &DatabaseConnection,
    actor: &Actor,
    target: Uuid,
    active: bool,
    origin: &Origin,
) -> Result<user::Model, AppError> {
    let txn = crate::txn::begin_writing(db).await?;
    let postgres = txn.get_database_backend() == DbBackend::Postgres;
    if postgres {
        // One change of activity at a time: two operators deactivating the last two
        // superusers (each other) take turns instead of deadlocking on the rows.
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7275890112)")
            .await?;
    }
    if let Actor::User(me) = actor {
        let me = user::Entity::find_by_id(me.id)
            .one(&txn)
            .await?
            .ok_or(AppError::Forbidden("Your account no longer exists."))?;
        let held = super::perms::effective(&txn, &me).await?;
        if !super::perms::staff_may(&me, &held, super::perms::CHANGE_USER) {
            return Err(AppError::Forbidden(
                "This needs a staff account with the right permission.",
            ));
        }
        if me.id == target && !active {
            return Err(AppError::Forbidden(
                "You cannot deactivate your own account.",
            ));
        }
        let user = user::Entity::find_by_id(target)
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound)?;
        if (user.is_superuser || user.is_staff) && !me.is_superuser {
            return Err(AppError::Forbidden(
                "Only a superuser may change a staff account or a superuser.",
            ));
        }
    }
    let user = user::Entity::find_by_id(target)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound)?;
    if user.is_active == active {
        return Ok(user);
    }
    if !active && user.is_superuser && user.is_staff {
        // The last one who could still run the admin API as a superuser stays.
        let others = user::Entity::find()
            .filter(user::Column::IsSuperuser.eq(true))
            .filter(user::Column::IsStaff.eq(true))
            .filter(user::Column::IsActive.eq(true))
            .filter(user::Column::Id.ne(user.id))
            .count(&txn)
            .await?;
        if others == 0 {
            return Err(AppError::Forbidden(
                "The last active superuser cannot be deactivated.",
            ));
        }
    }
    user::Entity::update_many()
        .col_expr(user::Column::IsActive, Expr::value(active))
        .filter(user::Column::Id.eq(user.id))
        .exec(&txn)
        .await?;
    let action = if active {
        "user.reactivated"
    } else {
        "user.deactivated"
    };
    audit::record(&txn, actor, action, Some(user.id), origin, None).await?;
    // Answered even past the request deadline: never "timed out" about a done change.
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(user::Model {
        is_active: active,
        ..user
    })
}
