use std::fmt;

use validator::{Validate, ValidationErrors};

use super::codes;
use crate::error::FieldError;

/// A registration as submitted, before any rule ran.
///
/// The `validator` derive holds the shape rule every field shares (present, not empty); it
/// runs first and cheaply. The domain newtypes then apply the deeper, configurable rules to
/// every field that passed it. The derive lives here, on the domain's input,
/// rather than on the GraphQL type, so no entry point can skip it.
#[derive(Clone, Validate)]
pub struct Registration {
    #[validate(length(min = 1, code = "required"))]
    pub username: String,
    #[validate(length(min = 1, code = "required"))]
    pub email: String,
    #[validate(length(min = 1, code = "required"))]
    pub password: String,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The GraphQL input field names, in the order errors are reported.
pub(super) const FIELDS: [&str; 3] = ["username", "email", "password"];

impl Registration {
    /// Runs the shape rules and returns their violations per field, in a stable order.
    ///
    /// `validator` keys errors by Rust field name in a `HashMap` (random order) and copies the
    /// submitted value into each error's `params` — with the plaintext password among them.
    /// Only the code survives this translation; the value never leaves.
    pub(super) fn shape_errors(&self) -> Vec<FieldError> {
        let Err(errors) = self.validate() else {
            return Vec::new();
        };
        translate(&errors)
    }
}

fn translate(errors: &ValidationErrors) -> Vec<FieldError> {
    let by_field = errors.field_errors();
    let mut out = Vec::new();
    for field in FIELDS {
        // Rust and GraphQL names coincide for these single-word fields; `FIELDS` is the
        // GraphQL spelling and the lookup below fails the tests if they ever diverge.
        let Some(list) = by_field.get(field) else {
            continue;
        };
        let mut codes_seen: Vec<&str> = list.iter().map(|e| e.code.as_ref()).collect();
        // An empty value is reported as `required` alone: its length is not news.
        if codes_seen.contains(&codes::REQUIRED) {
            codes_seen = vec![codes::REQUIRED];
        }
        for code in codes_seen {
            out.push(shape_error(field, code));
        }
    }
    out
}

fn shape_error(field: &'static str, code: &str) -> FieldError {
    // `required` is the derive's only code today; should another be added without a
    // message here, it is still reported (with a generic message) rather than dropped.
    if code == codes::REQUIRED {
        FieldError::new(field, codes::REQUIRED, "This field is required.")
    } else {
        FieldError::new(field, codes::INVALID, "This value is not valid.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(username: &str, email: &str, password: &str) -> Registration {
        Registration {
            username: username.into(),
            email: email.into(),
            password: password.into(),
        }
    }

    #[test]
    fn empty_fields_are_required_in_field_order() {
        let errors = reg("", "", "").shape_errors();
        let got: Vec<_> = errors.iter().map(|e| (e.field, e.code)).collect();
        assert_eq!(
            got,
            [
                ("username", "required"),
                ("email", "required"),
                ("password", "required")
            ]
        );
    }

    #[test]
    fn debug_shows_neither_password_nor_email() {
        let shown = format!("{:?}", reg("bob", "bob@example.com", "s3cret-value"));
        assert!(
            !shown.contains("s3cret") && !shown.contains("example.com"),
            "{shown}"
        );
    }
}
