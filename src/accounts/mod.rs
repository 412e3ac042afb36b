//! The domain: what a valid username, email and password are, and the registration rules.
//!
//! Values of [`Username`], [`Email`] and [`Password`] can only be built by their `parse`
//! functions, so a value that exists has passed every rule ("parse, don't validate").

/// The canonical (normalized, case-folded) form used for uniqueness.
pub mod canonical;
/// `requestEmailChange`, `confirmEmailChange`: a new address, confirmed from a link to it.
mod change_email;
/// `changePassword`: check the current password, apply the policy, revoke other sessions.
mod change_password;
/// `deleteAccount`: the user deletes their own account.
mod delete_account;
/// Email addresses: syntax, length, IDNA domain, canonical form.
mod email;
/// Single-use, expiring tokens for email links, stored hashed.
pub mod email_tokens;
/// `login`: identifier + password → session, with throttling and hash upgrades.
mod login;
/// `myData`: everything roster stores about the caller.
mod my_data;
/// Passwords: the secret newtype and Django's validators plus a zxcvbn strength floor.
mod password;
/// The password entered again before a sensitive change.
mod password_again;
/// The registration policy (password thresholds, reserved names); `config` builds it.
mod policy;
/// `requestPasswordReset` and `resetPassword`.
mod reset_password;
/// The registration service: validation, uniqueness, hashing, insert.
mod second_factor;
mod service;
/// `roster changepassword`: an operator sets a user's password.
mod set_password;
/// TR39 look-alike keys for usernames.
pub mod skeleton;
/// Usernames: NFKC, charset, invisible characters, confusables, reserved names.
mod username;
/// The `validator`-derived shape checks and their translation into field errors.
mod validation;
/// `verifyEmail` and `resendVerificationEmail`.
mod verify_email;

pub use delete_account::complete_due_deletions;
pub use email::Email;
pub use login::seed_failure_floor;
pub use login::{LoggedIn, Login};
pub use password::Password;
pub use policy::{PasswordPolicy, RegistrationPolicy};
pub use second_factor::{Enrollment, MfaStatus, SecondFactorPolicy};
pub use service::{AccountService, EmailPolicy, NewUser, Parts, User, backfill_skeletons};
pub use username::Username;
pub use validation::Registration;

/// Field-level error codes (`extensions.fields[].code`). Stable: clients may branch on them.
pub mod codes {
    pub const REQUIRED: &str = "required";
    pub const INVALID: &str = "invalid";
    pub const TAKEN: &str = "taken";
    pub const USERNAME_TOO_LONG: &str = "username_too_long";
    pub const USERNAME_INVALID_CHARACTERS: &str = "username_invalid_characters";
    pub const USERNAME_INVISIBLE_CHARACTERS: &str = "username_invisible_characters";
    pub const USERNAME_SURROUNDING_WHITESPACE: &str = "username_surrounding_whitespace";
    pub const USERNAME_CONFUSABLE: &str = "username_confusable";
    pub const USERNAME_RESERVED: &str = "username_reserved";
    pub const USERNAME_LOOKALIKE: &str = "username_lookalike";
    /// A username with an `@` (in its canonical form) must be the account's own address:
    /// usernames and emails are one namespace of login identifiers, and an address-shaped
    /// username would pre-empt that address's owner.
    pub const USERNAME_NOT_OWN_EMAIL: &str = "username_not_own_email";
    pub const EMAIL_INVALID: &str = "email_invalid";
    pub const EMAIL_INVALID_CHARACTERS: &str = "email_invalid_characters";
    pub const EMAIL_TOO_LONG: &str = "email_too_long";
    pub const EMAIL_LOCAL_PART_TOO_LONG: &str = "email_local_part_too_long";
    pub const PASSWORD_TOO_SHORT: &str = "password_too_short";
    pub const PASSWORD_TOO_LONG: &str = "password_too_long";
    pub const PASSWORD_TOO_COMMON: &str = "password_too_common";
    pub const PASSWORD_TOO_SIMILAR: &str = "password_too_similar";
    pub const PASSWORD_ENTIRELY_NUMERIC: &str = "password_entirely_numeric";
    pub const PASSWORD_TOO_WEAK: &str = "password_too_weak";
    /// A second-factor code that is wrong, used already, or not waited for.
    pub const SECOND_FACTOR_INVALID: &str = "second_factor_invalid";
    /// An email link's token that is unknown, used, or replaced by a newer one.
    pub const TOKEN_INVALID: &str = "token_invalid";
    /// An email link's token past its lifetime (`--verify-email-ttl`, `--reset-password-ttl`).
    pub const TOKEN_EXPIRED: &str = "token_expired";
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> RegistrationPolicy {
        RegistrationPolicy::new(
            &["admin".to_owned(), "root".to_owned()],
            PasswordPolicy {
                min_length: 8,
                max_length: 128,
                min_strength: 3,
                max_similarity: 0.7,
            },
        )
        .unwrap()
    }

