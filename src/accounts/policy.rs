use std::collections::HashSet;

use super::canonical::canonical;
use crate::config::PolicyConfig;

/// The registration rules' thresholds, checked once at start-up.
#[derive(Debug, Clone)]
pub struct RegistrationPolicy {
    pub password: PasswordPolicy,
    /// Canonical forms of the reserved usernames.
    reserved: HashSet<String>,
}

/// Password thresholds; readable by clients through `Query.passwordPolicy`.
#[derive(Debug, Clone, PartialEq)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
    /// Minimum zxcvbn score, 0–4.
    pub min_strength: u8,
    /// Normalized Levenshtein similarity (0–1) at or above which a password is refused as
    /// too close to the username or email.
    pub max_similarity: f64,
}

impl RegistrationPolicy {
    /// Builds the policy, refusing settings that contradict each other.
    pub fn from_config(c: &PolicyConfig) -> Result<Self, String> {
        if c.password_min_length == 0 {
            return Err("password-min-length must be at least 1".into());
        }
        if c.password_max_length < c.password_min_length {
            return Err("password-max-length must not be below password-min-length".into());
        }
        if !(0.0..=1.0).contains(&c.password_max_similarity) {
            return Err("password-max-similarity must be between 0 and 1".into());
        }
        Ok(Self {
            password: PasswordPolicy {
                min_length: c.password_min_length,
                max_length: c.password_max_length,
                min_strength: c.password_min_strength.min(4),
                max_similarity: c.password_max_similarity,
            },
            reserved: c
                .reserved_usernames
                .iter()
                .map(|n| n.trim())
                .filter(|n| !n.is_empty())
                .map(canonical)
                .collect(),
        })
    }

    /// Whether a username's canonical form is reserved.
    pub fn is_reserved(&self, canonical_name: &str) -> bool {
        self.reserved.contains(canonical_name)
    }
}
