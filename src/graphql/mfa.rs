//! The second factor: `mfa`, `startTotpEnrollment`, `confirmTotpEnrollment`,
//! `verifySecondFactor`, `regenerateRecoveryCodes`, `disableTotp`. Thin: the use cases are
//! the account service's (`accounts::second_factor`).

use async_graphql::{Context, Object, SimpleObject};

use super::guard::{auth, origin, service};
use super::sessions::LoginPayload;
use crate::password::Plaintext;

/// What the caller has set up.
#[derive(SimpleObject)]
pub struct MfaStatus {
    /// A confirmed TOTP device: logins need a second step.
    pub totp: bool,
    /// Recovery codes not used yet.
    pub recovery_codes_left: i32,
}

/// A new TOTP device, shown once: type the secret into an authenticator app, or scan the QR
/// code, then confirm with a code from it.
#[derive(SimpleObject)]
pub struct TotpEnrollment {
    /// Base32, as authenticator apps take it.
    pub secret: String,
    /// `otpauth://totp/…`: what the QR code holds.
    pub otpauth_uri: String,
    /// The QR code of `otpauthUri` as an SVG document, drawn by roster (no external service).
    pub qr_svg: String,
}

#[derive(Default)]
pub struct MfaQuery;

#[Object]
impl MfaQuery {
    /// What the caller has set up. Permission: signed in.
    async fn mfa(&self, ctx: &Context<'_>) -> async_graphql::Result<MfaStatus> {
        let caller = auth(ctx).require().await?;
        let status = service(ctx)?.mfa_status(caller).await?;
        Ok(MfaStatus {
            totp: status.totp,
            recovery_codes_left: i32::try_from(status.recovery_codes_left).unwrap_or(i32::MAX),
        })
    }
}

#[derive(Default)]
pub struct MfaMutation;

#[Object]
impl MfaMutation {
    /// Starts setting up TOTP: a new secret, shown this once (an unconfirmed one before it is
    /// replaced). Needs a login within the last ten minutes or a session at aal2; `FORBIDDEN`
    /// while a confirmed device exists. `SECOND_FACTOR_UNAVAILABLE` on a server without a
    /// secret key. Permission: signed in.
    async fn start_totp_enrollment(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<TotpEnrollment> {
        let caller = auth(ctx).require().await?;
        let enrollment = service(ctx)?.start_totp_enrollment(caller).await?;
        let qr_svg = qr_svg(&enrollment.otpauth_uri)?;
        Ok(TotpEnrollment {
            secret: enrollment.secret.to_string(),
            otpauth_uri: enrollment.otpauth_uri.to_string(),
            qr_svg,
        })
    }

    /// Confirms the new device with a code from it (field `code`, `second_factor_invalid`
    /// otherwise); answers ten recovery codes, shown this once. The session becomes aal2 and
    /// the user's other sessions end. Throttled per user (`--login-failure-limit`).
    /// Permission: signed in.
    async fn confirm_totp_enrollment(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] code: String,
    ) -> async_graphql::Result<Vec<String>> {
        let caller = auth(ctx).require().await?;
        let codes = service(ctx)?
            .confirm_totp_enrollment(caller, &code, &origin(ctx))
            .await?;
        Ok(codes.iter().map(|c| c.to_string()).collect())
    }

    /// The login's second step: a TOTP code (each accepted once) or an unused recovery code
    /// (used up). Answers a **new** token for a session at aal2; the token that knew only the
    /// password stops working. A wrong or replayed code is `BAD_USER_INPUT` on `code`
    /// (`second_factor_invalid`); throttled per user (`--login-failure-limit`). Also sets the
    /// session cookie. Permission: a session waiting for its second step.
    async fn verify_second_factor(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] code: String,
    ) -> async_graphql::Result<LoginPayload> {
        let caller = auth(ctx).require_any().await?;
        let done = service(ctx)?
            .verify_second_factor(caller, &code, &origin(ctx))
            .await?;
        auth(ctx).forget();
        super::sessions::set_cookie(ctx, &done.token);
        Ok(LoginPayload::of(done))
    }

    /// A fresh set of ten recovery codes; the old set stops working. Needs a session at
    /// aal2. Permission: signed in.
    async fn regenerate_recovery_codes(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<String>> {
        let caller = auth(ctx).require().await?;
        let codes = service(ctx)?
            .regenerate_recovery_codes(caller, &origin(ctx))
            .await?;
        Ok(codes.iter().map(|c| c.to_string()).collect())
    }

    /// Removes TOTP and the recovery codes. Needs a session at aal2 and the password (field
    /// `password`, `invalid`). Permission: signed in.
    async fn disable_totp(
        &self,
        ctx: &Context<'_>,
        #[graphql(secret)] password: String,
    ) -> async_graphql::Result<bool> {
        let caller = auth(ctx).require().await?;
        service(ctx)?
            .disable_totp(caller, Plaintext::new(password), &origin(ctx))
            .await?;
        Ok(true)
    }
}

/// The QR code of `text` as a small SVG document.
fn qr_svg(text: &str) -> Result<String, crate::error::AppError> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(crate::error::AppError::internal)?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build())
}
