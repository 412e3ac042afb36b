use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, Guard};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimit;
use crate::error::AppError;

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

/// Per-client-IP limit on `register` (`--register-rate-limit`); answers `RATE_LIMITED`.
///
/// A guard rather than an HTTP middleware because it must count `register` only: a sign-up
/// form may query `passwordPolicy` as often as it likes.
#[derive(Clone)]
pub struct RegisterRateLimiter {
    limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

impl RegisterRateLimiter {
    pub fn new(rate: RateLimit) -> Self {
        let limiter = match rate {
            RateLimit::Off => None,
            RateLimit::PerPeriod { burst, period } => {
                // `burst` sign-ups at once, then one more every `period / burst`.
                let replenish = period / burst.get();
                Quota::with_period(replenish.max(Duration::from_millis(1)))
                    .map(|q| Arc::new(RateLimiter::keyed(q.allow_burst(burst))))
            }
        };
        Self { limiter }
    }

    /// Takes one token for `ip`, or says how long to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), AppError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&ip)
            .map_err(|not_until| AppError::RateLimited {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }

    /// Forgets addresses whose bucket is full again, so memory tracks active clients only.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Guard form of [`RegisterRateLimiter`]: consumes a token for the caller's IP.
pub struct RegisterRateLimit;

impl Guard for RegisterRateLimit {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let (Some(limiter), Some(ClientIp(ip))) = (
            ctx.data_opt::<RegisterRateLimiter>(),
            ctx.data_opt::<ClientIp>(),
        ) else {
            return Ok(());
        };
        // The HTTP layer turns RATE_LIMITED into status 429 and a `Retry-After` header.
        Ok(limiter.check(*ip)?)
    }
}
