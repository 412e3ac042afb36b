use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Random bytes per token: 256 bits.
const TOKEN_BYTES: usize = 32;
/// Their URL-safe base64 length (no padding).
const TOKEN_CHARS: usize = 43;

/// A session token: 256 bits from the OS RNG as URL-safe base64. Only its SHA-256
/// ([`Token::digest`]) is stored; a plain, unsalted digest is right here because the token is
/// uniformly random (nothing to guess, nothing to precompute) and must be found by lookup.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

impl Token {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        getrandom::fill(bytes.as_mut())?;
        Ok(Self(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()))))
    }

    /// Accepts only what [`Token::generate`] can produce (exact length and alphabet), so a
    /// garbage header never reaches the database.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = raw.len() == TOKEN_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(Zeroizing::new(raw.to_owned())))
    }

    /// The text handed to the client, once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Lower-case hex SHA-256: what the database keeps and looks up.
    pub fn digest(&self) -> String {
        let hash = Sha256::digest(self.0.as_bytes());
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_url_safe_and_round_trip() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), TOKEN_CHARS);
        assert_eq!(Token::parse(a.expose()), Some(a.clone()));
        assert_eq!(a.digest().len(), 64);
        assert_ne!(a.digest(), a.expose());
        assert_eq!(format!("{a:?}"), "Token(<redacted>)");
    }

    #[test]
    fn anything_else_is_not_a_token() {
        let ok = Token::generate().unwrap();
        for bad in [
            String::new(),
            "x".repeat(42),
            "x".repeat(44),
            format!("{}=", &ok.expose()[..42]),
            format!("{} ", &ok.expose()[..42]),
            "é".repeat(21),
        ] {
            assert!(Token::parse(&bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_digest_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let t = Token(Zeroizing::new("abc".into()));
        assert_eq!(
            t.digest(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
