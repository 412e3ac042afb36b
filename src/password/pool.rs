//! Argon2id hashing on a fixed pool of worker threads.
//!
//! Why a pool of our own rather than `spawn_blocking`: tokio's blocking pool grows to 512
//! threads, and each Argon2id hash needs its own 19 MiB block. A burst of sign-ups would
//! then spawn hundreds of threads and hundreds of MiB that glibc keeps after they are freed.
//! Here each worker owns one block buffer for its whole life, the queue in front is bounded
//! (a full queue is answered at once with `SERVER_BUSY`), and a job whose caller went away is
//! skipped, so a disconnecting client costs neither a hash nor a leaked slot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::Output;
use argon2::{Algorithm, Block, Params, Version};
use tokio::sync::oneshot;

use super::Plaintext;
use super::bounds::{ForeignLimits, FormatError};
use super::engine;
use super::format::{self, StoredHash};
use super::memory::BlockMemory;

/// Why a hash could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every worker is busy and the queue is full.
    #[error("all hash workers are busy and the queue is full")]
    Busy,
    /// The pool has shut down (only during process exit).
    #[error("the hash worker pool has stopped")]
    Stopped,
    /// Argon2 itself failed (bad parameters); never expected with validated settings.
    #[error("argon2: {0}")]
    Argon2(String),
    /// The job panicked. The worker caught it and goes on with the next job.
    #[error("the hash job panicked")]
    Panicked,
    /// The stored hash is in no known format, or asks for more than the foreign-parameter
    /// limits allow; nothing was computed.
    #[error("cannot verify the stored hash: {0}")]
    Unverifiable(#[from] FormatError),
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matches the stored hash.
    pub matches: bool,
    /// The stored hash's format or parameters differ from the configured ones: hash the
    /// password again and store the new hash (only meaningful when `matches`).
    pub needs_rehash: bool,
    /// The stored hash's format (`argon2id`, `pbkdf2_sha256`, `md5`, …), for logs.
    pub algorithm: &'static str,
    /// How long the worker spent on it: feeds [`Hasher::configured_verify_time`] (configured
    /// parameters) or, for other formats, the longest time behind [`Hasher::failure_floor`].
    pub took: std::time::Duration,
}

enum Work {
    Hash(oneshot::Sender<Result<String, HashError>>),
    Verify(StoredHash, oneshot::Sender<Result<Verified, HashError>>),
}

impl Work {
    fn is_closed(&self) -> bool {
        match self {
            Self::Hash(reply) => reply.is_closed(),
            Self::Verify(_, reply) => reply.is_closed(),
        }
    }
}

struct Job {
    password: Plaintext,
    work: Work,
    span: tracing::Span,
    /// When the job was queued, for the wait-time metric.
    queued_at: std::time::Instant,
}

