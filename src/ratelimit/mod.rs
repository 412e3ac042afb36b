//! Per-client rate limits: GCRA buckets (`table.rs`), keyed by client address.
//!
//! Two choices make a limit hold against someone trying to dodge it or to turn it on others:
//! - **IPv6 by prefix.** A subscriber usually gets a whole /64 (often a /56 or /48), so a
//!   full address costs an attacker nothing to change; clients are keyed by
//!   `--ipv6-prefix` bits (default 64). IPv4-mapped IPv6 addresses count as IPv4.
//! - **Bounded memory.** Each limiter remembers at most `--rate-limit-max-clients` clients.
//!   A client that has a bucket is always checked against it. Past the bound a new client
//!   first makes room by forgetting buckets that are full again (at most once a second); if
//!   the table is still full, new clients are grouped coarsely (IPv4 /16, IPv6 /32), and past
//!   twice the bound the rest share one bucket — degraded fairness, never unbounded growth,
//!   never unlimited, and an attacker filling the table does not put every other client in
//!   the attacker's own bucket.
//! - **Redis outages continue from known counts.** With `--redis-url` Redis decides, but this
//!   process's own buckets and windows are charged on every check too, so a fallback starts
//!   from this process's counts rather than from empty tables.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::AppError;

/// Limits shared by every process through Redis, with the local limiters as fall-back.
pub mod shared;
pub use shared::Shared;
/// The bounded GCRA table behind every local limit.
mod table;
use table::{Overflow, Rate, Table};

/// A rate: `burst` requests per `period`, refilled evenly; or no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    Off,
    PerPeriod {
        burst: std::num::NonZeroU32,
        period: Duration,
    },
}

/// Who a bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(u32),
    /// The address with everything past the prefix zeroed.
    V6(u128),
    /// A full limiter groups clients coarsely: an IPv4 /16 or an IPv6 /32.
    CoarseV4(u16),
    CoarseV6(u32),
    /// Past twice the limit even so, everyone left shares this one.
    Overflow,
}

impl ClientKey {
    /// The key of `ip` when IPv6 clients are grouped by `/prefix`.
    pub fn of(ip: IpAddr, ipv6_prefix: u8) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => {
                let bits = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                Self::V6(u128::from(v6) & mask)
            }
        }
    }

    /// The coarse group of a key, used once the limiter is full.
    fn coarse(self) -> Self {
        match self {
            Self::V4(v4) => Self::CoarseV4((v4 >> 16) as u16),
            Self::V6(v6) => Self::CoarseV6((v6 >> 96) as u32),
            other => other,
        }
    }
}

/// A keyed limiter; `RateLimit::Off` makes every check pass. Cheap to clone. With a
/// [`Shared`] (Redis) the bucket is shared by every process; this process's own buckets are
/// charged too, on every check, so that when Redis stops answering the fallback continues
/// from this process's counts instead of from a fresh, empty table.
#[derive(Clone)]
pub struct ClientLimiter {
    inner: Option<Arc<Inner>>,
    shared: Option<Shared>,
    metrics: Option<crate::metrics::Metrics>,
}

struct Inner {
    table: Table<ClientKey>,
    rate: Rate,
    ipv6_prefix: u8,
    name: &'static str,
}

impl Overflow for ClientKey {
    /// A client's own key → its coarse group (IPv4 /16, IPv6 /32) → one shared bucket.
    fn overflow(&self) -> Option<Self> {
        match self {
            Self::V4(_) | Self::V6(_) => Some(self.coarse()),
            Self::CoarseV4(_) | Self::CoarseV6(_) => Some(Self::Overflow),
            Self::Overflow => None,
        }
    }

    fn level(&self) -> usize {
        match self {
            Self::V4(_) | Self::V6(_) => 1,
            _ => 2,
        }
    }
}

/// One token every `period / burst`, up to `burst` at once; `None` when the limit is off.
fn rate_of(rate: RateLimit) -> Option<Rate> {
    match rate {
        RateLimit::Off => None,
        RateLimit::PerPeriod { burst, period } => Some(Rate {
            interval: (period / burst.get()).max(Duration::from_millis(1)),
            burst: burst.get(),
        }),
    }
}

