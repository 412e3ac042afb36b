use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_security::general_security_profile::IdentifierType;
use unicode_security::{GeneralSecurityProfile, RestrictionLevel, RestrictionLevelDetection};

use super::canonical::canonical;
use super::codes;
use super::policy::RegistrationPolicy;
use super::skeleton::Keys;
use crate::error::FieldError;

const FIELD: &str = "username";
/// Django's `User.username` `max_length`.
pub const MAX_CHARS: usize = 150;
/// A raw value longer than this is refused before any normalization: NFKC can compose at
/// most a few code points into one, so no such value could come out at 150 characters, and
/// the work on a hostile 64 KiB value stays a single count.
const MAX_RAW_CHARS: usize = 4 * MAX_CHARS;
/// Besides Unicode letters and digits, Django's `UnicodeUsernameValidator` allows these.
const ALLOWED_PUNCTUATION: [char; 5] = ['@', '.', '+', '-', '_'];

/// A valid username: NFKC-normalized, 1–150 characters of letters, digits and `@.+-_`,
/// without invisible characters, not a confusable mix of scripts, not reserved.
#[derive(Clone, PartialEq, Eq)]
pub struct Username {
    value: String,
    canonical: String,
    keys: Keys,
}

impl Username {
    /// Applies every username rule; returns all the violations, in a fixed order.
    pub fn parse(raw: &str, policy: &RegistrationPolicy) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if raw.is_empty() {
            errors.push(FieldError::new(
                FIELD,
                codes::REQUIRED,
                "This field is required.",
            ));
            return Err(errors);
        }
        let raw_chars = raw.chars().count();
        if raw_chars > MAX_RAW_CHARS {
            errors.push(FieldError::new(
                FIELD,
                codes::USERNAME_TOO_LONG,
                format!("Ensure this field has no more than {MAX_CHARS} characters (it has {raw_chars})."),
            ));
            return Err(errors);
        }
        // NFKC before anything else: `ＡＤＭＩＮ` is judged (and stored) as `ADMIN`.
        let value: String = raw.nfkc().collect();

        let chars = value.chars().count();
        if chars > MAX_CHARS {
            // Reported alone: the costlier rules (confusables, canonical form, look-alike
            // keys) are moot for a name that cannot be registered, and NFKC may have made
            // it 18 times longer than what was sent.
            errors.push(FieldError::new(
                FIELD,
                codes::USERNAME_TOO_LONG,
                format!(
                    "Ensure this field has no more than {MAX_CHARS} characters (it has {chars})."
                ),
            ));
            return Err(errors);
        }

        let (mut invisible, mut surrounding, mut invalid) = (false, false, false);
        let last = chars.saturating_sub(1);
        for (i, c) in value.chars().enumerate() {
            if is_invisible(c) {
                invisible = true;
            } else if c.is_whitespace() && (i == 0 || i == last) {
                surrounding = true;
            } else if !(c.is_alphanumeric() || ALLOWED_PUNCTUATION.contains(&c)) {
                invalid = true;
            }
        }
        if invisible {
            errors.push(FieldError::new(
                FIELD,
                codes::USERNAME_INVISIBLE_CHARACTERS,
                "Usernames may not contain invisible or control characters (zero-width, bidi, line breaks).",
            ));
        }
        if surrounding {
            errors.push(FieldError::new(
                FIELD,
                codes::USERNAME_SURROUNDING_WHITESPACE,
                "Usernames may not start or end with whitespace.",
            ));
        }
        if invalid {
            errors.push(FieldError::new(
                FIELD,
                codes::USERNAME_INVALID_CHARACTERS,
                "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.",
            ));
        }
        // Script mixing is judged only on an otherwise well-formed name: the charset errors
        // above already explain anything else.
        if !(invisible || surrounding || invalid) && is_confusable(&value) {
            errors.push(FieldError::new(
                FIELD,
                codes::USERNAME_CONFUSABLE,
                "This username mixes writing systems in a way that can imitate another name (for example a Cyrillic letter among Latin ones). Use one script.",
            ));
        }

        let canonical = canonical(&value);
        let keys = Keys::of(&value);
        // By canonical form and by look-alike key: all-Cyrillic `АРІ` renders as `API`.
        if policy.is_reserved(&canonical, &keys) {
            errors.push(FieldError::new(
                FIELD,
                codes::USERNAME_RESERVED,
                "This username is reserved.",
            ));
        }

        if errors.is_empty() {
            Ok(Self {
                value,
                canonical,
                keys,
            })
        } else {
            Err(errors)
        }
    }

    /// The username as stored and shown (NFKC form of what was typed).
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The form compared for uniqueness.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// Its TR39 look-alike keys (as written, lower-cased, upper-cased); each is unique
    /// among users.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Username").field(&self.value).finish()
    }
}

/// Control characters, line/paragraph separators and default-ignorable code points
/// (zero-width joiners and spaces, bidi overrides, soft hyphen, variation selectors…).
pub(super) fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}')
        || c.identifier_type() == Some(IdentifierType::Default_Ignorable)
}

/// TR39 restriction levels: "moderately restrictive" admits Latin with one other
/// recommended script except Cyrillic and Greek (so `山田taro` or `josé` pass), and
/// single-script names in any recommended script (`Вера`, `山田`). Beyond it lie mixes such
/// as Latin + Cyrillic (`pаypal` with a Cyrillic `а`) and characters TR39 restricts
/// from identifiers. Django's punctuation is neutral and left out of the judgement.
fn is_confusable(value: &str) -> bool {
    let letters: String = value
        .chars()
        .filter(|c| !ALLOWED_PUNCTUATION.contains(c))
        .collect();
    !letters.check_restriction_level(RestrictionLevel::ModeratelyRestrictive)
}
