//! `setStaff`: a superuser grants or takes away staff and superuser status, recorded in the
//! same transaction.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::{Actor, Origin, perms, rules};
use crate::audit;
use crate::entity::user;
use crate::error::AppError;

/// Sets `target`'s `is_staff` and `is_superuser`. Refused (`FORBIDDEN`): anyone but a
/// superuser (it grants staff, or touches a staff account), a superuser demoting themselves
/// (a lockout: another superuser does it), and demoting the last active staff superuser.
pub async fn set_staff(
    db: &DatabaseConnection,
    actor: &Actor,
    target: Uuid,
    is_staff: bool,
    is_superuser: bool,
    origin: &Origin,
) -> Result<user::Model, AppError> {
    let txn = crate::txn::begin_writing(db).await?;
    rules::serialize(&txn).await?;
    let acting = rules::acting(&txn, actor, perms::CHANGE_USER).await?;
    if !acting.is_superuser() {
        return Err(AppError::Forbidden(
            "Only a superuser may grant or take away staff or superuser status.",
        ));
    }
    let user = rules::target(&txn, target).await?;
    if (user.is_staff, user.is_superuser) == (is_staff, is_superuser) {
        return Ok(user);
    }
    let demoted = !(is_staff && is_superuser);
    if demoted && acting.is(target) {
        return Err(AppError::Forbidden(
            "You cannot take away your own staff or superuser status.",
        ));
    }
    if demoted {
        rules::keeps_a_superuser(&txn, &user, "The last active superuser cannot be demoted.")
            .await?;
    }
    user::Entity::update_many()
        .col_expr(user::Column::IsStaff, Expr::value(is_staff))
        .col_expr(user::Column::IsSuperuser, Expr::value(is_superuser))
        .filter(user::Column::Id.eq(user.id))
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        &actor.who(),
        "user.staff_changed",
        Some(user.id),
        origin,
        Some(serde_json::json!({
            "is_staff": [user.is_staff, is_staff],
            "is_superuser": [user.is_superuser, is_superuser],
        })),
    )
    .await?;
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(user::Model {
        is_staff,
        is_superuser,
        ..user
    })
}
