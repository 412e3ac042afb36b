//! Group CRUD (`groups`, `createGroup`, `updateGroup`, `deleteGroup`), Django's `auth_group`:
//! a name and a set of permissions its members hold. Changing a group changes what every
//! member holds, so a non-superuser may change only a group without staff members, and only
//! by permissions it holds itself.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, SqlErr, Statement};
use uuid::Uuid;

use super::links::{change, distinct, pairs, relink, resolve};
use super::{Actor, Origin, perms, rules};
use crate::audit;
use crate::error::{AppError, FieldError};

/// Longest group name, in characters (Django's `max_length=150`).
pub const MAX_NAME_CHARS: usize = 150;

/// A group and its permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: Uuid,
    pub name: String,
    /// Django's `auth_group.id`, for imported groups.
    pub legacy_id: Option<i64>,
    pub permissions: Vec<String>,
}

/// Every group, by name, with its permissions (the page and scripts list them whole: a
/// user base has tens of groups, not millions).
pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<Group>, AppError> {
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id, name, legacy_id FROM groups ORDER BY name",
        ))
        .await?;
    let mut groups = Vec::with_capacity(rows.len());
    let mut index = BTreeMap::new();
    for row in rows {
        let (id, name, legacy_id): (Uuid, String, Option<i64>) = (
            row.try_get_by_index(0).map_err(AppError::internal_debug)?,
            row.try_get_by_index(1).map_err(AppError::internal_debug)?,
            row.try_get_by_index(2).map_err(AppError::internal_debug)?,
        );
        index.insert(id, groups.len());
        groups.push(Group {
            id,
            name,
            legacy_id,
            permissions: Vec::new(),
        });
    }
    for (codename, group) in pairs(
        conn,
        "SELECT p.codename, gp.group_id FROM group_permissions gp \
         JOIN permissions p ON p.id = gp.permission_id ORDER BY p.codename",
        vec![],
    )
    .await?
    {
        if let Some(&i) = index.get(&group) {
            groups[i].permissions.push(codename);
        }
    }
    Ok(groups)
}

/// Every permission (`codename`, human name), by codename.
pub async fn all_permissions(
    conn: &impl ConnectionTrait,
) -> Result<Vec<(String, String)>, AppError> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT codename, name FROM permissions ORDER BY codename",
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0).map_err(AppError::internal_debug)?,
                r.try_get_by_index(1).map_err(AppError::internal_debug)?,
            ))
        })
        .collect()
}

/// A group name: trimmed, 1–150 characters, no control characters.
fn parse_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    let bad = |message: &str| {
        AppError::InvalidInput(vec![FieldError::new(
            "name",
            crate::accounts::codes::INVALID,
            message,
        )])
    };
    if name.is_empty() {
        return Err(bad("A group needs a name."));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad("At most 150 characters."));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("No control characters."));
    }
    Ok(name.to_owned())
}

fn taken(e: sea_orm::DbErr) -> AppError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            AppError::InvalidInput(vec![FieldError::new(
                "name",
                crate::accounts::codes::TAKEN,
                "A group of that name exists.",
            )])
        }
        _ => e.into(),
    }
}

/// The group `id` (name and permission ids), or `NOT_FOUND`.
async fn find(
    txn: &DatabaseTransaction,
    id: Uuid,
) -> Result<(String, BTreeMap<String, Uuid>), AppError> {
    let name = pairs(
        txn,
        "SELECT name, id FROM groups WHERE id = $1",
        vec![id.into()],
    )
    .await?
    .into_iter()
    .next()
    .ok_or(AppError::NotFound)?
    .0;
    let permissions = pairs(
        txn,
        "SELECT p.codename, p.id FROM permissions p \
         JOIN group_permissions gp ON gp.permission_id = p.id WHERE gp.group_id = $1",
        vec![id.into()],
    )
    .await?
    .into_iter()
    .collect();
    Ok((name, permissions))
}

/// Refuses a non-superuser changing a group a staff user belongs to (it would change a staff
/// account's permissions).
async fn no_staff_members(
    txn: &DatabaseTransaction,
    acting: &rules::Acting,
    id: Uuid,
) -> Result<(), AppError> {
    if acting.is_superuser() {
        return Ok(());
    }
    let staff = pairs(
        txn,
        "SELECT u.username, u.id FROM users u JOIN user_groups ug ON ug.user_id = u.id \
         WHERE ug.group_id = $1 AND (u.is_staff OR u.is_superuser) LIMIT 1",
        vec![id.into()],
    )
    .await?;
    if staff.is_empty() {
        Ok(())
    } else {
        Err(AppError::Forbidden(rules::STAFF_TARGET))
    }
}

