//! Reading the user base: `users` (search and pages), `user` (one, with groups, permissions
//! and sessions), `auditLog`.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::{DEFAULT_PAGE, page_size, uuid_arg};
use crate::admin;
use crate::entity::{audit_entry, user};
use crate::error::{AppError, FieldError};
use crate::graphql::guard::service;

/// A user as operators see it: flags, dates, groups, effective permissions, sessions, and
/// the stored password's format (never the hash).
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct AdminUser {
    pub id: ID,
    pub username: String,
    /// `null` for a user imported from Django without one.
    pub email: Option<String>,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub email_verified: bool,
    pub date_joined: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
    /// Django's `auth_user.id`, for imported users.
    pub legacy_id: Option<i64>,
    /// `argon2id`, `pbkdf2_sha256`, `bcrypt_sha256`, `wrapped_md5`, …; `unusable` for a
    /// Django unusable password, `unknown` for anything roster cannot verify.
    pub password_format: String,
    #[graphql(skip)]
    model: user::Model,
}

impl From<user::Model> for AdminUser {
    fn from(u: user::Model) -> Self {
        let password_format = crate::password::format_name(&u.password_hash).to_owned();
        Self {
            id: ID(u.id.to_string()),
            username: u.username.clone(),
            email: (!u.email.is_empty()).then(|| u.email.clone()),
            is_active: u.is_active,
            is_staff: u.is_staff,
            is_superuser: u.is_superuser,
            email_verified: u.email_verified,
            date_joined: u.date_joined,
            last_login: u.last_login,
            legacy_id: u.legacy_id,
            password_format,
            model: u,
        }
    }
}

#[ComplexObject]
impl AdminUser {
    /// The names of the user's groups.
    async fn groups(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        let db = service(ctx)?.db();
        Ok(admin::perms::groups(db, self.model.id)
            .await
            .map_err(AppError::from)?)
    }

    /// Effective permissions (`app_label.codename`): own and groups'; all for an active
    /// superuser; none when inactive.
    async fn permissions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        let db = service(ctx)?.db();
        Ok(admin::perms::effective(db, &self.model)
            .await
            .map_err(AppError::from)?
            .into_iter()
            .collect())
    }

    /// The user's own permissions (`app_label.codename`), without their groups'.
    async fn user_permissions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        let db = service(ctx)?.db();
        Ok(admin::perms::own(db, self.model.id)
            .await
            .map_err(AppError::from)?)
    }

    /// The user's live sessions, newest first.
    async fn sessions(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::graphql::sessions::Session>> {
        let list = service(ctx)?
            .sessions()
            .list(self.model.id)
            .await
            .map_err(AppError::from)?;
        Ok(list
            .into_iter()
            .map(|s| crate::graphql::sessions::Session::of(s, None))
            .collect())
    }
}

/// `users`' filters; each one left out matches everyone.
#[derive(InputObject, Default)]
pub struct UserFilter {
    /// A case-insensitive prefix of the username or the email (compared in canonical form,
    /// as login compares them), at most 256 bytes.
    pub search: Option<String>,
    pub is_active: Option<bool>,
    pub is_staff: Option<bool>,
    pub email_verified: Option<bool>,
}

/// Relay pagination.
#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    /// Pass it as `after` for the next page.
    pub end_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct UserEdge {
    pub cursor: String,
    pub node: AdminUser,
}

/// A page of users in id order (stable while users are added: none twice, none skipped).
#[derive(SimpleObject)]
pub struct UserConnection {
    pub edges: Vec<UserEdge>,
    pub page_info: PageInfo,
}

/// One audit-log entry.
#[derive(SimpleObject)]
pub struct AuditEntry {
    pub id: ID,
    pub at: DateTime<Utc>,
    /// `user`, `api_key` or `system` (a command run where the server runs).
    pub actor_kind: String,
    pub actor_user_id: Option<ID>,
    /// The API key that acted (`roster apikey list` names it).
    pub actor_api_key_id: Option<ID>,
    /// `user.deactivated`, `user.reactivated`, `user.created_superuser`, …
    pub action: String,
    pub target_user_id: Option<ID>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// A small JSON object, when the action has details.
    pub detail: Option<String>,
}

