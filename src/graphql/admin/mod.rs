//! The admin API: thin resolvers over [`crate::admin`]. Each root field needs an active staff
//! user holding the permission [`super::guard::PERMISSIONS`] names (Django's admin rule); the
//! mutations are limited per actor (`--admin-rate-limit`) and every one is recorded in the
//! audit log by its use case.

/// Groups and permissions: `groups`, `permissions`, group CRUD.
pub mod groups;
/// What operators do to a user: activity, sessions, deletion, reset, staff, grants.
pub mod manage;
/// Reading: `users`, `user`, `auditLog`.
pub mod users;
/// Webhook endpoints and deliveries.
pub mod webhooks;

use async_graphql::Context;

use super::guard::{auth, origin};
use crate::admin::{self, Actor};
use crate::error::{AppError, FieldError};
use crate::ratelimit::KeyLimiter;

/// The admin mutations' per-actor limit (schema data; `--admin-rate-limit`).
#[derive(Clone)]
pub struct AdminRateLimiter(pub KeyLimiter);

/// An id argument; anything that is not a UUID names nothing.
fn uuid_arg(field: &'static str, raw: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(raw).map_err(|_| {
        AppError::InvalidInput(vec![FieldError::new(
            field,
            crate::accounts::codes::INVALID,
            "Not an id.",
        )])
    })
}

/// `first` when not given (a variable left out counts as not given).
const DEFAULT_PAGE: i32 = 20;

fn page_size(first: i32) -> Result<u64, AppError> {
    u64::try_from(first)
        .ok()
        .filter(|n| (1..=admin::users::MAX_PAGE).contains(n))
        .ok_or_else(|| {
            AppError::InvalidInput(vec![FieldError::new(
                "first",
                crate::accounts::codes::INVALID,
                format!("Between 1 and {}.", admin::users::MAX_PAGE),
            )])
        })
}

/// Who runs an admin mutation, once it has passed the per-actor limit. (The permission was
/// checked before the resolver ran; the use case checks it again inside its transaction.)
async fn actor(ctx: &Context<'_>) -> Result<Actor, AppError> {
    let auth = auth(ctx);
    let (actor, key) = match auth.api_key().await? {
        Some(key) => (Actor::ApiKey(key.clone()), format!("key:{}", key.id)),
        None => {
            let caller = auth.require().await?;
            (
                Actor::User(Box::new(caller.user.clone())),
                caller.user.id.to_string(),
            )
        }
    };
    if let Some(limiter) = ctx.data_opt::<AdminRateLimiter>() {
        limiter
            .0
            .check(&key)
            .await
            .map_err(|retry_after| AppError::RateLimited { retry_after })?;
    }
    Ok(actor)
}
