//! Every setting in one place: flags, environment, defaults that work with no setup.
//!
//! Convention: the flag `--foo-bar` reads the environment variable `ROSTER_FOO_BAR`; the
//! database is the conventional `DATABASE_URL`. `roster --help` lists them all and
//! `docs/configuration.md` carries the same table (a test holds the two together).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser};

/// `--argon2-*`, `--hash-*`.
mod hashing;
/// Document, connection and rate limits.
mod limits;
/// `--smtp-*`, `--mail-*`.
mod mail;
/// Value parsers and checks.
mod parse;
/// `--password-*`, `--reserved-usernames`.
mod policy;
/// `--session-*`.
mod sessions;
/// `--secret-key*`, `--jwt-*`, `--access-token-rate-limit`.
mod tokens;
/// `--webhook-*`.
mod webhooks;

pub use hashing::HashingConfig;
pub use limits::LimitsConfig;
pub use mail::MailConfig;
pub use parse::{RedisUrl, parse_duration, parse_ip_net, parse_rate_limit};
use parse::{check_origin, check_public_url, parse_redis_url};
pub use policy::PolicyConfig;
pub use sessions::{MAX_SESSIONS_PER_USER, SessionConfig};
pub use tokens::{SecretText, TokenConfig};
pub use webhooks::WebhookConfig;

pub use crate::mail::SmtpUrl;
pub use crate::ratelimit::RateLimit;
pub use crate::telemetry::LogFormat;

/// Server settings. Every field has a default that works on a fresh machine.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "ROSTER_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// A second address for `/healthz`, `/readyz` and `/metrics`, which then leave the main
    /// listener: probes and scrapes never queue behind public traffic, and metrics stay off
    /// the internet. Unset: served on `--listen`.
    #[arg(long, env = "ROSTER_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// Serve `/metrics` on `--listen` too. Off by default: the delivery counters and the
    /// outbox gauges move with what happens to real accounts (a reset email is sent for a
    /// registered address only), so on a public address they would tell anyone which
    /// addresses have accounts. Scrape `--admin-listen` instead; turn this on only when
    /// `--listen` is reachable by operators alone.
    #[arg(long, env = "ROSTER_PUBLIC_METRICS", default_value_t = false, action = clap::ArgAction::Set)]
    pub public_metrics: bool,

    /// Database URL: `sqlite://path?mode=rwc` or `postgres://user@host/db`.
    /// Its password never reaches `--help` (`hide_env_values`) or a log.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://roster.db?mode=rwc"
    )]
    pub database_url: String,

    /// Audit-log entries older than this are deleted (the only deletion the log ever sees),
    /// checked every ten minutes. `0s` keeps them forever.
    #[arg(long, env = "ROSTER_AUDIT_RETENTION", default_value = "365d",
          value_parser = parse_duration)]
    pub audit_retention: Duration,

    /// `deleteAccount` closes the account (deactivated, every session ended) and deletes it
    /// this long after, unless its owner signs in meanwhile, which cancels the deletion and
    /// reopens it: `7d`, `30d` (at most 90 days). `off`: deleted at once.
    #[arg(long, env = "ROSTER_DELETION_GRACE", default_value = "off",
          value_parser = parse::parse_grace)]
    pub deletion_grace: Duration,

    /// Apply pending migrations at start-up. Fleets turn this off and run `roster migrate`
    /// once per release; a process that then finds migrations missing refuses to start.
    #[arg(long, env = "ROSTER_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,

    /// Redis shared by every roster process (`redis://[:password@]host[:port][/db]`): every
    /// rate limit is then enforced across all of them. Unset: each process limits alone.
    #[arg(long, env = "ROSTER_REDIS_URL", hide_env_values = true, value_parser = parse_redis_url)]
    pub redis_url: Option<RedisUrl>,

    /// Maximum database connections in the pool (0 = derived from the hash workers).
    #[arg(long, env = "ROSTER_DB_MAX_CONNECTIONS", default_value_t = 0)]
    pub db_max_connections: u32,

    /// Serve the GraphiQL playground at `GET /graphql`.
    #[arg(long, env = "ROSTER_GRAPHIQL", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphiql: bool,

    /// Allow schema introspection (turn off in production; also hides "did you mean" hints).
    #[arg(long, env = "ROSTER_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,

    /// Log format.
    #[arg(long, env = "ROSTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub hashing: HashingConfig,

    #[command(flatten)]
    pub policy: PolicyConfig,

    #[command(flatten)]
    pub limits: LimitsConfig,

    #[command(flatten)]
    pub sessions: SessionConfig,

    #[command(flatten)]
    pub mail: MailConfig,

    #[command(flatten)]
    pub tokens: TokenConfig,

    #[command(flatten)]
    pub webhooks: WebhookConfig,
}

