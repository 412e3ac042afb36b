use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::guard::{register_admission, service};
use crate::accounts::{self, Registration};

/// What a client submits to `register`.
#[derive(InputObject)]
pub struct RegisterInput {
    /// 1–150 characters: letters, digits and `@ . + - _`; unique ignoring case.
    pub username: String,
    /// A valid address of at most 254 characters; unique ignoring case.
    pub email: String,
    /// 8–128 characters by default; see `Query.passwordPolicy`. Never returned or logged.
    #[graphql(secret)]
    pub password: String,
}

impl From<RegisterInput> for Registration {
    fn from(i: RegisterInput) -> Self {
        Registration {
            username: i.username,
            email: i.email,
            password: i.password,
        }
    }
}

/// A registered user.
#[derive(SimpleObject)]
pub struct User {
    /// A UUIDv7: unique, time-ordered, and unlike a counter it does not reveal the user count.
    pub id: ID,
    /// The username as stored (NFKC-normalized).
    pub username: String,
    /// The email address as stored (domain lowercased, IDNA-encoded); `null` only for a user
    /// imported from Django without one.
    pub email: Option<String>,
    /// When the account was created (UTC).
    pub date_joined: DateTime<Utc>,
    /// The user proved they read `email` (the link of the confirmation email, or a password
    /// reset).
    pub email_verified: bool,
}

impl From<accounts::User> for User {
    fn from(u: accounts::User) -> Self {
        Self {
            id: ID(u.id.to_string()),
            username: u.username,
            email: (!u.email.is_empty()).then_some(u.email),
            date_joined: u.date_joined,
            email_verified: u.email_verified,
        }
    }
}

/// The password rules in force, so a sign-up form can show them before submitting.
#[derive(SimpleObject)]
pub struct PasswordPolicy {
    /// Minimum length in characters.
    pub min_length: i32,
    /// Maximum length in characters.
    pub max_length: i32,
    /// Minimum zxcvbn strength score (0–4).
    pub min_strength: i32,
    /// Similarity to the username or email (0–1) at which a password is refused.
    pub max_similarity: f64,
    /// Every rule, with the error code it produces.
    pub rules: Vec<PasswordRule>,
}

/// One password rule.
#[derive(SimpleObject)]
pub struct PasswordRule {
    /// The `extensions.fields[].code` this rule produces.
    pub code: String,
    /// What the rule asks for, in words.
    pub description: String,
}

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The active password policy. Permission: anyone.
    async fn password_policy(&self, ctx: &Context<'_>) -> async_graphql::Result<PasswordPolicy> {
        let p = &service(ctx)?.policy().password;
        let rule = |code: &str, description: String| PasswordRule {
            code: code.into(),
            description,
        };
        use accounts::codes::*;
        Ok(PasswordPolicy {
            min_length: clamp(p.min_length),
            max_length: clamp(p.max_length),
            min_strength: i32::from(p.min_strength),
            max_similarity: p.max_similarity,
            rules: vec![
                rule(
                    PASSWORD_TOO_SHORT,
                    format!("At least {} characters.", p.min_length),
                ),
                rule(
                    PASSWORD_TOO_LONG,
                    format!("At most {} characters.", p.max_length),
                ),
                rule(
                    PASSWORD_TOO_COMMON,
                    "Not one of the 20,000 most common passwords.".into(),
                ),
                rule(
                    PASSWORD_TOO_SIMILAR,
                    format!(
                        "Not similar to the username or email (similarity below {}).",
                        p.max_similarity
                    ),
                ),
                rule(PASSWORD_ENTIRELY_NUMERIC, "Not only digits.".into()),
                rule(
                    PASSWORD_TOO_WEAK,
                    format!("A zxcvbn strength of at least {} out of 4.", p.min_strength),
                ),
            ],
        })
    }
}

fn clamp(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    /// Creates an account. On invalid input, one `BAD_USER_INPUT` error lists every violated
    /// rule of every field in `extensions.fields` (`{field, code, message}`).
    ///
    /// Costs 1000 complexity points, so a document can hold only one hashing mutation.
    /// Limited per client (`--register-rate-limit`), checked once the hash queue has room
    /// for it. Permission: anyone.
    #[graphql(complexity = "1000 + child_complexity")]
    async fn register(
        &self,
        ctx: &Context<'_>,
        input: RegisterInput,
    ) -> async_graphql::Result<User> {
        let service = service(ctx)?;
        let user = service
            .register(input.into(), register_admission(ctx))
            .await?;
        Ok(user.into())
    }
}
