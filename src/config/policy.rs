//! `--password-*` and `--reserved-usernames`: the registration policy, built into the domain's type.

use clap::Args;

/// The registration policy's thresholds.
#[derive(Debug, Clone, Args)]
pub struct PolicyConfig {
    /// Minimum password length, in characters.
    #[arg(long, env = "ROSTER_PASSWORD_MIN_LENGTH", default_value_t = 8)]
    pub password_min_length: usize,

    /// Maximum password length, in characters (checked before anything is hashed).
    #[arg(long, env = "ROSTER_PASSWORD_MAX_LENGTH", default_value_t = 128)]
    pub password_max_length: usize,

    /// Minimum zxcvbn strength score, 0 (anything) to 4 (very strong).
    #[arg(long, env = "ROSTER_PASSWORD_MIN_STRENGTH", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(0..=4))]
    pub password_min_strength: u8,

    /// Similarity at which a password is too close to the username or email: Django's
    /// `UserAttributeSimilarityValidator` (difflib's `quick_ratio`, 0.1–1.0).
    #[arg(long, env = "ROSTER_PASSWORD_MAX_SIMILARITY", default_value_t = 0.7)]
    pub password_max_similarity: f64,

    /// Usernames nobody may register, compared on the canonical (case-folded) form.
    #[arg(
        long,
        env = "ROSTER_RESERVED_USERNAMES",
        value_delimiter = ',',
        default_value = "admin,administrator,root,system,support,help,security,staff,moderator,owner,superuser,webmaster,postmaster,hostmaster,abuse,noreply,no-reply,info,api,www,roster,null,undefined,anonymous"
    )]
    pub reserved_usernames: Vec<String>,
}

impl PolicyConfig {
    /// The domain's policy from these settings (refused when they contradict each other).
    pub fn policy(&self) -> Result<crate::accounts::RegistrationPolicy, String> {
        crate::accounts::RegistrationPolicy::new(
            &self.reserved_usernames,
            crate::accounts::PasswordPolicy {
                min_length: self.password_min_length,
                max_length: self.password_max_length,
                min_strength: self.password_min_strength,
                max_similarity: self.password_max_similarity,
            },
        )
    }
}
