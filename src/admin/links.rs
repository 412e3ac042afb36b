//! Name lists and link tables, shared by the use cases that set them (a user's permissions and
//! groups, a group's permissions, an API key's permissions): names checked and resolved to
//! ids, link rows replaced, what changed for the audit entry.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, Statement, Value};
use uuid::Uuid;

use crate::error::{AppError, FieldError};

/// Most names one call may set (a user's permissions or groups, a group's permissions).
pub const MAX_NAMES: usize = 1000;

/// Runs `sql` with `values` and reads the first two columns as (string, uuid) rows.
pub(super) async fn pairs(
    conn: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<(String, Uuid)>, DbErr> {
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect::<Result<_, sea_orm::TryGetError>>()
        .map_err(|e| DbErr::Type(format!("{e:?}")))
}

/// `names`, distinct, checked for size; `BAD_USER_INPUT` on `field` otherwise.
pub(super) fn distinct(
    field: &'static str,
    names: &[String],
) -> Result<BTreeSet<String>, AppError> {
    if names.len() > MAX_NAMES {
        return Err(AppError::InvalidInput(vec![FieldError::new(
            field,
            crate::accounts::codes::INVALID,
            format!("At most {MAX_NAMES}."),
        )]));
    }
    // No name holds one (PostgreSQL refuses a NUL outright, which would be a 500).
    if names.iter().any(|n| n.chars().any(char::is_control)) {
        return Err(AppError::InvalidInput(vec![FieldError::new(
            field,
            crate::accounts::codes::INVALID,
            "No control characters.",
        )]));
    }
    Ok(names.iter().cloned().collect())
}

/// The ids of the named rows of `table` (`permissions` by codename, `groups` by name), or
/// `BAD_USER_INPUT` on `field` naming the unknown ones.
pub(super) async fn resolve(
    txn: &DatabaseTransaction,
    table: &'static str,
    field: &'static str,
    names: &BTreeSet<String>,
) -> Result<BTreeMap<String, Uuid>, AppError> {
    let column = if table == "permissions" {
        "codename"
    } else {
        "name"
    };
    let mut found = BTreeMap::new();
    // One lookup per name: at most MAX_NAMES, each an index probe.
    for name in names {
        let rows = pairs(
            txn,
            &format!("SELECT {column}, id FROM {table} WHERE {column} = $1"),
            vec![name.clone().into()],
        )
        .await?;
        if let Some((n, id)) = rows.into_iter().next() {
            found.insert(n, id);
        }
    }
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !found.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(5).copied().collect();
        return Err(AppError::InvalidInput(vec![FieldError::new(
            field,
            crate::accounts::codes::INVALID,
            format!("Unknown: {}.", shown.join(", ")),
        )]));
    }
    Ok(found)
}

/// The codenames of the permissions of the groups `group_ids`.
pub(super) async fn group_permissions(
    txn: &DatabaseTransaction,
    group_ids: impl Iterator<Item = Uuid>,
) -> Result<BTreeSet<String>, AppError> {
    let mut all = BTreeSet::new();
    for id in group_ids {
        for (codename, _) in pairs(
            txn,
            "SELECT p.codename, p.id FROM permissions p \
             JOIN group_permissions gp ON gp.permission_id = p.id WHERE gp.group_id = $1",
            vec![id.into()],
        )
        .await?
        {
            all.insert(codename);
        }
    }
    Ok(all)
}

/// Replaces the link rows `table` (`user_permissions`, `user_groups`, `group_permissions`)
/// of `owner` so they are exactly `now`, given what they were (`before`).
pub(super) async fn relink(
    txn: &DatabaseTransaction,
    table: &'static str,
    owner_column: &'static str,
    item_column: &'static str,
    owner: Uuid,
    before: &BTreeMap<String, Uuid>,
    now: &BTreeMap<String, Uuid>,
) -> Result<(), AppError> {
    let backend = txn.get_database_backend();
    for (name, id) in before {
        if !now.contains_key(name) {
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                format!("DELETE FROM {table} WHERE {owner_column} = $1 AND {item_column} = $2"),
                [owner.into(), (*id).into()],
            ))
            .await?;
        }
    }
    for (name, id) in now {
        if !before.contains_key(name) {
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                format!("INSERT INTO {table} ({owner_column}, {item_column}) VALUES ($1, $2)"),
                [owner.into(), (*id).into()],
            ))
            .await?;
        }
    }
    Ok(())
}

/// What changed between two sets of names, for the audit entry.
pub(super) fn change(
    before: &BTreeMap<String, Uuid>,
    now: &BTreeMap<String, Uuid>,
) -> (Vec<String>, Vec<String>) {
    let added = now
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    let removed = before
        .keys()
        .filter(|k| !now.contains_key(*k))
        .cloned()
        .collect();
    (added, removed)
}
