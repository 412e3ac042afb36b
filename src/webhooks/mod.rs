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
/// The delivery worker and what `roster webhooks deliveries|retry` read and write.
pub mod worker;

pub use events::{EventType, emit};

use std::sync::LazyLock;
use tokio::sync::watch;

/// Bumped when an event is written: every delivery worker of the process looks at once
/// (a watch channel, so a wake while a worker is busy is not lost). Other processes find
/// the rows by polling.
static WAKE: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

pub(crate) fn wake() {
    WAKE.send_modify(|n| *n = n.wrapping_add(1));
}

pub(crate) fn woken() -> watch::Receiver<u64> {
    WAKE.subscribe()
}
