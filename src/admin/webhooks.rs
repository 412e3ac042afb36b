//! Webhook endpoints as operators manage them, from the admin API or `roster webhooks` (as the
//! system): `roster.view_webhook` reads the endpoints and their deliveries,
//! `roster.change_webhook` adds, removes, rotates and retries — each change recorded in the
//! audit log in its transaction. An endpoint receives every subscribed user's username and
//! address: the permission amounts to reading them all.

use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::{Actor, Origin, perms, rules};
use crate::audit;
use crate::entity::{webhook_delivery, webhook_endpoint};
use crate::error::{AppError, FieldError};
use crate::secret::Sealer;
use crate::webhooks::endpoints::{self, EndpointError};
use crate::webhooks::signing::Secret;
use crate::webhooks::worker;

/// Most deliveries one call lists.
pub const MAX_DELIVERIES: u64 = 500;

/// The endpoints, oldest first. (Reading: the caller's `roster.view_webhook` was checked
/// before, as for every admin query.)
pub async fn list(db: &DatabaseConnection) -> Result<Vec<webhook_endpoint::Model>, AppError> {
    Ok(endpoints::list(db).await?)
}

/// Deliveries, newest first: of one status (`pending`, `sending`, `delivered`, `failed`) and
/// one endpoint when given; at most [`MAX_DELIVERIES`].
pub async fn deliveries(
    db: &DatabaseConnection,
    status: Option<&str>,
    endpoint: Option<Uuid>,
    limit: u64,
) -> Result<Vec<webhook_delivery::Model>, AppError> {
    use worker::status::{DELIVERED, FAILED, PENDING, SENDING};
    if let Some(status) = status
        && ![PENDING, SENDING, DELIVERED, FAILED].contains(&status)
    {
        return Err(AppError::InvalidInput(vec![FieldError::new(
            "status",
            crate::accounts::codes::INVALID,
            "One of pending, sending, delivered, failed.",
        )]));
    }
    Ok(worker::deliveries(db, status, endpoint, limit.min(MAX_DELIVERIES)).await?)
}

/// Registers an endpoint; its secret, to show once.
pub async fn add(
    db: &DatabaseConnection,
    actor: &Actor,
    sealer: Option<&Sealer>,
    url: &str,
    events: &[String],
    allow_private: bool,
    origin: &Origin,
) -> Result<(webhook_endpoint::Model, Secret), AppError> {
    let sealer = sealer.ok_or(AppError::WebhooksUnavailable)?;
    let txn = crate::txn::begin_writing(db).await?;
    let acting = rules::acting(&txn, actor, perms::CHANGE_WEBHOOK).await?;
    // An endpoint receives every subscribed user's username and address: adding one is
    // reading them all.
    if !acting.is_superuser() && !acting.held.contains(perms::VIEW_USER) {
        return Err(AppError::Forbidden(
            "Adding a webhook endpoint also needs roster.view_user: it receives every user's username and address.",
        ));
    }
    let (endpoint, secret) = endpoints::add(&txn, sealer, url, events, allow_private)
        .await
        .map_err(app_error)?;
    audit::record(
        &txn,
        &actor.who(),
        "webhook.added",
        None,
        origin,
        Some(serde_json::json!({
            "endpoint": endpoint.id,
            "events": endpoints::event_names(&endpoint.events),
        })),
    )
    .await?;
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok((endpoint, secret))
}

/// Removes an endpoint and its deliveries.
pub async fn remove(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    origin: &Origin,
) -> Result<(), AppError> {
    let txn = crate::txn::begin_writing(db).await?;
    rules::acting(&txn, actor, perms::CHANGE_WEBHOOK).await?;
    endpoints::remove(&txn, id).await.map_err(app_error)?;
    audit::record(
        &txn,
        &actor.who(),
        "webhook.removed",
        None,
        origin,
        Some(serde_json::json!({ "endpoint": id })),
    )
    .await?;
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(())
}

/// A new signing secret, to show once (the old one signs beside it for a day).
pub async fn rotate_secret(
    db: &DatabaseConnection,
    actor: &Actor,
    sealer: Option<&Sealer>,
    id: Uuid,
    origin: &Origin,
) -> Result<Secret, AppError> {
    let sealer = sealer.ok_or(AppError::WebhooksUnavailable)?;
    let txn = crate::txn::begin_writing(db).await?;
    rules::acting(&txn, actor, perms::CHANGE_WEBHOOK).await?;
    let secret = endpoints::rotate_secret(&txn, sealer, id)
        .await
        .map_err(app_error)?;
    audit::record(
        &txn,
        &actor.who(),
        "webhook.secret_rotated",
        None,
        origin,
        Some(serde_json::json!({ "endpoint": id })),
    )
    .await?;
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(secret)
}

/// Makes failed deliveries due now: one (`seq`; `NOT_FOUND` when it is not a failed one) or
/// all; answers how many.
pub async fn retry(
    db: &DatabaseConnection,
    actor: &Actor,
    seq: Option<i64>,
    origin: &Origin,
) -> Result<u64, AppError> {
    let txn = crate::txn::begin_writing(db).await?;
    rules::acting(&txn, actor, perms::CHANGE_WEBHOOK).await?;
    let n = worker::retry_failed(&txn, seq).await?;
    if n == 0 && seq.is_some() {
        return Err(AppError::NotFound);
    }
    if n > 0 {
        audit::record(
            &txn,
            &actor.who(),
            "webhook.deliveries_retried",
            None,
            origin,
            Some(serde_json::json!({ "retried": n, "seq": seq })),
        )
        .await?;
    }
    crate::deadline::commit_started();
    txn.commit().await?;
    Ok(n)
}

/// The service's error for an endpoint's: the input named where the client can fix it.
fn app_error(e: EndpointError) -> AppError {
    let invalid = |field: &'static str, e: EndpointError| {
        AppError::InvalidInput(vec![FieldError::new(
            field,
            crate::accounts::codes::INVALID,
            e.to_string(),
        )])
    };
    match e {
        EndpointError::BadUrl | EndpointError::Private | EndpointError::TooMany => {
            invalid("url", e)
        }
        EndpointError::UnknownEvent | EndpointError::NoEvents => invalid("events", e),
        EndpointError::Rotating => invalid("id", e),
        EndpointError::NotFound => AppError::NotFound,
        EndpointError::Sealed => AppError::WebhooksUnavailable,
        EndpointError::Crypto(e) => AppError::internal(e),
        EndpointError::Db(e) => AppError::internal(e),
    }
}
