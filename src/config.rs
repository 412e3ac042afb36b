//! Every setting in one place: flags, environment, defaults that work with no setup.
//!
//! Convention: the flag `--foo-bar` reads the environment variable `ROSTER_FOO_BAR`; the
//! database is the conventional `DATABASE_URL`. `roster --help` lists them all and
//! `docs/configuration.md` carries the same table (a test holds the two together).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Command line of the `roster` binary.
#[derive(Debug, Clone, Parser)]
#[command(name = "roster", version, about = "A GraphQL account service", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

/// What the binary does; serving is the default.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default when no command is given).
    Serve,
    /// Print the GraphQL schema (SDL) to stdout; `schema.graphql` is this output.
    Schema,
    /// Apply pending database migrations and exit (safe to run from several places at once
    /// on PostgreSQL: they take turns under an advisory lock).
    Migrate,
    /// Import users from Django (`auth_user`) with their password hashes, into the database
    /// of `--database-url`; problem rows are listed as JSON lines.
    ImportDjango(crate::import::ImportArgs),
    /// Inspect or requeue the outbox of confirmation and password-reset emails.
    #[command(subcommand)]
    Outbox(OutboxCommand),
}

/// `roster outbox …`: what operators need when email delivery fails.
#[derive(Debug, Clone, Subcommand)]
pub enum OutboxCommand {
    /// Emails not delivered yet (pending, being sent, failed), oldest first: id, kind,
    /// recipient, attempts, next attempt, last error. Never a token or a body.
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Makes failed emails due again now, with a fresh attempt budget.
    Retry {
        /// The id of one failed email (from `roster outbox list`).
        #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
        id: Option<uuid::Uuid>,
        /// Every failed email.
        #[arg(long)]
        all_failed: bool,
    },
}

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
}

/// An SMTP URL. Holds credentials, so it is never printed: `Debug` redacts it and `--help`
/// hides the environment's value.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(pub String);

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpUrl(<redacted>)")
    }
}

/// A Redis URL. May hold a password, so it is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(pub String);

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisUrl(<redacted>)")
    }
}

/// Never fails, like [`parse_smtp_url`]: checked when the client is built, without quoting.
fn parse_redis_url(s: &str) -> Result<RedisUrl, std::convert::Infallible> {
    Ok(RedisUrl(s.trim().to_owned()))
}

/// Never fails: clap would quote a refused value, password included, in its error. The
/// scheme is checked by [`Config::validate`], whose message leaves the value out.
fn parse_smtp_url(s: &str) -> Result<SmtpUrl, std::convert::Infallible> {
    Ok(SmtpUrl(s.trim().to_owned()))
}

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

/// Highest `--max-sessions-per-user`: the `sessions` query lists them all in one answer.
pub const MAX_SESSIONS_PER_USER: u32 = 10_000;

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

    /// `login` also sets the session in an HttpOnly cookie `roster_session`.
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
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Argon2id parameters and the hashing worker pool.
#[derive(Debug, Clone, Args)]
pub struct HashingConfig {
    /// Argon2id memory cost in KiB (OWASP: 19456).
    #[arg(long, env = "ROSTER_ARGON2_MEMORY_KIB", default_value_t = 19456)]
    pub argon2_memory_kib: u32,

    /// Argon2id iterations (OWASP: 2).
    #[arg(long, env = "ROSTER_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,

    /// Argon2id lanes (OWASP: 1).
    #[arg(long, env = "ROSTER_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,

    /// Hashing worker threads (0 = one per CPU core).
    #[arg(long, env = "ROSTER_HASH_WORKERS", default_value_t = 0)]
    pub hash_workers: usize,

    /// Registrations and logins that may wait for a free hash worker; beyond it the answer
    /// is SERVER_BUSY.
    #[arg(long, env = "ROSTER_HASH_QUEUE", default_value_t = 128)]
    pub hash_queue: usize,

    /// Most memory, in KiB, that verifying one stored hash made with other Argon2 parameters
    /// (an earlier setting, an imported user) may allocate; such a hash past it cannot log in.
    #[arg(
        long,
        env = "ROSTER_ARGON2_MAX_VERIFY_MEMORY_KIB",
        default_value_t = 131_072
    )]
    pub argon2_max_verify_memory_kib: u32,
}

impl HashingConfig {
    /// What a stored hash with foreign parameters may cost: memory as set, at most 16
    /// iterations and 16 lanes (Django's Argon2 default is t=2, p=8), or the configured
    /// values when those are higher.
    pub fn foreign_limits(&self) -> crate::password::ForeignLimits {
        crate::password::ForeignLimits {
            max_memory_kib: self.argon2_max_verify_memory_kib,
            max_iterations: 16,
            max_parallelism: 16,
        }
    }

