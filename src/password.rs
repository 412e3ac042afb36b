//! Argon2id hashing on a fixed pool of worker threads.
//!
//! Why a pool of our own rather than `spawn_blocking`: tokio's blocking pool grows to 512
//! threads, and each Argon2id hash needs its own 19 MiB block. A burst of sign-ups would
//! then spawn hundreds of threads and hundreds of MiB that glibc keeps after they are freed.
//! Here each worker owns one block buffer for its whole life, the queue in front is bounded
//! (a full queue is answered at once with `SERVER_BUSY`), and a job whose caller went away is
//! skipped, so a disconnecting client costs neither a hash nor a leaked slot.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

use crate::accounts::Password;
use crate::config::HashingConfig;

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
}

struct Job {
    password: Password,
    reply: oneshot::Sender<Result<String, HashError>>,
    span: tracing::Span,
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
    /// Workers hashing right now.
    active: Arc<AtomicUsize>,
    /// Slots reserved plus jobs queued, not yet taken by a worker (the channel does not
    /// expose its length).
    queued: Arc<AtomicUsize>,
    capacity: usize,
    params: Params,
    workers: usize,
}

impl Hasher {
    /// Validates the Argon2 parameters and starts the workers.
    pub fn start(config: &HashingConfig) -> Result<Self, HashError> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(|e| HashError::Argon2(e.to_string()))?;
        let workers = config.workers();
        // A zero-capacity sync_channel is a rendezvous channel: it would refuse every job
        // while the workers are between jobs. Keep at least one slot.
        let capacity = config.hash_queue.max(1);
        let (queue, rx) = std::sync::mpsc::sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        let computed = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        for n in 0..workers {
            let rx = Arc::clone(&rx);
            let counters = Counters {
                queued: Arc::clone(&queued),
                computed: Arc::clone(&computed),
                active: Arc::clone(&active),
            };
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || worker(&rx, &counters, params))
                .map_err(|e| HashError::Argon2(format!("cannot start worker: {e}")))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                queue,
                computed,
                active,
                queued,
                capacity,
                params,
                workers,
            }),
        })
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    ///
    /// Returns [`HashError::Busy`] at once when the queue is full.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
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
        mut slot: Slot,
        password: Password,
    ) -> Result<String, HashError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            password,
            reply,
            span: tracing::Span::current(),
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
        answer.await.map_err(|_| HashError::Stopped)?
    }

    /// Whether a hash requested now would be refused as busy. Lets the service shed a
    /// registration before spending CPU on validating it; `hash` still decides for real.
    pub fn is_saturated(&self) -> bool {
        self.inner.queued.load(Ordering::Acquire) >= self.inner.capacity
    }

    /// How many workers are hashing right now.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::Acquire)
    }

    /// How many hashes the workers have computed since start.
    pub fn computed(&self) -> usize {
        self.inner.computed.load(Ordering::Acquire)
    }

    /// The Argon2 parameters in force.
    pub fn params(&self) -> &Params {
        &self.inner.params
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.inner.workers
    }
}

struct Counters {
    queued: Arc<AtomicUsize>,
    computed: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
}

fn worker(rx: &Mutex<Receiver<Job>>, counters: &Counters, params: Params) {
    mark_cpu_bound();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    // The one allocation this worker makes for hashing, reused for every job.
    let mut blocks = vec![Block::default(); params.block_count()];
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        counters.queued.fetch_sub(1, Ordering::AcqRel);
        if job.reply.is_closed() {
            // The request was cancelled while queued: don't burn a hash on it.
            continue;
        }
        let _entered = job.span.enter();
        counters.active.fetch_add(1, Ordering::AcqRel);
        // A panic in one job must neither kill the worker (the pool would shrink for good)
        // nor leave its caller waiting: catch it, answer, carry on. The block buffer needs no
        // repair: Argon2 overwrites every block it reads.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            hash_with(
                &argon2,
                &params,
                job.password.expose().as_bytes(),
                &mut blocks,
            )
        }))
        .unwrap_or_else(|_| {
            tracing::error!("a hash job panicked; the worker continues");
            Err(HashError::Panicked)
        });
        counters.active.fetch_sub(1, Ordering::AcqRel);
        counters.computed.fetch_add(1, Ordering::AcqRel);
        // The receiver may have gone away meanwhile; nothing to do then.
        let _ = job.reply.send(result);
    }
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

fn hash_with(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    blocks: &mut [Block],
) -> Result<String, HashError> {
    let err = |e: &dyn std::fmt::Display| HashError::Argon2(e.to_string());
    #[cfg(test)]
    if password == PANIC_FOR_TESTS {
        panic!("test-only: a job that panics");
    }
    let salt = argon2::password_hash::try_generate_salt().map_err(|e| err(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(password, &salt, &mut out, &mut *blocks)
        .map_err(|e| err(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| err(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| err(&e))?),
        hash: Some(Output::new(&out).map_err(|e| err(&e))?),
    };
    Ok(phc.to_string())
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
        let hasher = Hasher::start(&cheap()).unwrap();
        let panicked = hasher
            .hash(Password::new_unchecked(
                String::from_utf8(PANIC_FOR_TESTS.to_vec()).unwrap(),
            ))
            .await;
        assert!(matches!(panicked, Err(HashError::Panicked)), "{panicked:?}");
        // The only worker is still there and hashing.
        let next = hasher.hash(Password::new_unchecked("after".into())).await;
        assert!(next.unwrap().starts_with("$argon2id$"));
        assert_eq!(hasher.computed(), 2);
    }

    fn cheap() -> HashingConfig {
        HashingConfig {
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            argon2_parallelism: 1,
            hash_workers: 1,
            hash_queue: 1,
        }
    }

    #[tokio::test]
    async fn hashes_verify_with_the_stock_argon2_verifier() {
        let hasher = Hasher::start(&cheap()).unwrap();
        let phc = hasher
            .hash(Password::new_unchecked("correct horse".into()))
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
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
        let hasher = Hasher::start(&cheap()).unwrap();
        let a = hasher.hash(Password::new_unchecked("same".into())).await;
        let b = hasher.hash(Password::new_unchecked("same".into())).await;
        assert_ne!(a.unwrap(), b.unwrap());
    }

    #[test]
    fn reserved_slots_count_against_the_queue_and_come_back_when_dropped() {
        let config = HashingConfig {
            hash_queue: 2,
            ..cheap()
        };
        let hasher = Hasher::start(&config).unwrap();
        let a = hasher.reserve().unwrap();
        let _b = hasher.reserve().unwrap();
        assert!(matches!(hasher.reserve(), Err(HashError::Busy)));
        assert!(hasher.is_saturated());
        drop(a);
        assert!(hasher.reserve().is_ok());
    }

    #[test]
    fn invalid_parameters_are_refused_at_start() {
        let mut c = cheap();
        c.argon2_iterations = 0;
        assert!(matches!(Hasher::start(&c), Err(HashError::Argon2(_))));
    }
}
