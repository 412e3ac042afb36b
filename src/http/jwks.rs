//! `GET /.well-known/jwks.json`: the public keys access tokens are signed with (RFC 7517),
//! for the team's services to verify tokens without asking roster.
//!
//! Cacheable for a minute: a verifier refetches when it meets a `kid` it does not hold (as
//! PyJWT's `PyJWKClient` and jose's `createRemoteJWKSet` do), and an HTTP cache in between
//! holds the set no longer than that after a rotation. roster is not an OpenID provider, so
//! `/.well-known/openid-configuration` is not served: a verifier is configured with the
//! issuer (`--public-url`) and this URL.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::errors::json_error;
use crate::error::codes;

/// `Cache-Control` of the key set.
pub const CACHE_CONTROL: &str = "public, max-age=60";

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(state): State<AppState>) -> Response {
    match state.tokens.jwks().await {
        Ok(body) => {
            let mut response = body.to_string().into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/jwk-set+json"),
            );
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(CACHE_CONTROL),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "reading the signing keys failed");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::SERVER_BUSY,
                "the key store did not answer; retry shortly",
            )
        }
    }
}
