//! What operators do to a user: `deactivateUser`, `reactivateUser`, `endUserSessions`,
//! `deleteUser`, `sendPasswordReset`, `setStaff`, `setUserGroups`, `setUserPermissions`.
//! Each answers only what it changed: the right to change a user is not the right to read
//! their record (`roster.view_user`).

use async_graphql::{Context, ID, Object, SimpleObject};

use super::{actor, origin, uuid_arg};
use crate::admin;
use crate::graphql::guard::service;

/// What a deactivation or reactivation answers: the user's id and state.
#[derive(SimpleObject)]
pub struct UserActivity {
    pub id: ID,
    pub is_active: bool,
}

/// What `setStaff` answers: the user's id and flags.
#[derive(SimpleObject)]
pub struct StaffStatus {
    pub id: ID,
    pub is_staff: bool,
    pub is_superuser: bool,
}

#[derive(Default)]
pub struct AdminMutation;

impl AdminMutation {
    async fn set_active(
        ctx: &Context<'_>,
        id: &str,
        active: bool,
    ) -> async_graphql::Result<UserActivity> {
        let actor = actor(ctx).await?;
        let target = uuid_arg("id", id)?;
        let user =
            admin::set_active::set_active(service(ctx)?.db(), &actor, target, active, &origin(ctx))
                .await?;
        Ok(UserActivity {
            id: ID(user.id.to_string()),
            is_active: user.is_active,
        })
    }
}

#[Object]
impl AdminMutation {
    /// Deactivates a user: every session and email link of theirs ends in the same
    /// transaction. Refused (`FORBIDDEN`) for oneself, for a staff account or a superuser
    /// unless the caller is a superuser, and for the last active staff superuser.
    /// Permission: staff with `roster.change_user`.
    async fn deactivate_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<UserActivity> {
        Self::set_active(ctx, &id, false).await
    }

    /// Reactivates a user (their ended sessions stay ended), with the same rules.
    /// Permission: staff with `roster.change_user`.
    async fn reactivate_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<UserActivity> {
        Self::set_active(ctx, &id, true).await
    }

    /// Ends every session of a user (on every process, at once); answers how many were live.
    /// A staff account's or a superuser's only by a superuser. Permission: staff with
    /// `roster.change_user`.
    async fn end_user_sessions(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<i32> {
        let actor = actor(ctx).await?;
        let target = uuid_arg("id", &id)?;
        let service = service(ctx)?;
        let ended = admin::end_sessions::end_sessions(
            service.db(),
            service.sessions(),
            &actor,
            target,
            &origin(ctx),
        )
        .await?;
        Ok(i32::try_from(ended).unwrap_or(i32::MAX))
    }

    /// Deletes a user and everything keyed to them (sessions, email links, queued emails,
    /// groups and permissions); the audit log keeps its entries by id. Refused (`FORBIDDEN`)
    /// for oneself, a staff account or a superuser unless the caller is a superuser, and the
    /// last active staff superuser. Permission: staff with `roster.delete_user`.
    async fn delete_user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let actor = actor(ctx).await?;
        let target = uuid_arg("id", &id)?;
        admin::delete_user::delete_user(service(ctx)?.db(), &actor, target, &origin(ctx)).await?;
        Ok(true)
    }

    /// Sends the user the password-reset email `requestPasswordReset` sends (through the
    /// outbox; older unused links end). The caller never sees the link. `BAD_USER_INPUT` on
    /// `id` for a deactivated user or one without an address. Permission: staff with
    /// `roster.change_user`.
    async fn send_password_reset(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let actor = actor(ctx).await?;
        let target = uuid_arg("id", &id)?;
        let service = service(ctx)?;
        admin::send_reset::send_reset(service.db(), service.outbox(), &actor, target, &origin(ctx))
            .await?;
        Ok(true)
    }

    /// Removes a user's second factor (TOTP device and recovery codes): for someone who lost
    /// both, or after the server secret was replaced. Answers whether there was one. Refused
    /// (`FORBIDDEN`) for oneself (`disableTotp`), and for a staff account or a superuser
    /// unless the caller is a superuser. Permission: staff with `roster.change_user`.
    async fn reset_second_factor(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let actor = actor(ctx).await?;
        let target = uuid_arg("id", &id)?;
        let service = service(ctx)?;
        Ok(admin::reset_mfa::reset_mfa(
            service.db(),
            service.outbox(),
            &actor,
            target,
            &origin(ctx),
        )
        .await?)
    }

    /// Sets a user's staff and superuser status. Only a superuser may; not on themselves
    /// (another superuser does it); never demoting the last active staff superuser.
    /// Permission: staff with `roster.change_user`, and superuser.
    async fn set_staff(
        &self,
        ctx: &Context<'_>,
        id: ID,
        is_staff: bool,
        is_superuser: bool,
    ) -> async_graphql::Result<StaffStatus> {
        let actor = actor(ctx).await?;
        let target = uuid_arg("id", &id)?;
        let user = admin::set_staff::set_staff(
            service(ctx)?.db(),
            &actor,
            target,
            is_staff,
            is_superuser,
            &origin(ctx),
        )
        .await?;
        Ok(StaffStatus {
            id: ID(user.id.to_string()),
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
        })
    }

    /// Sets a user's groups (by name) to exactly `groups`; answers them, sorted. A
    /// non-superuser must hold every permission of each group it adds or removes, and may
    /// not change a staff account. `BAD_USER_INPUT` on `groups` names unknown ones.
    /// Permission: staff with `roster.change_user`.
    async fn set_user_groups(
        &self,
        ctx: &Context<'_>,
        id: ID,
        groups: Vec<String>,
    ) -> async_graphql::Result<Vec<String>> {
        let actor = actor(ctx).await?;
        let target = uuid_arg("id", &id)?;
        Ok(admin::grants::set_user_groups(
            service(ctx)?.db(),
            &actor,
            target,
            &groups,
            &origin(ctx),
        )
        .await?)
    }

    /// Sets a user's own permissions (`app_label.codename`) to exactly `permissions`;
    /// answers them, sorted. A non-superuser must hold every permission it adds or removes,
    /// and may not change a staff account. `BAD_USER_INPUT` on `permissions` names unknown
    /// ones. Permission: staff with `roster.change_user`.
    async fn set_user_permissions(
        &self,
        ctx: &Context<'_>,
        id: ID,
        permissions: Vec<String>,
    ) -> async_graphql::Result<Vec<String>> {
        let actor = actor(ctx).await?;
        let target = uuid_arg("id", &id)?;
        Ok(admin::grants::set_user_permissions(
            service(ctx)?.db(),
            &actor,
            target,
            &permissions,
            &origin(ctx),
        )
        .await?)
    }
}
