//! `--argon2-*` and `--hash-*`: the hash pool's settings, built into the domain's type.

use clap::Args;

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
    /// The hash pool's settings: the configured Argon2id parameters (validated by the
    /// `argon2` crate), the workers (`0` resolved to the core count), the queue, and what a
    /// stored hash with foreign parameters may cost: memory as set, at most 16 iterations
    /// and 16 lanes (Django's Argon2 default is t=2, p=8), or the configured values when
    /// those are higher.
    pub fn settings(&self) -> Result<crate::password::HashSettings, String> {
        let params = argon2::Params::new(
            self.argon2_memory_kib,
            self.argon2_iterations,
            self.argon2_parallelism,
            None,
        )
        .map_err(|e| format!("argon2 parameters: {e}"))?;
        let workers = if self.hash_workers > 0 {
            self.hash_workers
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        };
        Ok(crate::password::HashSettings {
            params,
            workers,
            queue: self.hash_queue,
            limits: crate::password::ForeignLimits {
                max_memory_kib: self.argon2_max_verify_memory_kib,
                max_iterations: 16,
                max_parallelism: 16,
            },
        })
    }
}
