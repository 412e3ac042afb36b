//! What a stored hash may cost to verify, and why one cannot be: the bounds every format is
//! held to (at import and again before each verification), apart from the formats
//! themselves so that both the Argon2 side (`format.rs`) and Django's (`django.rs`) read
//! them without importing each other.

/// How much a stored hash whose parameters differ from the configured ones may cost to
/// verify. The workers keep one block buffer sized to the configured parameters; a hash made
/// with other parameters (an older `--argon2-*` setting, an imported user) gets a buffer of
/// its own for that one job, freed afterwards, so these bounds are what one job may allocate
/// and burn: at most `workers × max_memory_kib` KiB at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignLimits {
    pub max_memory_kib: u32,
    pub max_iterations: u32,
    pub max_parallelism: u32,
}

/// Why a stored hash cannot be verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the stored hash is not in a known format")]
    Unknown,
    #[error("the stored hash asks for more than the foreign-parameter limits allow")]
    TooCostly,
    /// Django's "unusable password" (`!…`): set for users who must not log in by password.
    #[error("the account has an unusable password")]
    Unusable,
}

/// The longest stored hash accepted: Django's `password` column is `VARCHAR(128)`, and every
/// hash roster or Django writes fits in it. Checked before parsing, at import and before any
/// verification, so a longer row (imported before this bound) costs nothing but the dummy.
pub const MAX_STORED_LEN: usize = 128;

/// Most Argon2 work a foreign hash may ask for, in KiB-passes (m × t; each pass fills all m
/// blocks, whatever p): twice Django's default (m=102400, t=2). Memory alone was bounded
/// before; m=128 MiB, t=16 fit every per-parameter bound and cost 1.5 s per attempt.
pub const MAX_ARGON2_WORK: u64 = 2 * 102_400 * 2;

/// Most PBKDF2 iterations a stored hash may ask for: 4× Django 5.2's 1,000,000 (Django raises
/// its default every release), about a second of one worker's time.
pub const MAX_PBKDF2_ITERATIONS: u32 = 4_000_000;
/// Highest bcrypt cost accepted (Django's default is 12; each step doubles the work).
pub const MAX_BCRYPT_COST: u32 = 16;
/// Most scrypt lanes accepted (Django's default is 5), computed one after another.
pub const MAX_SCRYPT_PARALLELISM: u32 = 16;
/// Most scrypt work accepted, N·r·p (the block mixes one verification runs): twice Django's
/// default (N=2^14, r=8, p=5). Memory (128·N·r bytes) is bounded apart, by
/// `--argon2-max-verify-memory-kib`; without this, N=2^17, r=8, p=16 fits every per-parameter
/// bound and costs 25 times the default per attempt.
pub const MAX_SCRYPT_WORK: u64 = 2 * (1 << 14) * 8 * 5;
/// The longest salt accepted: Django writes 22 characters (12 before 3.1). A salt is hashed
/// once per block of every iteration's first round: bounded, not trusted.
pub const MAX_SALT_LEN: usize = 64;
