//! Django's groups and permissions, after the users, in the import's transaction: an imported
//! user base keeps its staff's rights. From a database source (`auth_group`,
//! `auth_permission` with its content type's app label, and the three link tables) or a
//! dumpdata file (`auth.group`, `auth.permission`, `contenttypes.contenttype`, and the
//! users' `groups` and `user_permissions`; ids or natural keys alike, `source.rs` reads them).
//!
//! Re-importable like the users: a group or permission already brought over (same Django id,
//! `legacy_id`) is updated, one of the same name or codename adopted (a group only while it
//! is empty), links already present left as they are. Links to users this import did not
//! bring over (conflicts) are skipped. During the move Django is the source of truth: a
//! re-run adds Django's links again, including ones an operator removed in roster.

use std::collections::HashMap;

use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, Statement, Value};
use uuid::Uuid;

use super::ImportError;

/// What the second half of an import brought over.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PermsSummary {
    pub groups: u64,
    pub permissions: u64,
    /// User↔group, user↔permission and group↔permission links written (new ones).
    pub links: u64,
}

/// Links are written this many at a time.
const CHUNK: usize = 500;

async fn rows(
    db: &DatabaseConnection,
    sql: &str,
) -> Result<Vec<sea_orm::QueryResult>, ImportError> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .map_err(|e| ImportError::Source(e.to_string()))
}

fn int(r: &sea_orm::QueryResult, i: usize) -> Result<i64, ImportError> {
    r.try_get_by_index::<i64>(i)
        .map_err(|e| ImportError::Source(e.to_string()))
}

fn text(r: &sea_orm::QueryResult, i: usize) -> Result<String, ImportError> {
    r.try_get_by_index::<String>(i)
        .map_err(|e| ImportError::Source(e.to_string()))
}

/// Django's groups, permissions and links, by Django ids, whatever the source.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DjangoPerms {
    /// (Django id, `app_label.codename`, name).
    pub permissions: Vec<(i64, String, String)>,
    /// (Django id, name).
    pub groups: Vec<(i64, String)>,
    /// (user id, group id).
    pub user_groups: Vec<(i64, i64)>,
    /// (user id, permission id).
    pub user_permissions: Vec<(i64, i64)>,
    /// (group id, permission id).
    pub group_permissions: Vec<(i64, i64)>,
}

/// Brings Django's groups, permissions and links from the database `source` into `txn`.
pub async fn import(
    source: &DatabaseConnection,
    txn: &DatabaseTransaction,
) -> Result<PermsSummary, ImportError> {
    match read(source).await? {
        Some(perms) => apply(txn, &perms).await,
        None => Ok(PermsSummary::default()),
    }
}

/// Reads the groups, permissions and links of a Django database; `None` when it has no
/// auth tables.
async fn read(source: &DatabaseConnection) -> Result<Option<DjangoPerms>, ImportError> {
    let mut perms = DjangoPerms::default();
    // A source without Django's auth tables (a hand-made `auth_user`) brings users only.
    for table in [
        "auth_permission",
        "django_content_type",
        "auth_group",
        "auth_group_permissions",
        "auth_user_groups",
        "auth_user_user_permissions",
    ] {
        if rows(source, &format!("SELECT 1 FROM {table} WHERE 1 = 0"))
            .await
            .is_err()
        {
            tracing::warn!(
                table,
                "the source has no such table: users imported without groups or permissions"
            );
            return Ok(None);
        }
    }
    let permissions = rows(
        source,
        "SELECT CAST(p.id AS BIGINT), ct.app_label, p.codename, p.name FROM auth_permission p \
         JOIN django_content_type ct ON ct.id = p.content_type_id ORDER BY p.id",
    )
    .await?;
    for r in &permissions {
        perms.permissions.push((
            int(r, 0)?,
            format!("{}.{}", text(r, 1)?, text(r, 2)?),
            text(r, 3)?,
        ));
    }
    for r in &rows(
        source,
        "SELECT CAST(id AS BIGINT), name FROM auth_group ORDER BY id",
    )
    .await?
    {
        perms.groups.push((int(r, 0)?, text(r, 1)?));
    }
    for (sql, links) in [
        (
            "SELECT CAST(user_id AS BIGINT), CAST(group_id AS BIGINT) FROM auth_user_groups",
            &mut perms.user_groups,
        ),
        (
            "SELECT CAST(user_id AS BIGINT), CAST(permission_id AS BIGINT) \
             FROM auth_user_user_permissions",
            &mut perms.user_permissions,
        ),
        (
            "SELECT CAST(group_id AS BIGINT), CAST(permission_id AS BIGINT) \
             FROM auth_group_permissions",
            &mut perms.group_permissions,
        ),
    ] {
        for r in &rows(source, sql).await? {
            links.push((int(r, 0)?, int(r, 1)?));
        }
    }
    Ok(Some(perms))
}

