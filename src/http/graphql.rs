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
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::errors::{error_response, not_acceptable};
use super::negotiate::{ResponseType, negotiate};
use super::respond::graphql_response;
use super::{AppState, graphiql};
use crate::auth::Auth;
use crate::error::codes;
use crate::graphql::{ClientIp, UserAgent};
use crate::strict_json::{DUPLICATE_KEY, StrictJson};

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
    let token =
        crate::auth::credential::from_headers(headers, state.session_cookie.filter(|_| !from_get));
    let mut request = request.data(ClientIp(ip)).data(
        Auth::new(token, state.sessions.clone()).staff_need_aal2(state.require_mfa_for_staff),
    );
    if let Some(id) = headers
        .get(super::request_id::HEADER)
        .and_then(|v| v.to_str().ok())
    {
        request = request.data(crate::graphql::guard::RequestId(id.to_owned()));
    }
    if let Some(agent) = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        request = request.data(UserAgent(agent.to_owned()));
    }
    let response = state.schema.execute(request).await;
    graphql_response(response, response_type, state.max_response_bytes)
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
