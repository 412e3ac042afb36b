use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

/// Gives every request an id (a sane one from the client is kept, so a trace can cross a
/// proxy; anything else is replaced, so a client cannot write into our logs), runs the
/// request inside a span that carries it, echoes it in the response, and logs one access line.
pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    // `is_sane` admits only visible ASCII, so this cannot fail; a fresh id if it ever did.
    let (id, value) = match HeaderValue::from_str(&id) {
        Ok(value) => (id, value),
        Err(_) => {
            let fresh = uuid::Uuid::now_v7().to_string();
            let value = HeaderValue::from_str(&fresh).unwrap_or(HeaderValue::from_static("-"));
            (fresh, value)
        }
    };
    request.headers_mut().insert(HEADER, value.clone());

    // Only what the server chose goes into the log: the route pattern that matched (never the
    // raw path, which a client can fill with anything) and a standard method name.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "other",
    };
    let span = tracing::info_span!("request", request_id = %id, method, route = %route);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request finished"
        );
    });
    response.headers_mut().insert(HEADER, value);
    response
}

fn is_sane(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
