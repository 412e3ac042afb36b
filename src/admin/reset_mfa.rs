//! `resetSecondFactor` (and `roster users reset-mfa`): an operator removes a user's TOTP device
//! and recovery codes — the way back for someone who lost both, or for everyone after the
//! server secret was replaced (their sealed secrets no longer open). Their next login asks for
//! the password only; they enrol again.

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::{Actor, Origin, perms, rules};
use crate::audit;
use crate::error::AppError;
use crate::outbox::{Kind, Outbox};

/// Removes `target`'s second factor; answers whether there was one. Refused (`FORBIDDEN`):
/// oneself (use `disableTotp`, which asks for the password and the factor), a staff account
/// or a superuser unless the actor is a superuser. The user is told by email when there was
/// one.
pub async fn reset_mfa(
    db: &DatabaseConnection,
    outbox: &Outbox,
    actor: &Actor,
    target: Uuid,
    origin: &Origin,
) -> Result<bool, AppError> {
    let txn = crate::txn::begin_writing(db).await?;
    let acting = rules::acting(&txn, actor, perms::CHANGE_USER).await?;
    if acting.is(target) {
        return Err(AppError::Forbidden(
            "Use disableTotp for your own second factor.",
        ));
    }
    let user = rules::target(&txn, target).await?;
    acting.may_touch(&user)?;
    // A factor is a confirmed device or recovery codes left (an unconfirmed enrolment is none).
    let had = crate::mfa::required(&txn, user.id).await?;
    crate::mfa::remove(&txn, user.id).await?;
    audit::record(
        &txn,
        &actor.who(),
        "user.second_factor_reset",
        Some(user.id),
        origin,
        Some(serde_json::json!({ "had_one": had })),
    )
    .await?;
    if had {
        outbox
            .notice(&txn, Kind::SecondFactorRemoved, user.id, &user.email)
            .await?;
    }
    crate::deadline::commit_started();
    txn.commit().await?;
    outbox.wake();
    Ok(had)
}
