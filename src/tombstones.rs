//! The Django ids of deleted accounts (`deleted_legacy_ids`): written by every deletion of an
//! imported user, in its transaction, and read by `import-django`, which never brings such an
//! account back. Below `accounts`, `admin` and `import`, which all use it.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, DbErr, Statement};

/// Records that the account imported from `legacy_id` was deleted (once; a second deletion
/// of a re-created one keeps the first date).
pub async fn record(conn: &impl ConnectionTrait, legacy_id: i64) -> Result<(), DbErr> {
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        "INSERT INTO deleted_legacy_ids (legacy_id, deleted_at) VALUES ($1, $2) \
         ON CONFLICT (legacy_id) DO NOTHING",
        [legacy_id.into(), chrono::Utc::now().into()],
    ))
    .await?;
    Ok(())
}

/// Which of `ids` belong to deleted accounts (one indexed question).
pub async fn among(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<HashSet<i64>, DbErr> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            format!(
                "SELECT legacy_id FROM deleted_legacy_ids WHERE legacy_id IN ({})",
                placeholders.join(", ")
            ),
            ids.iter().map(|id| (*id).into()),
        ))
        .await?;
    rows.iter().map(|r| r.try_get_by_index::<i64>(0)).collect()
}

/// Deletes the users whose Django id was tombstoned since `since` (an import's start, less a
/// margin for clocks): accounts deleted while an import ran, which the import may have
/// inserted again. Answers how many. Only an import calls it, inside its transaction.
pub async fn undo_comebacks(
    conn: &impl ConnectionTrait,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<u64, DbErr> {
    Ok(conn
        .execute_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            "DELETE FROM users WHERE legacy_id IN \
             (SELECT legacy_id FROM deleted_legacy_ids WHERE deleted_at >= $1)",
            [since.into()],
        ))
        .await?
        .rows_affected())
}
