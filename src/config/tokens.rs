//! `--secret-key*`, `--jwt-*`, `--access-token-rate-limit`: the server secret and access
//! tokens, built into the domain's types.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::*;
use crate::tokens::{Audience, MAX_TOKEN_TTL, ServerSecret, TokenSettings};

/// The secret as given in the environment. Never printed; checked by
/// [`TokenConfig::secret`] without quoting it.
#[derive(Clone)]
pub struct SecretText(zeroize::Zeroizing<String>);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

impl SecretText {
    /// A secret given in code (tests, embedding).
    pub fn new(text: impl Into<String>) -> Self {
        Self(zeroize::Zeroizing::new(text.into()))
    }
}

/// Never fails: clap would quote a refused value in its error.
fn parse_secret(s: &str) -> Result<SecretText, std::convert::Infallible> {
    Ok(SecretText(zeroize::Zeroizing::new(s.to_owned())))
}

/// The server secret and access tokens.
#[derive(Debug, Clone, Args)]
pub struct TokenConfig {
    /// A file holding the server secret (at least 32 random bytes, e.g. `openssl rand
    /// -base64 32`), which seals the access-token signing keys in the database: every process
    /// of a fleet needs the same one. Unset on SQLite: a development secret is kept beside the
    /// database file (`<file>.secret`, with a warning); unset on PostgreSQL: no access tokens.
    #[arg(long, env = "ROSTER_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,

    /// The server secret itself, for platforms that inject secrets as environment variables.
    /// Prefer the variable or `--secret-key-file` to this flag: a command line is visible to
    /// every user of the machine.
    #[arg(long, env = "ROSTER_SECRET_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub secret_key: Option<SecretText>,

    /// How long an access token is valid (at most 1h): `5m`, `15m`.
    #[arg(long, env = "ROSTER_JWT_TTL", default_value = "5m", value_parser = parse_duration)]
    pub jwt_ttl: Duration,

    /// The `aud` of a token when `accessToken` is called without an audience. Unset: the
    /// audience is required.
    #[arg(long, env = "ROSTER_JWT_DEFAULT_AUDIENCE")]
    pub jwt_default_audience: Option<String>,

    /// `/auth/check` also answers `X-Roster-Jwt`, an access token for
    /// `--jwt-default-audience` (required then), so an upstream can verify the identity
    /// instead of trusting the network. One token per session, reused while more than half
    /// its life is left. Off by default: a signature costs more than the check.
    #[arg(long, env = "ROSTER_AUTH_CHECK_JWT", default_value_t = false, action = clap::ArgAction::Set)]
    pub auth_check_jwt: bool,

    /// Access tokens one session may mint, in the `N/PERIOD` form; or `off`.
    #[arg(long, env = "ROSTER_ACCESS_TOKEN_RATE_LIMIT", default_value = "30/5m",
          value_parser = parse_rate_limit)]
    pub access_token_rate_limit: RateLimit,
}

impl TokenConfig {
    /// The configured secret, if any. Both sources at once is refused: which one wins would
    /// be a guess.
    pub fn secret(&self) -> Result<Option<ServerSecret>, String> {
        match (&self.secret_key_file, &self.secret_key) {
            (Some(_), Some(_)) => {
                Err("set either --secret-key-file or ROSTER_SECRET_KEY, not both".into())
            }
            (Some(path), None) => ServerSecret::read(path).map(Some),
            (None, Some(text)) => ServerSecret::parse(&text.0)
                .map(Some)
                .map_err(|e| format!("ROSTER_SECRET_KEY: {e}")),
            (None, None) => Ok(None),
        }
    }

    /// The secret this process uses for `database_url`: the configured one, else the
    /// development one beside a SQLite file ([`ServerSecret::resolve`]); the server and
    /// `roster keys` resolve it alike.
    pub fn server_secret(
        &self,
        database_url: &str,
    ) -> Result<Option<(ServerSecret, crate::tokens::SecretOrigin)>, String> {
        let configured = self.secret()?;
        let sqlite_file = crate::db::sqlite_file(database_url);
        ServerSecret::resolve(configured, database_url, sqlite_file.as_deref())
    }

    /// How tokens are made, `issuer` being the public URL.
    pub fn settings(&self, issuer: String) -> Result<TokenSettings, String> {
        let default_audience = self
            .jwt_default_audience
            .as_deref()
            .map(Audience::parse)
            .transpose()
            .map_err(|e| format!("--jwt-default-audience: {}", e.message))?;
        Ok(TokenSettings {
            issuer,
            ttl: self.jwt_ttl,
            default_audience,
        })
    }

    /// Checks what can be checked without the environment.
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.jwt_ttl.is_zero() || self.jwt_ttl > MAX_TOKEN_TTL {
            return Err(format!(
                "--jwt-ttl must be between 1s and 1h; got {}s",
                self.jwt_ttl.as_secs()
            ));
        }
        if self.auth_check_jwt && self.jwt_default_audience.is_none() {
            return Err(
                "--auth-check-jwt needs --jwt-default-audience: the audience of the tokens \
                 /auth/check hands to the upstream"
                    .into(),
            );
        }
        self.settings(String::new()).map(|_| ())
    }
}
