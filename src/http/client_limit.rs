use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;

use super::{AppState, client_ip, errors};
use crate::error::codes;
use crate::graphql::ClientIp;

/// Resolves the client address once (handlers read it as `Extension<ClientIp>`), and spends
/// one token of the client's request budget (`--request-rate-limit`) on every request but
/// the health probes, so a load balancer's checks are never refused. `/metrics` on this
/// listener (`--public-metrics`) pays like any other request; on `--admin-listen` there is
/// no budget at all.
pub async fn middleware(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = client_ip::resolve(peer, request.headers(), &state.trusted_proxies);
    let path = request.uri().path();
    if path != "/healthz"
        && path != "/readyz"
        && let Err(wait) = state.request_limiter.check(ip).await
    {
        let secs = wait.as_secs().max(1);
        let mut response = errors::json_error(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            "too many requests from this address; retry later",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return response;
    }
    request.extensions_mut().insert(ClientIp(ip));
    next.run(request).await
}
