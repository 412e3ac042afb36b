//! Every setting in one place: flags, environment, defaults that work with no setup.
//!
//! Convention: the flag `--foo-bar` reads the environment variable `ROSTER_FOO_BAR`; the
//! database is the conventional `DATABASE_URL`. `roster --help` lists them all and the README
//! carries the same table.

use std::net::{IpAddr, SocketAddr};
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
}

/// Server settings. Every field has a default that works on a fresh machine.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "ROSTER_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://path?mode=rwc` or `postgres://user@host/db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://roster.db?mode=rwc"
    )]
    pub database_url: String,

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

    /// Registrations that may wait for a free hash worker; beyond it the answer is SERVER_BUSY.
    #[arg(long, env = "ROSTER_HASH_QUEUE", default_value_t = 128)]
    pub hash_queue: usize,
}

impl HashingConfig {
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

    /// Similarity (0.0–1.0, normalized Levenshtein) at which a password is too close to the
    /// username or email.
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

    /// Whole-request timeout, in seconds.
    #[arg(long, env = "ROSTER_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Time allowed between body chunks before a slow client is cut off, in seconds.
    #[arg(long, env = "ROSTER_BODY_TIMEOUT_SECS", default_value_t = 10)]
    pub body_timeout_secs: u64,

    /// Per-IP limit on `register`: `N/PERIOD` with PERIOD like `30s`, `5m`, `1h`; or `off`.
    #[arg(long, env = "ROSTER_REGISTER_RATE_LIMIT", default_value = "30/5m",
          value_parser = parse_rate_limit)]
    pub register_rate_limit: RateLimit,

    /// Peers whose `X-Forwarded-For` header is believed (comma-separated IPs).
    #[arg(long, env = "ROSTER_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,

    /// Origins allowed by CORS (comma-separated); empty = CORS off.
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
    let period = period.trim();
    let split = period
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(period.len());
    let (num, unit) = period.split_at(split);
    let num: u64 = if num.is_empty() {
        1
    } else {
        num.parse().map_err(|_| err())?
    };
    let secs = match unit {
        "s" => num,
        "m" => num * 60,
        "h" => num * 3600,
        _ => return Err(err()),
    };
    if secs == 0 {
        return Err(err());
    }
    Ok(RateLimit::PerPeriod {
        burst,
        period: Duration::from_secs(secs),
    })
}

impl Config {
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
        for bad in ["", "30", "0/5m", "30/5", "30/0m", "x/5m", "30/5d"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn defaults_ignore_the_environment_and_are_valid() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.hashing.argon2_memory_kib, 19456);
        assert_eq!(c.policy.password_min_length, 8);
        assert!(c.policy.reserved_usernames.iter().any(|n| n == "admin"));
    }
}