impl Config {
    /// Refuses settings that would fail later, or that make no sense together, with a
    /// message naming the setting. Called by `Application::build` before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        let l = &self.limits;
        let h = &self.hashing;
        let in_range = |name: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "--{name} must be between {min} and {max}; got {value}"
                ))
            }
        };
        in_range("request-timeout-secs", l.request_timeout_secs, 1, 3600)?;
        in_range(
            "mfa-challenge-ttl (seconds)",
            self.sessions.mfa_challenge_ttl.as_secs(),
            1,
            3600,
        )?;
        if self.sessions.totp_issuer.is_empty()
            || self.sessions.totp_issuer.len() > 100
            || self.sessions.totp_issuer.contains(':')
        {
            return Err("--totp-issuer must be 1–100 bytes without a colon".into());
        }
        // A change link lives only while the email row that carried it does, and delivered
        // rows are purged after a week.
        in_range(
            "email-change-ttl (seconds)",
            self.mail.email_change_ttl.as_secs(),
            60,
            7 * 86_400,
        )?;
        in_range(
            "webhook-timeout (seconds)",
            self.webhooks.webhook_timeout.as_secs(),
            1,
            60,
        )?;
        in_range(
            "webhook-max-attempts",
            u64::from(self.webhooks.webhook_max_attempts),
            1,
            100,
        )?;
        in_range(
            "deletion-grace (seconds)",
            self.deletion_grace.as_secs(),
            0,
            90 * 86_400,
        )?;
        in_range("body-timeout-secs", l.body_timeout_secs, 1, 3600)?;
        in_range("header-timeout-secs", l.header_timeout_secs, 1, 3600)?;
        in_range("shutdown-timeout-secs", l.shutdown_timeout_secs, 0, 3600)?;
        in_range("max-connections", l.max_connections as u64, 1, 1_000_000)?;
        in_range(
            "max-connections-per-ip",
            l.max_connections_per_ip as u64,
            1,
            1_000_000,
        )?;
        in_range("body-limit", l.body_limit as u64, 1, 64 * 1024 * 1024)?;
        in_range(
            "max-response-bytes",
            l.max_response_bytes as u64,
            1024,
            1 << 30,
        )?;
        in_range(
            "rate-limit-max-clients",
            l.rate_limit_max_clients as u64,
            1,
            100_000_000,
        )?;
        for (name, value) in [
            ("max-tokens", l.max_tokens),
            ("max-fields", l.max_fields),
            ("max-aliases", l.max_aliases),
            ("max-fragments", l.max_fragments),
            ("max-operations", l.max_operations),
            ("max-variables", l.max_variables),
        ] {
            in_range(name, value as u64, 0, 1_000_000)?;
        }
        in_range("hash-queue", h.hash_queue as u64, 1, 65_536)?;
        in_range("hash-workers", h.hash_workers as u64, 0, 1024)?;
        // Each worker allocates this much once, at start; more than 4 GiB is a typo.
        in_range(
            "argon2-memory-kib",
            u64::from(h.argon2_memory_kib),
            8,
            4 * 1024 * 1024,
        )?;
        in_range(
            "argon2-max-verify-memory-kib",
            u64::from(h.argon2_max_verify_memory_kib),
            8,
            4 * 1024 * 1024,
        )?;
        in_range("argon2-iterations", u64::from(h.argon2_iterations), 1, 64)?;
        in_range("argon2-parallelism", u64::from(h.argon2_parallelism), 1, 64)?;
        in_range(
            "password-max-length",
            self.policy.password_max_length as u64,
            1,
            1024,
        )?;
        for origin in &l.cors_origins {
            check_origin(origin)?;
        }
        in_range(
            "mail-max-attempts",
            u64::from(self.mail.mail_max_attempts),
            1,
            100,
        )?;
        if self.mail.mail_lease <= self.mail.smtp_timeout {
            return Err(format!(
                "--mail-lease ({}s) must be longer than --smtp-timeout ({}s), or two workers \
                 could send the same email at once",
                self.mail.mail_lease.as_secs(),
                self.mail.smtp_timeout.as_secs()
            ));
        }
        if let Some(SmtpUrl(url)) = &self.mail.smtp_url
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            // Says nothing of the value: it may hold a password.
            return Err("--smtp-url: expected smtps://user:pass@host:465, \
                 smtp://user:pass@host:587?tls=required or smtp://host:port"
                .into());
        }
        if let Some(url) = &self.mail.public_url {
            check_public_url(url)?;
        }
        if self
            .mail
            .mail_from
            .parse::<lettre::message::Mailbox>()
            .is_err()
        {
            return Err(format!(
                "--mail-from: {:?} is not an address such as `roster <noreply@example.com>`",
                self.mail.mail_from
            ));
        }
        if self.sessions.session_idle_ttl > self.sessions.session_max_ttl {
            return Err(format!(
                "--session-idle-ttl ({}s) must not exceed --session-max-ttl ({}s)",
                self.sessions.session_idle_ttl.as_secs(),
                self.sessions.session_max_ttl.as_secs()
            ));
        }
        self.tokens.validate()?;
        if !(1..=MAX_SESSIONS_PER_USER).contains(&self.sessions.max_sessions_per_user) {
            return Err(format!(
                "--max-sessions-per-user: {} is not between 1 and {MAX_SESSIONS_PER_USER}",
                self.sessions.max_sessions_per_user
            ));
        }
        Ok(())
    }

    /// The defaults, ignoring the process environment: what tests and tools start from.
    pub fn defaults() -> Self {
        // `Cli::parse_from` would read the environment; build from an empty argument list
        // with env lookups disabled by clearing them from the command definition.
        /// The settings alone, as the binary's command line carries them.
        #[derive(Parser)]
        struct Settings {
            #[command(flatten)]
            config: Config,
        }
        let cmd = <Settings as clap::CommandFactory>::command();
        let cmd = strip_env(cmd);
        let matches = cmd
            .try_get_matches_from(["roster"])
            .expect("defaults parse");
        <Settings as clap::FromArgMatches>::from_arg_matches(&matches)
            .expect("defaults are valid")
            .config
    }
}

