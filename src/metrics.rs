//! Prometheus metrics (`GET /metrics`), every name prefixed `roster_`.
//!
//! One registry per [`crate::startup::Application`] (the official `prometheus-client`
//! crate; no process-global recorder, so tests running several servers in one process each
//! see their own numbers). Labels carry only values from fixed sets — root field names of
//! the schema, error codes, field names, limiter names, email kinds — never user data.
//! Gauges that describe state (queue depth, pool use, outbox backlog, Redis) are read when
//! scraped.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// A root field of the schema (`register`, `login`, …).
    pub operation: String,
    /// `ok`, or the error's `extensions.code`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FieldErrorLabels {
    pub field: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimiterLabels {
    /// `register`, `login`, `request`, `mail`, `mail_address`, `login_failures`,
    /// `access_token`.
    pub limiter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// Checks: `signed_in`, `anonymous` or `error`; tokens: `minted`, `minted_for_check`,
    /// `rate_limited`, `invalid_audience`, `unavailable`, `error`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `verify_email` or `reset_password`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// The event type (`user.registered`, …).
    pub event: String,
    /// `delivered`, `attempt_failed` (will retry) or `failed` (gave up).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ImplementationLabels {
    /// `libsodium-avx512f`, `libsodium-avx2`, `libsodium-ssse3`, `libsodium-ref` or
    /// `argon2-crate` (`password::engine`).
    pub implementation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// `pending`, `failed`.
    pub status: String,
}