impl ClientLimiter {
    /// `burst` requests at once per client, then one more every `period / burst`.
    pub fn new(name: &'static str, rate: RateLimit, ipv6_prefix: u8, max_clients: usize) -> Self {
        let inner = rate_of(rate).map(|rate| {
            Arc::new(Inner {
                table: Table::new(name, rate, max_clients),
                rate,
                ipv6_prefix,
                name,
            })
        });
        Self {
            inner,
            shared: None,
            metrics: None,
        }
    }

    /// Shares the buckets through Redis (`None`: this process's own).
    pub fn with_shared(mut self, shared: Option<Shared>) -> Self {
        self.shared = shared;
        self
    }

    /// Counts refusals in `roster_rate_limited_total{limiter="<name>"}`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Takes one token for `ip`'s bucket, or says how long until one is free: Redis decides
    /// when it answers, else this process's own bucket (charged either way).
    pub async fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let local = self.check_local(ip);
        let mut decided = local;
        if let Some(shared) = &self.shared {
            let key = format!(
                "roster:rl:{}:{:?}",
                inner.name,
                ClientKey::of(ip, inner.ipv6_prefix)
            );
            if let Some(answer) = shared
                .gcra(&key, inner.rate.interval, inner.rate.burst)
                .await
            {
                decided = answer;
            }
        }
        if decided.is_err()
            && let Some(metrics) = &self.metrics
        {
            metrics.rate_limited(inner.name);
        }
        decided
    }

    /// [`ClientLimiter::check`] in this process's own buckets.
    pub fn check_local(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        inner.table.check(ClientKey::of(ip, inner.ipv6_prefix))
    }

    /// Forgets clients whose bucket is full again, so memory tracks active clients only.
    pub fn forget_idle(&self) {
        if let Some(inner) = &self.inner {
            inner.table.forget_idle();
        }
    }

    /// Clients currently remembered (for tests).
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.table.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A use case's admission check: one token of the caller's budget in a per-client limiter,
/// or `RATE_LIMITED`. Handed to the service, which spends it only once the hash queue has
/// room (so an answer of `SERVER_BUSY` costs the client nothing).
pub struct Admission {
    limiter: Option<ClientLimiter>,
    ip: Option<IpAddr>,
}

impl Admission {
    pub fn new(limiter: Option<ClientLimiter>, ip: Option<IpAddr>) -> Self {
        Self { limiter, ip }
    }

    /// Spends one token, or `RATE_LIMITED`. Fails closed: a limited operation whose client
    /// address is unknown (the HTTP layer always resolves one, so this is a wiring bug) is an
    /// internal error, never a free pass around the limit.
    pub async fn check(self) -> Result<(), AppError> {
        match (self.limiter, self.ip) {
            (Some(limiter), Some(ip)) => limiter
                .check(ip)
                .await
                .map_err(|retry_after| AppError::RateLimited { retry_after }),
            (Some(_), None) => Err(AppError::internal(
                "a rate-limited operation without a client address",
            )),
            (None, _) => Ok(()),
        }
    }
}

/// How many windows a full failure table looks at to choose the one to forget.
const EVICTION_SAMPLE: usize = 64;

/// Whose password attempts are counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureKey {
    /// Logins to an existing account (its username and email together).
    Account(uuid::Uuid),
    /// `changePassword` attempts of a signed-in user: a key of its own, so a stranger's
    /// failed logins cannot stop the owner from changing the password.
    PasswordChange(uuid::Uuid),
    /// Second-step codes of a login that knew the password (TOTP or recovery code): a key of
    /// its own, so the second step is throttled as the first is.
    SecondFactor(uuid::Uuid),
    /// Logins naming no account, by the identifier's canonical form.
    Unknown(String),
}

