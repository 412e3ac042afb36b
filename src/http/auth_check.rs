//! `GET /auth/check` (and `HEAD`): forward auth for a reverse proxy in front of the team's
//! other services — nginx `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`.
//!
//! The credential is read as the GraphQL API reads it (`Authorization: Bearer`, else the
//! session cookie) and resolved on every check, with no cache: a logout, a revocation, a
//! password change or a deactivation answers 401 on the very next check, on every process.
//! The cookie counts here on `GET` (unlike GraphQL's, which needs `POST` + JSON): a check
//! changes nothing and answers only the proxy, so a cross-site request gains nothing by it.
//!
//! Signed in: `200`, an empty body, and the identity in headers a proxy copies to the
//! upstream. Every value is plain ASCII with no separator a proxy could mis-split: ids are
//! UUIDs or digits, and the username (Unicode) is percent-encoded (RFC 3986: every byte but
//! `A–Z a–z 0–9 - . _ ~` as `%XX` of its UTF-8). Anything else: `401` with
//! `WWW-Authenticate` and no identity header. No hash is computed: one indexed query.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::AppState;
use super::errors::json_error;
use crate::error::codes;

/// RFC 3986's unreserved characters stay as they are; every other byte is `%XX`.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub const USER_ID: &str = "x-roster-user-id";
pub const USERNAME: &str = "x-roster-username";
pub const SESSION_ID: &str = "x-roster-session-id";
pub const EMAIL_VERIFIED: &str = "x-roster-email-verified";
pub const LEGACY_ID: &str = "x-roster-legacy-id";
/// The session's assurance level: `1` password, `2` password and a second factor.
pub const AAL: &str = "x-roster-aal";
/// `--auth-check-jwt`: an access token for the caller (ES256, `--jwt-default-audience`).
pub const JWT: &str = "x-roster-jwt";

/// A username as a header value: percent-encoded UTF-8, so nothing a client chose can carry
/// a line break, a comma or a byte a proxy would read differently.
pub fn encode_username(username: &str) -> String {
    utf8_percent_encode(username, NOT_UNRESERVED).to_string()
}

/// Logs a check that could not read the session, at most one line a second (with how many
/// were left out since the last): while the database is unreachable every check fails, at
/// the rate the proxies ask, and a line each would bury the log. The metric counts each
/// (`roster_auth_checks_total{outcome="error"}`).
fn log_failed_check(error: &sea_orm::DbErr) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
    static LEFT_OUT: AtomicU64 = AtomicU64::new(0);
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_SECOND.load(Ordering::Relaxed);
    if second != last
        && LAST_SECOND
            .compare_exchange(last, second, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let left_out = LEFT_OUT.swap(0, Ordering::Relaxed);
        tracing::error!(%error, left_out, "an auth check could not read the session");
    } else {
        LEFT_OUT.fetch_add(1, Ordering::Relaxed);
    }
}

/// `GET|HEAD /auth/check`.
pub async fn check(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    // Forward auth vouches for people: an API key is no session here.
    let credential = crate::auth::credential::from_headers(&headers, state.session_cookie);
    let caller = match credential.as_ref().and_then(|c| c.session()) {
        Some(token) => state.sessions.authenticate(token).await,
        None => Ok(None),
    };
    let caller = match caller {
        // A session still waiting for its second step is nobody yet.
        Ok(Some(caller)) if !caller.session.mfa_pending => caller,
        Ok(_) => {
            state.metrics.auth_check("anonymous");
            let mut response = StatusCode::UNAUTHORIZED.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="roster""#),
            );
            no_store(&mut response);
            return response;
        }
        Err(e) => {
            state.metrics.auth_check("error");
            log_failed_check(&e);
            let mut response = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::SERVER_BUSY,
                "the session store did not answer; retry shortly",
            );
            no_store(&mut response);
            return response;
        }
    };
    // Signed before anything is answered: a check that cannot carry the token it promised
    // is refused as a store failure, never passed on without it.
    let jwt = if state.auth_check_jwt {
        match state.tokens.for_check(&caller).await {
            Ok(token) => Some(token),
            Err(e) => {
                state.metrics.auth_check("error");
                tracing::error!(error = %e, "an auth check could not sign its token");
                let mut response = json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::SERVER_BUSY,
                    "the key store did not answer; retry shortly",
                );
                no_store(&mut response);
                return response;
            }
        }
    } else {
        None
    };
    state.metrics.auth_check("signed_in");
    let mut response = StatusCode::OK.into_response();
    let user = &caller.user;
    let mut identity = vec![
        (USER_ID, user.id.to_string()),
        (USERNAME, encode_username(&user.username)),
        (SESSION_ID, caller.session.id.to_string()),
        (EMAIL_VERIFIED, user.email_verified.to_string()),
        (AAL, caller.session.aal.to_string()),
    ];
    if let Some(legacy) = user.legacy_id {
        identity.push((LEGACY_ID, legacy.to_string()));
    }
    if let Some(jwt) = jwt {
        // base64url and dots: a plain header value.
        identity.push((JWT, jwt.to_string()));
    }
    for (name, value) in identity {
        // Every value above is ASCII without control characters; a failure is impossible,
        // and would drop the header rather than the answer.
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    no_store(&mut response);
    response
}

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    use super::encode_username;

    #[test]
    fn usernames_become_plain_ascii_header_values() {
        assert_eq!(encode_username("alice_b.c-d~"), "alice_b.c-d~");
        assert_eq!(encode_username("Zoë"), "Zo%C3%AB");
        assert_eq!(encode_username("a b,c;d\r\ne"), "a%20b%2Cc%3Bd%0D%0Ae");
        assert_eq!(encode_username("x@y.example"), "x%40y.example");
    }
}