/// Every metric roster exports. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    operations: Family<OperationLabels, Counter>,
    field_errors: Family<FieldErrorLabels, Counter>,
    rate_limited: Family<LimiterLabels, Counter>,
    hash_wait: Histogram,
    hash_time: Histogram,
    hash_queue_depth: Gauge,
    argon2_implementation: Family<ImplementationLabels, Gauge>,
    sessions_created: Counter,
    auth_checks: Family<OutcomeLabels, Counter>,
    access_tokens: Family<OutcomeLabels, Counter>,
    emails_delivered: Family<KindLabels, Counter>,
    email_attempts_failed: Family<KindLabels, Counter>,
    email_delivery_latency: Histogram,
    outbox: Family<StatusLabels, Gauge>,
    webhook_deliveries: Family<WebhookLabels, Counter>,
    webhook_backlog: Family<StatusLabels, Gauge>,
    db_pool_in_use: Gauge,
    db_pool_size: Gauge,
    redis_fallback: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("roster");
        let operations = Family::<OperationLabels, Counter>::default();
        registry.register(
            "graphql_operations",
            "Root fields executed, by operation and outcome (ok or the error code)",
            operations.clone(),
        );
        let field_errors = Family::<FieldErrorLabels, Counter>::default();
        registry.register(
            "field_errors",
            "Field errors answered (BAD_USER_INPUT), by field and code",
            field_errors.clone(),
        );
        let rate_limited = Family::<LimiterLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by limiter",
            rate_limited.clone(),
        );
        // 1 ms … ~16 s.
        let seconds = || Histogram::new(exponential_buckets(0.001, 2.0, 15));
        let hash_wait = seconds();
        registry.register(
            "hash_wait_seconds",
            "Time a hash or verification waited in the queue for a worker",
            hash_wait.clone(),
        );
        let hash_time = seconds();
        registry.register(
            "hash_seconds",
            "Time a worker spent on one hash or verification",
            hash_time.clone(),
        );
        // Set once at start-up (`argon2_implementation`), so a scrape says which code hashes.
        let argon2_implementation = Family::<ImplementationLabels, Gauge>::default();
        registry.register(
            "argon2_implementation",
            "1 for the code that computes this process's Argon2id hashes: libsodium-<simd> or argon2-crate",
            argon2_implementation.clone(),
        );
        let hash_queue_depth = Gauge::default();
        registry.register(
            "hash_queue_depth",
            "Hash jobs reserved or queued, not yet taken by a worker",
            hash_queue_depth.clone(),
        );
        let sessions_created = Counter::default();
        registry.register(
            "sessions_created",
            "Sessions started by login",
            sessions_created.clone(),
        );
        let auth_checks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "auth_checks",
            "Forward-auth checks (`/auth/check`) by outcome",
            auth_checks.clone(),
        );
        let access_tokens = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "access_tokens",
            "Access-token requests by outcome: minted, minted_for_check, rate_limited, invalid_audience, unavailable, error",
            access_tokens.clone(),
        );
        let emails_delivered = Family::<KindLabels, Counter>::default();
        registry.register(
            "emails_delivered",
            "Emails handed to the transport, by kind",
            emails_delivered.clone(),
        );
        let email_attempts_failed = Family::<KindLabels, Counter>::default();
        registry.register(
            "email_attempts_failed",
            "Email delivery attempts that failed (each retry counts), by kind",
            email_attempts_failed.clone(),
        );
        // 10 ms … ~3 h.
        let email_delivery_latency = Histogram::new(exponential_buckets(0.01, 2.0, 21));
        registry.register(
            "email_delivery_latency_seconds",
            "From queueing an email to handing it to the transport",
            email_delivery_latency.clone(),
        );
        let outbox = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "outbox_emails",
            "Emails in the outbox not delivered, by status (pending includes being sent)",
            outbox.clone(),
        );
        let webhook_deliveries = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by event type and outcome: delivered, attempt_failed (will retry), failed (gave up)",
            webhook_deliveries.clone(),
        );
        let webhook_backlog = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "webhook_backlog",
            "Webhook deliveries not made, by status (pending includes being sent)",
            webhook_backlog.clone(),
        );
        let db_pool_in_use = Gauge::default();
        registry.register(
            "db_pool_connections_in_use",
            "Database connections of the serving pool in use",
            db_pool_in_use.clone(),
        );
        let db_pool_size = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Database connections of the serving pool open",
            db_pool_size.clone(),
        );
        let redis_fallback = Gauge::default();
        registry.register(
            "redis_fallback",
            "1 while Redis is configured but unreachable (limits are per process), else 0",
            redis_fallback.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                operations,
                field_errors,
                rate_limited,
                hash_wait,
                hash_time,
                hash_queue_depth,
                argon2_implementation,
                sessions_created,
                auth_checks,
                access_tokens,
                emails_delivered,
                email_attempts_failed,
                email_delivery_latency,
                outbox,
                webhook_deliveries,
                webhook_backlog,
                db_pool_in_use,
                db_pool_size,
                redis_fallback,
            }),
        }
    }

    pub fn operation(&self, operation: &str, outcome: &str) {
        self.inner
            .operations
            .get_or_create(&OperationLabels {
                operation: operation.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn field_error(&self, field: &str, code: &str) {
        self.inner
            .field_errors
            .get_or_create(&FieldErrorLabels {
                field: field.to_owned(),
                code: code.to_owned(),
            })
            .inc();
    }

    pub fn rate_limited(&self, limiter: &str) {
        self.inner
            .rate_limited
            .get_or_create(&LimiterLabels {
                limiter: limiter.to_owned(),
            })
            .inc();
    }

    /// The code that hashes in this process (`password::engine::Implementation::name`).
    pub fn argon2_implementation(&self, name: &str) {
        self.inner
            .argon2_implementation
            .get_or_create(&ImplementationLabels {
                implementation: name.to_owned(),
            })
            .set(1);
    }

    pub fn hashed(&self, waited: std::time::Duration, took: std::time::Duration) {
        self.inner.hash_wait.observe(waited.as_secs_f64());
        self.inner.hash_time.observe(took.as_secs_f64());
    }

    /// One `/auth/check`: `signed_in`, `anonymous` or `error`.
    pub fn auth_check(&self, outcome: &str) {
        self.inner
            .auth_checks
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn access_token(&self, outcome: &str) {
        self.inner
            .access_tokens
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn session_created(&self) {
        self.inner.sessions_created.inc();
    }

    pub fn email_delivered(&self, kind: &str, latency: std::time::Duration) {
        self.inner
            .emails_delivered
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
        self.inner
            .email_delivery_latency
            .observe(latency.as_secs_f64());
    }

    pub fn email_attempt_failed(&self, kind: &str) {
        self.inner
            .email_attempts_failed
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub fn webhook_delivery(&self, event: &str, outcome: &str) {
        self.inner
            .webhook_deliveries
            .get_or_create(&WebhookLabels {
                event: event.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The state read at scrape time.
    pub fn set_state(&self, state: &State) {
        self.inner.hash_queue_depth.set(state.hash_queue_depth);
        self.inner.db_pool_in_use.set(state.db_pool_in_use);
        self.inner.db_pool_size.set(state.db_pool_size);
        self.inner
            .redis_fallback
            .set(i64::from(state.redis_fallback));
        for (status, n) in [
            ("pending", state.outbox_pending),
            ("failed", state.outbox_failed),
        ] {
            self.inner
                .outbox
                .get_or_create(&StatusLabels {
                    status: status.to_owned(),
                })
                .set(n);
        }
        for (status, n) in [
            ("pending", state.webhooks_pending),
            ("failed", state.webhooks_failed),
        ] {
            self.inner
                .webhook_backlog
                .get_or_create(&StatusLabels {
                    status: status.to_owned(),
                })
                .set(n);
        }
    }

    /// The OpenMetrics text Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}

/// What `/metrics` reads from the running parts before rendering.
#[derive(Debug, Default)]
pub struct State {
    pub hash_queue_depth: i64,
    pub db_pool_in_use: i64,
    pub db_pool_size: i64,
    pub redis_fallback: bool,
    pub outbox_pending: i64,
    pub outbox_failed: i64,
    pub webhooks_pending: i64,
    pub webhooks_failed: i64,
}
