use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ErrorExtensions, ServerError, ServerResult, ValidationResult, Variables};
use std::sync::Arc;

use crate::error::{AppError, codes};

/// Attached (as the error's `source`) to every error roster raises, so the HTTP layer picks
/// the status and `Retry-After` from typed data rather than by reading codes back out of
/// serialized JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpHint {
    pub status: u16,
    pub retry_after: Option<u64>,
}

/// The one place where service errors become GraphQL errors.
impl From<AppError> for async_graphql::Error {
    fn from(e: AppError) -> Self {
        // Field errors that cannot be serialised (they always can: strings only) would answer
        // `BAD_USER_INPUT` with no fields; answer the internal error instead, logged.
        let e = match e {
            AppError::InvalidInput(fields) => match async_graphql::to_value(&fields) {
                Ok(_) => AppError::InvalidInput(fields),
                Err(err) => AppError::internal(format!("field errors not serialisable: {err}")),
            },
            other => other,
        };
        let code = e.code();
        // The Display texts are the client-facing messages (Internal's is the fixed one).
        let message = e.to_string();
        let (fields, retry_after, status) = match e {
            AppError::InvalidInput(fields) => (async_graphql::to_value(&fields).ok(), None, 200),
            AppError::RateLimited { retry_after } => {
                (None, Some(retry_after.as_secs().max(1)), 429)
            }
            AppError::ServerBusy => (None, Some(1), 503),
            AppError::InvalidCredentials
            | AppError::Unauthenticated
            | AppError::EmailNotVerified
            | AppError::AccessTokensUnavailable
            | AppError::MfaRequired(_)
            | AppError::SecondFactorUnavailable
            | AppError::WebhooksUnavailable
            | AppError::Forbidden(_)
            | AppError::NotFound => (None, None, 200),
            AppError::Internal(source) => {
                tracing::error!(error = %chain(source.as_ref()), "internal error");
                (None, None, 200)
            }
        };
        let mut error = async_graphql::Error::new(message);
        error.source = Some(std::sync::Arc::new(HttpHint {
            status,
            retry_after,
        }));
        error.extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(fields) = fields {
                ext.set("fields", fields);
            }
            if let Some(secs) = retry_after {
                ext.set("retryAfter", secs);
            }
        })
    }
}

/// `error: cause: cause…`, for logs only.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Tags errors raised before execution (`GRAPHQL_PARSE_FAILED`,
/// `GRAPHQL_VALIDATION_FAILED`, the latter including depth and complexity limits), so
/// clients can tell a bad document from a failed operation.
pub struct RequestErrorCodes;

impl ExtensionFactory for RequestErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RequestErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for RequestErrorCodes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| tag(e, codes::GRAPHQL_PARSE_FAILED))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| tag(e, codes::GRAPHQL_VALIDATION_FAILED))
                .collect()
        })
    }
}

fn tag(mut e: ServerError, code: &'static str) -> ServerError {
    let has_code = e
        .extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some());
    if !has_code {
        e.extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
    e
}
