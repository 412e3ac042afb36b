//! Django's password hash formats (`django.contrib.auth.hashers`), verified so imported users
//! can log in with the passwords they have; each is replaced by roster's Argon2id at the first
//! successful login. Django's `argon2$…` is Argon2 in PHC form and is handled as such by
//! [`super::StoredHash`]; the rest are here. Every primitive comes from a RustCrypto (or the
//! `bcrypt`) crate; comparisons are constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::bounds::{
    ForeignLimits, FormatError, MAX_BCRYPT_COST, MAX_PBKDF2_ITERATIONS, MAX_SALT_LEN,
    MAX_SCRYPT_PARALLELISM, MAX_SCRYPT_WORK,
};

/// The derived-key lengths Django writes: PBKDF2's is its digest's (one block: each more
/// block repeats every iteration), scrypt's is 64 bytes.
const PBKDF2_SHA256_LEN: usize = 32;
const PBKDF2_SHA1_LEN: usize = 20;
const SCRYPT_LEN: usize = 64;

/// The hashers whose hashes are weak enough that their upgrade at login is logged as a
/// warning (unsalted or fast digests, and 8-character DES crypt).
pub const WEAK_ALGORITHMS: [&str; 5] = ["md5", "unsalted_md5", "sha1", "unsalted_sha1", "crypt"];

/// A Django hash other than Argon2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DjangoHash {
    /// `pbkdf2_sha256$<iterations>$<salt>$<base64>` and `pbkdf2_sha1$…`.
    Pbkdf2 {
        sha1: bool,
        iterations: u32,
        salt: String,
        hash: Vec<u8>,
    },
    /// `bcrypt_sha256$$2b$…` (bcrypt of the hex SHA-256 of the password) and `bcrypt$$2b$…`.
    Bcrypt {
        sha256: bool,
        hash: String,
        cost: u32,
    },
    /// `scrypt$<n>$<salt>$<r>$<p>$<base64>`.
    Scrypt {
        log_n: u8,
        r: u32,
        p: u32,
        salt: String,
        hash: Vec<u8>,
    },
    /// `md5$<salt>$<hex>`: salted MD5, Django's legacy hasher; also unsalted MD5, written
    /// `md5$$<hex>` or as 32 bare hex digits (Django before 5.0). Upgraded at the first login.
    Md5 { salt: String, hash: Vec<u8> },
    /// `sha1$<salt>$<hex>` (salted SHA-1) and `sha1$$<hex>` (unsalted), Django before 5.0.
    Sha1 { salt: String, hash: Vec<u8> },
    /// `crypt$<salt>$<13 characters>`: Unix DES crypt(3), Django before 5.0 (the only kind
    /// its `CryptPasswordHasher` made: a two-character salt, which the hash repeats). Reads
    /// only the first 8 bytes of a password, as crypt(3) does.
    Crypt { hash: String },
}

impl DjangoHash {
    /// Parses the Django forms above; `None` when `stored` is none of them.
    pub fn parse(stored: &str) -> Option<Result<Self, FormatError>> {
        if stored.len() == 32
            && let Some(hash) = decode_hex(stored)
        {
            // Django's UnsaltedMD5PasswordHasher stored the bare hex digest.
            return Some(Ok(Self::Md5 {
                salt: String::new(),
                hash,
            }));
        }
        let (algorithm, rest) = stored.split_once('$')?;
        let bad = || Some(Err(FormatError::Unknown));
        Some(Ok(match algorithm {
            "pbkdf2_sha256" | "pbkdf2_sha1" => {
                let mut parts = rest.splitn(3, '$');
                let (Some(iterations), Some(salt), Some(hash)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return bad();
                };
                let (Ok(iterations), Ok(hash)) = (iterations.parse(), STANDARD.decode(hash)) else {
                    return bad();
                };
                let digest_len = if algorithm == "pbkdf2_sha1" {
                    PBKDF2_SHA1_LEN
                } else {
                    PBKDF2_SHA256_LEN
                };
                // Work is iterations × blocks: only the one block Django writes is accepted.
                if iterations == 0 || hash.len() != digest_len || salt.len() > MAX_SALT_LEN {
                    return bad();
                }
                Self::Pbkdf2 {
                    sha1: algorithm == "pbkdf2_sha1",
                    iterations,
                    salt: salt.to_owned(),
                    hash,
                }
            }
            "bcrypt_sha256" | "bcrypt" => {
                // `bcrypt$` + bcrypt's own modular-crypt string `$2b$12$` + 22 characters of
                // salt and 31 of hash: exactly 60, checked whole so that a truncated hash is
                // refused at import instead of failing at the user's login.
                let hash = rest;
                let b64 = |c: u8| c == b'.' || c == b'/' || c.is_ascii_alphanumeric();
                let shaped = hash.len() == 60
                    && ["$2a$", "$2b$", "$2y$"].iter().any(|v| hash.starts_with(v))
                    && hash.as_bytes()[6] == b'$'
                    && hash.as_bytes()[7..].iter().all(|c| b64(*c));
                if !shaped {
                    return bad();
                }
                let Some(cost) = hash.get(4..6).and_then(|c| c.parse().ok()) else {
                    return bad();
                };
                Self::Bcrypt {
                    sha256: algorithm == "bcrypt_sha256",
                    hash: hash.to_owned(),
                    cost,
                }
            }
            "scrypt" => {
                let parts: Vec<&str> = rest.splitn(5, '$').collect();
                let [n, salt, r, p, hash] = parts[..] else {
                    return bad();
                };
                let (Ok(n), Ok(r), Ok(p), Ok(hash)) = (
                    n.parse::<u64>(),
                    r.parse::<u32>(),
                    p.parse::<u32>(),
                    STANDARD.decode(hash),
                ) else {
                    return bad();
                };
                if !n.is_power_of_two()
                    || n < 2
                    || r == 0
                    || p == 0
                    || hash.len() != SCRYPT_LEN
                    || salt.len() > MAX_SALT_LEN
                {
                    return bad();
                }
                Self::Scrypt {
                    log_n: n.trailing_zeros() as u8,
                    r,
                    p,
                    salt: salt.to_owned(),
                    hash,
                }
            }
            "md5" | "sha1" => {
                let Some((salt, hex)) = rest.split_once('$') else {
                    return bad();
                };
                let len = if algorithm == "md5" { 16 } else { 20 };
                let Some(hash) = decode_hex(hex).filter(|h| h.len() == len) else {
                    return bad();
                };
                let salt = salt.to_owned();
                if algorithm == "md5" {
                    Self::Md5 { salt, hash }
                } else {
                    Self::Sha1 { salt, hash }
                }
            }
            "crypt" => {
                // Django verified with `crypt(password, hash)`: the salt is the hash's first
                // two characters, whatever the middle field says.
                let Some((_, hash)) = rest.split_once('$') else {
                    return bad();
                };
                let crypt64 = |c: u8| c == b'.' || c == b'/' || c.is_ascii_alphanumeric();
                if hash.len() != 13 || !hash.bytes().all(crypt64) {
                    // MD5- or SHA-crypt (`$1$`, `$6$`…) would only be there if written by
                    // hand: refused at import rather than verified at unbounded cost.
                    return bad();
                }
                Self::Crypt {
                    hash: hash.to_owned(),
                }
            }
            _ => return None,
        }))
    }

