//! GraphiQL 4.1.2 with React 18.3.1, compiled into the binary: the playground works with
//! no internet. Provenance, checksums and how to refresh: `graphiql/README.md`.

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("graphiql/index.html");

/// Everything the page loads comes from us, so the policy can forbid every other origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    font-src 'self' data:; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The HTML page for `GET /graphql` from a browser.
pub fn page() -> Response {
    html_page(PAGE, CSP)
}

/// A compiled-in HTML page under `csp`, never sniffed as another type.
pub fn html_page(body: &'static str, csp: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /graphiql/{file}`: the vendored scripts and stylesheet.
///
/// Reads the raw path rather than using axum's `Path` extractor, whose rejection of a
/// malformed percent-encoding would answer in plain text instead of our JSON error.
pub async fn asset(uri: Uri) -> Response {
    let file = uri.path().strip_prefix("/graphiql/").unwrap_or_default();
    static_file(match file {
        "react.production.min.js" => Some((
            include_bytes!("graphiql/react.production.min.js").as_slice(),
            "text/javascript; charset=utf-8",
        )),
        "react-dom.production.min.js" => Some((
            include_bytes!("graphiql/react-dom.production.min.js").as_slice(),
            "text/javascript; charset=utf-8",
        )),
        "graphiql.min.js" => Some((
            include_bytes!("graphiql/graphiql.min.js").as_slice(),
            "text/javascript; charset=utf-8",
        )),
        "graphiql.min.css" => Some((
            include_bytes!("graphiql/graphiql.min.css").as_slice(),
            "text/css; charset=utf-8",
        )),
        "init.js" => Some((
            include_bytes!("graphiql/init.js").as_slice(),
            "text/javascript; charset=utf-8",
        )),
        _ => None,
    })
}

/// A file compiled into the binary, cacheable for an hour, or the JSON 404.
pub fn static_file(file: Option<(&'static [u8], &'static str)>) -> Response {
    let Some((body, content_type)) = file else {
        return super::errors::json_error(
            StatusCode::NOT_FOUND,
            crate::error::codes::BAD_REQUEST,
            "no such file",
        );
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
