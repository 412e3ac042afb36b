//! `login`, `me`, `sessions`, `logout`, `revokeSession`, `logoutEverywhere`,
//! `changePassword`: thin resolvers over `accounts` and `sessions`. Permissions are in
//! [`super::guard::PERMISSIONS`].

use std::time::Duration;

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use axum::http::{HeaderValue, header::SET_COOKIE};
use chrono::{DateTime, Utc};

use super::accounts::User;
use super::guard::{ClientIp, RequestId, UserAgent, auth, login_admission, origin, service};
use crate::accounts::Login;
use crate::error::AppError;
use crate::password::Plaintext;
use crate::sessions;

/// How the session cookie is written (schema data; `--session-cookie*`).
#[derive(Debug, Clone, Copy)]
pub struct SessionCookie {
    pub enabled: bool,
    pub secure: bool,
    /// `Max-Age`: the absolute session lifetime (the server enforces the idle one).
    pub max_age: Duration,
}

impl SessionCookie {
    fn header(&self, value: &str, max_age: u64) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        let name = crate::auth::credential::cookie_name(self.secure);
        HeaderValue::from_str(&format!(
            "{name}={value}; HttpOnly{secure}; SameSite=Lax; Path=/; Max-Age={max_age}"
        ))
        .ok()
    }

    fn set(&self, ctx: &Context<'_>, token: &sessions::Token) {
        if self.enabled
            && let Some(v) = self.header(token.expose(), self.max_age.as_secs())
        {
            ctx.append_http_header(SET_COOKIE, v);
        }
    }

    fn clear(&self, ctx: &Context<'_>) {
        if self.enabled
            && let Some(v) = self.header("", 0)
        {
            ctx.append_http_header(SET_COOKIE, v);
        }
    }
}

/// Clears the session cookie (the session is gone).
pub(super) fn clear_cookie(ctx: &Context<'_>) {
    cookie(ctx).clear(ctx);
}

/// Sets the session cookie for a new token (when cookies are on).
pub(super) fn set_cookie(ctx: &Context<'_>, token: &sessions::Token) {
    cookie(ctx).set(ctx, token);
}

fn cookie(ctx: &Context<'_>) -> SessionCookie {
    ctx.data_opt::<SessionCookie>()
        .copied()
        .unwrap_or(SessionCookie {
            enabled: false,
            secure: true,
            max_age: Duration::ZERO,
        })
}

/// What a client submits to `login`.
#[derive(InputObject)]
pub struct LoginInput {
    /// The username or the email address, in any case or width (`ALICE`, `ａｌｉｃｅ`,
    /// `Alice@Example.com` find the same account).
    pub identifier: String,
    /// Never returned or logged.
    #[graphql(secret)]
    pub password: String,
}

/// What a client submits to `changePassword`.
#[derive(InputObject)]
pub struct ChangePasswordInput {
    #[graphql(secret)]
    pub current_password: String,
    /// Judged by the registration password policy (`Query.passwordPolicy`).
    #[graphql(secret)]
    pub new_password: String,
}

/// A signed-in session.
#[derive(SimpleObject)]
pub struct Session {
    pub id: ID,
    pub created_at: DateTime<Utc>,
    /// Refreshed at most once a minute.
    pub last_seen_at: DateTime<Utc>,
    /// The earlier of the idle expiry (`lastSeenAt` + `--session-idle-ttl`) and the absolute
    /// one (`createdAt` + `--session-max-ttl`).
    pub expires_at: DateTime<Utc>,
    /// This is the session the request was made with.
    pub current: bool,
    /// The `User-Agent` that logged in (at most 256 bytes).
    pub user_agent: Option<String>,
    /// The client address that logged in.
    pub ip: Option<String>,
    /// Authenticator assurance level: 1 password, 2 password and a second factor.
    pub aal: i32,
}

impl Session {
    pub(super) fn of(s: sessions::Session, current: Option<uuid::Uuid>) -> Self {
        Self {
            id: ID(s.id.to_string()),
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            current: current == Some(s.id),
            user_agent: s.user_agent,
            ip: s.ip,
            aal: i32::from(s.aal),
        }
    }
}

/// A successful login.
#[derive(SimpleObject)]
pub struct LoginPayload {
    /// The session token: send it as `Authorization: Bearer <token>`. Shown once; the server
    /// keeps only its SHA-256.
    pub token: String,
    pub session: Session,
    pub user: User,
    /// The user has a second factor: this session can do nothing but `verifySecondFactor`,
    /// `logout` and `me` until it is given (within `--mfa-challenge-ttl`).
    pub mfa_required: bool,
}