/// A place in the hash queue, taken by [`Hasher::reserve`]; given back when dropped unused.
pub struct Slot {
    inner: Arc<Inner>,
    used: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.used {
            self.inner.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A handle to the hashing workers; cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    queue: SyncSender<Job>,
    /// Hashes actually computed (a skipped, cancelled job is not counted).
    computed: Arc<AtomicUsize>,
    /// See [`Hasher::configured_verify_time`].
    configured_nanos: Arc<AtomicU64>,
    /// See [`Hasher::failure_floor`].
    legacy_max_nanos: Arc<AtomicU64>,
    /// Workers hashing right now.
    active: Arc<AtomicUsize>,
    /// Slots reserved plus jobs queued, not yet taken by a worker (the channel does not
    /// expose its length).
    queued: Arc<AtomicUsize>,
    capacity: usize,
    params: Params,
    limits: ForeignLimits,
    /// What an unknown identifier's login verifies against (see [`Hasher::verify_dummy`]).
    dummy: StoredHash,
    metrics: Arc<std::sync::OnceLock<crate::metrics::Metrics>>,
}

/// What the pool runs with; `config` builds it from the command line.
#[derive(Debug, Clone)]
pub struct HashSettings {
    /// The configured Argon2id parameters: every new hash, and the dummy.
    pub params: Params,
    /// Worker threads (at least one).
    pub workers: usize,
    /// Jobs that may wait for a worker; past it, `Busy`.
    pub queue: usize,
    /// What a stored hash with other parameters may cost to verify.
    pub limits: ForeignLimits,
}

impl Hasher {
    /// Starts the workers.
    pub fn start(settings: &HashSettings) -> Result<Self, HashError> {
        let params = settings.params.clone();
        let workers = settings.workers.max(1);
        // A zero-capacity sync_channel is a rendezvous channel: it would refuse every job
        // while the workers are between jobs. Keep at least one slot.
        let capacity = settings.queue.max(1);
        let (queue, rx) = std::sync::mpsc::sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        let computed = Arc::new(AtomicUsize::new(0));
        let configured_nanos = Arc::new(AtomicU64::new(0));
        let legacy_max_nanos = Arc::new(AtomicU64::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        let metrics = Arc::new(std::sync::OnceLock::new());
        for n in 0..workers {
            let rx = Arc::clone(&rx);
            let counters = Counters {
                queued: Arc::clone(&queued),
                computed: Arc::clone(&computed),
                configured_nanos: Arc::clone(&configured_nanos),
                legacy_max_nanos: Arc::clone(&legacy_max_nanos),
                active: Arc::clone(&active),
                metrics: Arc::clone(&metrics),
            };
            let params = params.clone();
            let limits = settings.limits;
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || worker(&rx, &counters, params, limits))
                .map_err(|e| HashError::Argon2(format!("cannot start worker: {e}")))?;
        }
        let dummy = format::dummy(&params)
            .and_then(|d| StoredHash::parse(&d).map_err(|e| e.to_string()))
            .map_err(HashError::Argon2)?;
        // Time one verification now, on this thread, so that the very first failed login is
        // already padded to the configured cost ([`Hasher::failure_floor`]).
        let mut blocks = vec![Block::default(); params.block_count()];
        let started = std::time::Instant::now();
        verify_with(&dummy, &params, &settings.limits, b"\0warm-up", &mut blocks)?;
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        configured_nanos.store(took.max(1), Ordering::Release);
        drop(blocks);
        Ok(Self {
            inner: Arc::new(Inner {
                queue,
                computed,
                configured_nanos,
                legacy_max_nanos,
                active,
                queued,
                capacity,
                limits: settings.limits,
                params,
                dummy,
                metrics,
            }),
        })
    }

    /// Reports wait and hash times to `metrics` from now on (once; later calls are ignored).
    pub fn set_metrics(&self, metrics: crate::metrics::Metrics) {
        let _ = self.inner.metrics.set(metrics);
    }

    /// Slots reserved plus jobs queued, not yet taken by a worker.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Acquire)
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    ///
    /// Returns [`HashError::Busy`] at once when the queue is full.
    pub async fn hash(&self, password: Plaintext) -> Result<String, HashError> {
        let slot = self.reserve()?;
        self.hash_reserved(slot, password).await
    }

    /// Takes a queue slot now, for a hash that will be asked for later: a caller that must
    /// do other work first (validate, spend a rate-limit token) learns at once whether the
    /// hash will be accepted, and keeps its place while it works. Dropping the slot unused
    /// gives it back.
    pub fn reserve(&self) -> Result<Slot, HashError> {
        let before = self.inner.queued.fetch_add(1, Ordering::AcqRel);
        if before >= self.inner.capacity {
            self.inner.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Busy);
        }
        Ok(Slot {
            inner: Arc::clone(&self.inner),
            used: false,
        })
    }

