//! The audit log: who did what to whom, when and from where — written with the same
//! connection (the same transaction) as the change it records, so neither exists without the
//! other. Never a password, token or hash. The table only grows by insert.

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{Actor, Origin};
use crate::entity::audit_entry;

/// Entries per page, at most.
pub const MAX_PAGE: u64 = 100;

/// Records `action` (a stable dotted name, e.g. `user.deactivated`) on `conn`.
pub async fn record(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    action: &'static str,
    target: Option<Uuid>,
    origin: &Origin,
    detail: Option<serde_json::Value>,
) -> Result<(), DbErr> {
    audit_entry::Entity::insert(audit_entry::ActiveModel {
        id: Set(Uuid::now_v7()),
        at: Set(Utc::now()),
        actor_kind: Set(actor.kind().to_owned()),
        actor_user_id: Set(actor.user_id()),
        action: Set(action.to_owned()),
        target_user_id: Set(target),
        ip: Set(origin.ip.clone()),
        request_id: Set(origin.request_id.clone()),
        detail: Set(detail.map(|d| d.to_string())),
    })
    .exec(conn)
    .await?;
    Ok(())
}

/// Newest first: up to `first` entries older than the `after` entry, optionally about one
/// user; and whether more follow.
pub async fn list(
    conn: &impl ConnectionTrait,
    about: Option<Uuid>,
    first: u64,
    after: Option<Uuid>,
) -> Result<(Vec<audit_entry::Model>, bool), DbErr> {
    let first = first.clamp(1, MAX_PAGE);
    let mut query = audit_entry::Entity::find().order_by_desc(audit_entry::Column::Id);
    if let Some(user) = about {
        query = query.filter(audit_entry::Column::TargetUserId.eq(user));
    }
    if let Some(after) = after {
        query = query.filter(audit_entry::Column::Id.lt(after));
    }
    let mut rows = query.limit(first + 1).all(conn).await?;
    let more = rows.len() as u64 > first;
    rows.truncate(first as usize);
    Ok((rows, more))
}
