//! The GraphQL schema: roots, types, guards, limits and the one error conversion.
//!
//! [`schema_builder`] needs no database, so `roster schema` and the snapshot test can
//! export the SDL without one.

/// `register`, `passwordPolicy` and their types.
mod accounts;
/// The admin API: users, groups, grants, the audit log.
pub mod admin;
/// Size, fan-out and argument-value checks on a document before execution.
pub mod document;
/// `verifyEmail`, `resendVerificationEmail`, `requestPasswordReset`, `resetPassword`.
mod email;
/// `AppError` → GraphQL error with `extensions.code`, and request-error tagging.
pub mod errors;
/// Permissions (deny by default), the signed-in caller, per-client admission checks.
pub mod guard;
/// The second factor: enrolment, the login's second step, recovery codes.
mod mfa;
/// Root-field outcomes and field errors into the metrics.
mod observe;
/// `myData`, `deleteAccount`.
mod self_service;
/// Login, sessions, `me`, logout, change password.
pub mod sessions;
/// `accessToken`.
mod tokens;

use async_graphql::{EmptySubscription, MergedObject, SDLExportOptions, Schema, SchemaBuilder};

use crate::config::LimitsConfig;

pub use guard::{
    Auth, ClientIp, LoginRateLimiter, MailRateLimiter, RegisterRateLimiter, UserAgent,
};
pub use sessions::SessionCookie;

/// The Query root; one object per domain, merged.
#[derive(MergedObject, Default)]
pub struct Query(
    accounts::AccountsQuery,
    sessions::SessionsQuery,
    mfa::MfaQuery,
    self_service::SelfServiceQuery,
    admin::users::AdminQuery,
    admin::groups::GroupsQuery,
    admin::webhooks::WebhooksQuery,
);

/// The Mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(
    accounts::AccountsMutation,
    sessions::SessionsMutation,
    email::EmailMutation,
    tokens::TokensMutation,
    mfa::MfaMutation,
    self_service::SelfServiceMutation,
    admin::manage::AdminMutation,
    admin::groups::GroupsMutation,
    admin::webhooks::WebhooksMutation,
);

pub type RosterSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema with its limits, before any runtime data is attached.
pub fn schema_builder(
    limits: &LimitsConfig,
    introspection: bool,
) -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    let mut builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(limits.max_recursion)
        .limit_directives(limits.max_directives)
        .extension(errors::RequestErrorCodes)
        // Outside the permission check, so refusals (`UNAUTHENTICATED`) are counted too.
        .extension(observe::Observe)
        .extension(guard::DenyByDefault);
    if !introspection {
        // Without introspection, "did you mean …" hints would leak the schema piecemeal.
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder
}

/// The document checker for a schema built with these limits.
pub fn document_checker(limits: &LimitsConfig) -> document::Checker {
    document::Checker::new(
        document::DocumentLimits {
            max_tokens: limits.max_tokens,
            max_fields: limits.max_fields,
            max_aliases: limits.max_aliases,
            max_fragments: limits.max_fragments,
            max_operations: limits.max_operations,
            max_variables: limits.max_variables,
        },
        &sdl(),
    )
}

/// The SDL as committed in `schema.graphql` (sorted, so diffs are stable).
pub fn sdl() -> String {
    let schema = schema_builder(&crate::config::Config::defaults().limits, true).finish();
    schema.sdl_with_options(
        SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}