    /// Every code a parser may produce, as listed in `docs/errors.md`.
    const KNOWN: &[&str] = &[
        codes::REQUIRED,
        codes::USERNAME_TOO_LONG,
        codes::USERNAME_INVALID_CHARACTERS,
        codes::USERNAME_INVISIBLE_CHARACTERS,
        codes::USERNAME_SURROUNDING_WHITESPACE,
        codes::USERNAME_CONFUSABLE,
        codes::USERNAME_RESERVED,
        codes::EMAIL_INVALID,
        codes::EMAIL_INVALID_CHARACTERS,
        codes::EMAIL_TOO_LONG,
        codes::EMAIL_LOCAL_PART_TOO_LONG,
        codes::PASSWORD_TOO_SHORT,
        codes::PASSWORD_TOO_LONG,
        codes::PASSWORD_TOO_COMMON,
        codes::PASSWORD_TOO_SIMILAR,
        codes::PASSWORD_ENTIRELY_NUMERIC,
        codes::PASSWORD_TOO_WEAK,
    ];

    fn coded(errors: &[crate::error::FieldError], field: &str) -> bool {
        !errors.is_empty()
            && errors
                .iter()
                .all(|e| e.field == field && KNOWN.contains(&e.code) && !e.message.is_empty())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary Unicode never panics: a value, or field errors with known codes.
        #[test]
        fn username_parse_is_total(raw in any::<String>()) {
            match Username::parse(&raw, &policy()) {
                Ok(u) => {
                    prop_assert_eq!(canonical::canonical(u.canonical()), u.canonical().to_owned());
                    prop_assert!(u.as_str().chars().count() <= 150);
                }
                Err(errors) => prop_assert!(coded(&errors, "username"), "{:?}", errors),
            }
        }

        #[test]
        fn email_parse_is_total(raw in any::<String>(), local in "[a-zA-Z0-9._%+-]{1,70}", domain in "\\PC{1,30}") {
            for candidate in [raw, format!("{local}@{domain}")] {
                match Email::parse(&candidate) {
                    Ok(e) => {
                        prop_assert!(e.as_str().is_ascii() || e.as_str().contains('@'));
                        prop_assert!(e.as_str().chars().count() <= 254);
                    }
                    Err(errors) => prop_assert!(coded(&errors, "email"), "{:?}", errors),
                }
            }
        }

        #[test]
        fn password_parse_is_total(raw in any::<String>(), username in any::<String>(), email in any::<String>()) {
            let policy = policy();
            match Password::parse(crate::password::Plaintext::new(raw.clone()), &policy.password, Some(&username), Some(&email)) {
                Ok(p) => prop_assert_eq!(p.expose(), raw.as_str(), "the password is kept as typed"),
                Err(errors) => prop_assert!(coded(&errors, "password"), "{:?}", errors),
            }
        }
    }
}
