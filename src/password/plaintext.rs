use std::fmt;

use zeroize::Zeroizing;

/// A password as typed, before or without any policy: what login and "current password"
/// carry. The buffer it owns is wiped when dropped (copies made before it existed — the
/// request body, the parsed JSON — are not), and `Debug` never shows it (there is no
/// `Display`), so it cannot reach a log or an error message by accident.
#[derive(Clone)]
pub struct Plaintext(Zeroizing<String>);

impl Plaintext {
    pub fn new(raw: String) -> Self {
        Self(Zeroizing::new(raw))
    }

    /// The bytes, for the hash workers and the policy checks only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Plaintext(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::Plaintext;

    #[test]
    fn debug_never_shows_the_password() {
        let p = Plaintext::new("hunter2-secret".into());
        assert_eq!(format!("{p:?}"), "Plaintext(<redacted>)");
        assert_eq!(p.expose(), "hunter2-secret");
    }
}
