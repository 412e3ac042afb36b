//! Webhook endpoints and their deliveries in the admin API, over [`crate::admin::webhooks`]:
//! `webhookEndpoints`, `webhookDeliveries` (`roster.view_webhook`); `addWebhookEndpoint`,
//! `removeWebhookEndpoint`, `rotateWebhookSecret`, `retryWebhookDeliveries`
//! (`roster.change_webhook`).

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{actor, origin, uuid_arg};
use crate::admin;
use crate::entity::{webhook_delivery, webhook_endpoint};
use crate::error::{AppError, FieldError};
use crate::graphql::guard::service;
use crate::webhooks::endpoints;

/// What the admin API needs to seal endpoint secrets (schema data).
#[derive(Clone)]
pub struct WebhookAdmin {
    /// `None` without a server secret: adding and rotating answer `WEBHOOKS_UNAVAILABLE`.
    pub sealer: Option<crate::secret::Sealer>,
    /// `--webhook-allow-private`.
    pub allow_private: bool,
}

/// A webhook endpoint: never its secret.
#[derive(SimpleObject)]
pub struct WebhookEndpoint {
    pub id: ID,
    /// The URL, its query (which may hold the receiver's own token) shown as `?…`.
    pub url: String,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// Until when the secret before the last rotation still signs beside the new one.
    pub previous_secret_until: Option<DateTime<Utc>>,
}

impl From<webhook_endpoint::Model> for WebhookEndpoint {
    fn from(e: webhook_endpoint::Model) -> Self {
        Self {
            id: ID(e.id.to_string()),
            url: endpoints::shown_url(&e.url),
            events: endpoints::event_names(&e.events)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            created_at: e.created_at,
            previous_secret_until: e.previous_until.filter(|u| *u > Utc::now()),
        }
    }
}

/// What `addWebhookEndpoint` answers: the endpoint, and its secret, shown this once.
#[derive(SimpleObject)]
pub struct NewWebhookEndpoint {
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`, for the receiver's Standard Webhooks library.
    pub secret: String,
}

/// One event for one endpoint, and how its delivery goes (never the payload).
#[derive(SimpleObject)]
pub struct WebhookDelivery {
    /// The delivery's number (for `retryWebhookDeliveries`).
    pub id: ID,
    /// The receiver's `webhook-id` (`msg_…`).
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: ID,
    pub user_id: ID,
    pub occurred_at: DateTime<Utc>,
    /// `pending`, `sending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_http_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<webhook_delivery::Model> for WebhookDelivery {
    fn from(d: webhook_delivery::Model) -> Self {
        Self {
            id: ID(d.seq.to_string()),
            event_id: crate::webhooks::worker::message_id(d.event_id),
            event_type: d.event_type,
            endpoint_id: ID(d.endpoint_id.to_string()),
            user_id: ID(d.user_id.to_string()),
            occurred_at: d.occurred_at,
            next_attempt_at: (d.status == crate::webhooks::worker::status::PENDING)
                .then_some(d.next_attempt_at),
            status: d.status,
            attempts: d.attempts,
            last_http_status: d.last_status,
            last_error: d.last_error,
            delivered_at: d.delivered_at,
        }
    }
}

fn settings<'a>(ctx: &'a Context<'_>) -> Result<&'a WebhookAdmin, AppError> {
    ctx.data_opt::<WebhookAdmin>()
        .ok_or(AppError::WebhooksUnavailable)
}

#[derive(Default)]
pub struct WebhooksQuery;

#[Object]
impl WebhooksQuery {
    /// Every webhook endpoint, oldest first. Permission: staff with `roster.view_webhook`.
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<WebhookEndpoint>> {
        let found = admin::webhooks::list(service(ctx)?.db()).await?;
        Ok(found.into_iter().map(WebhookEndpoint::from).collect())
    }

