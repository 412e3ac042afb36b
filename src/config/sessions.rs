//! `--session-*` and the failed-login limit.

use std::time::Duration;

use clap::Args;

use super::*;

/// Highest `--max-sessions-per-user`: the `sessions` query lists them all in one answer.
pub const MAX_SESSIONS_PER_USER: u32 = 10_000;

impl SessionConfig {
    /// The session store's policy.
    pub fn policy(&self) -> crate::sessions::SessionPolicy {
        crate::sessions::SessionPolicy {
            idle_ttl: self.session_idle_ttl,
            max_ttl: self.session_max_ttl,
            max_per_user: self.max_sessions_per_user,
        }
    }
}

/// Sessions, the session cookie, and login throttling.
#[derive(Debug, Clone, Args)]
pub struct SessionConfig {
    /// A session not used for this long ends: `14d`, `12h`, `90s`.
    #[arg(long, env = "ROSTER_SESSION_IDLE_TTL", default_value = "14d",
          value_parser = parse_duration)]
    pub session_idle_ttl: Duration,

    /// Every session ends this long after login, used or not.
    #[arg(long, env = "ROSTER_SESSION_MAX_TTL", default_value = "30d",
          value_parser = parse_duration)]
    pub session_max_ttl: Duration,

    /// Sessions one user may hold at once; a login past it ends the user's oldest ones, down
    /// to the cap less a tenth of it.
    #[arg(long, env = "ROSTER_MAX_SESSIONS_PER_USER", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=MAX_SESSIONS_PER_USER as i64))]
    pub max_sessions_per_user: u32,

    /// `login` also sets the session in an HttpOnly cookie: `__Host-roster_session` when
    /// `Secure`, `roster_session` otherwise.
    #[arg(long, env = "ROSTER_SESSION_COOKIE", default_value_t = true, action = clap::ArgAction::Set)]
    pub session_cookie: bool,

    /// Mark the cookie `Secure` (sent over HTTPS only); turn off for plain-HTTP development.
    #[arg(long, env = "ROSTER_SESSION_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub session_cookie_secure: bool,

    /// Per-client limit on `login` attempts, successful or not, in the `N/PERIOD` form; or `off`.
    #[arg(long, env = "ROSTER_LOGIN_RATE_LIMIT", default_value = "30/5m",
          value_parser = parse_rate_limit)]
    pub login_rate_limit: RateLimit,

    /// Failed logins per account (username and email together; an unknown identifier by its
    /// canonical form) before further attempts are refused until the window passes.
    #[arg(long, env = "ROSTER_LOGIN_FAILURE_LIMIT", default_value = "10/15m",
          value_parser = parse_rate_limit)]
    pub login_failure_limit: RateLimit,

    /// How long a login of a user with a second factor waits for `verifySecondFactor`
    /// (1s–1h); the session can do nothing else meanwhile.
    #[arg(long, env = "ROSTER_MFA_CHALLENGE_TTL", default_value = "5m",
          value_parser = parse_duration)]
    pub mfa_challenge_ttl: Duration,

    /// Staff use the admin API only from a session signed in with a second factor (aal2):
    /// with a password alone, an admin field answers `MFA_REQUIRED` (enrol one, then sign in
    /// with it). API keys are not sessions and are not affected.
    #[arg(long, env = "ROSTER_REQUIRE_MFA_FOR_STAFF", default_value_t = true, action = clap::ArgAction::Set)]
    pub require_mfa_for_staff: bool,

    /// The issuer authenticator apps show next to a roster TOTP (the `otpauth://` URI's).
    #[arg(long, env = "ROSTER_TOTP_ISSUER", default_value = "roster")]
    pub totp_issuer: String,
}