fn strip_env(cmd: clap::Command) -> clap::Command {
    let ids: Vec<_> = cmd.get_arguments().map(|a| a.get_id().clone()).collect();
    ids.into_iter()
        .fold(cmd, |cmd, id| cmd.mut_arg(id, |a| a.env(None::<&str>)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;
    use std::time::Duration;

    #[test]
    fn rate_limits_parse() {
        assert_eq!(parse_rate_limit("off"), Ok(RateLimit::Off));
        assert_eq!(
            parse_rate_limit("30/5m"),
            Ok(RateLimit::PerPeriod {
                burst: NonZeroU32::new(30).unwrap(),
                period: Duration::from_secs(300)
            })
        );
        assert_eq!(
            parse_rate_limit("2/s"),
            Ok(RateLimit::PerPeriod {
                burst: NonZeroU32::new(2).unwrap(),
                period: Duration::from_secs(1)
            })
        );
        for bad in [
            "",
            "30",
            "0/5m",
            "30/5",
            "30/0m",
            "x/5m",
            "30/5w",
            "1/18446744073709551615h",
            "1/9999999h",
        ] {
            assert!(parse_rate_limit(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("h"), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "0s",
            "10",
            "10w",
            "-1s",
            "366d",
            "18446744073709551615d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults_ignore_the_environment_and_are_valid() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.hashing.argon2_memory_kib, 19456);
        assert_eq!(c.policy.password_min_length, 8);
        assert!(c.policy.reserved_usernames.iter().any(|n| n == "admin"));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        type Adjust = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Adjust, &str)> = vec![
            (
                Box::new(|c| c.limits.cors_origins = vec!["*".into()]),
                "cors-origins",
            ),
            (
                Box::new(|c| c.limits.cors_origins = vec!["https://a.example/path".into()]),
                "cors-origins",
            ),
            (
                Box::new(|c| c.limits.cors_origins = vec!["a.example".into()]),
                "cors-origins",
            ),
            (
                Box::new(|c| c.limits.request_timeout_secs = 0),
                "request-timeout-secs",
            ),
            (
                Box::new(|c| c.limits.body_timeout_secs = u64::MAX),
                "body-timeout-secs",
            ),
            (
                Box::new(|c| c.hashing.hash_queue = usize::MAX),
                "hash-queue",
            ),
            (
                Box::new(|c| c.sessions.max_sessions_per_user = 0),
                "max-sessions-per-user",
            ),
            (
                Box::new(|c| c.hashing.argon2_memory_kib = u32::MAX),
                "argon2-memory-kib",
            ),
            (
                Box::new(|c| c.limits.max_connections = 0),
                "max-connections",
            ),
            (
                Box::new(|c| c.mail.public_url = Some("http://[::1".into())),
                "public-url",
            ),
            (
                Box::new(|c| c.mail.public_url = Some("http://a.example:99999".into())),
                "public-url",
            ),
            (
                Box::new(|c| c.mail.public_url = Some("https://a.example/{{email}}".into())),
                "public-url",
            ),
            (
                Box::new(|c| c.mail.public_url = Some("ftp://a.example".into())),
                "public-url",
            ),
            (
                Box::new(|c| c.mail.smtp_url = Some(SmtpUrl("ftp://u:p@h".into()))),
                "smtp-url",
            ),
            (
                Box::new(|c| c.mail.mail_from = "not an address".into()),
                "mail-from",
            ),
            (
                Box::new(|c| c.tokens.jwt_ttl = std::time::Duration::ZERO),
                "jwt-ttl",
            ),
            (
                Box::new(|c| c.tokens.jwt_ttl = std::time::Duration::from_secs(3601)),
                "jwt-ttl",
            ),
            (
                Box::new(|c| c.tokens.auth_check_jwt = true),
                "jwt-default-audience",
            ),
            (
                Box::new(|c| c.tokens.jwt_default_audience = Some(" spaced".into())),
                "jwt-default-audience",
            ),
            (
                Box::new(|c| c.mail.mail_lease = c.mail.smtp_timeout),
                "mail-lease",
            ),
            (
                Box::new(|c| c.mail.email_change_ttl = std::time::Duration::from_secs(8 * 86_400)),
                "email-change-ttl",
            ),
        ];
        for (adjust, name) in cases {
            let mut c = Config::defaults();
            adjust(&mut c);
            let e = c.validate().expect_err(name);
            assert!(e.contains(name), "{e}");
        }
        let mut c = Config::defaults();
        c.limits.cors_origins = vec![
            "https://app.example.com".into(),
            "http://localhost:3000".into(),
        ];
        c.mail.public_url = Some("https://accounts.example.com/roster/".into());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        assert_eq!(parse_ip_net("10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
        assert_eq!(
            parse_ip_net("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_ip_net("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(parse_ip_net("10.0.0.0/33").is_err());
        assert!(parse_ip_net("proxy.local").is_err());
    }
}
