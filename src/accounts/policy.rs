use std::collections::HashSet;

use super::canonical::canonical;
use super::skeleton::{Keys, skeleton_key};

/// The registration rules' thresholds, checked once at start-up.
#[derive(Debug, Clone)]
pub struct RegistrationPolicy {
    pub password: PasswordPolicy,
    /// Canonical forms of the reserved usernames.
    reserved: HashSet<String>,
    /// Look-alike keys of the reserved names in lower, upper and title case (TR39's table is
    /// not case-consistent: `ΑΡΙ` looks like `API`, not like `api`).
    reserved_skeletons: HashSet<String>,
}

/// Password thresholds; readable by clients through `Query.passwordPolicy`.
#[derive(Debug, Clone, PartialEq)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
    /// Minimum zxcvbn score, 0–4.
    pub min_strength: u8,
    /// Django's similarity (difflib `quick_ratio`, 0.1–1) at or above which a password is
    /// refused as too close to the username or email.
    pub max_similarity: f64,
}

impl RegistrationPolicy {
    /// Builds the policy, refusing settings that contradict each other. `config` builds it
    /// from the command line; the domain owns the type and its rules.
    pub fn new(reserved_usernames: &[String], password: PasswordPolicy) -> Result<Self, String> {
        if password.min_length == 0 {
            return Err("password-min-length must be at least 1".into());
        }
        if password.max_length < password.min_length {
            return Err("password-max-length must not be below password-min-length".into());
        }
        // Django refuses thresholds under 0.1 (every password would be "similar").
        if !(0.1..=1.0).contains(&password.max_similarity) {
            return Err("password-max-similarity must be between 0.1 and 1".into());
        }
        let names: Vec<&str> = reserved_usernames
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .collect();
        let reserved_skeletons = names
            .iter()
            .flat_map(|n| {
                let mut title: String = n.chars().take(1).flat_map(char::to_uppercase).collect();
                title.extend(n.chars().skip(1).flat_map(char::to_lowercase));
                [n.to_lowercase(), n.to_uppercase(), title]
            })
            .map(|variant| skeleton_key(&variant))
            .collect();
        Ok(Self {
            reserved_skeletons,
            password: PasswordPolicy {
                min_strength: password.min_strength.min(4),
                ..password
            },
            reserved: names.iter().map(|n| canonical(n)).collect(),
        })
    }

    /// Whether a username is reserved: by canonical form, or because it (in any case)
    /// looks like a reserved name (in lower, upper or title case).
    pub fn is_reserved(&self, canonical_name: &str, keys: &Keys) -> bool {
        self.reserved.contains(canonical_name)
            || [&keys.written, &keys.lower, &keys.upper]
                .into_iter()
                .any(|k| self.reserved_skeletons.contains(k))
    }
}