    /// The configured Argon2id parameters, validated by the `argon2` crate.
    pub fn params(&self) -> Result<argon2::Params, argon2::Error> {
        argon2::Params::new(
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
            None,
        )
    }

    /// The number of worker threads after resolving `0` to the core count.
    pub fn workers(&self) -> usize {
        if self.hash_workers > 0 {
            self.hash_workers
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    }
}

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

/// Limits that protect the public endpoint.
#[derive(Debug, Clone, Args)]
pub struct LimitsConfig {
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "ROSTER_BODY_LIMIT", default_value_t = 64 * 1024)]
    pub body_limit: usize,

    /// Deepest selection set a query may have.
    #[arg(long, env = "ROSTER_MAX_DEPTH", default_value_t = 20)]
    pub max_depth: usize,

    /// Highest query complexity; one `register` costs 1000, so the default admits exactly one.
    #[arg(long, env = "ROSTER_MAX_COMPLEXITY", default_value_t = 1500)]
    pub max_complexity: usize,

    /// Deepest nesting the parser accepts (lists, objects, fragments).
    #[arg(long, env = "ROSTER_MAX_RECURSION", default_value_t = 32)]
    pub max_recursion: usize,

    /// Most directives allowed on one field.
    #[arg(long, env = "ROSTER_MAX_DIRECTIVES", default_value_t = 8)]
    pub max_directives: usize,

    /// Most lexical tokens in one document, counted before it is parsed.
    #[arg(long, env = "ROSTER_MAX_TOKENS", default_value_t = 1000)]
    pub max_tokens: usize,

    /// Most field selections in one operation once fragments are expanded.
    #[arg(long, env = "ROSTER_MAX_FIELDS", default_value_t = 500)]
    pub max_fields: usize,

    /// Most aliased fields in one document.
    #[arg(long, env = "ROSTER_MAX_ALIASES", default_value_t = 15)]
    pub max_aliases: usize,

    /// Most fragment definitions in one document.
    #[arg(long, env = "ROSTER_MAX_FRAGMENTS", default_value_t = 32)]
    pub max_fragments: usize,

    /// Most operations in one document.
    #[arg(long, env = "ROSTER_MAX_OPERATIONS", default_value_t = 16)]
    pub max_operations: usize,

    /// Most variable definitions in one document.
    #[arg(long, env = "ROSTER_MAX_VARIABLES", default_value_t = 32)]
    pub max_variables: usize,

    /// Largest GraphQL response body, in bytes; a larger one is replaced by an error.
    #[arg(long, env = "ROSTER_MAX_RESPONSE_BYTES", default_value_t = 1024 * 1024)]
    pub max_response_bytes: usize,

    /// Whole-request timeout, in seconds (a registration whose insert has begun is finished
    /// and answered, never cut off).
    #[arg(long, env = "ROSTER_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Time allowed between body chunks before a slow client is cut off, in seconds; also
    /// how long a response write may make no progress (a client that stops reading).
    #[arg(long, env = "ROSTER_BODY_TIMEOUT_SECS", default_value_t = 10)]
    pub body_timeout_secs: u64,

    /// Time allowed to send a request head, and to stay idle between keep-alive requests,
    /// in seconds.
    #[arg(long, env = "ROSTER_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,

    /// Most open client connections; beyond it a new connection gets 503 and is closed.
    /// Lowered at start-up to fit the process's file-descriptor limit.
    #[arg(long, env = "ROSTER_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Most open connections from one client address (trusted proxies are exempt).
    #[arg(long, env = "ROSTER_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// After a shutdown signal, how long in-flight requests may take before the remaining
    /// connections are closed, in seconds.
    #[arg(long, env = "ROSTER_SHUTDOWN_TIMEOUT_SECS", default_value_t = 20)]
    pub shutdown_timeout_secs: u64,

    /// Per-client limit on `register`: `N/PERIOD` with PERIOD like `30s`, `5m`, `1h`; or `off`.
    #[arg(long, env = "ROSTER_REGISTER_RATE_LIMIT", default_value = "30/5m",
          value_parser = parse_rate_limit)]
    pub register_rate_limit: RateLimit,

    /// Per-client limit on every request but the health probes, in the same form.
    #[arg(long, env = "ROSTER_REQUEST_RATE_LIMIT", default_value = "1000/1m",
          value_parser = parse_rate_limit)]
    pub request_rate_limit: RateLimit,

    /// IPv6 clients are counted by this prefix length (a /64 is one subscriber).
    #[arg(long, env = "ROSTER_IPV6_PREFIX", default_value_t = 64,
          value_parser = clap::value_parser!(u8).range(1..=128))]
    pub ipv6_prefix: u8,

    /// Most client addresses each rate limiter remembers; past it, unknown clients share one
    /// bucket until idle entries expire.
    #[arg(long, env = "ROSTER_RATE_LIMIT_MAX_CLIENTS", default_value_t = 100_000)]
    pub rate_limit_max_clients: usize,

    /// Peers whose `X-Forwarded-For` header is believed: IPs or CIDR ranges, comma-separated.
    #[arg(long, env = "ROSTER_TRUSTED_PROXIES", value_delimiter = ',',
          value_parser = parse_ip_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Origins allowed by CORS (comma-separated `scheme://host[:port]`); empty = CORS off.
    #[arg(long, env = "ROSTER_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
}

