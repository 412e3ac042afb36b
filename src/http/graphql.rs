//! GraphQL over HTTP, strictly (graphql/graphql-over-http):
//! - `POST` executes, and only with `Content-Type: application/json` (415 otherwise). A
//!   simple content type (`text/plain`, form encodings) is what a cross-site HTML form or
//!   `fetch` can send without a CORS preflight; refusing it is the CSRF defence.
//! - `GET` serves GraphiQL to browsers and runs queries from `?query=`; a mutation over GET
//!   is 405 with `Allow: POST`, since GET must be safe.
//! - The response type follows `Accept` (406 when nothing fits); request errors (bad JSON,
//!   unparsable or invalid documents) answer 400 without a `data` key under
//!   `application/graphql-response+json`, and 200 under legacy `application/json`.
//! - Batches (a JSON array) are refused with 400: each entry could carry a `register`.
//! - A body with a repeated object key is refused with 400: serde_json keeps the last one, so
//!   a filter in front of us that reads the first would be fooled.
//! - Every document passes [`crate::graphql::document::Checker`] (size, fan-out, argument
//!   values) before async-graphql sees it; errors are capped in number and the response in
//!   size; an error async-graphql raised without a code is answered with a fixed message,
//!   since its text may quote a submitted value.

use std::net::IpAddr;

use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::negotiate::{ResponseType, negotiate};
use super::{AppState, graphiql};
use crate::error::codes;
use crate::graphql::errors::HttpHint;
use crate::graphql::{Auth, ClientIp, UserAgent};
use crate::sessions::Token;
use crate::strict_json::{DUPLICATE_KEY, StrictJson};

/// At most this many errors are returned; the rest are summarised in one more.
pub const MAX_ERRORS: usize = 20;

/// `POST /graphql`.
pub async fn post(
    State(state): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    request: Request,
) -> Response {
    let headers = request.headers().clone();
    let Some(response_type) = negotiate(&headers) else {
        return not_acceptable();
    };
    if !is_json(&headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            response_type,
            codes::BAD_REQUEST,
            "Content-Type must be application/json",
        );
    }
    // Judged from the header before the body is touched, so `Expect: 100-continue` with an
    // oversized length is answered 413 without a `100 Continue` and without reading.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.body_limit as u64) {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            response_type,
            codes::BAD_REQUEST,
            &format!("request body exceeds {} bytes", state.body_limit),
        );
    }
    let body = match read_body(request.into_body(), state.body_limit).await {
        Ok(body) => body,
        Err(status) => {
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("request body exceeds {} bytes", state.body_limit)
            } else {
                "the request body could not be read in time".to_owned()
            };
            return error_response(status, response_type, codes::BAD_REQUEST, &message);
        }
    };
    let value: Value = match serde_json::from_slice::<StrictJson>(&body) {
        Ok(v) => v.0,
        Err(e) => {
            let message = if e.to_string().starts_with(DUPLICATE_KEY) {
                "the request body repeats an object key"
            } else {
                "the request body is not valid JSON"
            };
            return error_response(
                StatusCode::BAD_REQUEST,
                response_type,
                codes::BAD_REQUEST,
                message,
            );
        }
    };
    if value.is_array() {
        return error_response(
            StatusCode::BAD_REQUEST,
            response_type,
            codes::BAD_REQUEST,
            "batched requests are not supported; send one operation per request",
        );
    }
    let params = match GraphqlParams::from_json(value) {
        Ok(p) => p,
        Err(message) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                response_type,
                codes::BAD_REQUEST,
                &message,
            );
        }
    };
    execute(&state, params, ip, &headers, response_type, false).await
}

#[derive(Deserialize)]
struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// `GET /graphql`: GraphiQL for browsers, queries (never mutations) from the URL.
pub async fn get(
    State(state): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    headers: HeaderMap,
    raw_query: axum::extract::RawQuery,
) -> Response {
    let params: GetParams = match serde_urlencoded::from_str(raw_query.0.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                negotiate(&headers).unwrap_or(ResponseType::Json),
                codes::BAD_REQUEST,
                "malformed query string",
            );
        }
    };
    if params.query.is_none() && state.graphiql && wants_html(&headers) {
        return graphiql::page();
    }
    let Some(response_type) = negotiate(&headers) else {
        return not_acceptable();
    };
    let Some(query) = params.query else {
        return error_response(
            StatusCode::BAD_REQUEST,
            response_type,
            codes::BAD_REQUEST,
            "missing `query` parameter",
        );
    };
    let mut json = serde_json::Map::new();
    json.insert("query".into(), Value::String(query));
    if let Some(name) = params.operation_name {
        json.insert("operationName".into(), Value::String(name));
    }
    for (key, raw) in [
        ("variables", params.variables),
        ("extensions", params.extensions),
    ] {
        if let Some(raw) = raw {
            match serde_json::from_str::<StrictJson>(&raw) {
                Ok(StrictJson(v)) => {
                    json.insert(key.into(), v);
                }
                Err(_) => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        response_type,
                        codes::BAD_REQUEST,
                        &format!("`{key}` must be JSON"),
                    );
                }
            }
        }
    }
    let params = match GraphqlParams::from_json(Value::Object(json)) {
        Ok(p) => p,
        Err(message) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                response_type,
                codes::BAD_REQUEST,
                &message,
            );
        }
    };
    execute(&state, params, ip, &headers, response_type, true).await
}