/// Password attempts per key: an attempt is counted as a failure **before** the password is
/// checked (so concurrent attempts cannot all slip past the check) and the count is cleared
/// when it succeeds. After `limit` in `window` (counted from the first), further attempts are
/// refused until the window has passed. No permanent lockout: the worst a stranger can do to
/// a victim is keep them waiting one window at a time, and only while they keep failing for
/// them (the per-IP login limit bounds how fast).
///
/// Fixed windows rather than GCRA: the question is "how many failures lately", and a
/// success must be able to clear it, which a token bucket cannot do. Memory is bounded:
/// accounts and unknown identifiers live in separate tables of `max_keys` each, so spraying
/// made-up identifiers can never evict an account's count; a full table first drops expired
/// windows (at most once a second), then the window holding the fewest attempts among a
/// bounded sample of its own kind, never one at its limit; if the sample holds only windows
/// at their limit, the new key shares the table's overflow window.
#[derive(Clone)]
pub struct FailureThrottle {
    inner: Option<Arc<FailureInner>>,
    shared: Option<Shared>,
    metrics: Option<crate::metrics::Metrics>,
}

struct FailureInner {
    limit: u32,
    window: Duration,
    max_keys: usize,
    accounts: Mutex<FailureTable>,
    unknown: Mutex<FailureTable>,
}

struct FailureTable {
    map: std::collections::HashMap<FailureKey, (Instant, u32)>,
    /// The window new keys share while the table is full of windows at their limit.
    overflow: (Instant, u32),
    last_sweep: Instant,
}

impl FailureThrottle {
    pub fn new(rate: RateLimit, max_keys: usize) -> Self {
        let table = || {
            Mutex::new(FailureTable {
                map: std::collections::HashMap::new(),
                overflow: (Instant::now(), 0),
                last_sweep: Instant::now(),
            })
        };
        let inner = match rate {
            RateLimit::Off => None,
            RateLimit::PerPeriod { burst, period } => Some(Arc::new(FailureInner {
                limit: burst.get(),
                window: period,
                max_keys: max_keys.max(1),
                accounts: table(),
                unknown: table(),
            })),
        };
        Self {
            inner,
            shared: None,
            metrics: None,
        }
    }

    /// Counts refusals in `roster_rate_limited_total{limiter="login_failures"}`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Counts through Redis (`None`: in this process).
    pub fn with_shared(mut self, shared: Option<Shared>) -> Self {
        self.shared = shared;
        self
    }

    /// The Redis key of `key`: ids as they are, an unknown identifier only as a digest.
    fn redis_key(key: &FailureKey) -> String {
        use sha2::Digest;
        match key {
            FailureKey::Account(id) => format!("roster:fail:acct:{id}"),
            FailureKey::PasswordChange(id) => format!("roster:fail:pwchg:{id}"),
            FailureKey::SecondFactor(id) => format!("roster:fail:mfa:{id}"),
            FailureKey::Unknown(identifier) => {
                let digest = sha2::Sha256::digest(identifier.as_bytes());
                let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
                format!("roster:fail:unk:{hex}")
            }
        }
    }

