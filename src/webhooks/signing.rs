//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), so a receiver verifies
//! with an off-the-shelf library: the secret is `whsec_` + base64 of random bytes; each
//! delivery carries `webhook-id` (the event's idempotency id), `webhook-timestamp` (Unix
//! seconds, the attempt's time, so receivers can refuse replays) and `webhook-signature`:
//! `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}")), space-separated when two
//! secrets sign (the grace period after `rotate-secret`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// What a secret starts with, as the specification and its libraries write it.
pub const PREFIX: &str = "whsec_";
/// Random bytes in a new secret (the specification asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// An endpoint's signing secret in its shown form (`whsec_…`). Never logged.
pub struct Secret(Zeroizing<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    pub fn generate() -> Result<Self, &'static str> {
        let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        getrandom::fill(bytes.as_mut()).map_err(|_| "no OS randomness")?;
        Ok(Self(Zeroizing::new(format!(
            "{PREFIX}{}",
            STANDARD.encode(bytes.as_ref())
        ))))
    }

    /// A stored secret (opened from its sealed form); `None` if it is not `whsec_` + base64.
    pub fn from_text(text: &str) -> Option<Self> {
        let key = STANDARD.decode(text.strip_prefix(PREFIX)?).ok()?;
        (key.len() >= 24).then(|| Self(Zeroizing::new(text.to_owned())))
    }

    /// The text shown once to the operator.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn key(&self) -> ring::hmac::Key {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(self.0.strip_prefix(PREFIX).unwrap_or_default())
                .unwrap_or_default(),
        );
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes)
    }

    /// `v1,<base64 signature>` of one delivery attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut ctx = ring::hmac::Context::with_key(&self.key());
        ctx.update(id.as_bytes());
        ctx.update(b".");
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        format!("v1,{}", STANDARD.encode(ctx.sign().as_ref()))
    }
}

/// The `webhook-signature` value: one signature per secret, space-separated.
pub fn signature_header(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification and its reference libraries'
    /// tests: this secret, id, timestamp and body give this signature.
    #[test]
    fn the_specification_example_signs_as_its_libraries_do() {
        let secret = Secret::from_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn new_secrets_are_random_well_formed_and_redacted() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert!(Secret::from_text(a.expose()).is_some());
        assert!(Secret::from_text("whsec_short").is_none());
        assert!(Secret::from_text("no-prefix").is_none());
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
        let two = signature_header(&[a, b], "msg_1", 1, b"{}");
        assert_eq!(two.split(' ').count(), 2);
    }
}
