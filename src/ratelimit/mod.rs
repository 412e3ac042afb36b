//! Per-client rate limits: GCRA buckets from `governor`, keyed by client address.
//!
//! Two choices make a limit hold against someone trying to dodge it or to turn it on others:
//! - **IPv6 by prefix.** A subscriber usually gets a whole /64 (often a /56 or /48), so a
//!   full address costs an attacker nothing to change; clients are keyed by
//!   `--ipv6-prefix` bits (default 64). IPv4-mapped IPv6 addresses count as IPv4.
//! - **Bounded memory.** Each limiter remembers at most `--rate-limit-max-clients` clients.
//!   Past that it first forgets clients whose bucket is full again (at most once a second);
//!   if it is still full, clients are grouped coarsely (IPv4 /16, IPv6 /32) until entries
//!   expire, and past twice the limit the rest share one bucket — degraded fairness, never
//!   unbounded growth, and an attacker filling the table does not put every other client in
//!   the attacker's own bucket.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimit;
use crate::error::AppError;

/// Limits shared by every process through Redis, with the local limiters as fall-back.
pub mod shared;
pub use shared::Shared;

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
/// [`Shared`] (Redis) the bucket is shared by every process, and this process's own
/// buckets serve only while Redis is unreachable.
#[derive(Clone)]
pub struct ClientLimiter {
    inner: Option<Arc<Inner>>,
    shared: Option<Shared>,
    metrics: Option<crate::metrics::Metrics>,
}

struct Inner {
    limiter: DefaultKeyedRateLimiter<ClientKey>,
    /// One token every `interval`, up to `burst` at once (the same GCRA in Redis).
    interval: Duration,
    burst: u32,
    ipv6_prefix: u8,
    max_clients: usize,
    last_sweep: Mutex<Instant>,
    overflow_logged: AtomicBool,
    name: &'static str,
}

impl ClientLimiter {
    /// `burst` requests at once per client, then one more every `period / burst`.
    pub fn new(name: &'static str, rate: RateLimit, ipv6_prefix: u8, max_clients: usize) -> Self {
        let inner = match rate {
            RateLimit::Off => None,
            RateLimit::PerPeriod { burst, period } => {
                let replenish = period / burst.get();
                Quota::with_period(replenish.max(Duration::from_millis(1))).map(|q| {
                    Arc::new(Inner {
                        limiter: RateLimiter::keyed(q.allow_burst(burst)),
                        interval: replenish.max(Duration::from_millis(1)),
                        burst: burst.get(),
                        ipv6_prefix,
                        max_clients: max_clients.max(1),
                        last_sweep: Mutex::new(Instant::now()),
                        overflow_logged: AtomicBool::new(false),
                        name,
                    })
                })
            }
        };
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

    /// Takes one token for `ip`'s bucket, or says how long until one is free: in Redis when
    /// it answers, else in this process.
    pub async fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let mut decided = None;
        if let Some(shared) = &self.shared {
            let key = format!(
                "roster:rl:{}:{:?}",
                inner.name,
                ClientKey::of(ip, inner.ipv6_prefix)
            );
            decided = shared.gcra(&key, inner.interval, inner.burst).await;
        }
        let decided = decided.unwrap_or_else(|| self.check_local(ip));
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
        let mut key = ClientKey::of(ip, inner.ipv6_prefix);
        if inner.limiter.len() >= inner.max_clients {
            inner.sweep(false);
            if inner.limiter.len() >= inner.max_clients {
                if !inner.overflow_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        limiter = inner.name,
                        clients = inner.limiter.len(),
                        "rate limiter is full; clients are grouped by /16 (IPv4) or /32 (IPv6) until entries expire"
                    );
                }
                key = if inner.limiter.len() >= inner.max_clients.saturating_mul(2) {
                    ClientKey::Overflow
                } else {
                    key.coarse()
                };
            }
        }
        inner
            .limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets clients whose bucket is full again, so memory tracks active clients only.
    pub fn forget_idle(&self) {
        if let Some(inner) = &self.inner {
            inner.sweep(true);
        }
    }

    /// Clients currently remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.limiter.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn sweep(&self, always: bool) {
        {
            let Ok(mut last) = self.last_sweep.lock() else {
                return;
            };
            if !always && last.elapsed() < Duration::from_secs(1) {
                return;
            }
            *last = Instant::now();
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        if self.limiter.len() < self.max_clients {
            self.overflow_logged.store(false, Ordering::Relaxed);
        }
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

    /// Admits everyone (callers outside HTTP, tests of the service).
    pub fn none() -> Self {
        Self {
            limiter: None,
            ip: None,
        }
    }

    pub async fn check(self) -> Result<(), AppError> {
        match (self.limiter, self.ip) {
            (Some(limiter), Some(ip)) => limiter
                .check(ip)
                .await
                .map_err(|retry_after| AppError::RateLimited { retry_after }),
            _ => Ok(()),
        }
    }
}

