//! Django's `has_perm`, on roster's tables: a user's effective permissions are their own and
//! their groups', every permission for an active superuser, none for an inactive user.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DbErr, Statement};

use crate::entity::user;

/// roster's own operations (named in docs/api.md; present in every database).
pub const VIEW_USER: &str = "roster.view_user";
pub const CHANGE_USER: &str = "roster.change_user";
pub const DELETE_USER: &str = "roster.delete_user";
pub const VIEW_AUDITLOG: &str = "roster.view_auditlog";
pub const CHANGE_GROUP: &str = "roster.change_group";
pub const VIEW_WEBHOOK: &str = "roster.view_webhook";
pub const CHANGE_WEBHOOK: &str = "roster.change_webhook";

/// `app_label.codename` of every permission `user` holds.
pub async fn effective(
    db: &impl ConnectionTrait,
    user: &user::Model,
) -> Result<BTreeSet<String>, DbErr> {
    if !user.is_active {
        return Ok(BTreeSet::new());
    }
    let backend = db.get_database_backend();
    let statement = if user.is_superuser {
        Statement::from_string(backend, "SELECT codename FROM permissions")
    } else {
        // `$1` is one parameter on both databases (SQLite reads it as a named one).
        Statement::from_sql_and_values(
            backend,
            "SELECT p.codename FROM permissions p \
             JOIN user_permissions up ON up.permission_id = p.id WHERE up.user_id = $1 \
             UNION SELECT p.codename FROM permissions p \
             JOIN group_permissions gp ON gp.permission_id = p.id \
             JOIN user_groups ug ON ug.group_id = gp.group_id WHERE ug.user_id = $1",
            [user.id.into()],
        )
    };
    let rows = db.query_all_raw(statement).await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()
        .map_err(|e| DbErr::Type(e.to_string()))
}

/// The names of `user_id`'s groups, sorted.
pub async fn groups(db: &impl ConnectionTrait, user_id: uuid::Uuid) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT g.name FROM groups g JOIN user_groups ug ON ug.group_id = g.id \
             WHERE ug.user_id = $1 ORDER BY g.name",
            [user_id.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()
        .map_err(|e| DbErr::Type(e.to_string()))
}

/// `user_id`'s own permissions (not their groups'), sorted.
pub async fn own(db: &impl ConnectionTrait, user_id: uuid::Uuid) -> Result<Vec<String>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT p.codename FROM permissions p JOIN user_permissions up \
             ON up.permission_id = p.id WHERE up.user_id = $1 ORDER BY p.codename",
            [user_id.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()
        .map_err(|e| DbErr::Type(e.to_string()))
}

/// Whether `user` may use the admin API for `permission`: active staff holding it (a
/// superuser holds all), as Django's admin asks `is_staff` and then `has_perm`.
pub fn staff_may(user: &user::Model, held: &BTreeSet<String>, permission: &str) -> bool {
    user.is_active && user.is_staff && (user.is_superuser || held.contains(permission))
}
