//! Groups and permissions: `groups`, `permissions`, `createGroup`, `updateGroup`,
//! `deleteGroup`.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use super::{actor, origin, uuid_arg};
use crate::admin;
use crate::graphql::guard::service;

/// A group (Django's `auth_group`) and the permissions its members hold.
#[derive(SimpleObject)]
pub struct Group {
    pub id: ID,
    pub name: String,
    /// Django's `auth_group.id`, for imported groups.
    pub legacy_id: Option<i64>,
    /// `app_label.codename`, sorted.
    pub permissions: Vec<String>,
}

impl From<admin::groups::Group> for Group {
    fn from(g: admin::groups::Group) -> Self {
        Self {
            id: ID(g.id.to_string()),
            name: g.name,
            legacy_id: g.legacy_id,
            permissions: g.permissions,
        }
    }
}

/// A permission that can be granted.
#[derive(SimpleObject)]
#[graphql(name = "Permission")]
pub struct PermissionInfo {
    /// `app_label.codename`, as Django's `has_perm` takes it.
    pub codename: String,
    pub name: String,
}

/// A new group.
#[derive(InputObject)]
pub struct CreateGroupInput {
    /// 1–150 characters, unique.
    pub name: String,
    #[graphql(default)]
    pub permissions: Vec<String>,
}

/// A group's changes; a field left out is unchanged.
#[derive(InputObject)]
pub struct UpdateGroupInput {
    pub name: Option<String>,
    /// The group's permissions, exactly.
    pub permissions: Option<Vec<String>>,
}

#[derive(Default)]
pub struct GroupsQuery;

#[Object]
impl GroupsQuery {
    /// Every group, by name. Permission: staff with `roster.view_user`.
    async fn groups(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Group>> {
        let groups = admin::groups::list(service(ctx)?.db()).await?;
        Ok(groups.into_iter().map(Group::from).collect())
    }

    /// Every permission, by codename. Permission: staff with `roster.view_user`.
    async fn permissions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<PermissionInfo>> {
        let all = admin::groups::all_permissions(service(ctx)?.db()).await?;
        Ok(all
            .into_iter()
            .map(|(codename, name)| PermissionInfo { codename, name })
            .collect())
    }
}

#[derive(Default)]
pub struct GroupsMutation;

#[Object]
impl GroupsMutation {
    /// Creates a group. `BAD_USER_INPUT`: `name` empty, too long or `taken`; unknown
    /// `permissions`. A non-superuser grants only permissions it holds. Permission: staff
    /// with `roster.change_group`.
    async fn create_group(
        &self,
        ctx: &Context<'_>,
        input: CreateGroupInput,
    ) -> async_graphql::Result<Group> {
        let actor = actor(ctx).await?;
        let group = admin::groups::create(
            service(ctx)?.db(),
            &actor,
            &input.name,
            &input.permissions,
            &origin(ctx),
        )
        .await?;
        Ok(group.into())
    }

    /// Renames a group and/or sets its permissions. A non-superuser changes only groups
    /// without staff members, by permissions it holds. Permission: staff with
    /// `roster.change_group`.
    async fn update_group(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateGroupInput,
    ) -> async_graphql::Result<Group> {
        let actor = actor(ctx).await?;
        let id = uuid_arg("id", &id)?;
        let group = admin::groups::update(
            service(ctx)?.db(),
            &actor,
            id,
            input.name.as_deref(),
            input.permissions.as_deref(),
            &origin(ctx),
        )
        .await?;
        Ok(group.into())
    }

    /// Deletes a group (its members keep their own permissions), with `updateGroup`'s rules.
    /// Permission: staff with `roster.change_group`.
    async fn delete_group(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let actor = actor(ctx).await?;
        let id = uuid_arg("id", &id)?;
        admin::groups::delete(service(ctx)?.db(), &actor, id, &origin(ctx)).await?;
        Ok(true)
    }
}
