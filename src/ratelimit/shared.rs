//! Limits shared by every roster process through Redis (`--redis-url`), with a fall-back to
//! each process's own limiter while Redis is unreachable.
//!
//! Each check is one round trip: a Lua script that reads the clock from Redis (`TIME`, so
//! processes with skewed clocks agree), decides, and writes, atomically. Rates use GCRA —
//! the algorithm the local tables run (`table.rs`), so a limit means the same thing in both modes:
//! a bucket is one key holding its "theoretical arrival time", expiring when the bucket is
//! full again (so Redis memory tracks active clients only). Failed-login windows use a
//! counter with an expiry, as the local table does. Written here rather than taken from a
//! crate: the Redis rate-limit crates either need a Redis module (redis-cell) or run several
//! round trips per check; the scripts are a dozen lines each.
//!
//! Redis down: checks fall back to the local limiter (never fail a request for it), which
//! has been charged on every check all along, so it continues from this process's counts; a
//! pause decides only the requests it catches, locally, and only calls failing for a second
//! with no answer between switch the process to local limits. The
//! state is logged once per transition and shown in `/readyz` and the metrics, and a probe
//! reconnects every second; limits are shared again as soon as Redis answers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long a Redis call may take before the request falls back to the local limiter.
const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// How long calls must keep failing, with no answer between, before checks stop going to
/// Redis. A pause shorter than this (a fork for a snapshot, a blip, a failover's first
/// second) decides only the requests it caught, locally, however many were in flight; it
/// does not switch the whole process to local limits.
const DOWN_AFTER: Duration = Duration::from_secs(1);

/// GCRA: `ARGV[1]` emission interval (ms), `ARGV[2]` burst. Returns `{1, 0}` or `{0, wait_ms}`.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - (burst - 1) * interval
if now < allow_at then return {0, allow_at - now} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, new_tat - now))
return {1, 0}
";

/// A fixed window counted before the check: `ARGV[1]` window (ms), `ARGV[2]` limit. Refused
/// attempts are not counted. Returns `{1, 0}` or `{0, wait_ms}`.
const WINDOW: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[2]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then return {0, ttl} end
  redis.call('DEL', KEYS[1])
  n = 0
end
if n == 0 then
  redis.call('SET', KEYS[1], 1, 'PX', ARGV[1])
else
  redis.call('INCR', KEYS[1])
end
return {1, 0}
";

/// The Redis side of the limits. Cheap to clone.
#[derive(Clone)]
pub struct Shared {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    /// Checks go to Redis only while this is true.
    healthy: AtomicBool,
    /// When the current run of failed calls began, in milliseconds since `epoch` (0: none;
    /// reset by any answer).
    failing_since: AtomicU64,
    epoch: std::time::Instant,
    gcra: redis::Script,
    window: redis::Script,
}