/// Creates a group with `permissions`.
pub async fn create(
    db: &DatabaseConnection,
    actor: &Actor,
    name: &str,
    permissions: &[String],
    origin: &Origin,
) -> Result<Group, AppError> {
    let name = parse_name(name)?;
    let wanted = distinct("permissions", permissions)?;
    let txn = crate::txn::begin_writing(db).await?;
    let acting = rules::acting(&txn, actor, perms::CHANGE_GROUP).await?;
    let now = resolve(&txn, "permissions", "permissions", &wanted).await?;
    acting.holds_all(now.keys())?;
    let id = Uuid::now_v7();
    txn.execute_raw(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "INSERT INTO groups (id, name) VALUES ($1, $2)",
        [id.into(), name.clone().into()],
    ))
    .await
    .map_err(taken)?;
    relink(
        &txn,
        "group_permissions",
        "group_id",
        "permission_id",
        id,
        &BTreeMap::new(),
        &now,
    )
    .await?;
    audit::record(
        &txn,
        &actor.who(),
        "group.created",
        None,
        origin,
        Some(serde_json::json!({ "group": name, "permissions": now.keys().collect::<Vec<_>>() })),
    )
    .await?;
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(Group {
        id,
        name,
        legacy_id: None,
        permissions: now.into_keys().collect(),
    })
}

/// Renames a group and/or replaces its permissions (`None`: unchanged).
pub async fn update(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    name: Option<&str>,
    permissions: Option<&[String]>,
    origin: &Origin,
) -> Result<Group, AppError> {
    let name = name.map(parse_name).transpose()?;
    let wanted = permissions
        .map(|p| distinct("permissions", p))
        .transpose()?;
    let txn = crate::txn::begin_writing(db).await?;
    let acting = rules::acting(&txn, actor, perms::CHANGE_GROUP).await?;
    let (old_name, before) = find(&txn, id).await?;
    no_staff_members(&txn, &acting, id).await?;
    let now = match &wanted {
        Some(wanted) => resolve(&txn, "permissions", "permissions", wanted).await?,
        None => before.clone(),
    };
    let (added, removed) = change(&before, &now);
    acting.holds_all(added.iter().chain(&removed))?;
    let name = name.unwrap_or_else(|| old_name.clone());
    if name != old_name {
        txn.execute_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            "UPDATE groups SET name = $1 WHERE id = $2",
            [name.clone().into(), id.into()],
        ))
        .await
        .map_err(taken)?;
    }
    relink(
        &txn,
        "group_permissions",
        "group_id",
        "permission_id",
        id,
        &before,
        &now,
    )
    .await?;
    audit::record(
        &txn,
        &actor.who(),
        "group.changed",
        None,
        origin,
        Some(serde_json::json!({
            "group": name, "renamed_from": (name != old_name).then_some(&old_name),
            "added": added, "removed": removed,
        })),
    )
    .await?;
    let legacy_id = legacy_id(&txn, id).await?;
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(Group {
        id,
        name,
        legacy_id,
        permissions: now.into_keys().collect(),
    })
}

async fn legacy_id(txn: &DatabaseTransaction, id: Uuid) -> Result<Option<i64>, AppError> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            "SELECT legacy_id FROM groups WHERE id = $1",
            [id.into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get_by_index::<Option<i64>>(0))
        .transpose()
        .map_err(AppError::internal_debug)?
        .flatten())
}

/// Deletes a group (its members keep their own permissions and other groups).
pub async fn delete(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    origin: &Origin,
) -> Result<(), AppError> {
    let txn = crate::txn::begin_writing(db).await?;
    let acting = rules::acting(&txn, actor, perms::CHANGE_GROUP).await?;
    let (name, before) = find(&txn, id).await?;
    no_staff_members(&txn, &acting, id).await?;
    acting.holds_all(before.keys())?;
    // The links go with it (foreign keys cascade).
    txn.execute_raw(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "DELETE FROM groups WHERE id = $1",
        [id.into()],
    ))
    .await?;
    audit::record(
        &txn,
        &actor.who(),
        "group.deleted",
        None,
        origin,
        Some(
            serde_json::json!({ "group": name, "permissions": before.keys().collect::<Vec<_>>() }),
        ),
    )
    .await?;
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(())
}
