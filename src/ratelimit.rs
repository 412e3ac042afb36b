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

/// A keyed limiter; `RateLimit::Off` makes every check pass. Cheap to clone.
#[derive(Clone)]
pub struct ClientLimiter {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    limiter: DefaultKeyedRateLimiter<ClientKey>,
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
                        ipv6_prefix,
                        max_clients: max_clients.max(1),
                        last_sweep: Mutex::new(Instant::now()),
                        overflow_logged: AtomicBool::new(false),
                        name,
                    })
                })
            }
        };
        Self { inner }
    }

    /// Takes one token for `ip`'s bucket, or says how long until one is free.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
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

/// Failed attempts per key (an account, or an unknown identifier's canonical form): after
/// `limit` failures within `window` of the first one, further attempts are refused until the
/// window has passed; a success clears the key. No permanent lockout: the worst a stranger
/// can do to a victim is keep them waiting one window at a time, and only while they keep
/// failing for them (the per-IP login limit bounds how fast).
///
/// Fixed windows rather than GCRA: the question is "how many failures lately", and a
/// success must be able to reset it, which governor's buckets cannot do. Memory is bounded:
/// past `max_keys`, expired windows are dropped, then the oldest.
#[derive(Clone)]
pub struct FailureThrottle {
    inner: Option<Arc<FailureInner>>,
}

struct FailureInner {
    limit: u32,
    window: Duration,
    max_keys: usize,
    keys: Mutex<std::collections::HashMap<String, (Instant, u32)>>,
}

impl FailureThrottle {
    pub fn new(rate: RateLimit, max_keys: usize) -> Self {
        let inner = match rate {
            RateLimit::Off => None,
            RateLimit::PerPeriod { burst, period } => Some(Arc::new(FailureInner {
                limit: burst.get(),
                window: period,
                max_keys: max_keys.max(1),
                keys: Mutex::new(std::collections::HashMap::new()),
            })),
        };
        Self { inner }
    }

    /// `Err(wait)` when `key` has used up its failures in the current window.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let Ok(keys) = inner.keys.lock() else {
            return Ok(());
        };
        match keys.get(key) {
            Some(&(start, count)) if count >= inner.limit => {
                let elapsed = start.elapsed();
                if elapsed < inner.window {
                    Err(inner.window - elapsed)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts one failure for `key`.
    pub fn record_failure(&self, key: &str) {
        let Some(inner) = &self.inner else {
            return;
        };
        let Ok(mut keys) = inner.keys.lock() else {
            return;
        };
        let now = Instant::now();
        if !keys.contains_key(key) && keys.len() >= inner.max_keys {
            keys.retain(|_, (start, _)| now.duration_since(*start) < inner.window);
            if keys.len() >= inner.max_keys
                && let Some(oldest) = keys
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(k, _)| k.clone())
            {
                keys.remove(&oldest);
            }
        }
        let entry = keys.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= inner.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// Clears `key` (after a success).
    pub fn reset(&self, key: &str) {
        if let Some(inner) = &self.inner
            && let Ok(mut keys) = inner.keys.lock()
        {
            keys.remove(key);
        }
    }

    /// Drops windows that have passed (called periodically).
    pub fn forget_idle(&self) {
        if let Some(inner) = &self.inner
            && let Ok(mut keys) = inner.keys.lock()
        {
            let window = inner.window;
            keys.retain(|_, (start, _)| start.elapsed() < window);
            keys.shrink_to_fit();
        }
    }

    /// Keys remembered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner
            .as_ref()
            .and_then(|i| i.keys.lock().ok().map(|k| k.len()))
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
            let _ = limiter.check(IpAddr::from(n.to_be_bytes()));
        }
        assert!(limiter.len() <= 201, "{} clients remembered", limiter.len());
    }

    #[test]
    fn failures_throttle_until_the_window_passes_and_a_success_resets() {
        let t = FailureThrottle::new(parse_rate_limit("3/1h").unwrap(), 10);
        for _ in 0..3 {
            assert!(t.check("alice").is_ok());
            t.record_failure("alice");
        }
        let wait = t.check("alice").unwrap_err();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        assert!(t.check("bob").is_ok(), "keys are separate");
        t.reset("alice");
        assert!(t.check("alice").is_ok());

        let short = FailureThrottle {
            inner: Some(Arc::new(FailureInner {
                limit: 1,
                window: Duration::from_millis(50),
                max_keys: 10,
                keys: Mutex::default(),
            })),
        };
        short.record_failure("k");
        assert!(short.check("k").is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(short.check("k").is_ok(), "no permanent lockout");
    }

    #[test]
    fn the_failure_table_is_bounded() {
        let t = FailureThrottle::new(parse_rate_limit("3/1h").unwrap(), 100);
        for n in 0..10_000 {
            t.record_failure(&format!("key{n}"));
        }
        assert!(t.len() <= 100, "{}", t.len());
    }
}
