use argon2::password_hash::phc::{Output, PasswordHash, Salt};
use argon2::{Algorithm, Params, Version};

use super::bounds::{ForeignLimits, FormatError, MAX_ARGON2_WORK, MAX_STORED_LEN};
use super::django::DjangoHash;

/// A stored password hash, parsed. One enum for every format roster can verify, so
/// "verify" and "does it need an upgrade" are one `match` each.
#[derive(Debug, Clone)]
pub enum StoredHash {
    /// `$argon2{id,i,d}$v=…$m=…,t=…,p=…$salt$hash`: roster's own, another system's, or
    /// Django's (`argon2$argon2id$…`, the same string behind a prefix).
    Argon2 {
        algorithm: Algorithm,
        version: Version,
        params: Params,
        salt: Vec<u8>,
        hash: Output,
        /// Written by Django (`argon2$…`), so imported: its work is bounded by
        /// [`MAX_ARGON2_WORK`] as well. roster's own PHC strings are not, so that an operator
        /// who lowers `--argon2-*` never locks out users hashed under the old setting.
        django: bool,
    },
    /// One of Django's other formats (PBKDF2, bcrypt, scrypt, salted MD5).
    Django(DjangoHash),
    /// A weak Django hash put under Argon2id at import (`import-django --wrap-weak`):
    /// `wrapped$<md5|sha1|crypt>$<salt>$<Argon2id PHC over the digest Django stored>`. It
    /// verifies by computing the old digest from the password first, then Argon2id over that;
    /// the digest itself is no longer at rest. Replaced at the first login like any import.
    Wrapped {
        inner: DjangoHash,
        outer: Box<StoredHash>,
    },
}

/// The prefix of [`StoredHash::Wrapped`].
const WRAPPED_PREFIX: &str = "wrapped$";
/// A wrapped hash is roster's own format: a weak hasher's name and salt plus an Argon2id PHC
/// string, longer than Django's column but within roster's `VARCHAR(255)`.
const MAX_WRAPPED_LEN: usize = 255;

impl StoredHash {
    /// Parses a stored hash; `Unknown` for anything roster cannot verify.
    pub fn parse(stored: &str) -> Result<Self, FormatError> {
        if let Some(rest) = stored.strip_prefix(WRAPPED_PREFIX) {
            if stored.len() > MAX_WRAPPED_LEN {
                return Err(FormatError::TooCostly);
            }
            let (algorithm, rest) = rest.split_once('$').ok_or(FormatError::Unknown)?;
            let (salt, phc) = rest.split_once('$').ok_or(FormatError::Unknown)?;
            let inner =
                DjangoHash::from_weak_prefix(algorithm, salt).ok_or(FormatError::Unknown)?;
            let outer = Self::parse_phc(phc)?;
            if outer.algorithm() != "argon2id" {
                return Err(FormatError::Unknown);
            }
            return Ok(Self::Wrapped {
                inner,
                outer: Box::new(outer),
            });
        }
        if stored.len() > MAX_STORED_LEN {
            return Err(FormatError::TooCostly);
        }
        if stored.starts_with('!') {
            return Err(FormatError::Unusable);
        }
        if let Some(phc) = stored.strip_prefix("argon2$") {
            return Self::parse_phc(&format!("${phc}")).map(|mut h| {
                if let Self::Argon2 { django, .. } = &mut h {
                    *django = true;
                }
                h
            });
        }
        if let Some(django) = DjangoHash::parse(stored) {
            return django.map(Self::Django);
        }
        Self::parse_phc(stored)
    }

    fn parse_phc(stored: &str) -> Result<Self, FormatError> {
        let phc = PasswordHash::new(stored).map_err(|_| FormatError::Unknown)?;
        let algorithm =
            Algorithm::try_from(phc.algorithm.as_str()).map_err(|_| FormatError::Unknown)?;
        let version = match phc.version {
            Some(v) => Version::try_from(v).map_err(|_| FormatError::Unknown)?,
            None => Version::V0x10,
        };
        let params = Params::try_from(&phc).map_err(|_| FormatError::Unknown)?;
        let salt = phc.salt.ok_or(FormatError::Unknown)?;
        let hash = phc.hash.ok_or(FormatError::Unknown)?;
        Ok(Self::Argon2 {
            algorithm,
            version,
            params,
            salt: salt.as_ref().to_vec(),
            hash,
            django: false,
        })
    }

    /// Django's `must_update`: anything but Argon2id v1.3 with exactly the configured
    /// parameters is rehashed at the next successful login.
    pub fn needs_rehash(&self, configured: &Params) -> bool {
        match self {
            Self::Argon2 {
                algorithm,
                version,
                params,
                ..
            } => {
                *algorithm != Algorithm::Argon2id
                    || *version != Version::V0x13
                    || !same_cost(params, configured)
            }
            Self::Django(_) | Self::Wrapped { .. } => true,
        }
    }