    /// Counts an attempt for `key`, or answers `Err(wait)` when the key has used up its
    /// attempts in the current window: Redis decides when it answers, else this process.
    /// This process's window is counted either way, so a Redis pause continues from the
    /// attempts this process saw instead of handing out a fresh budget.
    pub async fn begin(&self, key: &FailureKey) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let mut decided = self.begin_local(key);
        if let Some(shared) = &self.shared
            && let Some(answer) = shared
                .window_begin(&Self::redis_key(key), inner.window, inner.limit)
                .await
        {
            decided = answer;
        }
        if decided.is_err()
            && let Some(metrics) = &self.metrics
        {
            metrics.rate_limited("login_failures");
        }
        decided
    }

    /// Clears `key` after a successful attempt (both places: the local count may have been
    /// made while Redis was away).
    pub async fn succeeded(&self, key: &FailureKey) {
        if self.inner.is_none() {
            return;
        }
        if let Some(shared) = &self.shared {
            shared.clear(&Self::redis_key(key)).await;
        }
        self.succeeded_local(key);
    }

    /// [`FailureThrottle::begin`] in this process's own tables (nothing is counted when
    /// refused).
    pub fn begin_local(&self, key: &FailureKey) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let mut table = inner.table(key);
        let now = Instant::now();
        if !table.map.contains_key(key) && table.map.len() >= inner.max_keys {
            if now.duration_since(table.last_sweep) >= Duration::from_secs(1) {
                table.last_sweep = now;
                let window = inner.window;
                table
                    .map
                    .retain(|_, (start, _)| now.duration_since(*start) < window);
            }
            // Still full of live windows: make room by forgetting the window that holds the
            // least — the fewest attempts (an attacker's filler entries hold one each), then
            // the oldest — among a bounded sample, so the cost per insert stays constant; but
            // never a window at its limit (that would reset a victim's count). If every
            // sampled window is at its limit, the new key is counted in the table's shared
            // overflow window instead: degraded (new keys share a limit) but never unlimited.
            if table.map.len() >= inner.max_keys {
                let least = table
                    .map
                    .iter()
                    .take(EVICTION_SAMPLE)
                    .filter(|(_, (_, attempts))| *attempts < inner.limit)
                    .min_by_key(|(_, (start, attempts))| (*attempts, *start))
                    .map(|(k, _)| k.clone());
                match least {
                    Some(least) => {
                        table.map.remove(&least);
                    }
                    None => return inner.count(&mut table.overflow, now),
                }
            }
        }
        let entry = table.map.entry(key.clone()).or_insert((now, 0));
        inner.count(entry, now)
    }

    /// [`FailureThrottle::succeeded`] in this process's own tables.
    pub fn succeeded_local(&self, key: &FailureKey) {
        if let Some(inner) = &self.inner {
            inner.table(key).map.remove(key);
        }
    }

    /// Drops windows that have passed (called periodically).
    pub fn forget_idle(&self) {
        if let Some(inner) = &self.inner {
            for table in [&inner.accounts, &inner.unknown] {
                let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
                let window = inner.window;
                table.map.retain(|_, (start, _)| start.elapsed() < window);
                table.map.shrink_to_fit();
            }
        }
    }

    /// Keys remembered, both tables (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| {
            i.accounts.lock().map_or(0, |t| t.map.len())
                + i.unknown.lock().map_or(0, |t| t.map.len())
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FailureInner {
    /// Counts one attempt in a window (begun afresh once it has passed), or refuses.
    fn count(&self, window: &mut (Instant, u32), now: Instant) -> Result<(), Duration> {
        let elapsed = now.duration_since(window.0);
        if elapsed >= self.window {
            *window = (now, 0);
        } else if window.1 >= self.limit {
            return Err(self.window - elapsed);
        }
        window.1 += 1;
        Ok(())
    }

    /// The key's table. A poisoned lock is recovered, never a reason to stop counting.
    fn table(&self, key: &FailureKey) -> std::sync::MutexGuard<'_, FailureTable> {
        let table = match key {
            FailureKey::Unknown(_) => &self.unknown,
            _ => &self.accounts,
        };
        table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Limits keyed by a string: per address (`--mail-address-limit`, `mail_address`) and per
/// session (`--access-token-rate-limit`, `access_token`). GCRA buckets keyed by a SHA-256
/// prefix of the key, so the table holds no address. The address limit applies whether or
/// not the address has an account, so being limited says nothing about that.
///
/// Bounded like [`ClientLimiter`], and never open: a key that has a bucket is always
/// checked against it, however full the table; a new key while the table is full of live
/// buckets shares one overflow bucket (logged once). A sender who fills the table can then
/// delay other new addresses' emails by a minute, but can never mail one victim past the
/// limit (the per-client limit still bounds each sender).
#[derive(Clone)]
pub struct KeyLimiter {
    inner: Option<Arc<AddressInner>>,
    shared: Option<Shared>,
    metrics: Option<crate::metrics::Metrics>,
}

struct AddressInner {
    /// The metrics label and the Redis key's middle part.
    name: &'static str,
    table: Table<AddressKey>,
    rate: Rate,
}

/// A SHA-256 prefix of a canonical address, or the overflow bucket of a full table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AddressKey {
    Address([u8; 16]),
    Overflow,
}