impl Shared {
    /// Parses the URL; connects in the background (a Redis that is down at start-up is the
    /// same as one that goes down later: local limits until it answers).
    pub fn new(url: &str) -> Result<Self, String> {
        // The URL may hold a password: the error names the setting, not the value.
        let client = redis::Client::open(url)
            .map_err(|_| "--redis-url: expected redis://[:password@]host[:port][/db]".to_owned())?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                conn: Mutex::new(None),
                healthy: AtomicBool::new(false),
                failing_since: AtomicU64::new(0),
                epoch: std::time::Instant::now(),
                gcra: redis::Script::new(GCRA),
                window: redis::Script::new(WINDOW),
            }),
        })
    }

    /// Whether checks currently go to Redis.
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Acquire)
    }

    /// One GCRA check of `key`; `None` when Redis cannot answer (use the local limiter).
    pub async fn gcra(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> Option<Result<(), Duration>> {
        let interval_ms = interval.as_millis().max(1) as u64;
        let mut invocation = self.inner.gcra.key(key);
        invocation.arg(interval_ms).arg(burst);
        self.decide(invocation).await
    }

    /// Counts an attempt in `key`'s window; `None` when Redis cannot answer.
    pub async fn window_begin(
        &self,
        key: &str,
        window: Duration,
        limit: u32,
    ) -> Option<Result<(), Duration>> {
        let window_ms = window.as_millis().max(1) as u64;
        let mut invocation = self.inner.window.key(key);
        invocation.arg(window_ms).arg(limit);
        self.decide(invocation).await
    }

    /// Clears `key`'s window; `false` when Redis cannot answer.
    pub async fn clear(&self, key: &str) -> bool {
        let Some(mut conn) = self.connection() else {
            return false;
        };
        let done: Result<Result<(), redis::RedisError>, _> = tokio::time::timeout(
            CALL_TIMEOUT,
            redis::cmd("DEL").arg(key).query_async::<()>(&mut conn),
        )
        .await;
        match done {
            Ok(Ok(())) => {
                self.inner.failing_since.store(0, Ordering::Relaxed);
                true
            }
            _ => {
                self.failed();
                false
            }
        }
    }

    async fn decide(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Option<Result<(), Duration>> {
        let mut conn = self.connection()?;
        let answer = tokio::time::timeout(
            CALL_TIMEOUT,
            invocation.invoke_async::<(i64, i64)>(&mut conn),
        )
        .await;
        match answer {
            Ok(Ok((allowed, wait_ms))) => {
                self.inner.failing_since.store(0, Ordering::Relaxed);
                if allowed == 1 {
                    Some(Ok(()))
                } else {
                    Some(Err(Duration::from_millis(wait_ms.max(0) as u64)))
                }
            }
            _ => {
                self.failed();
                None
            }
        }
    }

    /// The connection, while Redis is healthy.
    fn connection(&self) -> Option<ConnectionManager> {
        if !self.is_healthy() {
            return None;
        }
        self.inner.conn.lock().ok()?.clone()
    }

    /// A call failed: this request is decided locally; once calls have failed for
    /// [`DOWN_AFTER`] with no answer between, every check is, until the probe sees Redis
    /// answer again.
    fn failed(&self) {
        // Milliseconds since `epoch`, plus one so that 0 keeps meaning "not failing".
        let now = self.inner.epoch.elapsed().as_millis() as u64 + 1;
        let since = match self.inner.failing_since.compare_exchange(
            0,
            now,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => now,
            Err(since) => since,
        };
        if now.saturating_sub(since) >= DOWN_AFTER.as_millis() as u64 {
            self.mark_down();
        }
    }

    fn mark_down(&self) {
        if self.inner.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                "Redis is unreachable: rate limits are enforced per process until it answers again"
            );
        }
    }

    /// Connects, then keeps watching: every second while Redis is down (reconnect, `PING`),
    /// every five while it is up (a `PING`, so an outage is noticed even without traffic).
    /// Runs until the process stops.
    pub async fn run_probe(self) {
        let mut first = true;
        loop {
            let ok = self.probe_once().await;
            if ok {
                self.inner.failing_since.store(0, Ordering::Relaxed);
            }
            let was = self.inner.healthy.swap(ok, Ordering::AcqRel);
            match (was, ok) {
                (false, true) if first => tracing::info!(
                    "Redis connected: rate limits are shared by every roster process"
                ),
                (false, true) => {
                    tracing::info!("Redis answers again: rate limits are shared again")
                }
                (true, false) => tracing::warn!(
                    "Redis is unreachable: rate limits are enforced per process until it answers again"
                ),
                (false, false) if first => tracing::warn!(
                    "Redis is unreachable at start-up: rate limits are enforced per process until it answers"
                ),
                _ => {}
            }
            first = false;
            let pause = if ok {
                Duration::from_secs(5)
            } else {
                Duration::from_secs(1)
            };
            tokio::time::sleep(pause).await;
        }
    }

    async fn probe_once(&self) -> bool {
        let existing = self.inner.conn.lock().ok().and_then(|c| c.clone());
        let mut conn = match existing {
            Some(conn) => conn,
            None => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CALL_TIMEOUT * 4))
                    .set_response_timeout(Some(CALL_TIMEOUT))
                    .set_number_of_retries(1);
                let connected = tokio::time::timeout(
                    Duration::from_secs(2),
                    self.inner.client.get_connection_manager_with_config(config),
                )
                .await;
                match connected {
                    Ok(Ok(conn)) => {
                        if let Ok(mut slot) = self.inner.conn.lock() {
                            *slot = Some(conn.clone());
                        }
                        conn
                    }
                    _ => return false,
                }
            }
        };
        let pong = tokio::time::timeout(
            CALL_TIMEOUT * 4,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        matches!(pong, Ok(Ok(_)))
    }
}
