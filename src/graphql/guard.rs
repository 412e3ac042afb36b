//! Who may call what: every root field's permission in one table, enforced by an extension
//! that refuses any root field the table does not name (deny by default) by asking the auth
//! seam ([`crate::auth`]); and the per-client admission checks.

use std::net::IpAddr;
use std::sync::Arc;

pub use crate::auth::{Auth, Permission};
use crate::error::AppError;
use crate::ratelimit::{Admission, ClientLimiter};
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{Context, PathSegment, ServerError, ServerResult, Value};

/// Every root field and its permission, reviewable in one place. A root field missing here
/// is refused at run time (`INTERNAL_SERVER_ERROR`, logged), and the schema-walk test names
/// it, so a new field cannot ship open by omission.
pub const PERMISSIONS: &[(&str, &str, Permission)] = &[
    ("Query", "me", Permission::AllowAny),
    ("Query", "passwordPolicy", Permission::AllowAny),
    ("Query", "sessions", Permission::IsAuthenticated),
    ("Mutation", "register", Permission::AllowAny),
    ("Mutation", "login", Permission::AllowAny),
    ("Mutation", "logout", Permission::SecondStep),
    ("Mutation", "revokeSession", Permission::IsAuthenticated),
    ("Mutation", "logoutEverywhere", Permission::IsAuthenticated),
    ("Mutation", "changePassword", Permission::IsAuthenticated),
    ("Mutation", "verifyEmail", Permission::AllowAny),
    ("Mutation", "resendVerificationEmail", Permission::AllowAny),
    ("Mutation", "requestPasswordReset", Permission::AllowAny),
    ("Mutation", "resetPassword", Permission::AllowAny),
    (
        "Mutation",
        "requestEmailChange",
        Permission::IsAuthenticated,
    ),
    ("Mutation", "confirmEmailChange", Permission::AllowAny),
    ("Query", "myData", Permission::IsAuthenticated),
    ("Mutation", "deleteAccount", Permission::IsAuthenticated),
    ("Mutation", "accessToken", Permission::IsAuthenticated),
    ("Query", "mfa", Permission::IsAuthenticated),
    (
        "Mutation",
        "startTotpEnrollment",
        Permission::IsAuthenticated,
    ),
    (
        "Mutation",
        "confirmTotpEnrollment",
        Permission::IsAuthenticated,
    ),
    ("Mutation", "verifySecondFactor", Permission::SecondStep),
    (
        "Mutation",
        "regenerateRecoveryCodes",
        Permission::IsAuthenticated,
    ),
    ("Mutation", "disableTotp", Permission::IsAuthenticated),
    (
        "Query",
        "users",
        Permission::Staff(crate::admin::perms::VIEW_USER),
    ),
    (
        "Query",
        "webhookEndpoints",
        Permission::Staff(crate::admin::perms::VIEW_WEBHOOK),
    ),
    (
        "Query",
        "webhookDeliveries",
        Permission::Staff(crate::admin::perms::VIEW_WEBHOOK),
    ),
    (
        "Mutation",
        "addWebhookEndpoint",
        Permission::Staff(crate::admin::perms::CHANGE_WEBHOOK),
    ),
    (
        "Mutation",
        "removeWebhookEndpoint",
        Permission::Staff(crate::admin::perms::CHANGE_WEBHOOK),
    ),
    (
        "Mutation",
        "rotateWebhookSecret",
        Permission::Staff(crate::admin::perms::CHANGE_WEBHOOK),
    ),
    (
        "Mutation",
        "retryWebhookDeliveries",
        Permission::Staff(crate::admin::perms::CHANGE_WEBHOOK),
    ),
    (
        "Query",
        "user",
        Permission::Staff(crate::admin::perms::VIEW_USER),
    ),
    (
        "Query",
        "auditLog",
        Permission::Staff(crate::admin::perms::VIEW_AUDITLOG),
    ),
    (
        "Mutation",
        "deactivateUser",
        Permission::Staff(crate::admin::perms::CHANGE_USER),
    ),
    (
        "Mutation",
        "reactivateUser",
        Permission::Staff(crate::admin::perms::CHANGE_USER),
    ),
    (
        "Query",
        "groups",
        Permission::Staff(crate::admin::perms::VIEW_USER),
    ),
    (
        "Query",
        "permissions",
        Permission::Staff(crate::admin::perms::VIEW_USER),
    ),
    (
        "Mutation",
        "resetSecondFactor",
        Permission::Staff(crate::admin::perms::CHANGE_USER),
    ),
    (
        "Mutation",
        "endUserSessions",
        Permission::Staff(crate::admin::perms::CHANGE_USER),
    ),
    (
        "Mutation",
        "deleteUser",
        Permission::Staff(crate::admin::perms::DELETE_USER),
    ),
    (
        "Mutation",
        "sendPasswordReset",
        Permission::Staff(crate::admin::perms::CHANGE_USER),
    ),
    (
        "Mutation",
        "setStaff",
        Permission::Staff(crate::admin::perms::CHANGE_USER),
    ),
    (
        "Mutation",
        "setUserGroups",
        Permission::Staff(crate::admin::perms::CHANGE_USER),
    ),
    (
        "Mutation",
        "setUserPermissions",
        Permission::Staff(crate::admin::perms::CHANGE_USER),
    ),
    (
        "Mutation",
        "createGroup",
        Permission::Staff(crate::admin::perms::CHANGE_GROUP),
    ),
    (
        "Mutation",
        "updateGroup",
        Permission::Staff(crate::admin::perms::CHANGE_GROUP),
    ),
    (
        "Mutation",
        "deleteGroup",
        Permission::Staff(crate::admin::perms::CHANGE_GROUP),
    ),
];

