//! The one shape of every error roster answers outside GraphQL execution
//! (`{"errors":[{message, extensions:{code}}]}`), shared by every handler and the
//! connection layer.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::negotiate::ResponseType;
use crate::error::codes;

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

/// `body` as JSON with `status`; a body that fails to serialise is a logged 500 with a fixed
/// body, never a 200 or an empty answer.
pub fn json_response(status: StatusCode, response_type: ResponseType, body: &Value) -> Response {
    let (status, bytes) = match serde_json::to_vec(body) {
        Ok(bytes) => (status, bytes),
        Err(e) => {
            tracing::error!(error = %e, "an answer could not be serialised");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                SERIALISATION_FAILED.as_bytes().to_vec(),
            )
        }
    };
    let mut response = (status, Body::from(bytes)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, response_type.content_type());
    response
}

/// The body of an answer that could not be serialised: written by hand, so it cannot fail.
pub const SERIALISATION_FAILED: &str = r#"{"errors":[{"message":"internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#;

pub fn not_acceptable() -> Response {
    json_error(
        StatusCode::NOT_ACCEPTABLE,
        codes::BAD_REQUEST,
        "cannot answer in any type the Accept header allows; accept application/graphql-response+json or application/json",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_body_is_the_error_shape() {
        let v: Value = serde_json::from_str(SERIALISATION_FAILED).unwrap();
        assert_eq!(
            v,
            error_body(codes::INTERNAL_SERVER_ERROR, "internal server error")
        );
    }
}