impl Overflow for AddressKey {
    fn overflow(&self) -> Option<Self> {
        match self {
            Self::Address(_) => Some(Self::Overflow),
            Self::Overflow => None,
        }
    }
}

impl KeyLimiter {
    /// `name`: `mail_address` (Redis keys `roster:rl:address:…`, as before the limiter was
    /// shared) or `access_token`.
    pub fn new(name: &'static str, rate: RateLimit, max_keys: usize) -> Self {
        let inner = rate_of(rate).map(|rate| {
            Arc::new(AddressInner {
                name,
                table: Table::new(name, rate, max_keys),
                rate,
            })
        });
        Self {
            inner,
            shared: None,
            metrics: None,
        }
    }

    pub fn with_shared(mut self, shared: Option<Shared>) -> Self {
        self.shared = shared;
        self
    }

    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Takes one token for the key: Redis decides when it answers, else this process's
    /// own bucket (charged either way, so a Redis outage continues from known counts).
    pub async fn check(&self, canonical_address: &str) -> Result<(), Duration> {
        use sha2::Digest;
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let digest = sha2::Sha256::digest(canonical_address.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        let mut decided = inner.check_local(key);
        if let Some(shared) = &self.shared {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(answer) = shared
                .gcra(
                    &format!("roster:rl:{}:{hex}", inner.redis_name()),
                    inner.rate.interval,
                    inner.rate.burst,
                )
                .await
            {
                decided = answer;
            }
        }
        if decided.is_err()
            && let Some(metrics) = &self.metrics
        {
            metrics.rate_limited(inner.name);
        }
        decided
    }

    pub fn forget_idle(&self) {
        if let Some(inner) = &self.inner {
            inner.table.forget_idle();
        }
    }
}

impl AddressInner {
    fn redis_name(&self) -> &'static str {
        match self.name {
            "mail_address" => "address",
            other => other,
        }
    }

