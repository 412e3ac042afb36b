//! The one error type of the service layer, and its stable codes.
//!
//! Resolvers return `Result<_, AppError>`; `graphql::errors` turns it into a GraphQL error in
//! exactly one place, so every code a client can see is defined here.

use std::time::Duration;

use serde::Serialize;

/// One violated rule on one input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The GraphQL input field name (`username`, `email`, `password`).
    pub field: &'static str,
    /// Stable snake_case code, listed in `docs/errors.md` (held to the code by a test).
    pub code: &'static str,
    /// A sentence for humans; may change between releases.
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }
}

/// Every way a service call can fail, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// `BAD_USER_INPUT` with `extensions.fields`: every violated rule of every field.
    #[error("invalid input")]
    InvalidInput(Vec<FieldError>),

    /// `INVALID_CREDENTIALS`: one answer for an unknown identifier, a wrong password and a
    /// deactivated account, so none can be told from the others.
    #[error("Invalid username/email or password.")]
    InvalidCredentials,

    /// `EMAIL_NOT_VERIFIED`: the password was right, but `--require-verified-email` is on and
    /// the address is not verified yet.
    #[error("Confirm your email address before signing in; ask for a new link if needed.")]
    EmailNotVerified,

    /// `UNAUTHENTICATED`: the field needs a signed-in caller.
    #[error("You must be signed in.")]
    Unauthenticated,

    /// `RATE_LIMITED` with `extensions.retryAfter` (seconds) and an HTTP `Retry-After`.
    #[error("too many attempts; retry later")]
    RateLimited { retry_after: Duration },

    /// `FORBIDDEN`: signed in, but not allowed: not staff, without the permission the field
    /// names, or a privilege rule (the message says which).
    #[error("{0}")]
    Forbidden(&'static str),

    /// `NOT_FOUND`: the user (or other object) an admin operation names does not exist.
    #[error("No such object.")]
    NotFound,

    /// `ACCESS_TOKENS_UNAVAILABLE`: no server secret is configured (PostgreSQL without
    /// `--secret-key-file` or `ROSTER_SECRET_KEY`), so no token can be signed.
    #[error("Access tokens are not enabled on this server: it has no secret key configured.")]
    AccessTokensUnavailable,

    /// `MFA_REQUIRED`: the session knows the password but still waits for its second step
    /// (`verifySecondFactor`); only that, `logout` and `me` are open to it.
    /// Also: a staff permission from a session without a second factor
    /// (`--require-mfa-for-staff`).
    #[error("{0}")]
    MfaRequired(&'static str),

    /// `SECOND_FACTOR_UNAVAILABLE`: no server secret is configured, so no second-factor
    /// secret can be kept.
    #[error("A second factor is not available on this server: it has no secret key configured.")]
    SecondFactorUnavailable,

    /// `WEBHOOKS_UNAVAILABLE`: no server secret is configured (or it does not open the
    /// endpoint's), so no endpoint secret can be sealed or opened.
    #[error("Webhooks are not available on this server: it has no secret key that seals them.")]
    WebhooksUnavailable,

    /// `SERVER_BUSY`: every hash worker is busy and the queue is full (HTTP 503).
    #[error("the server is busy; retry shortly")]
    ServerBusy,

    /// `INTERNAL_SERVER_ERROR`: the cause is logged, the client sees a fixed message.
    #[error("internal server error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    /// Wraps any unexpected failure (database down, worker gone) without exposing it.
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(e.into())
    }

    /// [`AppError::internal`] for a cause that is only `Debug` (a column read's error).
    pub fn internal_debug(e: impl std::fmt::Debug) -> Self {
        Self::internal(format!("{e:?}"))
    }

    /// The `extensions.code` of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidInput(_) => codes::BAD_USER_INPUT,
            Self::InvalidCredentials => codes::INVALID_CREDENTIALS,
            Self::EmailNotVerified => codes::EMAIL_NOT_VERIFIED,
            Self::Unauthenticated => codes::UNAUTHENTICATED,
            Self::RateLimited { .. } => codes::RATE_LIMITED,
            Self::ServerBusy => codes::SERVER_BUSY,
            Self::AccessTokensUnavailable => codes::ACCESS_TOKENS_UNAVAILABLE,
            Self::Forbidden(_) => codes::FORBIDDEN,
            Self::NotFound => codes::NOT_FOUND,
            Self::MfaRequired(_) => codes::MFA_REQUIRED,
            Self::SecondFactorUnavailable => codes::SECOND_FACTOR_UNAVAILABLE,
            Self::WebhooksUnavailable => codes::WEBHOOKS_UNAVAILABLE,
            Self::Internal(_) => codes::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::internal(e)
    }
}

/// Top-level `extensions.code` values. Field-level codes live next to their rules in
/// `accounts`.
pub mod codes {
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const INVALID_CREDENTIALS: &str = "INVALID_CREDENTIALS";
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const EMAIL_NOT_VERIFIED: &str = "EMAIL_NOT_VERIFIED";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const SERVER_BUSY: &str = "SERVER_BUSY";
    pub const ACCESS_TOKENS_UNAVAILABLE: &str = "ACCESS_TOKENS_UNAVAILABLE";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const MFA_REQUIRED: &str = "MFA_REQUIRED";
    pub const SECOND_FACTOR_UNAVAILABLE: &str = "SECOND_FACTOR_UNAVAILABLE";
    pub const WEBHOOKS_UNAVAILABLE: &str = "WEBHOOKS_UNAVAILABLE";
    pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
    pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
    pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
    pub const BAD_REQUEST: &str = "BAD_REQUEST";
    pub const RESPONSE_TOO_LARGE: &str = "RESPONSE_TOO_LARGE";
}
