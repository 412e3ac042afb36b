//! `endUserSessions`: signs a user out everywhere (their next request is anonymous on every
//! process), recorded in the same transaction.

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::{Actor, Origin, perms, rules};
use crate::audit;
use crate::error::AppError;
use crate::sessions::Sessions;

/// Ends every session of `target`; answers how many were live. A staff account's or a
/// superuser's only by a superuser.
pub async fn end_sessions(
    db: &DatabaseConnection,
    sessions: &Sessions,
    actor: &Actor,
    target: Uuid,
    origin: &Origin,
) -> Result<u64, AppError> {
    let txn = crate::txn::begin_writing(db).await?;
    let acting = rules::acting(&txn, actor, perms::CHANGE_USER).await?;
    let user = rules::target(&txn, target).await?;
    acting.may_touch(&user)?;
    let ended = sessions.revoke_all(&txn, user.id, None).await?;
    audit::record(
        &txn,
        &actor.who(),
        "user.sessions_ended",
        Some(user.id),
        origin,
        Some(serde_json::json!({ "ended": ended })),
    )
    .await?;
    crate::webhooks::events::sessions_ended(
        &txn,
        user.id,
        crate::webhooks::events::Ended::All,
        ended,
        "ended_by_operator",
    )
    .await?;
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(ended)
}
