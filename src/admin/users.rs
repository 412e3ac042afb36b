//! Finding users for operators: filters, and a case-insensitive **prefix** of the username or
//! the email, matched on the canonical columns (what login and uniqueness compare) as a
//! range, which their indexes answer: never a table scan. Cursor pagination by id (UUIDv7,
//! time-ordered): a page starts after the last id seen, so rows inserted meanwhile never make
//! a row appear twice or be skipped.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::accounts::canonical::canonical;
use crate::entity::user;

/// Users per page, at most.
pub const MAX_PAGE: u64 = 100;
/// Longest search prefix, in bytes.
pub const MAX_SEARCH_BYTES: usize = 256;

/// What `users` may filter on; `None` is "any".
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub search: Option<String>,
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    pub email_verified: Option<bool>,
}

/// One page of users in id order, and whether more follow.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &Filter,
    first: u64,
    after: Option<Uuid>,
) -> Result<(Vec<user::Model>, bool), DbErr> {
    let first = first.clamp(1, MAX_PAGE);
    let mut rows = query(conn.get_database_backend(), filter, first, after)
        .all(conn)
        .await?;
    let more = rows.len() as u64 > first;
    rows.truncate(first as usize);
    Ok((rows, more))
}

/// The statement [`list`] runs (one row more than a page, to know whether more follow);
/// public for the tests that read its query plan.
pub fn query(
    backend: DbBackend,
    filter: &Filter,
    first: u64,
    after: Option<Uuid>,
) -> sea_orm::Select<user::Entity> {
    let mut query = user::Entity::find().order_by_asc(user::Column::Id);
    if let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) {
        query = query.filter(prefix_condition(backend, search));
    }
    if let Some(v) = filter.is_active {
        query = query.filter(user::Column::IsActive.eq(v));
    }
    if let Some(v) = filter.is_staff {
        query = query.filter(user::Column::IsStaff.eq(v));
    }
    if let Some(v) = filter.email_verified {
        query = query.filter(user::Column::EmailVerified.eq(v));
    }
    if let Some(after) = after {
        query = query.filter(user::Column::Id.gt(after));
    }
    query.limit(first + 1)
}

/// `username_canonical` or `email_canonical` in `[p, p + U+10FFFF)`: every string that
/// starts with the canonical prefix `p` compares within it byte for byte (U+10FFFF is the
/// largest scalar), which is how both databases' indexes on these columns are ordered
/// (PostgreSQL's byte-ordered `COLLATE "C"` ones, from the migration).
pub fn prefix_condition(backend: DbBackend, search: &str) -> Condition {
    let low = canonical(search);
    let high = format!("{low}\u{10FFFF}");
    // sea-query's custom expressions take PostgreSQL's numbered placeholders there, `?`
    // elsewhere.
    let range = |column: &str| {
        let sql = if backend == DbBackend::Postgres {
            format!("{column} COLLATE \"C\" >= $1 AND {column} COLLATE \"C\" < $2")
        } else {
            format!("{column} >= ? AND {column} < ?")
        };
        Expr::cust_with_values(sql, [low.clone(), high.clone()])
    };
    Condition::any()
        .add(range("username_canonical"))
        .add(range("email_canonical"))
}

#[cfg(test)]
mod tests {
    use sea_orm::QueryTrait as _;

    use super::*;

    #[test]
    fn the_search_is_a_byte_range_on_each_canonical_column() {
        let filter = Filter {
            search: Some("ALI".into()),
            ..Filter::default()
        };
        let pg = query(DbBackend::Postgres, &filter, 20, None)
            .build(DbBackend::Postgres)
            .to_string();
        assert!(
            pg.contains(r#""username_canonical" COLLATE "C" >= 'ali'"#)
                || pg.contains(r#"username_canonical COLLATE "C" >= 'ali'"#),
            "{pg}"
        );
        let sqlite = query(DbBackend::Sqlite, &filter, 20, None)
            .build(DbBackend::Sqlite)
            .to_string();
        assert!(sqlite.contains("username_canonical >= 'ali'"), "{sqlite}");
    }
}