    /// Hashes on a slot taken by [`Hasher::reserve`]; never refused as busy.
    pub async fn hash_reserved(
        &self,
        slot: Slot,
        password: Plaintext,
    ) -> Result<String, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(slot, password, Work::Hash(reply))?;
        answer.await.map_err(|_| HashError::Stopped)?
    }

    /// Verifies `password` against a stored hash on a slot taken by [`Hasher::reserve`].
    ///
    /// A hash made with other parameters than the configured ones is verified too, within
    /// the `--argon2-max-verify-memory-kib` bound (see [`ForeignLimits`]); beyond it, or in
    /// an unknown format, the answer is [`HashError::Unverifiable`] and nothing is computed.
    pub async fn verify_reserved(
        &self,
        slot: Slot,
        password: Plaintext,
        stored: &str,
    ) -> Result<Verified, HashError> {
        let stored = StoredHash::parse(stored)?;
        stored.check_cost(&self.inner.params, &self.inner.limits)?;
        self.verify_parsed(slot, password, stored).await
    }

    /// Verifies `password` against a hash that matches nothing, made with the configured
    /// parameters: what a login for an unknown account spends, so that it takes as long as
    /// a wrong password for a real one. Always answers "no match".
    pub async fn verify_dummy(&self, slot: Slot, password: Plaintext) -> Result<(), HashError> {
        let dummy = self.inner.dummy.clone();
        self.verify_parsed(slot, password, dummy).await.map(|_| ())
    }

    async fn verify_parsed(
        &self,
        slot: Slot,
        password: Plaintext,
        stored: StoredHash,
    ) -> Result<Verified, HashError> {
        let (reply, answer) = oneshot::channel();
        self.submit(slot, password, Work::Verify(stored, reply))?;
        answer.await.map_err(|_| HashError::Stopped)?
    }

    fn submit(&self, mut slot: Slot, password: Plaintext, work: Work) -> Result<(), HashError> {
        let job = Job {
            password,
            work,
            span: tracing::Span::current(),
            queued_at: std::time::Instant::now(),
        };
        // The slot's count now belongs to the job: the worker that takes it decrements.
        slot.used = true;
        // Reservations never exceed the channel's capacity, so `Full` cannot happen; keep
        // the count right if it ever did.
        if let Err(e) = self.inner.queue.try_send(job) {
            self.inner.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(match e {
                TrySendError::Full(_) => HashError::Busy,
                TrySendError::Disconnected(_) => HashError::Stopped,
            });
        }
        Ok(())
    }

    /// Whether a hash requested now would be refused as busy: for tests and observation.
    /// The service sheds load with [`Hasher::reserve`], which decides for real (a slot
    /// taken before validation, so a refused request spends no CPU).
    pub fn is_saturated(&self) -> bool {
        self.inner.queued.load(Ordering::Acquire) >= self.inner.capacity
    }

    /// How many workers are hashing right now.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::Acquire)
    }

    /// What one verification at the configured parameters takes on a worker (a running
    /// average; `None` before the first): the lower bound of [`Hasher::failure_floor`], which
    /// a failed login waits out, so that a cheap legacy hash (salted MD5 answers in
    /// microseconds) does not tell an imported account from a name that does not exist.
    pub fn configured_verify_time(&self) -> Option<std::time::Duration> {
        match self.inner.configured_nanos.load(Ordering::Acquire) {
            0 => None,
            n => Some(std::time::Duration::from_nanos(n)),
        }
    }

    /// How long a failed login takes at least: one verification at the configured
    /// parameters, or the longest verification of any other stored format seen since start
    /// (seeded at start-up from a sample of the stored hashes), whichever is longer. A
    /// failed login is answered no sooner, so its time does not tell which format an
    /// account holds, nor whether it exists.
    pub fn failure_floor(&self) -> Option<std::time::Duration> {
        let legacy = self.inner.legacy_max_nanos.load(Ordering::Acquire);
        let floor = self.configured_verify_time().map_or(legacy, |configured| {
            legacy.max(u64::try_from(configured.as_nanos()).unwrap_or(u64::MAX))
        });
        (floor > 0).then(|| std::time::Duration::from_nanos(floor))
    }

    /// How many hashes the workers have computed since start.
    pub fn computed(&self) -> usize {
        self.inner.computed.load(Ordering::Acquire)
    }
}

struct Counters {
    queued: Arc<AtomicUsize>,
    computed: Arc<AtomicUsize>,
    /// A running average of one job at the configured parameters, in nanoseconds.
    configured_nanos: Arc<AtomicU64>,
    /// The longest verification of a stored hash in another format or cost, in nanoseconds.
    legacy_max_nanos: Arc<AtomicU64>,
    active: Arc<AtomicUsize>,
    /// Set once the server's metrics exist (the pool starts before them).
    metrics: Arc<std::sync::OnceLock<crate::metrics::Metrics>>,
}

