//! Password hashing and verification, knowing nothing of accounts.
//!
//! [`Plaintext`] is what a caller hands in (zeroized on drop, never printed); the [`Hasher`]
//! pool runs `Hash` and `Verify` jobs on a fixed set of threads; [`StoredHash`] parses what
//! the database keeps and says whether it must be upgraded. The accounts domain wraps
//! `Plaintext` in its own policy-checked newtype, so dependencies point one way: accounts →
//! password, never back.

/// What verifying a stored hash may cost: the bounds, and why a hash cannot be verified.
mod bounds;
/// Django's hash formats (PBKDF2, bcrypt, scrypt, MD5).
pub mod django;
/// Which Argon2 code computes a hash: libsodium's or the `argon2` crate's.
pub mod engine;
/// Stored hash formats: parse, verify, "needs an upgrade".
mod format;
/// Argon2's block buffer, on huge pages.
mod memory;
/// The plaintext newtype.
mod plaintext;
/// The bounded worker pool.
mod pool;

pub use bounds::{ForeignLimits, FormatError};
pub use format::{StoredHash, wrap_weak};
pub use memory::BlockMemory;
pub use plaintext::Plaintext;
pub use pool::{HashError, HashSettings, Hasher, Slot, Verified};

/// The name of a stored hash's format, never the hash: `argon2id`, Django's algorithm names,
/// `unusable` (Django's `!…`), or `unknown`.
pub fn format_name(stored: &str) -> &'static str {
    if stored.starts_with('!') {
        "unusable"
    } else {
        StoredHash::parse(stored).map_or("unknown", |h| h.algorithm())
    }
}
