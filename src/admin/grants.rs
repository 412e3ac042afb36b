//! `setUserPermissions` and `setUserGroups`: replace a user's own permissions or groups, in
//! one transaction with the privilege rules and the audit entry. A non-superuser may change
//! only what it holds: every permission added or taken away (directly, or as a group's) must
//! be one of its own.

use std::collections::BTreeMap;

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::links::{change, distinct, group_permissions, pairs, relink, resolve};
use super::{Actor, Origin, perms, rules};
use crate::audit;
use crate::error::AppError;

/// Sets `target`'s own permissions to exactly `codenames`; answers them, sorted.
pub async fn set_user_permissions(
    db: &DatabaseConnection,
    actor: &Actor,
    target: Uuid,
    codenames: &[String],
    origin: &Origin,
) -> Result<Vec<String>, AppError> {
    let wanted = distinct("permissions", codenames)?;
    let txn = crate::txn::begin_writing(db).await?;
    let acting = rules::acting(&txn, actor, perms::CHANGE_USER).await?;
    let user = rules::target(&txn, target).await?;
    acting.may_touch(&user)?;
    let now = resolve(&txn, "permissions", "permissions", &wanted).await?;
    let before: BTreeMap<String, Uuid> = pairs(
        &txn,
        "SELECT p.codename, p.id FROM permissions p \
         JOIN user_permissions up ON up.permission_id = p.id WHERE up.user_id = $1",
        vec![user.id.into()],
    )
    .await?
    .into_iter()
    .collect();
    let (added, removed) = change(&before, &now);
    acting.holds_all(added.iter().chain(&removed))?;
    relink(
        &txn,
        "user_permissions",
        "user_id",
        "permission_id",
        user.id,
        &before,
        &now,
    )
    .await?;
    audit::record(
        &txn,
        &actor.who(),
        "user.permissions_set",
        Some(user.id),
        origin,
        Some(serde_json::json!({ "added": added, "removed": removed })),
    )
    .await?;
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(now.into_keys().collect())
}

/// Sets `target`'s groups to exactly `names`; answers them, sorted. Joining or leaving a
/// group grants or takes away its permissions, so the actor must hold them all.
pub async fn set_user_groups(
    db: &DatabaseConnection,
    actor: &Actor,
    target: Uuid,
    names: &[String],
    origin: &Origin,
) -> Result<Vec<String>, AppError> {
    let wanted = distinct("groups", names)?;
    let txn = crate::txn::begin_writing(db).await?;
    let acting = rules::acting(&txn, actor, perms::CHANGE_USER).await?;
    let user = rules::target(&txn, target).await?;
    acting.may_touch(&user)?;
    let now = resolve(&txn, "groups", "groups", &wanted).await?;
    let before: BTreeMap<String, Uuid> = pairs(
        &txn,
        "SELECT g.name, g.id FROM groups g \
         JOIN user_groups ug ON ug.group_id = g.id WHERE ug.user_id = $1",
        vec![user.id.into()],
    )
    .await?
    .into_iter()
    .collect();
    let (added, removed) = change(&before, &now);
    let moved = added.iter().chain(&removed).map(|n| {
        now.get(n)
            .or_else(|| before.get(n))
            .copied()
            .unwrap_or_default()
    });
    let granted = group_permissions(&txn, moved).await?;
    acting.holds_all(granted.iter())?;
    relink(
        &txn,
        "user_groups",
        "user_id",
        "group_id",
        user.id,
        &before,
        &now,
    )
    .await?;
    audit::record(
        &txn,
        &actor.who(),
        "user.groups_set",
        Some(user.id),
        origin,
        Some(serde_json::json!({ "added": added, "removed": removed })),
    )
    .await?;
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(now.into_keys().collect())
}
