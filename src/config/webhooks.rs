//! `--webhook-*`: how events reach the endpoints registered with `roster webhooks add`.

use std::time::Duration;

use clap::Args;

use super::*;

/// Webhook delivery.
#[derive(Debug, Clone, Args)]
pub struct WebhookConfig {
    /// Let endpoints be (or resolve to) private, loopback, link-local or reserved addresses.
    /// Off: such destinations are refused at `webhooks add` and at every delivery, so a DNS
    /// name cannot turn roster against its own network (SSRF). Turn on for receivers on the
    /// same host or network.
    #[arg(long, env = "ROSTER_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub webhook_allow_private: bool,

    /// Longest one delivery attempt may take (connect, send, answer), 1s to 60s.
    #[arg(long, env = "ROSTER_WEBHOOK_TIMEOUT", default_value = "10s",
          value_parser = parse_duration)]
    pub webhook_timeout: Duration,

    /// Attempts per event and endpoint before it is marked failed (it then holds the user's
    /// later events to that endpoint until `roster webhooks retry`).
    #[arg(long, env = "ROSTER_WEBHOOK_MAX_ATTEMPTS", default_value_t = 15)]
    pub webhook_max_attempts: u32,

    /// Wait before the first retry; doubled per attempt (with jitter), at most an hour.
    #[arg(long, env = "ROSTER_WEBHOOK_RETRY_BASE", default_value = "30s",
          value_parser = parse_duration)]
    pub webhook_retry_base: Duration,

    /// How often the worker looks for due deliveries when no event of this process woke it
    /// (events written by other processes of a fleet are found this way).
    #[arg(long, env = "ROSTER_WEBHOOK_POLL_INTERVAL", default_value = "5s",
          value_parser = parse_duration)]
    pub webhook_poll_interval: Duration,
}

impl WebhookConfig {
    pub fn settings(&self) -> crate::webhooks::worker::WebhookSettings {
        crate::webhooks::worker::WebhookSettings {
            allow_private: self.webhook_allow_private,
            timeout: self.webhook_timeout,
            max_attempts: self.webhook_max_attempts,
            retry_base: self.webhook_retry_base,
            poll_interval: self.webhook_poll_interval,
        }
    }
}