impl Counters {
    /// Folds one job at the configured parameters into the running average (an eighth of
    /// each new sample: steady, yet following a machine that slows down or speeds up).
    fn configured(&self, took: std::time::Duration) {
        let sample = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .configured_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                Some(if old == 0 {
                    sample
                } else {
                    old - old / 8 + sample / 8
                })
            });
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, counters: &Counters, params: Params, limits: ForeignLimits) {
    mark_cpu_bound();
    // The one allocation this worker keeps for hashing, reused for every job.
    let mut blocks = BlockMemory::new(params.block_count());
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        counters.queued.fetch_sub(1, Ordering::AcqRel);
        if job.work.is_closed() {
            // The request was cancelled while queued: don't burn a hash on it.
            continue;
        }
        let _entered = job.span.enter();
        let started = std::time::Instant::now();
        let waited = started.duration_since(job.queued_at);
        counters.active.fetch_add(1, Ordering::AcqRel);
        let password = job.password.expose().as_bytes();
        // The counters are settled before the answer goes out, so a caller that has its
        // answer sees its hash counted.
        let done = || {
            counters.active.fetch_sub(1, Ordering::AcqRel);
            counters.computed.fetch_add(1, Ordering::AcqRel);
            if let Some(metrics) = counters.metrics.get() {
                metrics.hashed(waited, started.elapsed());
            }
        };
        match job.work {
            Work::Hash(reply) => {
                let result = guarded(|| hash_with(&params, password, blocks.as_mut()));
                if result.is_ok() {
                    counters.configured(started.elapsed());
                }
                done();
                let _ = reply.send(result);
            }
            Work::Verify(stored, reply) => {
                let result =
                    guarded(|| verify_with(&stored, &params, &limits, password, blocks.as_mut()))
                        .map(|mut v| {
                            v.took = started.elapsed();
                            if v.needs_rehash {
                                let took = u64::try_from(v.took.as_nanos()).unwrap_or(u64::MAX);
                                counters.legacy_max_nanos.fetch_max(took, Ordering::AcqRel);
                            } else {
                                counters.configured(v.took);
                            }
                            v
                        });
                done();
                let _ = reply.send(result);
            }
        }
    }
}

/// A panic in one job must neither kill the worker (the pool would shrink for good) nor
/// leave its caller waiting: catch it, answer, carry on. The block buffer needs no repair:
/// Argon2 overwrites every block it reads.
fn guarded<T>(job: impl FnOnce() -> Result<T, HashError>) -> Result<T, HashError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or_else(|_| {
        tracing::error!("a hash job panicked; the worker continues");
        Err(HashError::Panicked)
    })
}

/// Marks this thread as background CPU work for the Linux scheduler: `SCHED_BATCH` (not
/// treated as interactive) and nice 10, so a request thread that wakes up runs at once
/// instead of waiting out a hash's time slice. Hashing loses nothing by it: request threads
/// use little CPU, and when they sleep the workers have the cores to themselves.
#[cfg(target_os = "linux")]
fn mark_cpu_bound() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: both calls change only the calling thread (pid 0 / its own tid) and read their
    // arguments during the call; lowering one's own priority needs no privilege. On failure
    // the thread simply keeps the default policy.
    let ok = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) == 0
            && libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) == 0
    };
    if !ok {
        tracing::debug!("could not lower hash worker priority; keeping the default");
    }
}

#[cfg(not(target_os = "linux"))]
fn mark_cpu_bound() {}

