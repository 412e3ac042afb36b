//! `deactivateUser` / `reactivateUser` (and `roster users deactivate|reactivate`): one
//! transaction that checks the privilege rules against the rows as they are, flips
//! `is_active`, and records the change. Deactivation ends every session and email link of the
//! user in the same statement (the `users` trigger of migration `m20261207_000001`), so the
//! user's next request is anonymous.

use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::{Actor, Origin, audit};
use crate::entity::user;
use crate::error::AppError;

/// Sets `target`'s `is_active` to `active` on `actor`'s behalf. Refused (`FORBIDDEN`): a user
/// deactivating themselves (a lockout), anyone but a superuser changing a superuser, and the
/// deactivation of the last active superuser (by anyone, commands included).
pub async fn set_active(
    db: &DatabaseConnection,
    actor: &Actor,
    target: Uuid,
    active: bool,
    origin: &Origin,
) -> Result<user::Model, AppError> {
    let txn = db.begin().await?;
    let mut find = user::Entity::find_by_id(target);
    if txn.get_database_backend() == DbBackend::Postgres {
        // The rows the rules read stay as read until the commit.
        find = find.lock(LockType::Update);
    }
    let user = find.one(&txn).await?.ok_or(AppError::NotFound)?;
    if let Actor::User(me) = actor {
        if me.id == user.id && !active {
            return Err(AppError::Forbidden(
                "You cannot deactivate your own account.",
            ));
        }
        if user.is_superuser && !me.is_superuser {
            return Err(AppError::Forbidden(
                "Only a superuser may change a superuser.",
            ));
        }
    }
    if user.is_active == active {
        return Ok(user);
    }
    if !active && user.is_superuser {
        let mut others = user::Entity::find()
            .filter(user::Column::IsSuperuser.eq(true))
            .filter(user::Column::IsActive.eq(true))
            .filter(user::Column::Id.ne(user.id));
        if txn.get_database_backend() == DbBackend::Postgres {
            // Two operators deactivating the last two superusers at once: one waits.
            others = others.lock(LockType::Update);
        }
        if others.count(&txn).await? == 0 {
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