    fn check_local(&self, key: [u8; 16]) -> Result<(), Duration> {
        self.table.check(AddressKey::Address(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `burst` per hour (the tests' rates; parsing is `config`'s, tested there).
    fn per_hour(burst: u32) -> RateLimit {
        RateLimit::PerPeriod {
            burst: std::num::NonZeroU32::new(burst).unwrap(),
            period: Duration::from_secs(3600),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_are_keyed_by_prefix_and_mapped_v4_as_v4() {
        let a = ClientKey::of(ip("2001:db8:1:2:aaaa::1"), 64);
        let b = ClientKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 64);
        let c = ClientKey::of(ip("2001:db8:1:3::1"), 64);
        assert_eq!(a, b, "same /64");
        assert_ne!(a, c, "another /64");
        assert_eq!(ClientKey::of(ip("2001:db8:1:3::1"), 48), a_48());
        assert_eq!(
            ClientKey::of(ip("::ffff:198.51.100.7"), 64),
            ClientKey::of(ip("198.51.100.7"), 64)
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8::1"), 128),
            ClientKey::of(ip("2001:db8::2"), 128)
        );
        fn a_48() -> ClientKey {
            ClientKey::of("2001:db8:1:ffff::".parse().unwrap(), 48)
        }
    }

    /// No client address, no admission: a limited operation never runs unlimited.
    #[tokio::test]
    async fn admission_without_a_client_address_fails_closed() {
        let limiter = ClientLimiter::new("test", per_hour(5), 64, 100);
        assert!(matches!(
            Admission::new(Some(limiter.clone()), None).check().await,
            Err(AppError::Internal(_))
        ));
        assert!(
            Admission::new(Some(limiter), Some(ip("192.0.2.1")))
                .check()
                .await
                .is_ok()
        );
        assert!(
            Admission::new(None, None).check().await.is_ok(),
            "no limit set"
        );
    }

    #[test]
    fn a_full_limiter_stops_growing() {
        let limiter = ClientLimiter::new("test", per_hour(5), 64, 100);
        for n in 0..10_000u32 {
            let _ = limiter.check_local(IpAddr::from(n.to_be_bytes()));
        }
        assert!(limiter.len() <= 201, "{} clients remembered", limiter.len());
    }

    #[test]
    fn attempts_are_counted_up_front_until_the_window_passes_and_a_success_clears_them() {
        let t = FailureThrottle::new(per_hour(3), 10);
        let alice = FailureKey::Account(uuid::Uuid::nil());
        for _ in 0..3 {
            assert!(t.begin_local(&alice).is_ok());
        }
        // The fourth is refused before anything is checked: concurrent attempts cannot all
        // pass a check that only later failures would close.
        let wait = t.begin_local(&alice).unwrap_err();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        assert!(
            t.begin_local(&FailureKey::Unknown("bob".into())).is_ok(),
            "keys are separate"
        );
        t.succeeded_local(&alice);
        assert!(t.begin_local(&alice).is_ok());

        let short = FailureThrottle::new(
            RateLimit::PerPeriod {
                burst: std::num::NonZeroU32::new(1).unwrap(),
                period: Duration::from_millis(50),
            },
            10,
        );
        let k = FailureKey::Unknown("k".into());
        short.begin_local(&k).unwrap();
        assert!(short.begin_local(&k).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(short.begin_local(&k).is_ok(), "no permanent lockout");
    }

    /// A full table makes room by forgetting a window with the fewest attempts: a spray of
    /// one-attempt windows cannot push out an account at its limit (an arbitrary eviction
    /// could, resetting the victim's count).
    #[test]
    fn a_full_failure_table_never_forgets_an_account_at_its_limit() {
        let t = FailureThrottle::new(per_hour(3), 100);
        let victim = FailureKey::Account(uuid::Uuid::now_v7());
        for _ in 0..3 {
            t.begin_local(&victim).unwrap();
        }
        for _ in 0..10_000 {
            let _ = t.begin_local(&FailureKey::Account(uuid::Uuid::now_v7()));
            assert!(
                t.begin_local(&victim).is_err(),
                "the victim's count survives the spray"
            );
        }
        assert!(t.len() <= 101, "{}", t.len());
    }

    /// With every window at its limit (a limit of one makes each filler one), a full table
    /// evicts none of them: new keys share an overflow window, itself limited.
    #[test]
    fn a_full_table_of_windows_at_their_limit_sends_new_keys_to_a_shared_window() {
        let t = FailureThrottle::new(per_hour(1), 10);
        let victim = FailureKey::Account(uuid::Uuid::now_v7());
        t.begin_local(&victim).unwrap();
        for _ in 0..9 {
            t.begin_local(&FailureKey::Account(uuid::Uuid::now_v7()))
                .unwrap();
        }
        assert_eq!(t.len(), 10);
        assert!(
            t.begin_local(&FailureKey::Account(uuid::Uuid::now_v7()))
                .is_ok()
        );
        assert!(
            t.begin_local(&FailureKey::Account(uuid::Uuid::now_v7()))
                .is_err(),
            "new keys share the overflow window"
        );
        assert!(
            t.begin_local(&victim).is_err(),
            "the victim is still at its limit"
        );
        assert_eq!(t.len(), 10);
    }

    #[test]
    fn the_failure_tables_are_bounded_and_unknown_keys_never_evict_an_account() {
        let t = FailureThrottle::new(per_hour(3), 100);
        let victim = FailureKey::Account(uuid::Uuid::nil());
        for _ in 0..3 {
            t.begin_local(&victim).unwrap();
        }
        for n in 0..10_000 {
            let _ = t.begin_local(&FailureKey::Unknown(format!("key{n}")));
        }
        assert!(t.len() <= 101, "{}", t.len());
        assert!(
            t.begin_local(&victim).is_err(),
            "the account's count survived the spray"
        );
    }
}
