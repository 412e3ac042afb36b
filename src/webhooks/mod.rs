//! Webhooks: the team's other services hear what happens to accounts.
//!
//! An event is written in the transaction of the change it reports, one row per endpoint
//! that subscribes to it ([`events::emit`]): it exists exactly when the change does, and is
//! never lost. The delivery worker ([`worker`]) claims due rows, signs each per the
//! Standard Webhooks specification ([`signing`]) and POSTs it through the SSRF guard
//! ([`guard`]), with retries, backoff and jitter; at least once, with the event's id as the
//! idempotency key, and in order per user and endpoint (a user's next event waits until the
//! one before it was delivered). Operators manage endpoints with `roster webhooks`
//! ([`endpoints`]).

/// Endpoints: their URLs, subscriptions and sealed secrets.
pub mod endpoints;
/// The event types and their emission inside a use case's transaction.
pub mod events;
/// Which destinations a delivery may reach (no private or loopback address by default).
pub mod guard;
/// Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
pub mod signing;
/// How a written event wakes the local workers.
mod wake;
/// The delivery worker and what `roster webhooks deliveries|retry` read and write.
pub mod worker;

pub use events::{EventType, emit, emit_for_session};
pub(crate) use wake::wake;