impl From<audit_entry::Model> for AuditEntry {
    fn from(e: audit_entry::Model) -> Self {
        Self {
            id: ID(e.id.to_string()),
            at: e.at,
            actor_kind: e.actor_kind,
            actor_user_id: e.actor_user_id.map(|id| ID(id.to_string())),
            actor_api_key_id: e.actor_api_key_id.map(|id| ID(id.to_string())),
            action: e.action,
            target_user_id: e.target_user_id.map(|id| ID(id.to_string())),
            ip: e.ip,
            request_id: e.request_id,
            detail: e.detail,
        }
    }
}

#[derive(SimpleObject)]
pub struct AuditEdge {
    pub cursor: String,
    pub node: AuditEntry,
}

/// A page of the audit log, newest first.
#[derive(SimpleObject)]
pub struct AuditConnection {
    pub edges: Vec<AuditEdge>,
    pub page_info: PageInfo,
}

#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// Users matching `filter`, `first` (1–100; 20 when null) at a time after the cursor
    /// `after`. Permission: staff with `roster.view_user`.
    async fn users(
        &self,
        ctx: &Context<'_>,
        filter: Option<UserFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let first = page_size(first.unwrap_or(DEFAULT_PAGE))?;
        let after = after.as_deref().map(|a| uuid_arg("after", a)).transpose()?;
        let filter = filter.unwrap_or_default();
        if filter
            .search
            .as_ref()
            .is_some_and(|s| s.len() > admin::users::MAX_SEARCH_BYTES)
        {
            return Err(AppError::InvalidInput(vec![FieldError::new(
                "search",
                crate::accounts::codes::INVALID,
                format!("At most {} bytes.", admin::users::MAX_SEARCH_BYTES),
            )])
            .into());
        }
        let filter = admin::users::Filter {
            search: filter.search,
            is_active: filter.is_active,
            is_staff: filter.is_staff,
            email_verified: filter.email_verified,
        };
        let (rows, more) = admin::users::list(service(ctx)?.db(), &filter, first, after)
            .await
            .map_err(AppError::from)?;
        let end_cursor = rows.last().map(|u| u.id.to_string());
        Ok(UserConnection {
            edges: rows
                .into_iter()
                .map(|u| UserEdge {
                    cursor: u.id.to_string(),
                    node: u.into(),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: more,
                end_cursor,
            },
        })
    }

    /// One user, or `null`. Permission: staff with `roster.view_user`.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<AdminUser>> {
        let Ok(id) = uuid::Uuid::parse_str(&id) else {
            return Ok(None);
        };
        use sea_orm::EntityTrait as _;
        Ok(user::Entity::find_by_id(id)
            .one(service(ctx)?.db())
            .await
            .map_err(AppError::from)?
            .map(AdminUser::from))
    }

    /// The audit log, newest first (`first` 1–100; 20 when null), optionally about one user
    /// and of one action (`user.deactivated`, `login.failed`, …). Permission: staff with
    /// `roster.view_auditlog`.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
        action: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<AuditConnection> {
        let first = page_size(first.unwrap_or(DEFAULT_PAGE))?;
        let after = after.as_deref().map(|a| uuid_arg("after", a)).transpose()?;
        let about = user_id
            .as_deref()
            .map(|a| uuid_arg("userId", a))
            .transpose()?;
        if action.as_ref().is_some_and(|a| a.len() > 64) {
            return Err(AppError::InvalidInput(vec![FieldError::new(
                "action",
                crate::accounts::codes::INVALID,
                "At most 64 bytes.",
            )])
            .into());
        }
        let (rows, more) =
            crate::audit::list(service(ctx)?.db(), about, action.as_deref(), first, after)
                .await
                .map_err(AppError::from)?;
        let end_cursor = rows.last().map(|e| e.id.to_string());
        Ok(AuditConnection {
            edges: rows
                .into_iter()
                .map(|e| AuditEdge {
                    cursor: e.id.to_string(),
                    node: e.into(),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: more,
                end_cursor,
            },
        })
    }
}