impl LimitsConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a /32 or /128).
pub fn parse_ip_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("expected an IP address or CIDR range such as 10.0.0.0/8; got {s:?}"))
}

/// A rate: `burst` requests per `period`, refilled evenly; or no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    Off,
    PerPeriod { burst: NonZeroU32, period: Duration },
}

/// Parses `30/5m`, `10/30s`, `100/1h` or `off`.
pub fn parse_rate_limit(s: &str) -> Result<RateLimit, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Ok(RateLimit::Off);
    }
    let err = || format!("expected N/PERIOD such as 30/5m, or off; got {s:?}");
    let (count, period) = s.split_once('/').ok_or_else(err)?;
    let burst: NonZeroU32 = count.trim().parse().map_err(|_| err())?;
    let period = parse_duration(period).map_err(|_| err())?;
    Ok(RateLimit::PerPeriod { burst, period })
}

/// Parses `90s`, `5m`, `24h`, `14d` (a bare unit means 1 of it): between one second and a
/// year, so the arithmetic cannot wrap and a typo is caught.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let err = || format!("expected a duration such as 90s, 5m, 24h or 14d; got {s:?}");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: u64 = if num.is_empty() {
        1
    } else {
        num.parse().map_err(|_| err())?
    };
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(err()),
    };
    let secs = num
        .checked_mul(unit_secs)
        .filter(|s| (1..=365 * 86_400).contains(s))
        .ok_or_else(err)?;
    Ok(Duration::from_secs(secs))
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
        let cmd = <Cli as clap::CommandFactory>::command();
        let cmd = strip_env(cmd);
        let matches = cmd
            .try_get_matches_from(["roster"])
            .expect("defaults parse");
        <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
            .expect("defaults are valid")
            .config
    }
}

/// A CORS origin is `scheme://host[:port]`: no path, no wildcard. `*` would let any site
/// read answers meant for the user's browser; list the front ends instead.
fn check_origin(origin: &str) -> Result<(), String> {
    let o = origin.trim();
    let bad = |why: &str| Err(format!("--cors-origins: {o:?} {why}"));
    if o.contains('*') {
        return bad("is a wildcard; list each allowed origin (e.g. https://app.example.com)");
    }
    let Some((scheme, rest)) = o.split_once("://") else {
        return bad("is not an origin of the form scheme://host[:port]");
    };
    if !matches!(scheme, "http" | "https")
        || rest.is_empty()
        || rest.contains(['/', '?', '#', '@', ' '])
        || axum::http::HeaderValue::from_str(o).is_err()
    {
        return bad("is not an origin of the form http(s)://host[:port] (no path)");
    }
    Ok(())
}

/// `--public-url` is where people open links: `http(s)://host[:port][/path]`, no query,
/// no credentials, nothing a template would expand.
fn check_public_url(raw: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "--public-url: {raw:?} is not a URL such as https://accounts.example.com"
        ))
    };
    let Ok(url) = url::Url::parse(raw) else {
        return bad();
    };
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
        || raw.contains(['{', '}', '"', '<', '>', '\\', ' '])
    {
        return bad();
    }
    Ok(())
}

fn strip_env(cmd: clap::Command) -> clap::Command {
    let ids: Vec<_> = cmd.get_arguments().map(|a| a.get_id().clone()).collect();
    ids.into_iter()
        .fold(cmd, |cmd, id| cmd.mut_arg(id, |a| a.env(None::<&str>)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
                Box::new(|c| c.mail.mail_lease = c.mail.smtp_timeout),
                "mail-lease",
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
