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

use std::net::SocketAddr;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::negotiate::{ResponseType, negotiate};
use super::{AppState, client_ip, graphiql};
use crate::error::codes;
use crate::graphql::ClientIp;

/// `POST /graphql`.
pub async fn post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                response_type,
                codes::BAD_REQUEST,
                "the request body is not valid JSON",
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
    let ip = client_ip::resolve(peer, &headers, &state.trusted_proxies);
    execute(&state, params, ip, response_type).await
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
            match serde_json::from_str::<Value>(&raw) {
                Ok(v) => {
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
    if params.is_mutation() {
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
    let ip = client_ip::resolve(peer, &headers, &state.trusted_proxies);
    execute(&state, params, ip, response_type).await
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

    /// Whether the operation that would run is a mutation. A document that does not parse
    /// is not (it will fail to parse again in `execute` and be answered as such).
    fn is_mutation(&self) -> bool {
        let Ok(doc) = async_graphql::parser::parse_query(&self.request.query) else {
            return false;
        };
        let name = self.request.operation_name.as_deref();
        match &doc.operations {
            DocumentOperations::Single(op) => op.node.ty == OperationType::Mutation,
            DocumentOperations::Multiple(ops) => match name {
                Some(name) => ops
                    .get(name)
                    .is_some_and(|op| op.node.ty == OperationType::Mutation),
                // Ambiguous without a name: it won't execute, but don't let GET try.
                None => ops.values().any(|op| op.node.ty == OperationType::Mutation),
            },
        }
    }
}

async fn execute(
    state: &AppState,
    params: GraphqlParams,
    ip: std::net::IpAddr,
    response_type: ResponseType,
) -> Response {
    let request = params.request.data(ClientIp(ip));
    let response = state.schema.execute(request).await;

    // No path on any error and no data: the request failed before execution (parse,
    // validation, limits, unknown operation) and nothing ran.
    let request_error = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let first_code = |wanted: &str| {
        response.errors.iter().find_map(|e| {
            let ext = e.extensions.as_ref()?;
            match ext.get("code") {
                Some(async_graphql::Value::String(c)) if c == wanted => {
                    Some(match ext.get("retryAfter") {
                        Some(async_graphql::Value::Number(n)) => n.as_u64().unwrap_or(1),
                        _ => 1,
                    })
                }
                _ => None,
            }
        })
    };
    let (status, retry_after) = if request_error {
        let status = match response_type {
            ResponseType::GraphqlResponse => StatusCode::BAD_REQUEST,
            ResponseType::Json => StatusCode::OK,
        };
        (status, None)
    } else if let Some(secs) = first_code(codes::RATE_LIMITED) {
        (StatusCode::TOO_MANY_REQUESTS, Some(secs))
    } else if let Some(secs) = first_code(codes::SERVER_BUSY) {
        (StatusCode::SERVICE_UNAVAILABLE, Some(secs))
    } else {
        (StatusCode::OK, None)
    };

    let mut body = serde_json::to_value(&response).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut body {
        for error in map
            .get_mut("errors")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            tag_untagged(error, request_error);
        }
        if request_error {
            map.remove("data");
        }
    }
    let mut http = json_response(status, response_type, &body);
    if let Some(secs) = retry_after {
        http.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    http
}

/// Request errors async-graphql raises itself (unknown operation, missing operation name)
/// carry no code; give them `BAD_REQUEST` so every error has one.
fn tag_untagged(error: &mut Value, request_error: bool) {
    let Value::Object(error) = error else { return };
    let extensions = error
        .entry("extensions")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(ext) = extensions
        && !ext.contains_key("code")
    {
        let code = if request_error {
            codes::BAD_REQUEST
        } else {
            codes::INTERNAL_SERVER_ERROR
        };
        ext.insert("code".into(), Value::String(code.into()));
    }
}

/// A GraphQL-shaped error body (`{"errors":[{message, extensions:{code}}]}`) with no `data`.
pub fn error_response(
    status: StatusCode,
    response_type: ResponseType,
    code: &str,
    message: &str,
) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    json_response(status, response_type, &body)
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
    error_response(
        StatusCode::NOT_ACCEPTABLE,
        ResponseType::Json,
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

/// Reads at most `limit` bytes: 413 as soon as the declared or actual size exceeds it,
/// 408 when the body stalls (the body-timeout layer cuts it), 400 on any other failure.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, StatusCode> {
    use http_body::Body as _;
    if body.size_hint().lower() > limit as u64 {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
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
