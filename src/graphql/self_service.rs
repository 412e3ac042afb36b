//! Self-service: `myData` and `deleteAccount`. Thin: the use cases are in `accounts`;
//! permissions in [`super::guard::PERMISSIONS`].

use async_graphql::{Context, Json, Object};

use super::guard::{auth, origin, service};
use crate::password::Plaintext;

#[derive(Default)]
pub struct SelfServiceQuery;

#[Object]
impl SelfServiceQuery {
    /// Everything roster stores about the caller, as one JSON document: the account (never
    /// the password hash: its format only), groups and own permissions, sessions with their
    /// addresses and agents, the second factor (set up or not, since when, recovery codes
    /// left: never a secret or a code), the emails queued or sent to them (never a link; not
    /// the links to a new address, whose presence would say whether it is free; the newest
    /// 100), and the audit entries about them (the newest 1,000; an operator's address is
    /// left out). `…Truncated` says when there were more. Permission: signed in.
    async fn my_data(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<serde_json::Value>> {
        let caller = auth(ctx).require().await?;
        Ok(Json(service(ctx)?.my_data(caller).await?))
    }
}

#[derive(Default)]
pub struct SelfServiceMutation;

#[Object]
impl SelfServiceMutation {
    /// Deletes the caller's account, with the password entered again (field `password`,
    /// code `invalid`) and, for a user with a second factor, a session signed in with it
    /// (`FORBIDDEN` otherwise). Everything keyed to the account goes in one transaction; the
    /// audit log keeps its entries by id only; the account's address gets a goodbye; the
    /// username and the address are free again; the cookie is cleared. The last active
    /// superuser cannot delete themselves (`FORBIDDEN`). Costs 1000 complexity points (a
    /// hash). Permission: signed in.
    #[graphql(complexity = "1000 + child_complexity")]
    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] password: String,
    ) -> async_graphql::Result<bool> {
        let caller = auth(ctx).require().await?;
        let done = service(ctx)?
            .delete_account(caller, Plaintext::new(password), &origin(ctx))
            .await?;
        auth(ctx).forget();
        super::sessions::clear_cookie(ctx);
        Ok(done)
    }
}
