//! Email confirmation and password reset: thin resolvers over `accounts`. Permissions are
//! in [`super::guard::PERMISSIONS`].

use async_graphql::{Context, InputObject, Object};

use super::accounts::User;
use super::guard::{auth, login_admission, mail_admission, origin, service};
use crate::password::Plaintext;

/// What a client submits to `resetPassword`.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The `token` of the link in the password-reset email.
    #[graphql(secret)]
    pub token: String,
    /// Judged by the registration password policy (`Query.passwordPolicy`).
    #[graphql(secret)]
    pub new_password: String,
}

/// What a signed-in user submits to `requestEmailChange`.
#[derive(InputObject)]
pub struct RequestEmailChangeInput {
    /// The address to move the account to (the registration rules apply).
    pub new_email: String,
    /// The account's password, entered again.
    #[graphql(secret)]
    pub password: String,
}

#[derive(Default)]
pub struct EmailMutation;

#[Object]
impl EmailMutation {
    /// Confirms the address with the token of the confirmation email's link; the token then
    /// stops working. A bad or used token is `BAD_USER_INPUT` on field `token` with code
    /// `token_invalid`, an old one `token_expired`. Permission: anyone.
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] token: String,
    ) -> async_graphql::Result<User> {
        let service = service(ctx)?;
        Ok(service.verify_email(&token, &origin(ctx)).await?.into())
    }

    /// Sends a new confirmation email if an active, unverified account has this address.
    /// Always `true` (whether the address has an account is not revealed); limited per
    /// client (`--mail-rate-limit`) and per address (`--mail-address-limit`). Permission:
    /// anyone.
    async fn resend_verification_email(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<bool> {
        let service = service(ctx)?;
        Ok(service
            .resend_verification_email(&email, mail_admission(ctx))
            .await?)
    }

    /// Sends a password-reset email if an active account has this address; older reset
    /// links stop working. Always `true`, limited as `resendVerificationEmail`. Permission:
    /// anyone.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> async_graphql::Result<bool> {
        let service = service(ctx)?;
        Ok(service
            .request_password_reset(&email, mail_admission(ctx))
            .await?)
    }

    /// Sets a new password with the token of a password-reset email: the password policy
    /// applies (field `newPassword`; the token stays usable), then the token is used up,
    /// the address counts as verified and every session of the user ends. Costs 1000
    /// complexity points like the other hashing mutations; limited per client by
    /// `--login-rate-limit`. Permission: anyone.
    #[graphql(complexity = "1000 + child_complexity")]
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        input: ResetPasswordInput,
    ) -> async_graphql::Result<bool> {
        let service = service(ctx)?;
        let ResetPasswordInput {
            token,
            new_password,
        } = input;
        Ok(service
            .reset_password(
                &token,
                Plaintext::new(new_password),
                login_admission(ctx),
                &origin(ctx),
            )
            .await?)
    }

    /// Asks to move the signed-in account to `newEmail`, with the password entered again
    /// (field `password`, code `invalid`). The new address gets a confirmation link
    /// (`--email-change-ttl`) and the current one a notice; the account keeps its current
    /// address until the link is confirmed. Always `true` once the input is valid, whether
    /// or not another account holds the address (that account's owner is told instead of a
    /// link being sent). Costs 1000 complexity points (a hash). Permission: signed in.
    #[graphql(complexity = "1000 + child_complexity")]
    async fn request_email_change(
        &self,
        ctx: &Context<'_>,
        input: RequestEmailChangeInput,
    ) -> async_graphql::Result<bool> {
        let caller = auth(ctx).require().await?;
        let service = service(ctx)?;
        let RequestEmailChangeInput {
            new_email,
            password,
        } = input;
        Ok(service
            .request_email_change(caller, &new_email, Plaintext::new(password), &origin(ctx))
            .await?)
    }

    /// Confirms a new address with the token of the link sent to it: it becomes the
    /// account's (verified), the token stops working and every session of the account ends.
    /// `BAD_USER_INPUT` on `token`: `token_invalid`, `token_expired`, or `taken` when another
    /// account took the address meanwhile. Permission: anyone.
    async fn confirm_email_change(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] token: String,
    ) -> async_graphql::Result<User> {
        let service = service(ctx)?;
        Ok(service
            .confirm_email_change(&token, &origin(ctx))
            .await?
            .into())
    }
}
