use std::fmt;

use validator::ValidateEmail;

use super::canonical::canonical;
use super::codes;
use super::username::is_invisible;
use crate::error::FieldError;

const FIELD: &str = "email";
/// RFC 5321's path limit less the angle brackets.
pub const MAX_CHARS: usize = 254;
/// RFC 5321's local-part limit.
pub const MAX_LOCAL_CHARS: usize = 64;

/// A valid email address: syntax per the `validator` crate, ≤254 characters, local part ≤64,
/// domain lowercased and IDNA-encoded to ASCII; nothing that could break a mail header.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    value: String,
    canonical: String,
}

impl Email {
    /// Applies every email rule; returns all the violations, in a fixed order.
    pub fn parse(raw: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if raw.is_empty() {
            errors.push(FieldError::new(
                FIELD,
                codes::REQUIRED,
                "This field is required.",
            ));
            return Err(errors);
        }
        let chars = raw.chars().count();
        if chars > MAX_CHARS {
            // Reported alone, before the per-character scan: the work on a hostile 64 KiB
            // value stays a single count.
            errors.push(FieldError::new(
                FIELD,
                codes::EMAIL_TOO_LONG,
                format!(
                    "Ensure this field has no more than {MAX_CHARS} characters (it has {chars})."
                ),
            ));
            return Err(errors);
        }
        // CR/LF would allow header injection wherever the address is later used; spaces and
        // invisible characters make two addresses look alike. None has a place in an address.
        if raw.chars().any(|c| c.is_whitespace() || is_invisible(c)) {
            errors.push(FieldError::new(
                FIELD,
                codes::EMAIL_INVALID_CHARACTERS,
                "Email addresses may not contain spaces, line breaks or invisible characters.",
            ));
        }
        let (local, domain) = raw.rsplit_once('@').unwrap_or((raw, ""));
        if local.chars().count() > MAX_LOCAL_CHARS {
            errors.push(FieldError::new(
                FIELD,
                codes::EMAIL_LOCAL_PART_TOO_LONG,
                format!("The part before @ may have at most {MAX_LOCAL_CHARS} characters."),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // `domain_to_ascii` applies UTS 46: lowercases, maps and punycodes `BÜCHER.example`
        // to `xn--bcher-kva.example`.
        let ascii_domain = idna::domain_to_ascii(domain).ok().filter(|d| !d.is_empty());
        let value = ascii_domain.map(|d| format!("{local}@{d}"));
        match value {
            // Also an address the mailer can send to (lettre's rules), and no domain literal
            // (`x@[127.0.0.1]`): an account must be reachable by its confirmation email.
            Some(value)
                if value.validate_email()
                    && value.chars().count() <= MAX_CHARS
                    && !value.contains("@[")
                    && value.parse::<lettre::Address>().is_ok() =>
            {
                let canonical = canonical(&value);
                Ok(Self { value, canonical })
            }
            _ => Err(vec![FieldError::new(
                FIELD,
                codes::EMAIL_INVALID,
                "Enter a valid email address.",
            )]),
        }
    }

    /// The address as stored: local part as typed, domain lowercased ASCII.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The form compared for uniqueness (whole address case-folded).
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
}

/// Email addresses are personal data: `Debug` shows only the domain.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.value.rsplit_once('@').map_or("", |(_, d)| d);
        write!(f, "Email(…@{domain})")
    }
}