/// Whose password attempts are counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureKey {
    /// Logins to an existing account (its username and email together).
    Account(uuid::Uuid),
    /// `changePassword` attempts of a signed-in user: a key of its own, so a stranger's
    /// failed logins cannot stop the owner from changing the password.
    PasswordChange(uuid::Uuid),
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
/// success must be able to clear it, which governor's buckets cannot do. Memory is bounded:
/// accounts and unknown identifiers live in separate tables of `max_keys` each, so spraying
/// made-up identifiers can never evict an account's count; a full table first drops expired
/// windows (at most once a second), then an arbitrary entry of its own kind.
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
    last_sweep: Instant,
}

impl FailureThrottle {
    pub fn new(rate: RateLimit, max_keys: usize) -> Self {
        let table = || {
            Mutex::new(FailureTable {
                map: std::collections::HashMap::new(),
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
            FailureKey::Unknown(identifier) => {
                let digest = sha2::Sha256::digest(identifier.as_bytes());
                let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
                format!("roster:fail:unk:{hex}")
            }
        }
    }

    /// Counts an attempt for `key`, or answers `Err(wait)` when the key has used up its
    /// attempts in the current window: in Redis when it answers, else in this process.
    pub async fn begin(&self, key: &FailureKey) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let mut decided = None;
        if let Some(shared) = &self.shared {
            decided = shared
                .window_begin(&Self::redis_key(key), inner.window, inner.limit)
                .await;
        }
        let decided = decided.unwrap_or_else(|| self.begin_local(key));
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
            if table.map.len() >= inner.max_keys
                && let Some(any) = table.map.keys().next().cloned()
            {
                table.map.remove(&any);
            }
        }
        let entry = table.map.entry(key.clone()).or_insert((now, 0));
        let elapsed = now.duration_since(entry.0);
        if elapsed >= inner.window {
            *entry = (now, 0);
        } else if entry.1 >= inner.limit {
            return Err(inner.window - elapsed);
        }
        entry.1 += 1;
        Ok(())
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
    /// The key's table. A poisoned lock is recovered, never a reason to stop counting.
    fn table(&self, key: &FailureKey) -> std::sync::MutexGuard<'_, FailureTable> {
        let table = match key {
            FailureKey::Unknown(_) => &self.unknown,
            _ => &self.accounts,
        };
        table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Per-address limits (`--mail-address-limit`): GCRA buckets keyed by a SHA-256 prefix of
/// the address's canonical form, so the table holds no address. Applied whether or not the
/// address has an account, so being limited says nothing about that.
///
/// Bounded like [`ClientLimiter`]: at `max_keys` it forgets full buckets (at most once a
/// second); if it is still full, new addresses pass unlimited (logged once) rather than
/// sharing a bucket, which would let one sender block every other address's emails. The
/// per-client limit still bounds each sender.
#[derive(Clone)]
pub struct AddressLimiter {
    inner: Option<Arc<AddressInner>>,
    shared: Option<Shared>,
    metrics: Option<crate::metrics::Metrics>,
}

struct AddressInner {
    limiter: DefaultKeyedRateLimiter<[u8; 16]>,
    interval: Duration,
    burst: u32,
    max_keys: usize,
    last_sweep: Mutex<Instant>,
    full_logged: AtomicBool,
}

impl AddressLimiter {
    pub fn new(rate: RateLimit, max_keys: usize) -> Self {
        let inner = match rate {
            RateLimit::Off => None,
            RateLimit::PerPeriod { burst, period } => {
                let replenish = period / burst.get();
                Quota::with_period(replenish.max(Duration::from_millis(1))).map(|q| {
                    Arc::new(AddressInner {
                        limiter: RateLimiter::keyed(q.allow_burst(burst)),
                        interval: replenish.max(Duration::from_millis(1)),
                        burst: burst.get(),
                        max_keys: max_keys.max(1),
                        last_sweep: Mutex::new(Instant::now()),
                        full_logged: AtomicBool::new(false),
                    })
                })
            }
        };
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

    /// Counts refusals in `roster_rate_limited_total{limiter="mail_address"}`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Takes one token for `canonical_address`, or says how long until one is free: in Redis
    /// when it answers, else in this process.
    pub async fn check(&self, canonical_address: &str) -> Result<(), Duration> {
        use sha2::Digest;
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let digest = sha2::Sha256::digest(canonical_address.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        let mut decided = None;
        if let Some(shared) = &self.shared {
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            decided = shared
                .gcra(
                    &format!("roster:rl:address:{hex}"),
                    inner.interval,
                    inner.burst,
                )
                .await;
        }
        let decided = decided.unwrap_or_else(|| self.check_key_local(inner, key));
        if decided.is_err()
            && let Some(metrics) = &self.metrics
        {
            metrics.rate_limited("mail_address");
        }
        decided
    }

    /// This process's bucket for a hashed address.
    fn check_key_local(&self, inner: &AddressInner, key: [u8; 16]) -> Result<(), Duration> {
        if inner.limiter.len() >= inner.max_keys {
            inner.sweep(false);
            if inner.limiter.len() >= inner.max_keys {
                if !inner.full_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        addresses = inner.limiter.len(),
                        "per-address mail limiter is full; new addresses pass unlimited until entries expire"
                    );
                }
                return Ok(());
            }
        }
        inner
            .limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets addresses whose bucket is full again.
    pub fn forget_idle(&self) {
        if let Some(inner) = &self.inner {
            inner.sweep(true);
        }
    }
}

impl AddressInner {
    fn sweep(&self, always: bool) {
        {
            let Ok(mut last) = self.last_sweep.lock() else {
                return;
            };
            if !always && last.elapsed() < Duration::from_secs(1) {
                return;
            }
            *last = Instant::now();
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        if self.limiter.len() < self.max_keys {
            self.full_logged.store(false, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_rate_limit;

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

    #[test]
    fn a_full_limiter_stops_growing() {
        let limiter = ClientLimiter::new("test", parse_rate_limit("5/1h").unwrap(), 64, 100);
        for n in 0..10_000u32 {
            let _ = limiter.check_local(IpAddr::from(n.to_be_bytes()));
        }
        assert!(limiter.len() <= 201, "{} clients remembered", limiter.len());
    }

    #[test]
    fn attempts_are_counted_up_front_until_the_window_passes_and_a_success_clears_them() {
        let t = FailureThrottle::new(parse_rate_limit("3/1h").unwrap(), 10);
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

    #[test]
    fn the_failure_tables_are_bounded_and_unknown_keys_never_evict_an_account() {
        let t = FailureThrottle::new(parse_rate_limit("3/1h").unwrap(), 100);
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
