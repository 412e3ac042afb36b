//! The HTTP face: GraphQL over HTTP, GraphiQL, health probes, request ids, limits.

/// `GET /auth/check`: forward auth for a reverse proxy.
pub mod auth_check;
/// Which peer is the client: the socket address, or a trusted proxy's `X-Forwarded-For`.
mod client_ip;
/// The client address on every request, and the per-client budget for all requests.
mod client_limit;
/// The one error body of every answer outside GraphQL execution.
mod errors;
/// GraphiQL, served from files compiled into the binary.
mod graphiql;
/// `POST /graphql` and `GET /graphql` per the GraphQL-over-HTTP spec.
mod graphql;
/// `GET /.well-known/jwks.json`: the access tokens' public keys.
pub mod jwks;
/// `Accept` negotiation between `application/graphql-response+json` and `application/json`.
mod negotiate;
/// `/verify-email`, `/reset-password` and `/change-email` (the pages email links open) and
/// `/admin`.
mod pages;
/// A request id on every request, its log span, and the access log line.
mod request_id;
/// An executed GraphQL request as HTTP: status, capped errors and size, masking.
mod respond;
/// The accept loop: header and idle timeouts, a connection cap, a bounded drain.
pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::accounts::AccountService;
use crate::config::Config;
use crate::graphql::RosterSchema;
use crate::graphql::document::Checker;
use crate::ratelimit::ClientLimiter;

/// Everything a handler needs, behind one `Arc`: axum clones the state for every request (the
/// `State` extractor, the client-limit middleware), and cloning the fields themselves took
/// and dropped a reference count each — 5% of a forward-auth check's CPU on PostgreSQL
/// (docs/benchmarks-log.md, "Forward auth on PostgreSQL").
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

impl AppState {
    pub fn new(parts: AppParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct AppParts {
    pub schema: RosterSchema,
    pub service: AccountService,
    pub graphiql: bool,
    pub body_limit: usize,
    pub max_response_bytes: usize,
    pub checker: Checker,
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// The per-client budget for every request but the probes.
    pub request_limiter: ClientLimiter,
    /// Resolves a request's token to its caller.
    pub sessions: crate::sessions::Sessions,
    /// The session cookie's name when it is read (`--session-cookie`): only that one name,
    /// `__Host-roster_session` when `Secure`.
    pub session_cookie: Option<&'static str>,
    /// Redis, when limits are shared (`--redis-url`), for `/readyz`.
    pub shared: Option<crate::ratelimit::Shared>,
    pub metrics: crate::metrics::Metrics,
    /// The hash pool, for the queue-depth gauge.
    pub hasher: crate::password::Hasher,
    /// Access tokens' keys, for the JWKS (and `/auth/check`'s tokens).
    pub tokens: crate::tokens::AccessTokens,
    /// `--auth-check-jwt`: `/auth/check` answers `X-Roster-Jwt` too.
    pub auth_check_jwt: bool,
    /// `--require-mfa-for-staff`.
    pub require_mfa_for_staff: bool,
}

/// Builds the router with every layer. Serve it with [`serve::serve`], which gives each
/// request its peer as `ConnectInfo<SocketAddr>`: the client address is needed.
pub fn router(state: AppState, config: &Config) -> Router {
    let limits = &config.limits;
    let mut app = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/auth/check", get(auth_check::check))
        .route("/.well-known/jwks.json", get(jwks::jwks))
        .route("/graphiql/{file}", get(graphiql::asset))
        .route("/verify-email", get(pages::verify_email))
        .route("/reset-password", get(pages::reset_password))
        .route("/change-email", get(pages::change_email))
        .route("/admin", get(pages::admin))
        .route("/pages/{file}", get(pages::asset));
    if config.admin_listen.is_none() {
        app = probe_routes(app);
        if config.public_metrics {
            app = app.route("/metrics", get(metrics));
        }
    }
    let mut app = app
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            client_limit::middleware,
        ))
        .with_state(state);
    if !limits.cors_origins.is_empty() {
        // `Config::validate` has refused wildcards and anything that is not a header value.
        let origins: Vec<HeaderValue> = limits
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
            .collect();
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE, header::ACCEPT, header::AUTHORIZATION])
                .max_age(Duration::from_secs(600)),
        );
    }
    let timeout = limits.request_timeout();
    app.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn(request_id::middleware))
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(axum::middleware::from_fn(move |r: Request, n: Next| {
                request_deadline(timeout, r, n)
            }))
            .layer(RequestBodyTimeoutLayer::new(limits.body_timeout())),
    )
}