    /// Deliveries, newest first: of one `status` (`pending`, `sending`, `delivered`,
    /// `failed`) and one endpoint when given; `first` 1–500 (default 50). Permission: staff
    /// with `roster.view_webhook`.
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
        endpoint_id: Option<ID>,
        #[graphql(default = 50)] first: i32,
    ) -> async_graphql::Result<Vec<WebhookDelivery>> {
        let endpoint = endpoint_id
            .map(|id| uuid_arg("endpointId", &id))
            .transpose()?;
        let limit = u64::try_from(first)
            .ok()
            .filter(|n| (1..=admin::webhooks::MAX_DELIVERIES).contains(n))
            .ok_or_else(|| {
                AppError::InvalidInput(vec![FieldError::new(
                    "first",
                    crate::accounts::codes::INVALID,
                    format!("Between 1 and {}.", admin::webhooks::MAX_DELIVERIES),
                )])
            })?;
        let found =
            admin::webhooks::deliveries(service(ctx)?.db(), status.as_deref(), endpoint, limit)
                .await?;
        Ok(found.into_iter().map(WebhookDelivery::from).collect())
    }
}

#[derive(Default)]
pub struct WebhooksMutation;

#[Object]
impl WebhooksMutation {
    /// Registers an endpoint for event types (`user.registered`, …, or `all`); answers it
    /// and its secret, shown this once. `BAD_USER_INPUT` on `url` (not http(s), credentials,
    /// a private address without `--webhook-allow-private`, the 20 endpoints there may be)
    /// or `events`; `WEBHOOKS_UNAVAILABLE` without a server secret. Permission: staff with
    /// `roster.change_webhook` (an endpoint receives every user's username and address).
    async fn add_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        url: String,
        events: Vec<String>,
    ) -> async_graphql::Result<NewWebhookEndpoint> {
        let actor = actor(ctx).await?;
        let settings = settings(ctx)?;
        let (endpoint, secret) = admin::webhooks::add(
            service(ctx)?.db(),
            &actor,
            settings.sealer.as_ref(),
            &url,
            &events,
            settings.allow_private,
            &origin(ctx),
        )
        .await?;
        Ok(NewWebhookEndpoint {
            endpoint: endpoint.into(),
            secret: secret.expose().to_owned(),
        })
    }

    /// Removes an endpoint and its deliveries. `NOT_FOUND` for an unknown id. Permission:
    /// staff with `roster.change_webhook`.
    async fn remove_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<bool> {
        let actor = actor(ctx).await?;
        let id = uuid_arg("id", &id)?;
        admin::webhooks::remove(service(ctx)?.db(), &actor, id, &origin(ctx)).await?;
        Ok(true)
    }

    /// A new signing secret, answered this once; the old one signs beside it for 24 hours
    /// (refused, `BAD_USER_INPUT` on `id`, while a previous rotation's day runs).
    /// Permission: staff with `roster.change_webhook`.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<String> {
        let actor = actor(ctx).await?;
        let id = uuid_arg("id", &id)?;
        let secret = admin::webhooks::rotate_secret(
            service(ctx)?.db(),
            &actor,
            settings(ctx)?.sealer.as_ref(),
            id,
            &origin(ctx),
        )
        .await?;
        Ok(secret.expose().to_owned())
    }

    /// Makes a failed delivery (`id`), or every failed one, due now with a fresh attempt
    /// budget; the events it held follow it in order. Answers how many. Permission: staff
    /// with `roster.change_webhook`.
    async fn retry_webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> async_graphql::Result<i32> {
        let actor = actor(ctx).await?;
        let seq = id
            .map(|id| {
                id.parse::<i64>().map_err(|_| {
                    AppError::InvalidInput(vec![FieldError::new(
                        "id",
                        crate::accounts::codes::INVALID,
                        "Not a delivery id.",
                    )])
                })
            })
            .transpose()?;
        let n = admin::webhooks::retry(service(ctx)?.db(), &actor, seq, &origin(ctx)).await?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}
