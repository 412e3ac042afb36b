//! The small pages roster serves: `/verify-email`, `/reset-password` and `/change-email`
//! (email links open them) and `/admin` (the operators' page). Compiled in, no external asset, a strict CSP.
//! Opening a link page does nothing by itself: the token is used only when the person
//! presses the button, since mail scanners prefetch links.

use axum::http::{HeaderValue, Uri, header};
use axum::response::Response;

/// Only our own script, stylesheet and endpoint; nothing may frame the page.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
    img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn html(body: &'static str) -> Response {
    let mut response = super::graphiql::html_page(body, CSP);
    let headers = response.headers_mut();
    // The URL carries the token: never send it on as a Referer, never cache the page.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /verify-email?token=…`
pub async fn verify_email() -> Response {
    html(include_str!("pages/verify-email.html"))
}

/// `GET /reset-password?token=…`
pub async fn reset_password() -> Response {
    html(include_str!("pages/reset-password.html"))
}

/// `GET /change-email?token=…`
pub async fn change_email() -> Response {
    html(include_str!("pages/change-email.html"))
}

/// `GET /admin`: staff sign in, find and open users, act on them, read the audit trail. The
/// page is public (it holds nothing); everything it shows comes from the admin API, under
/// the signed-in staff member's permissions.
pub async fn admin() -> Response {
    html(include_str!("pages/admin.html"))
}

/// `GET /pages/{file}`: the pages' scripts and stylesheets.
pub async fn asset(uri: Uri) -> Response {
    let file = uri.path().strip_prefix("/pages/").unwrap_or_default();
    super::graphiql::static_file(match file {
        "account.js" => Some((
            include_bytes!("pages/account.js").as_slice(),
            "text/javascript; charset=utf-8",
        )),
        "account.css" => Some((
            include_bytes!("pages/account.css").as_slice(),
            "text/css; charset=utf-8",
        )),
        "admin.js" => Some((
            include_bytes!("pages/admin.js").as_slice(),
            "text/javascript; charset=utf-8",
        )),
        "admin.css" => Some((
            include_bytes!("pages/admin.css").as_slice(),
            "text/css; charset=utf-8",
        )),
        _ => None,
    })
}