/// `/healthz` and `/readyz`: on the main router, or with `/metrics` on `--admin-listen`.
fn probe_routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The probes and `/metrics`. The metrics are here, never on the public address unless
/// `--public-metrics`: they count deliveries to real accounts (an account oracle).
fn admin_routes(router: Router<AppState>) -> Router<AppState> {
    probe_routes(router).route("/metrics", get(metrics))
}

/// The router of `--admin-listen`: probes and metrics only, so they never queue behind
/// public traffic and the metrics need not face the internet.
pub fn admin_router(state: AppState) -> Router {
    admin_routes(Router::new())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// `GET /metrics`: Prometheus (OpenMetrics) text; the gauges are read now.
async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let db = state.service.db();
    let (in_use, size) = pool_stats(db);
    let backlog = tokio::time::timeout(Duration::from_secs(2), crate::outbox::backlog(db)).await;
    let (pending, failed) = match backlog {
        Ok(Ok(counts)) => counts,
        // Unknown rather than a made-up zero.
        _ => (-1, -1),
    };
    let hooks =
        tokio::time::timeout(Duration::from_secs(2), crate::webhooks::worker::backlog(db)).await;
    let (hooks_pending, hooks_failed) = match hooks {
        Ok(Ok(counts)) => counts,
        _ => (-1, -1),
    };
    state.metrics.set_state(&crate::metrics::State {
        hash_queue_depth: i64::try_from(state.hasher.queued()).unwrap_or(i64::MAX),
        db_pool_in_use: in_use,
        db_pool_size: size,
        redis_fallback: state.shared.as_ref().is_some_and(|s| !s.is_healthy()),
        outbox_pending: pending,
        outbox_failed: failed,
        webhooks_pending: hooks_pending,
        webhooks_failed: hooks_failed,
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Connections of the serving pool: in use, open.
fn pool_stats(db: &sea_orm::DatabaseConnection) -> (i64, i64) {
    let (size, idle) = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        sea_orm::DatabaseBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    };
    let size = i64::from(size);
    (size - i64::try_from(idle).unwrap_or(0), size)
}

/// The whole-request timeout: 408 with a JSON body, except once a commit has begun
/// (see [`crate::deadline`]).
async fn request_deadline(timeout: Duration, request: Request, next: Next) -> Response {
    match crate::deadline::run(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(()) => errors::json_error(
            StatusCode::REQUEST_TIMEOUT,
            crate::error::codes::BAD_REQUEST,
            "the request took too long and was abandoned; nothing was written",
        ),
    }
}

async fn method_not_allowed() -> Response {
    errors::json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        crate::error::codes::BAD_REQUEST,
        "method not allowed; the API is POST /graphql",
    )
}

/// Liveness: the process answers.
async fn healthz() -> Response {
    json_status(StatusCode::OK, "ok")
}

/// Readiness: the database answers within two seconds (503 otherwise); `degraded` (still
/// 200) while the shared Redis is unreachable.
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let ping = tokio::time::timeout(Duration::from_secs(2), state.service.ping()).await;
    if !matches!(ping, Ok(true)) {
        return json_status(StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
    }
    // Still ready without Redis: an outage must not pull every process out of the load
    // balancer at once. The body says what is missing.
    match &state.shared {
        Some(redis) if !redis.is_healthy() => (
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "status": "degraded",
                "redis": "unreachable: rate limits are enforced per process",
            })),
        )
            .into_response(),
        _ => json_status(StatusCode::OK, "ready"),
    }
}

fn json_status(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "status": text }))).into_response()
}

async fn not_found() -> Response {
    errors::json_error(
        StatusCode::NOT_FOUND,
        crate::error::codes::BAD_REQUEST,
        "not found; the API is POST /graphql",
    )
}

/// A panic is a bug; the client gets the same fixed answer as any internal error.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    errors::json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        crate::error::codes::INTERNAL_SERVER_ERROR,
        "internal server error",
    )
}