/// The permission declared for `type_name.field`, if any.
pub fn permission(type_name: &str, field: &str) -> Option<Permission> {
    PERMISSIONS
        .iter()
        .find(|(t, f, _)| *t == type_name && *f == field)
        .map(|(_, _, p)| *p)
}

/// The account service the schema was built with. A schema built without it is a bug: a
/// typed internal error (logged, `INTERNAL_SERVER_ERROR`), never a panic on a request path.
pub fn service<'a>(ctx: &'a Context<'_>) -> Result<&'a crate::accounts::AccountService, AppError> {
    ctx.data_opt::<crate::accounts::AccountService>()
        .ok_or_else(|| AppError::internal("the schema has no AccountService"))
}

/// No credentials: what a request outside HTTP (a test of the schema alone) runs as.
static ANONYMOUS: std::sync::LazyLock<Auth> = std::sync::LazyLock::new(Auth::anonymous);

/// The [`Auth`] of the request being resolved (anonymous when there is none).
pub fn auth<'a>(ctx: &'a Context<'_>) -> &'a Auth {
    ctx.data_opt::<Auth>().unwrap_or(&ANONYMOUS)
}

/// Enforces [`PERMISSIONS`] on every root field before its resolver runs.
pub struct DenyByDefault;

impl ExtensionFactory for DenyByDefault {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DenyByDefault)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for DenyByDefault {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        // Only root fields carry permissions; introspection (`__schema`, `__type`) is governed
        // by its own setting.
        if info.path_node.parent.is_some()
            || info.is_for_introspection
            || info.name.starts_with("__")
        {
            return next.run(ctx, info).await;
        }
        let refuse = |e: AppError| {
            let mut error: ServerError =
                async_graphql::Error::from(e).into_server_error(Default::default());
            error.locations.clear();
            error.path = vec![PathSegment::Field(
                info.alias.unwrap_or(info.name).to_owned(),
            )];
            Err(error)
        };
        match permission(info.parent_type, info.name) {
            Some(permission) => match ctx
                .data_opt::<Auth>()
                .unwrap_or(&ANONYMOUS)
                .authorize(permission)
                .await
            {
                Ok(()) => next.run(ctx, info).await,
                Err(e) => refuse(e),
            },
            None => {
                tracing::error!(
                    type_name = info.parent_type,
                    field = info.name,
                    "root field without a declared permission refused"
                );
                refuse(AppError::internal(format!(
                    "{}.{} has no declared permission",
                    info.parent_type, info.name
                )))
            }
        }
    }
}