    /// The format's name, for logs and reports (`argon2id`, `pbkdf2_sha256`, …).
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Argon2 { algorithm, .. } => algorithm.as_str(),
            Self::Django(d) => d.algorithm(),
            Self::Wrapped { inner, .. } => match inner.algorithm() {
                "md5" => "wrapped_md5",
                "unsalted_md5" => "wrapped_unsalted_md5",
                "sha1" => "wrapped_sha1",
                "unsalted_sha1" => "wrapped_unsalted_sha1",
                _ => "wrapped_crypt",
            },
        }
    }

    /// Whether the worker's own buffer (sized for `configured`) fits this hash.
    pub(super) fn uses_configured_memory(&self, configured: &Params) -> bool {
        match self {
            Self::Argon2 { params, .. } => {
                params.m_cost() == configured.m_cost() && params.p_cost() == configured.p_cost()
            }
            Self::Django(_) => false,
            Self::Wrapped { outer, .. } => outer.uses_configured_memory(configured),
        }
    }

    /// Refuses parameters beyond `limits` (unless they are the configured ones).
    pub fn check_cost(
        &self,
        configured: &Params,
        limits: &ForeignLimits,
    ) -> Result<(), FormatError> {
        match self {
            Self::Argon2 { params, django, .. } => {
                if same_cost(params, configured)
                    || (params.m_cost() <= limits.max_memory_kib.max(configured.m_cost())
                        && params.t_cost() <= limits.max_iterations.max(configured.t_cost())
                        && params.p_cost() <= limits.max_parallelism.max(configured.p_cost())
                        && (!*django || within_work(params, configured)))
                {
                    Ok(())
                } else {
                    Err(FormatError::TooCostly)
                }
            }
            Self::Django(d) => d.check_cost(limits),
            Self::Wrapped { outer, .. } => outer.check_cost(configured, limits),
        }
    }

    /// [`StoredHash::check_cost`], and at import also the work bound for every Argon2 row:
    /// only hashes roster wrote itself are exempt from it, and an import writes none.
    pub fn check_import_cost(
        &self,
        configured: &Params,
        limits: &ForeignLimits,
    ) -> Result<(), FormatError> {
        self.check_cost(configured, limits)?;
        match self {
            Self::Argon2 { params, .. } if !within_work(params, configured) => {
                Err(FormatError::TooCostly)
            }
            _ => Ok(()),
        }
    }
}

/// `import-django --wrap-weak`: puts a weak Django hash (salted or unsalted MD5 or SHA-1,
/// DES crypt) under Argon2id with `params`, without the password — Argon2id over the digest
/// Django stored, so the weak digest is no longer at rest and a guess costs an Argon2id.
/// `Ok(None)` for any other format. Costs one Argon2id hash.
pub fn wrap_weak(stored: &str, params: &Params) -> Result<Option<String>, String> {
    let Ok(StoredHash::Django(django)) = StoredHash::parse(stored) else {
        return Ok(None);
    };
    let (Some(text), Some(prefix)) = (django.weak_digest_text(), django.weak_prefix()) else {
        return Ok(None);
    };
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    super::engine::compute(
        Algorithm::Argon2id,
        Version::V0x13,
        params,
        text.as_bytes(),
        &salt,
        &mut out,
        None,
    )?;
    let phc = encode(Algorithm::Argon2id, params, &salt, &out)?;
    // `wrapped$md5$<salt>$` + `$argon2id$…`: the salt ends at the first `$` after it.
    Ok(Some(format!("{WRAPPED_PREFIX}{prefix}${phc}")))
}

/// Argon2 work (m × t KiB-passes) within [`MAX_ARGON2_WORK`], or no more than the
/// configured parameters'.
fn within_work(params: &Params, configured: &Params) -> bool {
    let work = |p: &Params| u64::from(p.m_cost()) * u64::from(p.t_cost());
    same_cost(params, configured) || work(params) <= MAX_ARGON2_WORK.max(work(configured))
}

fn same_cost(a: &Params, b: &Params) -> bool {
    a.m_cost() == b.m_cost()
        && a.t_cost() == b.t_cost()
        && a.p_cost() == b.p_cost()
        && a.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
            == b.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
}

/// A PHC string that verifies nothing: configured parameters, a random salt and a random
/// "hash". Verifying against it costs exactly what verifying a real hash costs, which is
/// what a login for an unknown identifier must spend so it cannot be told apart by time.
pub(super) fn dummy(params: &Params) -> Result<String, String> {
    let mut salt = [0u8; 16];
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    getrandom::fill(&mut out).map_err(|e| e.to_string())?;
    encode(Algorithm::Argon2id, params, &salt, &out)
}

