use std::net::IpAddr;

use async_graphql::{Context, Guard};

use crate::accounts::AccountService;
use crate::error::AppError;
use crate::ratelimit::ClientLimiter;

/// Permission: anyone, signed in or not, may call the field.
///
/// The GraphQL counterpart of DRF's `permission_classes = [AllowAny]` on the registration
/// view. It is spelled out on `register` so that the decision is visible and reviewable at the
/// field, and so that changing it is a one-word diff rather than a missing line.
pub struct AllowAny;

impl Guard for AllowAny {
    async fn check(&self, _ctx: &Context<'_>) -> async_graphql::Result<()> {
        Ok(())
    }
}

/// The caller's address as resolved by the HTTP layer (peer address, or the
/// `X-Forwarded-For` entry added by a trusted proxy). Absent outside HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The per-client limit on `register` (`--register-rate-limit`), as schema data.
#[derive(Clone)]
pub struct RegisterRateLimiter(pub ClientLimiter);

/// Refuses a registration with `SERVER_BUSY` when the hash queue is full, **before** the rate
/// limit spends a token: a client told to retry must not be locked out by its retries.
pub struct HashCapacity;

impl Guard for HashCapacity {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        match ctx.data_opt::<AccountService>() {
            Some(service) if service.is_saturated() => Err(AppError::ServerBusy.into()),
            _ => Ok(()),
        }
    }
}

/// Consumes one `register` token for the caller; `RATE_LIMITED` when none is left.
pub struct RegisterRateLimit;

impl Guard for RegisterRateLimit {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let (Some(RegisterRateLimiter(limiter)), Some(ClientIp(ip))) = (
            ctx.data_opt::<RegisterRateLimiter>(),
            ctx.data_opt::<ClientIp>(),
        ) else {
            return Ok(());
        };
        // The HTTP layer turns RATE_LIMITED into status 429 and a `Retry-After` header.
        limiter
            .check(*ip)
            .map_err(|retry_after| AppError::RateLimited { retry_after }.into())
    }
}
