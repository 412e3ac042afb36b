//! A compact JWS (RFC 7515) signed with ES256 (RFC 7518 §3.4): the JSON and base64url
//! framing is here; the signature is ring's (`ECDSA_P256_SHA256_FIXED_SIGNING`, the 64-byte
//! `r ‖ s` JWS expects). No JWT crate: roster only signs, and the ones on crates.io bring a
//! second crypto stack (RustCrypto or aws-lc) for what ring, already in the tree for TLS,
//! does; verification in tests is by libraries roster did not write.

use base64::Engine as _;
use ring::signature::EcdsaKeyPair;
use serde::Serialize;

/// The protected header.
#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// An access token's claims (see `docs/tokens.md`). Nothing secret.
#[derive(Debug, Serialize)]
pub struct Claims {
    pub iss: String,
    /// The user id.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    /// The session id.
    pub sid: String,
    pub username: String,
    pub email_verified: bool,
    /// Django's `auth_user.id`, for imported users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_id: Option<i64>,
    /// Authenticator assurance level: 1 password, 2 password and a second factor.
    pub aal: i16,
    /// Authentication methods (RFC 8176): `pwd`, and `otp` at aal2.
    pub amr: Vec<&'static str>,
}

pub(super) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.signature`, signed by `key` whose id is `kid`.
pub fn sign(key: &EcdsaKeyPair, kid: &str, claims: &Claims) -> Result<String, SignError> {
    let header = Header {
        alg: "ES256",
        typ: "JWT",
        kid,
    };
    let mut token = b64(&serde_json::to_vec(&header).map_err(|_| SignError)?);
    token.push('.');
    token.push_str(&b64(&serde_json::to_vec(claims).map_err(|_| SignError)?));
    let signature = key
        .sign(&ring::rand::SystemRandom::new(), token.as_bytes())
        .map_err(|_| SignError)?;
    token.push('.');
    token.push_str(&b64(signature.as_ref()));
    Ok(token)
}

/// The `kid` of a token this module signed.
pub fn kid_of(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("kid")?.as_str().map(str::to_owned)
}

/// Signing failed (the OS random source, or serialisation): nothing a client can fix.
#[derive(Debug, thiserror::Error)]
#[error("signing an access token failed")]
pub struct SignError;