/// The caller's address as resolved by the HTTP layer (peer address, or the
/// `X-Forwarded-For` entry added by a trusted proxy). Absent outside HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The request's id (`X-Request-Id`), for the audit log (schema data per request).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Where the request came from, as the audit log records it.
pub fn origin(ctx: &Context<'_>) -> crate::audit::Origin {
    crate::audit::Origin {
        ip: ctx.data_opt::<ClientIp>().map(|c| c.0.to_string()),
        request_id: ctx.data_opt::<RequestId>().map(|r| r.0.clone()),
    }
}

/// The request's `User-Agent`, kept with a new session. Absent outside HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent(pub String);

/// The per-client limit on `register` (`--register-rate-limit`), as schema data.
#[derive(Clone)]
pub struct RegisterRateLimiter(pub ClientLimiter);

/// The per-client limit on `login` attempts (`--login-rate-limit`), as schema data.
#[derive(Clone)]
pub struct LoginRateLimiter(pub ClientLimiter);

/// The per-client limit on the mutations that send email on request
/// (`--mail-rate-limit`), as schema data.
#[derive(Clone)]
pub struct MailRateLimiter(pub ClientLimiter);

/// The admission check a use case is handed: one token of the caller's budget in
/// `limiter`, or `RATE_LIMITED` (the HTTP layer adds status 429 and `Retry-After`).
///
/// Not a guard: a guard runs before the resolver, so it would spend the token before the
/// service knows whether the hash queue has room. The service checks it after reserving a
/// queue slot, so an answer of `SERVER_BUSY` costs the client nothing.
pub fn admission(ctx: &Context<'_>, limiter: Option<&ClientLimiter>) -> Admission {
    Admission::new(
        limiter.cloned(),
        ctx.data_opt::<ClientIp>().map(|ClientIp(ip)| *ip),
    )
}

/// [`admission`] for `register`.
pub fn register_admission(ctx: &Context<'_>) -> Admission {
    admission(ctx, ctx.data_opt::<RegisterRateLimiter>().map(|l| &l.0))
}

/// [`admission`] for `resendVerificationEmail` and `requestPasswordReset`.
pub fn mail_admission(ctx: &Context<'_>) -> Admission {
    admission(ctx, ctx.data_opt::<MailRateLimiter>().map(|l| &l.0))
}

/// [`admission`] for `login`.
pub fn login_admission(ctx: &Context<'_>) -> Admission {
    admission(ctx, ctx.data_opt::<LoginRateLimiter>().map(|l| &l.0))
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::DenyByDefault;

    struct Query;

    #[Object]
    impl Query {
        /// Declared `AllowAny` in the table.
        async fn me(&self) -> i32 {
            1
        }
        /// Declared `IsAuthenticated`.
        async fn sessions(&self) -> i32 {
            2
        }
        /// Declared nowhere.
        async fn undeclared(&self) -> i32 {
            3
        }
    }

    #[tokio::test]
    async fn a_root_field_without_a_declared_permission_is_refused() {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(DenyByDefault)
            .finish();
        let code = |r: &async_graphql::Response| {
            r.errors[0]
                .extensions
                .as_ref()
                .and_then(|e| e.get("code"))
                .cloned()
        };
        let open = schema.execute("{ me }").await;
        assert!(open.errors.is_empty(), "{:?}", open.errors);
        let refused = schema.execute("{ undeclared }").await;
        assert_eq!(code(&refused), Some("INTERNAL_SERVER_ERROR".into()));
        assert_eq!(refused.data, async_graphql::Value::Null);
        let anonymous = schema.execute("{ sessions }").await;
        assert_eq!(code(&anonymous), Some("UNAUTHENTICATED".into()));
        let typename = schema.execute("{ __typename }").await;
        assert!(typename.errors.is_empty());
    }
}