/// Writes `perms` into `txn`: groups and permissions upserted by Django id, links added.
pub async fn apply(
    txn: &DatabaseTransaction,
    perms: &DjangoPerms,
) -> Result<PermsSummary, ImportError> {
    let mut summary = PermsSummary::default();
    let mut permission_ids = HashMap::new();
    for (legacy, codename, name) in &perms.permissions {
        let name: String = name.chars().take(255).collect();
        let id = upsert(txn, "permissions", "codename", codename, &name, *legacy).await?;
        permission_ids.insert(*legacy, id);
        summary.permissions += 1;
    }
    let mut group_ids = HashMap::new();
    for (legacy, name) in &perms.groups {
        let name: String = name.chars().take(150).collect();
        let id = upsert(txn, "groups", "name", &name, &name, *legacy).await?;
        group_ids.insert(*legacy, id);
        summary.groups += 1;
    }
    let users: HashMap<i64, Uuid> = txn
        .query_all_raw(Statement::from_string(
            txn.get_database_backend(),
            "SELECT id, legacy_id FROM users WHERE legacy_id IS NOT NULL",
        ))
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get_by_index::<i64>(1)?,
                r.try_get_by_index::<Uuid>(0)?,
            ))
        })
        .collect::<Result<_, DbErr>>()?;
    for (links, table, left, right, left_ids, right_ids) in [
        (
            &perms.user_groups,
            "user_groups",
            "user_id",
            "group_id",
            &users,
            &group_ids,
        ),
        (
            &perms.user_permissions,
            "user_permissions",
            "user_id",
            "permission_id",
            &users,
            &permission_ids,
        ),
        (
            &perms.group_permissions,
            "group_permissions",
            "group_id",
            "permission_id",
            &group_ids,
            &permission_ids,
        ),
    ] {
        let pairs: Vec<(Uuid, Uuid)> = links
            .iter()
            .filter_map(|(a, b)| Some((*left_ids.get(a)?, *right_ids.get(b)?)))
            .collect();
        for chunk in pairs.chunks(CHUNK) {
            let mut insert = Query::insert()
                .into_table(sea_orm::sea_query::Alias::new(table))
                .columns([
                    sea_orm::sea_query::Alias::new(left),
                    sea_orm::sea_query::Alias::new(right),
                ])
                .on_conflict(
                    OnConflict::columns([
                        sea_orm::sea_query::Alias::new(left),
                        sea_orm::sea_query::Alias::new(right),
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .to_owned();
            for (a, b) in chunk {
                insert.values_panic([(*a).into(), (*b).into()]);
            }
            let done = txn.execute(&insert).await?;
            summary.links += done.rows_affected();
        }
    }
    Ok(summary)
}

/// The roster id of the group or permission Django knew as `legacy`: the one already
/// imported (its name brought up to date), else the one of the same `key` (adopted), else a
/// new one.
async fn upsert(
    txn: &DatabaseTransaction,
    table: &str,
    key_column: &str,
    key: &str,
    name: &str,
    legacy: i64,
) -> Result<Uuid, ImportError> {
    let backend = txn.get_database_backend();
    let find = |sql: String, value: Value| {
        txn.query_one_raw(Statement::from_sql_and_values(backend, sql, [value]))
    };
    if let Some(r) = find(
        format!("SELECT id FROM {table} WHERE legacy_id = $1"),
        legacy.into(),
    )
    .await?
    {
        let id: Uuid = r.try_get_by_index(0)?;
        let (sql, values): (&str, Vec<Value>) = if table == "groups" {
            (
                "UPDATE groups SET name = $1 WHERE id = $2",
                vec![key.into(), id.into()],
            )
        } else {
            (
                "UPDATE permissions SET codename = $1, name = $2 WHERE id = $3",
                vec![key.into(), name.into(), id.into()],
            )
        };
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        return Ok(id);
    }
    if let Some(r) = find(
        format!("SELECT id FROM {table} WHERE {key_column} = $1"),
        key.into(),
    )
    .await?
    {
        let id: Uuid = r.try_get_by_index(0)?;
        // A group made in roster is adopted only while it is empty: one an operator has
        // filled must not hand Django's permissions to the members they chose.
        if table == "groups"
            && find(
                "SELECT group_id FROM user_groups WHERE group_id = $1 \
                 UNION SELECT group_id FROM group_permissions WHERE group_id = $1"
                    .to_owned(),
                id.into(),
            )
            .await?
            .is_some()
        {
            return Err(ImportError::Source(format!(
                "Django's group {key:?} has the name of a group made in roster that has members \
                 or permissions; rename that group in roster and run the import again"
            )));
        }
        txn.execute_raw(Statement::from_sql_and_values(
            backend,
            format!("UPDATE {table} SET legacy_id = $1 WHERE id = $2 AND legacy_id IS NULL"),
            [legacy.into(), id.into()],
        ))
        .await?;
        return Ok(id);
    }
    let id = Uuid::now_v7();
    let sql = if table == "groups" {
        "INSERT INTO groups (id, name, legacy_id) VALUES ($1, $2, $3)".to_owned()
    } else {
        "INSERT INTO permissions (id, codename, name, legacy_id) VALUES ($1, $2, $3, $4)".to_owned()
    };
    let values: Vec<Value> = if table == "groups" {
        vec![id.into(), key.into(), legacy.into()]
    } else {
        vec![id.into(), key.into(), name.into(), legacy.into()]
    };
    txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    Ok(id)
}
