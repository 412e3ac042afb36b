//! Reading a request's credential: `Authorization: Bearer <token>` (a session token, or an
//! API key: `rsk_…`), else the session cookie. Only the name the server writes is read: `__Host-roster_session` when the cookie
//! is `Secure` (the browser refuses that name unless this very host set it over HTTPS with
//! `Path=/` and no `Domain`, so a sibling subdomain can neither plant nor shadow it), and
//! `roster_session` for plain-HTTP development.

use axum::http::{HeaderMap, header};

use crate::sessions::Token;

/// The cookie `login` sets and `logout` clears, over plain HTTP (`--session-cookie-secure
/// false`, development only).
pub const COOKIE_NAME: &str = "roster_session";
/// The cookie's name when it is `Secure` (the default).
pub const SECURE_COOKIE_NAME: &str = "__Host-roster_session";

/// The one cookie name written and read: `__Host-` prefixed when `Secure`.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE_NAME
    } else {
        COOKIE_NAME
    }
}

/// What a request presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session token (bearer or cookie): a person signed in.
    Session(Token),
    /// An API key's secret (bearer only): a script, for the admin API alone.
    ApiKey(Token),
}

impl Credential {
    /// The session token, if this is one.
    pub fn session(&self) -> Option<&Token> {
        match self {
            Self::Session(t) => Some(t),
            Self::ApiKey(_) => None,
        }
    }
}

/// The credential of a request: `Authorization: Bearer <token>` first, else the session
/// cookie named `cookie` (when cookies are read). Anything that is not a well-formed token or
/// key is ignored, leaving the caller anonymous.
pub fn from_headers(headers: &HeaderMap, cookie: Option<&str>) -> Option<Credential> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let bearer = auth.to_str().ok().and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })?;
        // A session token is 43 characters and may itself begin with `rsk_`; a key is longer.
        if let Some(key) = crate::admin::api_keys::parse(bearer) {
            return Some(Credential::ApiKey(key));
        }
        return Token::parse(bearer).map(Credential::Session);
    }
    let cookie_name = cookie?;
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == cookie_name)
        .map(|(_, value)| value.trim());
    // Two cookies of that name mean one was planted (a sibling subdomain can set one with
    // a narrower path, which the browser sends first): trust neither.
    match (values.next(), values.next()) {
        (Some(value), None) => Token::parse(value).map(Credential::Session),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {value}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn a_session_token_that_happens_to_begin_like_a_key_is_still_a_session_token() {
        let token = format!("rsk_{}", "a".repeat(39));
        assert_eq!(
            from_headers(&bearer(&token), None),
            Token::parse(&token).map(Credential::Session)
        );
        let key = format!("rsk_{}", "b".repeat(43));
        assert!(matches!(
            from_headers(&bearer(&key), None),
            Some(Credential::ApiKey(_))
        ));
        assert_eq!(from_headers(&bearer("rsk_short"), None), None);
    }
}
