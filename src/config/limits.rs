//! Limits that protect the public endpoint: document sizes, timeouts, connections, rates.

use std::time::Duration;

use clap::Args;

use super::*;

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

    /// Per staff user: the admin API's mutations (`deactivateUser`, …), in the same form.
    #[arg(long, env = "ROSTER_ADMIN_RATE_LIMIT", default_value = "60/1m",
          value_parser = parse_rate_limit)]
    pub admin_rate_limit: RateLimit,

    /// IPv6 clients are counted by this prefix length (a /64 is one subscriber).
    #[arg(long, env = "ROSTER_IPV6_PREFIX", default_value_t = 64,
          value_parser = clap::value_parser!(u8).range(1..=128))]
    pub ipv6_prefix: u8,

    /// Most client addresses each rate limiter remembers; past it, new clients are grouped
    /// by IPv4 /16 or IPv6 /32, and past twice it share one bucket, until idle entries expire.
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