/// Encodes an Argon2 PHC string.
pub(super) fn encode(
    algorithm: Algorithm,
    params: &Params,
    salt: &[u8],
    out: &[u8],
) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let phc = PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(Version::V0x13.into()),
        params: argon2::password_hash::phc::ParamsString::try_from(params).map_err(|e| err(&e))?,
        salt: Some(Salt::new(salt).map_err(|e| err(&e))?),
        hash: Some(Output::new(out).map_err(|e| err(&e))?),
    };
    Ok(phc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(m: u32, t: u32, p: u32) -> Params {
        Params::new(m, t, p, None).unwrap()
    }

    #[test]
    fn parses_roster_hashes_and_knows_when_to_upgrade() {
        let configured = params(64, 1, 1);
        let own = dummy(&configured).unwrap();
        let parsed = StoredHash::parse(&own).unwrap();
        assert!(!parsed.needs_rehash(&configured));
        assert!(parsed.needs_rehash(&params(128, 1, 1)));
        assert!(parsed.needs_rehash(&params(64, 2, 1)));
        let argon2i = own.replacen("$argon2id$", "$argon2i$", 1);
        assert!(
            StoredHash::parse(&argon2i)
                .unwrap()
                .needs_rehash(&configured)
        );
    }

    #[test]
    fn unknown_formats_are_refused() {
        for s in [
            "",
            "plain",
            "pbkdf2_sha256$1$salt$not base64!",
            "bcrypt$$nothing",
            "sha1$$a94a8fe5",
            "$argon2id$v=19$m=64,t=1,p=1$",
        ] {
            assert_eq!(
                StoredHash::parse(s).unwrap_err(),
                FormatError::Unknown,
                "{s:?}"
            );
        }
    }

    /// The work bound (m × t) holds for Django's `argon2$…` rows and at import, never for
    /// roster's own PHC strings: an operator who lowers `--argon2-*` must not lock out the
    /// users hashed under the old, costlier setting.
    #[test]
    fn argon2_work_is_bounded_for_django_rows_and_imports_only() {
        let configured = params(64, 1, 1);
        let limits = ForeignLimits {
            max_memory_kib: 262_144,
            max_iterations: 16,
            max_parallelism: 16,
        };
        let costly = dummy(&params(131_072, 4, 1)).unwrap();
        let own = StoredHash::parse(&costly).unwrap();
        assert_eq!(own.check_cost(&configured, &limits), Ok(()));
        assert_eq!(
            own.check_import_cost(&configured, &limits),
            Err(FormatError::TooCostly)
        );
        let django = StoredHash::parse(&format!("argon2{costly}")).unwrap();
        assert_eq!(
            django.check_cost(&configured, &limits),
            Err(FormatError::TooCostly)
        );
    }

    /// `--wrap-weak`: the wrapped hash keeps no weak digest and parses back as roster's own
    /// format, bounded like its Argon2id.
    #[test]
    fn a_wrapped_weak_hash_parses_and_keeps_no_digest() {
        let configured = params(64, 1, 1);
        let md5 = "md5$KDYc5FiWVChszsmNJtuhLF$aaefbf33530fce9ef8412a5b2860ea43";
        let wrapped = wrap_weak(md5, &configured).unwrap().unwrap();
        assert!(
            wrapped.starts_with("wrapped$md5$KDYc5FiWVChszsmNJtuhLF$$argon2id$"),
            "{wrapped}"
        );
        assert!(!wrapped.contains("aaefbf33530fce9ef8412a5b2860ea43"));
        let parsed = StoredHash::parse(&wrapped).unwrap();
        assert_eq!(parsed.algorithm(), "wrapped_md5");
        assert!(parsed.needs_rehash(&configured));
        let pbkdf2 = "pbkdf2_sha256$1000$abcdefghijkl$nXZKJRs6q0HmvN4cF5e5WYL1JJ2EVmZJEdN1vIfTbJk=";
        assert_eq!(wrap_weak(pbkdf2, &configured).unwrap(), None, "not weak");
    }

    #[test]
    fn foreign_parameters_are_bounded() {
        let configured = params(64, 1, 1);
        let limits = ForeignLimits {
            max_memory_kib: 1024,
            max_iterations: 4,
            max_parallelism: 2,
        };
        let within = StoredHash::parse(&dummy(&params(1024, 4, 2)).unwrap()).unwrap();
        assert_eq!(within.check_cost(&configured, &limits), Ok(()));
        for too_much in [params(2048, 1, 1), params(64, 5, 1), params(64, 1, 3)] {
            let h = StoredHash::parse(&dummy(&too_much).unwrap()).unwrap();
            assert_eq!(
                h.check_cost(&configured, &limits),
                Err(FormatError::TooCostly)
            );
        }
    }
}
