use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use super::codes;
use super::policy::PasswordPolicy;
use crate::error::FieldError;

const FIELD: &str = "password";

/// Django's list of 20,000 common passwords (from Royce Williams' breach compilation),
/// shipped as data: see `data/README.md` for its origin and checksum.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// A password that passed the policy. Never trimmed or case-changed: what the user typed is
/// what is hashed. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Applies the password rules, in a fixed order, against the *submitted* username and
    /// email (valid or not, taken or not, so the order and outcome never reveal either).
    pub fn parse(
        raw: String,
        policy: &PasswordPolicy,
        username: &str,
        email: &str,
    ) -> Result<Self, Vec<FieldError>> {
        if raw.is_empty() {
            return Err(vec![FieldError::new(
                FIELD,
                codes::REQUIRED,
                "This field is required.",
            )]);
        }
        let len = raw.chars().count();
        // Checked first, and alone: nothing more is computed on an oversized password.
        if len > policy.max_length {
            return Err(vec![FieldError::new(
                FIELD,
                codes::PASSWORD_TOO_LONG,
                format!(
                    "This password is too long. It must contain at most {} characters.",
                    policy.max_length
                ),
            )]);
        }
        let mut errors = Vec::new();
        if len < policy.min_length {
            errors.push(FieldError::new(
                FIELD,
                codes::PASSWORD_TOO_SHORT,
                format!(
                    "This password is too short. It must contain at least {} characters.",
                    policy.min_length
                ),
            ));
        }
        if is_common(&raw) {
            errors.push(FieldError::new(
                FIELD,
                codes::PASSWORD_TOO_COMMON,
                "This password is too common.",
            ));
        }
        if let Some(attribute) = too_similar(&raw, policy.max_similarity, username, email) {
            errors.push(FieldError::new(
                FIELD,
                codes::PASSWORD_TOO_SIMILAR,
                format!("The password is too similar to the {attribute}."),
            ));
        }
        if raw.chars().all(char::is_numeric) {
            errors.push(FieldError::new(
                FIELD,
                codes::PASSWORD_ENTIRELY_NUMERIC,
                "This password is entirely numeric.",
            ));
        }
        let estimate = zxcvbn::zxcvbn(&raw, &[username, email]);
        if (estimate.score() as u8) < policy.min_strength {
            errors.push(FieldError::new(
                FIELD,
                codes::PASSWORD_TOO_WEAK,
                weak_message(&estimate, policy.min_strength),
            ));
        }
        if errors.is_empty() {
            Ok(Self(raw))
        } else {
            Err(errors)
        }
    }

    /// The plaintext, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Wraps a string without checking it; for tests of the hashing layer.
    #[cfg(test)]
    pub(crate) fn new_unchecked(raw: String) -> Self {
        Self(raw)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Django's comparison: lowercased and stripped, against the list.
fn is_common(raw: &str) -> bool {
    COMMON.contains(raw.trim().to_lowercase().as_str())
}

/// Django's `UserAttributeSimilarityValidator`: the password is refused when its
/// similarity to the username or email — whole, or any part split on non-alphanumerics
/// (`alice`, `example`, `com` in `alice@example.com`) — reaches the threshold (0.7 by
/// default, as in Django). Similarity is difflib's Ratcliff–Obershelp ratio, the measure
/// Django uses, so thresholds carry over: `alice123` for `alice` scores 0.77 and is refused,
/// `alice-loves-ocean-tides` scores 0.36 and passes. Parts under 3 characters are ignored.
fn too_similar(raw: &str, threshold: f64, username: &str, email: &str) -> Option<&'static str> {
    let password: Vec<char> = raw.to_lowercase().chars().collect();
    let attributes = [("username", username), ("email address", email)];
    attributes.into_iter().find_map(|(name, value)| {
        let value = value.to_lowercase();
        let parts = value
            .split(|c: char| !c.is_alphanumeric())
            .chain([value.as_str()]);
        parts
            .map(|p| p.chars().collect::<Vec<_>>())
            .filter(|p| p.len() >= 3)
            .any(|p| similarity(&password, &p) >= threshold)
            .then_some(name)
    })
}

/// Ratcliff–Obershelp similarity, `2·M / (|a| + |b|)`, where M counts the characters of the
/// longest common substring plus, recursively, the matches to its left and to its right.
///
/// Written here because the maintained string-metric crates (`strsim`, `similar`) offer
/// Levenshtein, Jaro or Myers-diff ratios, which rank `alice123` vs `alice` differently
/// from Django and would make the documented threshold mean something else. Inputs are
/// bounded by the length limits, so the quadratic search is a few microseconds.
fn similarity(a: &[char], b: &[char]) -> f64 {
    let total = a.len() + b.len();
    if total == 0 {
        return 1.0;
    }
    2.0 * matches(a, b) as f64 / total as f64
}

fn matches(a: &[char], b: &[char]) -> usize {
    // Longest common substring by dynamic programming over one row.
    let (mut best, mut end_a, mut end_b) = (0, 0, 0);
    let mut row = vec![0usize; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = 0;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == cb { diagonal + 1 } else { 0 };
            if row[j + 1] > best {
                (best, end_a, end_b) = (row[j + 1], i + 1, j + 1);
            }
            diagonal = above;
        }
    }
    if best == 0 {
        return 0;
    }
    let (start_a, start_b) = (end_a - best, end_b - best);
    best + matches(&a[..start_a], &b[..start_b]) + matches(&a[end_a..], &b[end_b..])
}

fn weak_message(estimate: &zxcvbn::Entropy, min_strength: u8) -> String {
    let mut message = format!(
        "This password is too easy to guess (strength {} of 4, at least {min_strength} required).",
        estimate.score() as u8
    );
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            message.push(' ');
            message.push_str(&warning.to_string());
        }
        for suggestion in feedback.suggestions() {
            message.push(' ');
            message.push_str(&suggestion.to_string());
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(a: &str, b: &str) -> f64 {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        similarity(&a, &b)
    }

    #[test]
    fn similarity_matches_python_difflib() {
        // Reference values from Python's difflib.SequenceMatcher(None, a, b).ratio().
        let cases = [
            ("alice123", "alice", 10.0 / 13.0),
            ("abcd", "bcde", 0.75),
            ("alice-loves-ocean-tides", "alice", 10.0 / 28.0),
            ("same", "same", 1.0),
            ("abc", "xyz", 0.0),
        ];
        for (a, b, want) in cases {
            assert!(
                (ratio(a, b) - want).abs() < 1e-9,
                "{a} vs {b}: {} != {want}",
                ratio(a, b)
            );
        }
    }

    #[test]
    fn the_common_list_is_loaded_and_matched_case_insensitively() {
        assert!(COMMON.len() > 19_000);
        assert!(is_common("PassWord"));
        assert!(is_common("qwerty"));
        assert!(!is_common("a-much-less-common-phrase-42"));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let p = Password::new_unchecked("hunter2-secret".into());
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
