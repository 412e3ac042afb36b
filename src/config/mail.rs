//! `--smtp-*`, `--mail-*`, link lifetimes: the outbox worker and the email mutations' limits.

use std::time::Duration;

use clap::Args;

use super::parse::parse_smtp_url;
use super::*;

/// Confirmation and password-reset emails: the outbox worker, its transport, token lifetimes
/// and the limits on the two mutations that send email on request.
#[derive(Debug, Clone, Args)]
pub struct MailConfig {
    /// SMTP server, read as lettre reads it: `smtps://user:pass@host:465` (implicit TLS),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtp://host:25` (unencrypted, for
    /// a local relay). Unset: emails are printed to stdout (development).
    #[arg(long, env = "ROSTER_SMTP_URL", hide_env_values = true, value_parser = parse_smtp_url)]
    pub smtp_url: Option<SmtpUrl>,

    /// The From address of every email (`Name <addr@example.com>` or `addr@example.com`).
    #[arg(
        long,
        env = "ROSTER_MAIL_FROM",
        default_value = "roster <roster@localhost>"
    )]
    pub mail_from: String,

    /// Where links in emails point: `{public-url}/verify-email?token=…`. Default: roster's
    /// own address (a wildcard listen address becomes `localhost`).
    #[arg(long, env = "ROSTER_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// A directory whose files override the compiled-in email templates
    /// (`verify_email.subject`, `verify_email.txt`, `verify_email.html`, and `reset_password.*`).
    #[arg(long, env = "ROSTER_MAIL_TEMPLATES")]
    pub mail_templates: Option<std::path::PathBuf>,

    /// How long an email-verification link works: `24h`, `90s`.
    #[arg(long, env = "ROSTER_VERIFY_EMAIL_TTL", default_value = "24h",
          value_parser = parse_duration)]
    pub verify_email_ttl: Duration,

    /// How long a password-reset link works.
    #[arg(long, env = "ROSTER_RESET_PASSWORD_TTL", default_value = "1h",
          value_parser = parse_duration)]
    pub reset_password_ttl: Duration,

    /// How long the link confirming a new address (`requestEmailChange`) works (1m to 7d).
    #[arg(long, env = "ROSTER_EMAIL_CHANGE_TTL", default_value = "24h",
          value_parser = parse_duration)]
    pub email_change_ttl: Duration,

    /// `login` refuses accounts whose email is not verified (`EMAIL_NOT_VERIFIED`, answered
    /// only once the password was right).
    #[arg(long, env = "ROSTER_REQUIRE_VERIFIED_EMAIL", default_value_t = false, action = clap::ArgAction::Set)]
    pub require_verified_email: bool,

    /// Per-address limit on `resendVerificationEmail` and `requestPasswordReset` (each
    /// address, whether or not it has an account), `N/PERIOD` or `off`.
    #[arg(long, env = "ROSTER_MAIL_ADDRESS_LIMIT", default_value = "1/1m",
          value_parser = parse_rate_limit)]
    pub mail_address_limit: RateLimit,

    /// Per-client limit on the same two mutations.
    #[arg(long, env = "ROSTER_MAIL_RATE_LIMIT", default_value = "10/15m",
          value_parser = parse_rate_limit)]
    pub mail_rate_limit: RateLimit,

    /// Delivery attempts per email before it is marked failed.
    #[arg(long, env = "ROSTER_MAIL_MAX_ATTEMPTS", default_value_t = 8)]
    pub mail_max_attempts: u32,

    /// Wait before the first retry; doubled per attempt (with jitter), at most an hour.
    #[arg(long, env = "ROSTER_MAIL_RETRY_BASE", default_value = "30s",
          value_parser = parse_duration)]
    pub mail_retry_base: Duration,

    /// How long a worker owns a claimed email; past it (the worker died) the email is due again.
    #[arg(long, env = "ROSTER_MAIL_LEASE", default_value = "2m",
          value_parser = parse_duration)]
    pub mail_lease: Duration,

    /// How often the worker looks for due emails when nothing woke it.
    #[arg(long, env = "ROSTER_MAIL_POLL_INTERVAL", default_value = "5s",
          value_parser = parse_duration)]
    pub mail_poll_interval: Duration,

    /// Longest an SMTP exchange for one email may take.
    #[arg(long, env = "ROSTER_SMTP_TIMEOUT", default_value = "20s",
          value_parser = parse_duration)]
    pub smtp_timeout: Duration,
}