    /// The Django hasher name, for logs and reports.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Pbkdf2 { sha1: false, .. } => "pbkdf2_sha256",
            Self::Pbkdf2 { sha1: true, .. } => "pbkdf2_sha1",
            Self::Bcrypt { sha256: true, .. } => "bcrypt_sha256",
            Self::Bcrypt { sha256: false, .. } => "bcrypt",
            Self::Scrypt { .. } => "scrypt",
            Self::Md5 { salt, .. } if salt.is_empty() => "unsalted_md5",
            Self::Md5 { .. } => "md5",
            Self::Sha1 { salt, .. } if salt.is_empty() => "unsalted_sha1",
            Self::Sha1 { .. } => "sha1",
            Self::Crypt { .. } => "crypt",
        }
    }

    /// The digest text Django stored for a weak hash (hex for MD5 and SHA-1, the 13
    /// characters of DES crypt), or `None` for the other formats: what `--wrap-weak` puts
    /// under Argon2id at import.
    pub fn weak_digest_text(&self) -> Option<String> {
        match self {
            Self::Md5 { hash, .. } | Self::Sha1 { hash, .. } => Some(hex(hash)),
            Self::Crypt { hash } => Some(hash.clone()),
            _ => None,
        }
    }

    /// The same digest text computed from `password` (the inner step of verifying a wrapped
    /// hash); `None` for formats that are not weak.
    pub fn weak_digest_of(&self, password: &[u8]) -> Result<Option<String>, String> {
        Ok(match self {
            Self::Md5 { salt, .. } => {
                let mut md5 = md5::Md5::new();
                md5.update(salt.as_bytes());
                md5.update(password);
                Some(hex(&md5.finalize()))
            }
            Self::Sha1 { salt, .. } => {
                let mut sha1 = sha1::Sha1::new();
                sha1.update(salt.as_bytes());
                sha1.update(password);
                Some(hex(&sha1.finalize()))
            }
            Self::Crypt { hash } => {
                let salt = hash.get(..2).ok_or("crypt hash too short")?;
                #[allow(deprecated)]
                let computed =
                    crypt3_rs::crypt::unix::hash_with(salt, password).map_err(|e| e.to_string())?;
                Some(computed.to_string())
            }
            _ => None,
        })
    }

    /// The part of a weak hash a wrapped one keeps in clear (the hasher and its salt), as
    /// `<algorithm>$<salt>`; `None` for formats that are not weak.
    pub fn weak_prefix(&self) -> Option<String> {
        match self {
            Self::Md5 { salt, .. } => Some(format!("md5${salt}")),
            Self::Sha1 { salt, .. } => Some(format!("sha1${salt}")),
            Self::Crypt { hash } => Some(format!("crypt${}", hash.get(..2)?)),
            _ => None,
        }
    }

    /// Reads back [`DjangoHash::weak_prefix`]: the weak hasher with its salt, digest unknown.
    pub fn from_weak_prefix(algorithm: &str, salt: &str) -> Option<Self> {
        let salt_ok = salt.len() <= MAX_SALT_LEN && !salt.contains('$');
        match algorithm {
            "md5" if salt_ok => Some(Self::Md5 {
                salt: salt.to_owned(),
                hash: Vec::new(),
            }),
            "sha1" if salt_ok => Some(Self::Sha1 {
                salt: salt.to_owned(),
                hash: Vec::new(),
            }),
            "crypt" if salt.len() == 2 => Some(Self::Crypt {
                hash: salt.to_owned(),
            }),
            _ => None,
        }
    }

    /// Refuses parameters that would let one stored row cost unbounded time or memory.
    pub fn check_cost(&self, limits: &ForeignLimits) -> Result<(), FormatError> {
        let ok = match self {
            Self::Pbkdf2 { iterations, .. } => *iterations <= MAX_PBKDF2_ITERATIONS,
            Self::Bcrypt { cost, .. } => (4..=MAX_BCRYPT_COST).contains(cost),
            Self::Scrypt { log_n, r, p, .. } => {
                // scrypt needs 128 · N · r bytes.
                let n = 1u64.checked_shl(u32::from(*log_n));
                let bytes = n.and_then(|n| n.checked_mul(128 * u64::from(*r)));
                let work = n.and_then(|n| n.checked_mul(u64::from(*r) * u64::from(*p)));
                bytes.is_some_and(|b| b <= u64::from(limits.max_memory_kib) * 1024)
                    && work.is_some_and(|w| w <= MAX_SCRYPT_WORK)
                    && *p <= MAX_SCRYPT_PARALLELISM
            }
            Self::Md5 { .. } | Self::Sha1 { .. } | Self::Crypt { .. } => true,
        };
        if ok {
            Ok(())
        } else {
            Err(FormatError::TooCostly)
        }
    }

    /// Recomputes the hash from `password` and compares in constant time.
    pub fn verify(&self, password: &[u8]) -> Result<bool, String> {
        Ok(match self {
            Self::Pbkdf2 {
                sha1,
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                if *sha1 {
                    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(
                        password,
                        salt.as_bytes(),
                        *iterations,
                        &mut out,
                    );
                } else {
                    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                        password,
                        salt.as_bytes(),
                        *iterations,
                        &mut out,
                    );
                }
                bool::from(out.ct_eq(hash))
            }
            Self::Bcrypt { sha256, hash, .. } => {
                let input: Vec<u8> = if *sha256 {
                    hex(&sha2::Sha256::digest(password)).into_bytes()
                } else {
                    password.to_vec()
                };
                // bcrypt reads at most 72 bytes; Django's `bcrypt` module truncated longer
                // passwords silently, and so does `bcrypt::verify` — said here, not relied on.
                let input = &input[..input.len().min(72)];
                bcrypt::verify(input, hash).map_err(|e| e.to_string())?
            }
            Self::Scrypt {
                log_n,
                r,
                p,
                salt,
                hash,
            } => {
                let params = scrypt::Params::new(*log_n, *r, *p).map_err(|e| e.to_string())?;
                let mut out = vec![0u8; hash.len()];
                scrypt::scrypt(password, salt.as_bytes(), &params, &mut out)
                    .map_err(|e| e.to_string())?;
                bool::from(out.ct_eq(hash))
            }
            Self::Md5 { salt, hash } => {
                let mut md5 = md5::Md5::new();
                md5.update(salt.as_bytes());
                md5.update(password);
                bool::from(md5.finalize().as_slice().ct_eq(hash))
            }
            Self::Sha1 { salt, hash } => {
                let mut sha1 = sha1::Sha1::new();
                sha1.update(salt.as_bytes());
                sha1.update(password);
                bool::from(sha1.finalize().as_slice().ct_eq(hash))
            }
            Self::Crypt { hash } => {
                let salt = hash.get(..2).ok_or("crypt hash too short")?;
                // Deprecated for new passwords, as it should be; this only checks old ones.
                #[allow(deprecated)]
                let computed =
                    crypt3_rs::crypt::unix::hash_with(salt, password).map_err(|e| e.to_string())?;
                bool::from(computed.as_bytes().ct_eq(hash.as_bytes()))
            }
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix DES crypt reads the first 8 bytes of a password and nothing after them: Django's
    /// `CryptPasswordHasher` behaved so, and an imported user keeps that weakness only until
    /// the first login replaces the hash.
    #[test]
    fn crypt_reads_eight_bytes_as_crypt3_does() {
        // From Django 4.2 (`tests/django/hashes_legacy.jsonl`).
        let Some(Ok(hash)) = DjangoHash::parse("crypt$$FGN3T/0eNVM8o") else {
            panic!("a Django crypt hash parses");
        };
        assert_eq!(hash.algorithm(), "crypt");
        assert!(hash.verify(b"correct horse battery staple").unwrap());
        assert!(hash.verify(b"correct whatever").unwrap());
        assert!(!hash.verify(b"correcT horse battery staple").unwrap());
        assert!(!hash.verify(b"").unwrap());
    }
}