/// A decoded GraphQL-over-HTTP request.
struct GraphqlParams {
    request: async_graphql::Request,
}

impl GraphqlParams {
    fn from_json(value: Value) -> Result<Self, String> {
        let Value::Object(map) = &value else {
            return Err("the request body must be a JSON object".into());
        };
        match map.get("query") {
            Some(Value::String(_)) => {}
            Some(_) => return Err("`query` must be a string".into()),
            None => return Err("missing `query`".into()),
        }
        if map
            .get("operationName")
            .is_some_and(|v| !(v.is_string() || v.is_null()))
        {
            return Err("`operationName` must be a string".into());
        }
        if map
            .get("variables")
            .is_some_and(|v| !(v.is_object() || v.is_null()))
        {
            return Err("`variables` must be an object".into());
        }
        if map
            .get("extensions")
            .is_some_and(|v| !(v.is_object() || v.is_null()))
        {
            return Err("`extensions` must be an object".into());
        }
        let request = serde_json::from_value(value)
            .map_err(|_| "the request body is not a GraphQL request".to_owned())?;
        Ok(Self { request })
    }
}

async fn execute(
    state: &AppState,
    params: GraphqlParams,
    ip: IpAddr,
    headers: &HeaderMap,
    response_type: ResponseType,
    from_get: bool,
) -> Response {
    let mut request = params.request;
    let prepared = state.checker.prepare(
        &request.query,
        request.operation_name.as_deref(),
        &request.variables,
    );
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            let response = async_graphql::Response::from_errors(vec![e]);
            return graphql_response(response, response_type, state.max_response_bytes);
        }
    };
    if from_get && prepared.is_mutation {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            response_type,
            codes::BAD_REQUEST,
            "mutations must be sent with POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    request.set_parsed_query(prepared.document);
    // The cookie counts only on POST (which must be `application/json`, so no other site
    // can send it without a CORS preflight); a GET is never signed in by a cookie.
    let token = credentials(headers, state.session_cookie.filter(|_| !from_get));
    let mut request = request
        .data(ClientIp(ip))
        .data(Auth::new(token, state.sessions.clone()));
    if let Some(agent) = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        request = request.data(UserAgent(agent.to_owned()));
    }
    let response = state.schema.execute(request).await;
    graphql_response(response, response_type, state.max_response_bytes)
}

/// The session token of a request: `Authorization: Bearer <token>` first, else the
/// session cookie named `cookie` (when cookies are read). Anything that is not a well-formed token
/// is ignored, leaving the caller anonymous.
fn credentials(headers: &HeaderMap, cookie: Option<&str>) -> Option<Token> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let bearer = auth.to_str().ok().and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        return bearer.and_then(Token::parse);
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
        (Some(value), None) => Token::parse(value),
        _ => None,
    }
}

/// Turns an executed (or refused) request into HTTP: status from typed error data, error
/// list capped, untagged errors masked, size capped.
fn graphql_response(
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

    let mut body = serde_json::to_value(&*response).unwrap_or_else(|_| json!({}));
    if request_error && let Value::Object(map) = &mut body {
        map.remove("data");
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
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

/// A GraphQL-shaped error body (`{"errors":[{message, extensions:{code}}]}`) with no `data`.
pub fn error_response(
    status: StatusCode,
    response_type: ResponseType,
    code: &str,
    message: &str,
) -> Response {
    json_response(status, response_type, &error_body(code, message))
}

/// The one shape of every error roster answers outside GraphQL execution.
pub fn error_body(code: &str, message: &str) -> Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

/// [`error_response`] as `application/json`, for answers given before `Accept` is read.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    error_response(status, ResponseType::Json, code, message)
}

fn json_response(status: StatusCode, response_type: ResponseType, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = (status, Body::from(bytes)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, response_type.content_type());
    response
}

fn not_acceptable() -> Response {
    json_error(
        StatusCode::NOT_ACCEPTABLE,
        codes::BAD_REQUEST,
        "cannot answer in any type the Accept header allows; accept application/graphql-response+json or application/json",
    )
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == mime::APPLICATION
                && m.subtype() == mime::JSON
                && m.get_param(mime::CHARSET)
                    .is_none_or(|c| c == mime::UTF_8 || c.as_str().eq_ignore_ascii_case("utf-8"))
        })
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

/// Reads at most `limit` bytes: 413 as soon as the actual size exceeds it,
/// 408 when the body stalls (the body-timeout layer cuts it), 400 on any other failure.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, StatusCode> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return StatusCode::PAYLOAD_TOO_LARGE;
            }
            if s.is::<tower_http::timeout::TimeoutError>() {
                return StatusCode::REQUEST_TIMEOUT;
            }
            source = s.source();
        }
        StatusCode::BAD_REQUEST
    })
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
