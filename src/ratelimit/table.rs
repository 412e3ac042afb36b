//! A bounded table of GCRA buckets: the local half of every rate limit.
//!
//! Ours rather than `governor`'s keyed limiter, because a bounded table must answer "does
//! this key already have a bucket?" before deciding where a new key goes, and `governor`
//! cannot tell: when its table was full, the per-client limiter moved *every* client (known
//! ones too) to a coarse bucket and the per-address mail limiter let every address through.
//! The rule here: **a key that has a bucket is always checked against it**; a new key when
//! the table is full first makes room by forgetting buckets that are full again (those carry
//! no information), and if none is, it is charged to a shared overflow bucket chosen by the
//! caller — never unlimited. GCRA itself is the same dozen lines the Redis script runs
//! (`shared.rs`), so a limit means the same in both modes.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One token every `interval`, up to `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub interval: Duration,
    pub burst: u32,
}

impl Rate {
    /// How far ahead of now a bucket's theoretical arrival time may run: `burst - 1`
    /// intervals.
    fn tolerance(&self) -> Duration {
        self.interval * self.burst.saturating_sub(1)
    }

    /// GCRA on one bucket's theoretical arrival time `tat`: takes a token (moving `tat`) or
    /// says how long until one is free.
    fn take(&self, tat: &mut Instant, now: Instant) -> Result<(), Duration> {
        let start = (*tat).max(now);
        let ahead = start - now;
        if ahead > self.tolerance() {
            return Err(ahead - self.tolerance());
        }
        *tat = start + self.interval;
        Ok(())
    }
}

/// How a table full of live buckets places a key it does not know.
pub trait Overflow: Sized {
    /// The shared bucket a new key is charged to while the table is full (`None`: the key
    /// is already the shared bucket of last resort).
    fn overflow(&self) -> Option<Self>;

    /// How many tables' worth of keys may exist before a key of this kind overflows: 1 for
    /// a client's own key, 2 for a coarse group (so that a full table of clients still
    /// leaves room to group the rest coarsely rather than all in one bucket).
    fn level(&self) -> usize {
        1
    }
}

pub struct Table<K> {
    rate: Rate,
    max_keys: usize,
    state: Mutex<State<K>>,
    /// The limiter's name, for the one warning logged when the table fills.
    name: &'static str,
    full_logged: AtomicBool,
}

struct State<K> {
    /// Each bucket's theoretical arrival time; a bucket is full again once it is past.
    buckets: HashMap<K, Instant>,
    last_sweep: Instant,
}

impl<K: Hash + Eq + Clone + Overflow> Table<K> {
    pub fn new(name: &'static str, rate: Rate, max_keys: usize) -> Self {
        Self {
            rate,
            max_keys: max_keys.max(1),
            state: Mutex::new(State {
                buckets: HashMap::new(),
                last_sweep: Instant::now(),
            }),
            name,
            full_logged: AtomicBool::new(false),
        }
    }

    /// Logs once each time the table fills past its bound (read under the lock already held).
    fn note_fullness(&self, len: usize) {
        if len > self.max_keys {
            if !self.full_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    limiter = self.name,
                    "rate limiter is full; new keys share coarser buckets until entries expire"
                );
            }
        } else if self.full_logged.load(Ordering::Relaxed) {
            self.full_logged.store(false, Ordering::Relaxed);
        }
    }

    /// Takes one token from `key`'s bucket (see the module comment for a full table).
    pub fn check(&self, key: K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = key;
        // Each step down (client → coarse group → one overflow bucket) is itself a key that
        // may already have a bucket; the last one always gets a slot.
        loop {
            if let Some(tat) = state.buckets.get_mut(&key) {
                let decided = self.rate.take(tat, now);
                self.note_fullness(state.buckets.len());
                return decided;
            }
            if state.buckets.len() >= self.max_keys
                && now.duration_since(state.last_sweep) >= Duration::from_secs(1)
            {
                state.last_sweep = now;
                state.buckets.retain(|_, tat| *tat > now);
                state.buckets.shrink_to(self.max_keys);
            }
            let room = self.max_keys.saturating_mul(key.level());
            match key.overflow() {
                Some(shared) if state.buckets.len() >= room => key = shared,
                _ => break,
            }
        }
        let decided = self.rate.take(state.buckets.entry(key).or_insert(now), now);
        self.note_fullness(state.buckets.len());
        decided
    }

    /// Forgets buckets that are full again, so memory tracks active keys only.
    pub fn forget_idle(&self) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.buckets.retain(|_, tat| *tat > now);
        state.buckets.shrink_to_fit();
        state.last_sweep = now;
    }

    /// Buckets remembered.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buckets
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    enum Key {
        One(u32),
        Shared,
    }

    impl Overflow for Key {
        fn overflow(&self) -> Option<Self> {
            match self {
                Key::One(_) => Some(Key::Shared),
                Key::Shared => None,
            }
        }
    }

    fn table(burst: u32, max_keys: usize) -> Table<Key> {
        Table::new(
            "test",
            Rate {
                interval: Duration::from_secs(60),
                burst,
            },
            max_keys,
        )
    }

    #[test]
    fn a_bucket_gives_its_burst_then_refuses_with_the_wait() {
        let t = table(3, 10);
        for _ in 0..3 {
            assert_eq!(t.check(Key::One(1)), Ok(()));
        }
        let wait = t.check(Key::One(1)).unwrap_err();
        assert!(
            wait > Duration::from_secs(58) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert_eq!(
            t.check(Key::One(2)),
            Ok(()),
            "another key has its own bucket"
        );
    }

    /// The hole this table closes: with the table full, a key that is already at its limit
    /// stays refused (the mail limiter used to pass everyone), and new keys share one bucket
    /// (never unlimited).
    #[test]
    fn a_full_table_still_checks_known_keys_and_new_keys_share_a_bucket() {
        let t = table(1, 4);
        assert_eq!(t.check(Key::One(0)), Ok(()));
        for k in 1..4 {
            assert_eq!(t.check(Key::One(k)), Ok(()));
        }
        assert_eq!(t.len(), 4);
        assert!(
            t.check(Key::One(0)).is_err(),
            "a known key at its limit stays limited"
        );
        assert_eq!(
            t.check(Key::One(100)),
            Ok(()),
            "the first new key gets the shared bucket"
        );
        assert!(
            t.check(Key::One(101)).is_err(),
            "the next new key shares it"
        );
        assert!(
            t.check(Key::One(0)).is_err(),
            "and the known key is still limited"
        );
        assert!(t.len() <= 5, "bounded: {}", t.len());
    }
}
