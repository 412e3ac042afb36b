use std::net::IpAddr;

use async_graphql::{Context, Guard};

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

/// The admission check `register` hands to the service: one token of the caller's
/// `register` budget, or `RATE_LIMITED` (the HTTP layer adds status 429 and `Retry-After`).
///
/// Not a guard: a guard runs before the resolver, so it would spend the token before the
/// service knows whether the hash queue has room. The service calls this after reserving a
/// queue slot, so an answer of `SERVER_BUSY` costs the client nothing.
pub fn register_admission(ctx: &Context<'_>) -> impl FnOnce() -> Result<(), AppError> + use<> {
    let limiter = ctx.data_opt::<RegisterRateLimiter>().cloned();
    let ip = ctx.data_opt::<ClientIp>().copied();
    move || match (limiter, ip) {
        (Some(RegisterRateLimiter(limiter)), Some(ClientIp(ip))) => limiter
            .check(ip)
            .map_err(|retry_after| AppError::RateLimited { retry_after }),
        _ => Ok(()),
    }
}
