//! An executed (or refused) GraphQL request as HTTP: the status from the errors' typed
//! hints (never from their text), the error list capped, errors without a code masked, the
//! size capped, and no answer cached.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::errors::{error_body, error_response, json_response};
use super::negotiate::ResponseType;
use crate::error::codes;
use crate::graphql::errors::HttpHint;

/// At most this many errors are returned; the rest are summarised in one more.
pub const MAX_ERRORS: usize = 20;

/// Turns an executed (or refused) request into HTTP: status from typed error data, error
/// list capped, untagged errors masked, size capped.
pub fn graphql_response(
    mut response: async_graphql::Response,
    response_type: ResponseType,
    max_bytes: usize,
) -> Response {
    // Headers set during execution (`Set-Cookie` from `login`/`logout`) go out whatever the
    // body becomes.
    let mut http = body_response(&mut response, response_type, max_bytes);
    for (name, value) in std::mem::take(&mut response.http_headers).iter() {
        http.headers_mut().append(name, value.clone());
    }
    // Answers may carry a session token or personal data: never cached.
    http.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    http
}

fn body_response(
    response: &mut async_graphql::Response,
    response_type: ResponseType,
    max_bytes: usize,
) -> Response {
    // No path on any error and no data: the request failed before execution (parse,
    // validation, limits, unknown operation) and nothing ran.
    let request_error = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let omitted = response.errors.len().saturating_sub(MAX_ERRORS);
    response.errors.truncate(MAX_ERRORS);
    if omitted > 0 {
        let code = response
            .errors
            .last()
            .and_then(|e| e.extensions.as_ref())
            .and_then(|ext| ext.get("code").cloned());
        let mut note =
            async_graphql::ServerError::new(format!("{omitted} more errors omitted"), None);
        if let Some(code) = code {
            note.extensions
                .get_or_insert_with(Default::default)
                .set("code", code);
        }
        response.errors.push(note);
    }
    // The most severe hint wins: 503 (retry soon) over 429 (slow down) over 200.
    let hint = response
        .errors
        .iter()
        .filter_map(|e| e.source::<HttpHint>())
        .max_by_key(|h| h.status)
        .copied();
    for error in &mut response.errors {
        mask_untagged(error, request_error);
    }
    let (status, retry_after) = if request_error {
        let status = match response_type {
            ResponseType::GraphqlResponse => StatusCode::BAD_REQUEST,
            ResponseType::Json => StatusCode::OK,
        };
        (status, None)
    } else {
        match hint {
            Some(h) => (
                StatusCode::from_u16(h.status).unwrap_or(StatusCode::OK),
                h.retry_after,
            ),
            None => (StatusCode::OK, None),
        }
    };

    // A response that cannot be serialised is a logged 500, never a 200 with `{}`.
    let serialised = serde_json::to_value(&*response).and_then(|mut body| {
        if request_error && let Value::Object(map) = &mut body {
            map.remove("data");
        }
        serde_json::to_vec(&body)
    });
    let bytes = match serialised {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "a GraphQL response could not be serialised");
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                response_type,
                &error_body(codes::INTERNAL_SERVER_ERROR, "internal server error"),
            );
        }
    };
    if bytes.len() > max_bytes {
        tracing::warn!(
            bytes = bytes.len(),
            "response over the size limit replaced by an error"
        );
        let status = match response_type {
            ResponseType::GraphqlResponse => StatusCode::BAD_REQUEST,
            ResponseType::Json => StatusCode::OK,
        };
        return error_response(
            status,
            response_type,
            codes::RESPONSE_TOO_LARGE,
            &format!("the response would exceed {max_bytes} bytes; select fewer fields"),
        );
    }
    let mut http = (status, Body::from(bytes)).into_response();
    http.headers_mut()
        .insert(header::CONTENT_TYPE, response_type.content_type());
    if let Some(secs) = retry_after {
        http.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    http
}

/// Errors async-graphql raises itself carry no code. Before execution (unknown operation,
/// missing operation name) they name only operations: tag them `BAD_REQUEST`. During
/// execution (an argument that failed to parse, a bug) their text may quote the submitted
/// value — a password — so the client gets the fixed internal message and the log gets
/// only the path.
fn mask_untagged(error: &mut async_graphql::ServerError, request_error: bool) {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some());
    if has_code {
        return;
    }
    let code = if request_error {
        codes::BAD_REQUEST
    } else {
        let path: Vec<String> = error
            .path
            .iter()
            .map(|p| match p {
                async_graphql::PathSegment::Field(f) => f.clone(),
                async_graphql::PathSegment::Index(i) => i.to_string(),
            })
            .collect();
        tracing::error!(path = %path.join("."), "an execution error without a code was masked");
        error.message = "internal server error".into();
        codes::INTERNAL_SERVER_ERROR
    };
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncoded_execution_error_is_masked_and_a_request_error_tagged() {
        let mut e = async_graphql::ServerError::new(
            "Failed to parse \"RegisterInput\": password \"hunter2-secret\"",
            None,
        );
        e.path = vec![async_graphql::PathSegment::Field("register".into())];
        mask_untagged(&mut e, false);
        assert_eq!(e.message, "internal server error");
        assert_eq!(
            e.extensions.as_ref().and_then(|x| x.get("code")).cloned(),
            Some(async_graphql::Value::from(codes::INTERNAL_SERVER_ERROR))
        );
        let mut e = async_graphql::ServerError::new("Unknown operation named \"X\"", None);
        mask_untagged(&mut e, true);
        assert_eq!(e.message, "Unknown operation named \"X\"");
        assert_eq!(
            e.extensions.as_ref().and_then(|x| x.get("code")).cloned(),
            Some(async_graphql::Value::from(codes::BAD_REQUEST))
        );
    }
}