fn hash_with(params: &Params, password: &[u8], blocks: &mut [Block]) -> Result<String, HashError> {
    let err = |e: &dyn std::fmt::Display| HashError::Argon2(e.to_string());
    #[cfg(test)]
    if password == PANIC_FOR_TESTS {
        panic!("test-only: a job that panics");
    }
    let salt = argon2::password_hash::try_generate_salt().map_err(|e| err(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    engine::compute(
        Algorithm::Argon2id,
        Version::V0x13,
        params,
        password,
        &salt,
        &mut out,
        Some(blocks),
    )
    .map_err(HashError::Argon2)?;
    format::encode(Algorithm::Argon2id, params, &salt, &out).map_err(HashError::Argon2)
}

/// Recomputes the stored hash from `password` and compares in constant time (`Output`'s
/// `PartialEq`). The worker's own buffer serves hashes with the configured memory cost; any
/// other gets a buffer for this job only, within `limits` (checked again here so the pool
/// never allocates past them whoever calls it).
fn verify_with(
    stored: &StoredHash,
    configured: &Params,
    limits: &ForeignLimits,
    password: &[u8],
    blocks: &mut [Block],
) -> Result<Verified, HashError> {
    let err = |e: &dyn std::fmt::Display| HashError::Argon2(e.to_string());
    #[cfg(test)]
    if password == PANIC_FOR_TESTS {
        panic!("test-only: a job that panics");
    }
    stored.check_cost(configured, limits)?;
    if let StoredHash::Wrapped { inner, outer } = stored {
        // The old digest first, from the password; then Argon2id over it.
        let digest = inner
            .weak_digest_of(password)
            .map_err(HashError::Argon2)?
            .ok_or(HashError::Unverifiable(super::FormatError::Unknown))?;
        let v = verify_with(outer, configured, limits, digest.as_bytes(), blocks)?;
        return Ok(Verified {
            matches: v.matches,
            needs_rehash: true,
            algorithm: stored.algorithm(),
            took: std::time::Duration::ZERO,
        });
    }
    let needs_rehash = stored.needs_rehash(configured);
    let (algorithm, version, params, salt, hash) = match stored {
        StoredHash::Argon2 {
            algorithm,
            version,
            params,
            salt,
            hash,
            ..
        } => (algorithm, version, params, salt, hash),
        // Answered above; kept here so the match stays exhaustive without a panic.
        StoredHash::Wrapped { .. } => {
            return Err(HashError::Unverifiable(super::FormatError::Unknown));
        }
        StoredHash::Django(django) => {
            return Ok(Verified {
                matches: django.verify(password).map_err(HashError::Argon2)?,
                needs_rehash,
                algorithm: stored.algorithm(),
                took: std::time::Duration::ZERO,
            });
        }
    };
    let mut out = vec![0u8; hash.len()];
    // The worker's buffer serves the configured memory cost; any other hash gets memory for
    // this job only (`engine::compute` without a buffer).
    let blocks = stored.uses_configured_memory(configured).then_some(blocks);
    engine::compute(
        *algorithm, *version, params, password, salt, &mut out, blocks,
    )
    .map_err(HashError::Argon2)?;
    let matches = Output::new(&out).map_err(|e| err(&e))? == *hash;
    Ok(Verified {
        matches,
        needs_rehash,
        algorithm: stored.algorithm(),
        took: std::time::Duration::ZERO,
    })
}

/// A password the test build's workers panic on, to prove the pool survives a panic.
#[cfg(test)]
const PANIC_FOR_TESTS: &[u8] = b"\0panic-in-this-job\0";

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[tokio::test]
    async fn a_panicking_job_is_answered_and_the_worker_goes_on() {
        let hasher = Hasher::start(&cheap().settings()).unwrap();
        let panicked = hasher
            .hash(Plaintext::new(
                String::from_utf8(PANIC_FOR_TESTS.to_vec()).unwrap(),
            ))
            .await;
        assert!(matches!(panicked, Err(HashError::Panicked)), "{panicked:?}");
        // The only worker is still there and hashing.
        let next = hasher.hash(Plaintext::new("after".into())).await;
        assert!(next.unwrap().starts_with("$argon2id$"));
        assert_eq!(hasher.computed(), 2);
    }

    /// The settings the tests vary, by their command-line names.
    #[derive(Clone, Copy)]
    struct Cheap {
        argon2_memory_kib: u32,
        argon2_iterations: u32,
        argon2_parallelism: u32,
        hash_workers: usize,
        hash_queue: usize,
        argon2_max_verify_memory_kib: u32,
    }

    impl Cheap {
        fn settings(&self) -> HashSettings {
            HashSettings {
                params: Params::new(
                    self.argon2_memory_kib,
                    self.argon2_iterations,
                    self.argon2_parallelism,
                    None,
                )
                .unwrap(),
                workers: self.hash_workers,
                queue: self.hash_queue,
                limits: ForeignLimits {
                    max_memory_kib: self.argon2_max_verify_memory_kib,
                    max_iterations: 16,
                    max_parallelism: 16,
                },
            }
        }
    }

    fn cheap() -> Cheap {
        Cheap {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            hash_workers: 1,
            hash_queue: 1,
            argon2_max_verify_memory_kib: 1024,
        }
    }

    #[tokio::test]
    async fn hashes_verify_with_the_stock_argon2_verifier() {
        use argon2::Argon2;
        // The pool hashes with libsodium where it is built; the crate's own verifier must
        // accept its hashes (and `verifies_own_and_foreign_hashes…` the other way round).
        let hasher = Hasher::start(&cheap().settings()).unwrap();
        let phc = hasher
            .hash(Plaintext::new("correct horse".into()))
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        let parsed = argon2::password_hash::phc::PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"correct horsE", &parsed)
                .is_err()
        );
    }

    #[tokio::test]
    async fn every_hash_gets_its_own_salt() {
        let hasher = Hasher::start(&cheap().settings()).unwrap();
        let a = hasher.hash(Plaintext::new("same".into())).await;
        let b = hasher.hash(Plaintext::new("same".into())).await;
        assert_ne!(a.unwrap(), b.unwrap());
    }

    #[test]
    fn reserved_slots_count_against_the_queue_and_come_back_when_dropped() {
        let config = Cheap {
            hash_queue: 2,
            ..cheap()
        };
        let hasher = Hasher::start(&config.settings()).unwrap();
        let a = hasher.reserve().unwrap();
        let _b = hasher.reserve().unwrap();
        assert!(matches!(hasher.reserve(), Err(HashError::Busy)));
        assert!(hasher.is_saturated());
        drop(a);
        assert!(hasher.reserve().is_ok());
    }

    #[tokio::test]
    async fn verifies_own_and_foreign_hashes_and_says_when_to_upgrade() {
        let hasher = Hasher::start(&cheap().settings()).unwrap();
        let own = hasher.hash(Plaintext::new("pw".into())).await.unwrap();
        let verify = |stored: String, pw: &'static str| {
            let hasher = hasher.clone();
            async move {
                let slot = hasher.reserve().unwrap();
                hasher
                    .verify_reserved(slot, Plaintext::new(pw.into()), &stored)
                    .await
            }
        };
        let ok = verify(own.clone(), "pw").await.unwrap();
        assert_eq!(
            (ok.matches, ok.needs_rehash, ok.algorithm),
            (true, false, "argon2id")
        );
        assert!(
            ok.took > std::time::Duration::ZERO,
            "the worker's time is reported"
        );
        assert!(
            hasher.configured_verify_time().is_some(),
            "and folded into the configured cost"
        );
        assert!(!verify(own, "pW").await.unwrap().matches);

        // Made by a pool with other parameters (an earlier setting): verified with a buffer of
        // its own, and flagged for an upgrade.
        let other = Hasher::start(
            &Cheap {
                argon2_memory_kib: 256,
                argon2_iterations: 2,
                ..cheap()
            }
            .settings(),
        )
        .unwrap();
        let foreign = other.hash(Plaintext::new("pw".into())).await.unwrap();
        let v = verify(foreign.clone(), "pw").await.unwrap();
        assert!(v.matches && v.needs_rehash, "{v:?}");
        assert!(!verify(foreign, "nope").await.unwrap().matches);

        // Past the foreign-memory bound (1024 KiB in `cheap`): refused, nothing computed.
        let costly = Hasher::start(
            &Cheap {
                argon2_memory_kib: 2048,
                argon2_max_verify_memory_kib: 4096,
                ..cheap()
            }
            .settings(),
        )
        .unwrap();
        let big = costly.hash(Plaintext::new("pw".into())).await.unwrap();
        let before = hasher.computed();
        assert!(matches!(
            verify(big, "pw").await,
            Err(HashError::Unverifiable(_))
        ));
        assert!(matches!(
            verify("not a hash".into(), "pw").await,
            Err(HashError::Unverifiable(_))
        ));
        assert_eq!(hasher.computed(), before);

        // The dummy never matches, and costs one computation.
        let slot = hasher.reserve().unwrap();
        hasher
            .verify_dummy(slot, Plaintext::new("pw".into()))
            .await
            .unwrap();
        assert_eq!(hasher.computed(), before + 1);
    }

    /// Hashes made by Django 5.2's own hashers (`tests/django/make_hashes.py`), at cheap and at
    /// shipped parameters (PBKDF2 1,000,000 iterations, Argon2 100 MiB × 8 lanes, bcrypt 12,
    /// scrypt N=16384 r=8 p=5): each verifies with its password, not with another, and asks
    /// for an upgrade.
    #[tokio::test]
    async fn django_hashes_verify_through_the_pool_and_ask_for_an_upgrade() {
        let hasher = Hasher::start(
            &Cheap {
                argon2_max_verify_memory_kib: 131_072,
                hash_queue: 4,
                ..cheap()
            }
            .settings(),
        )
        .unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let fixtures = [
            include_str!("../../tests/django/hashes.jsonl"),
            include_str!("../../tests/django/hashes_legacy.jsonl"),
        ];
        for line in fixtures.iter().flat_map(|f| f.lines()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let Some(encoded) = v["encoded"].as_str() else {
                continue;
            };
            let password = v["password"].as_str().unwrap();
            for (attempt, expected) in
                [(password.to_owned(), true), (format!("!{password}"), false)]
            {
                let slot = hasher.reserve().unwrap();
                let verified = hasher
                    .verify_reserved(slot, Plaintext::new(attempt), encoded)
                    .await
                    .unwrap_or_else(|e| panic!("{encoded}: {e}"));
                assert_eq!(verified.matches, expected, "{encoded}");
                assert!(verified.needs_rehash, "{encoded}");
            }
            seen.insert(v["hasher"].as_str().unwrap().to_owned());
        }
        let all: std::collections::BTreeSet<String> = [
            "argon2",
            "bcrypt",
            "bcrypt_sha256",
            "crypt",
            "md5",
            "pbkdf2_sha1",
            "pbkdf2_sha256",
            "scrypt",
            "sha1",
            "unsalted_md5",
            "unsalted_sha1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(seen, all);
    }

    #[tokio::test]
    async fn unusable_and_oversized_django_hashes_are_refused_without_work() {
        let hasher = Hasher::start(&cheap().settings()).unwrap();
        for stored in [
            "!Ro5gXKtHbaY3zOSPqMkTOqImPcGCvTomWG2xZvLr",
            "pbkdf2_sha256$4000001$salt$M2AviTTCImeAM2FiTa9qBGqlFo3QmIJGeV+dE1mgSlE=",
            "bcrypt$$2b$17$ZsVZo56IFFr9GInI9FolMONh1JQIq2pqw4e41nfO2YGm.rTNEneRS",
            // scrypt asking for 128 · 2^20 · 8 bytes = 1 GiB.
            "scrypt$1048576$salt$8$1$8ewG61YvEb2K+vYivduWqOi3IHzr6q+mpKELfA6P7xU=",
            // Django's argon2 at 2 GiB.
            "argon2$argon2id$v=19$m=2097152,t=2,p=8$cHV2NFlqdjBOMmRyZ3BhdnpraEdDag$GHPtMcgg5aIbT7HpQ9LpuNY/iCI",
            "pbkdf2_sha256$notanumber$salt$aGFzaA==",
            "scrypt$1000$salt$8$1$aGFzaA==",
            "md5$salt$nothex",
            // SHA-crypt, whose rounds a row could set to a billion: only DES crypt is read.
            "crypt$$$6$rounds=999999999$salt$abcdefghijklmnopqrstuvwxyz",
            "crypt$$FGN3T/0eNVM8",
        ] {
            let slot = hasher.reserve().unwrap();
            let result = hasher
                .verify_reserved(slot, Plaintext::new("pw".into()), stored)
                .await;
            assert!(
                matches!(result, Err(HashError::Unverifiable(_))),
                "{stored}: {result:?}"
            );
        }
        assert_eq!(hasher.computed(), 0);
    }
}
