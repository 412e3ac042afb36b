use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use super::codes;
use super::policy::PasswordPolicy;
use crate::error::FieldError;
use crate::password::Plaintext;

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
/// what is hashed. Wraps the hash pool's [`Plaintext`] (zeroized on drop); `Debug` never
/// shows it and there is no `Display`.
#[derive(Clone)]
pub struct Password(Plaintext);

impl Password {
    /// Applies the password rules, in a fixed order. `username` and `email` are the stored
    /// forms of the attributes that passed their own rules (`None` otherwise): the similarity
    /// rule compares only with those, so its cost is bounded by their length limits. Whether
    /// they are taken plays no part, so the outcome never reveals it.
    pub fn parse(
        plaintext: Plaintext,
        policy: &PasswordPolicy,
        username: Option<&str>,
        email: Option<&str>,
    ) -> Result<Self, Vec<FieldError>> {
        let raw = plaintext.expose();
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
        if is_common(raw) {
            errors.push(FieldError::new(
                FIELD,
                codes::PASSWORD_TOO_COMMON,
                "This password is too common.",
            ));
        }
        let attributes = [
            ("username", username.unwrap_or("")),
            ("email address", email.unwrap_or("")),
        ];
        if let Some(attribute) = too_similar(raw, policy.max_similarity, &attributes) {
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
        let inputs: Vec<&str> = [username, email].into_iter().flatten().collect();
        let estimate = zxcvbn::zxcvbn(strength_prefix(raw), &inputs);
        if (estimate.score() as u8) < policy.min_strength {
            errors.push(FieldError::new(
                FIELD,
                codes::PASSWORD_TOO_WEAK,
                weak_message(&estimate, policy.min_strength),
            ));
        }
        if errors.is_empty() {
            Ok(Self(plaintext))
        } else {
            Err(errors)
        }
    }

    /// The plaintext, for the policy checks and tests.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The plaintext, handed to the hash pool.
    pub fn into_plaintext(self) -> Plaintext {
        self.0
    }

    /// Wraps a string without checking it; for tests.
    #[cfg(test)]
    pub(crate) fn new_unchecked(raw: String) -> Self {
        Self(Plaintext::new(raw))
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// zxcvbn judges at most this many leading characters. Its cost grows faster than the
/// length (dictionary and sequence matching over every substring: ~8 ms for 128 hostile
/// characters, ~1.5 ms for 40 on the benchmark machine), and 40 characters that zxcvbn scores
/// as weak make a weak start however the password goes on; its authors suggest truncating too.
pub const STRENGTH_PREFIX_CHARS: usize = 40;

fn strength_prefix(raw: &str) -> &str {
    match raw.char_indices().nth(STRENGTH_PREFIX_CHARS) {
        Some((end, _)) => &raw[..end],
        None => raw,
    }
}

/// Django's comparison: lowercased and stripped, against the list.
fn is_common(raw: &str) -> bool {
    COMMON.contains(raw.trim().to_lowercase().as_str())
}

/// Django's `UserAttributeSimilarityValidator`, exactly: the password (lowercased) is refused
/// when difflib's `quick_ratio` against an attribute (lowercased), or against any part of it
/// split on `\W+` (Python's Unicode "non-word": not a letter, number or `_`), reaches the
/// threshold; parts far shorter than the password are skipped first by Django's cheap upper
/// bound (`exceeds_maximum_length_ratio`). So `ecila123` is refused for `alice` (0.77), like
/// `alice123`, and `alice-loves-ocean-tides` passes (0.36). Only attributes that passed their
/// own rules are compared, so the work is bounded by their length limits (Django validates
/// the password against the saved user, whose fields are valid too).
/// Reference answers from Django 5.2's own validator: `tests/django/vectors.jsonl`.
fn too_similar(
    raw: &str,
    threshold: f64,
    attributes: &[(&'static str, &str)],
) -> Option<&'static str> {
    let password: Vec<char> = raw.to_lowercase().chars().collect();
    attributes.iter().find_map(|&(name, value)| {
        if value.is_empty() {
            return None;
        }
        let value = value.to_lowercase();
        let mut parts = value.split(|c: char| !is_word(c)).chain([value.as_str()]);
        parts
            .any(|part| {
                let part: Vec<char> = part.chars().collect();
                !exceeds_maximum_length_ratio(password.len(), threshold, part.len())
                    && quick_ratio(&password, &part) >= threshold
            })
            .then_some(name)
    })
}

/// Python's `\w` on `str` patterns: alphanumeric per `str.isalnum()` (letters and numbers by
/// general category), or the underscore. Combining marks are not word characters.
fn is_word(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
    c == '_'
        || matches!(
            c.general_category_group(),
            GeneralCategoryGroup::Letter | GeneralCategoryGroup::Number
        )
}

/// Django's shortcut: a value at most a tenth of the password's length, and short enough that
/// `quick_ratio` could not reach the threshold, is not compared at all.
fn exceeds_maximum_length_ratio(
    password_len: usize,
    max_similarity: f64,
    value_len: usize,
) -> bool {
    let length_bound_similarity = max_similarity / 2.0 * password_len as f64;
    password_len >= 10 * value_len && (value_len as f64) < length_bound_similarity
}

/// difflib's `SequenceMatcher(a, b).quick_ratio()`: `2·M / (|a| + |b|)` where M is the size
/// of the multiset intersection of the two strings' characters. Linear time.
///
/// Written here because no maintained crate offers difflib's `quick_ratio` (the string-metric
/// crates offer Levenshtein, Jaro or Myers-diff ratios, which rank `alice123` vs `alice`
/// differently from Django and would make the documented threshold mean something else).
fn quick_ratio(a: &[char], b: &[char]) -> f64 {
    let total = a.len() + b.len();
    if total == 0 {
        return 1.0;
    }
    let mut available: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
    for &c in b {
        *available.entry(c).or_default() += 1;
    }
    let matches = a
        .iter()
        .filter(|c| match available.get_mut(c) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .count();
    2.0 * matches as f64 / total as f64
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
        quick_ratio(&a, &b)
    }

    #[test]
    fn quick_ratio_matches_python_difflib() {
        // Python: difflib.SequenceMatcher(a=a, b=b).quick_ratio()
        let cases = [
            ("alice123", "alice", 10.0 / 13.0),
            ("ecila123", "alice", 10.0 / 13.0),
            ("abcd", "bcde", 0.75),
            ("a", "aaaaaaaaaa", 2.0 / 11.0),
            ("same", "same", 1.0),
            ("abc", "xyz", 0.0),
            ("", "", 1.0),
        ];
        for (a, b, want) in cases {
            assert!(
                (ratio(a, b) - want).abs() < 1e-9,
                "{a} vs {b}: {} != {want}",
                ratio(a, b)
            );
        }
    }

    /// Every line of `tests/django/vectors.jsonl` was answered by Django 5.2's own
    /// `UserAttributeSimilarityValidator` (`tests/django/make_vectors.py`), Django's test-suite
    /// vectors among them. Our rule must give the same verdict and name the same attribute.
    #[test]
    fn the_similarity_rule_agrees_with_django_on_its_own_vectors() {
        let vectors = include_str!("../../tests/django/vectors.jsonl");
        let mut checked = 0;
        for line in vectors.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let (username, email, password) = (
                v["username"].as_str().unwrap(),
                v["email"].as_str().unwrap(),
                v["password"].as_str().unwrap(),
            );
            let threshold = v["max_similarity"].as_f64().unwrap();
            let got = too_similar(
                password,
                threshold,
                &[("username", username), ("email address", email)],
            );
            assert_eq!(got, v["attribute"].as_str(), "{line}");
            assert_eq!(got.is_some(), v["refused"].as_bool().unwrap(), "{line}");
            checked += 1;
        }
        assert!(checked >= 30, "{checked} vectors");
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