impl LoginPayload {
    pub(super) fn of(done: crate::accounts::LoggedIn) -> Self {
        let current = Some(done.session.id);
        Self {
            token: done.token.expose().to_owned(),
            session: Session::of(done.session, current),
            user: done.user.into(),
            mfa_required: done.mfa_required,
        }
    }
}

#[derive(Default)]
pub struct SessionsQuery;

#[Object]
impl SessionsQuery {
    /// The signed-in user, or `null` for an anonymous caller (never an error by itself).
    /// Permission: anyone.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let caller = auth(ctx).caller().await?;
        Ok(caller.map(|c| User::from(crate::accounts::User::from(c.user.clone()))))
    }

    /// The caller's live sessions, newest first. Permission: signed in.
    async fn sessions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Session>> {
        let caller = auth(ctx).require().await?;
        let service = service(ctx)?;
        let list = service
            .sessions()
            .list(caller.user.id)
            .await
            .map_err(AppError::from)?;
        let current = Some(caller.session.id);
        Ok(list.into_iter().map(|s| Session::of(s, current)).collect())
    }
}

#[derive(Default)]
pub struct SessionsMutation;

#[Object]
impl SessionsMutation {
    /// Starts a session. A wrong password, an unknown identifier and a deactivated account
    /// all answer `INVALID_CREDENTIALS`. Also sets the session cookie (`__Host-roster_session`;
    /// `roster_session` with `--session-cookie-secure false`) unless `--session-cookie false`. Limited per client (`--login-rate-limit`) and per account
    /// (`--login-failure-limit`). Costs 1000 complexity points (one hash per document).
    /// Permission: anyone.
    #[graphql(complexity = "1000 + child_complexity")]
    async fn login(
        &self,
        ctx: &Context<'_>,
        input: LoginInput,
    ) -> async_graphql::Result<LoginPayload> {
        let service = service(ctx)?;
        let login = Login {
            identifier: input.identifier,
            password: Plaintext::new(input.password),
            ip: ctx.data_opt::<ClientIp>().map(|c| c.0),
            user_agent: ctx.data_opt::<UserAgent>().map(|u| u.0.clone()),
            request_id: ctx.data_opt::<RequestId>().map(|r| r.0.clone()),
        };
        let done = service.login(login, login_admission(ctx)).await?;
        cookie(ctx).set(ctx, &done.token);
        Ok(LoginPayload::of(done))
    }

    /// Ends the current session and clears the cookie. Permission: signed in (a session
    /// waiting for its second step too).
    async fn logout(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let caller = auth(ctx).require_any().await?;
        let service = service(ctx)?;
        service
            .sessions()
            .revoke(caller.user.id, caller.session.id, &origin(ctx))
            .await
            .map_err(AppError::from)?;
        auth(ctx).forget();
        cookie(ctx).clear(ctx);
        Ok(true)
    }

    /// Ends one of the caller's own sessions; `false` (and nothing changes) for any other
    /// id. Permission: signed in.
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let caller = auth(ctx).require().await?;
        let Ok(id) = uuid::Uuid::parse_str(&id) else {
            return Ok(false);
        };
        let service = service(ctx)?;
        let revoked = service
            .sessions()
            .revoke(caller.user.id, id, &origin(ctx))
            .await
            .map_err(AppError::from)?;
        if revoked && id == caller.session.id {
            auth(ctx).forget();
            cookie(ctx).clear(ctx);
        }
        Ok(revoked)
    }

    /// Ends every session of the caller, the current one included; answers how many.
    /// Permission: signed in.
    async fn logout_everywhere(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let caller = auth(ctx).require().await?;
        let service = service(ctx)?;
        let n = service
            .revoke_all_sessions(caller.user.id, &origin(ctx))
            .await?;
        cookie(ctx).clear(ctx);
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Replaces the caller's password. `currentPassword` must be right (field error
    /// `currentPassword`/`invalid`) and `newPassword` pass the registration policy (field
    /// `newPassword`); on success every other session of the user ends. Costs 1000
    /// complexity points. Permission: signed in.
    #[graphql(complexity = "1000 + child_complexity")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> async_graphql::Result<User> {
        let caller = auth(ctx).require().await?;
        let service = service(ctx)?;
        let user = service
            .change_password(
                caller,
                Plaintext::new(input.current_password),
                Plaintext::new(input.new_password),
                login_admission(ctx),
                &origin(ctx),
            )
            .await?;
        Ok(user.into())
    }
}
