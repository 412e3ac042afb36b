//! Which code computes an Argon2 hash: libsodium's where it can, the `argon2` crate otherwise.
//!
//! Why two: libsodium's block function is hand-vectorized (AVX-512F, AVX2, SSSE3, picked at
//! run time) and computes the same bytes in about four fifths of the crate's time on the
//! machines roster is measured on (docs/benchmarks.md); hashing is nearly all of a sign-up's
//! or login's cost. libsodium implements Argon2i and Argon2id version 1.3 only, and is built
//! on x86-64 glibc Linux only (`libsodium/build.rs`); Argon2d, version 1.0 (0x10) and every other
//! platform stay with the crate, which is also what the tests hold libsodium to.

use argon2::{Algorithm, Argon2, Block, Params, Version};

/// The code that computes a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// libsodium's, with the block function it picked for this CPU (`avx512f`, `avx2`, …).
    Libsodium(&'static str),
    /// The `argon2` crate's.
    Crate,
}

impl Implementation {
    /// The one roster's own hashes use in this process: libsodium where it is built. Decided
    /// once (every hash asks).
    pub fn preferred() -> Self {
        static PREFERRED: std::sync::OnceLock<Implementation> = std::sync::OnceLock::new();
        *PREFERRED
            .get_or_init(|| sodium_argon2::implementation().map_or(Self::Crate, Self::Libsodium))
    }

    /// For the start-up line and the metric's label: `libsodium-avx512f`, `argon2-crate`, ….
    pub fn name(self) -> String {
        match self {
            Self::Libsodium(simd) => format!("libsodium-{simd}"),
            Self::Crate => "argon2-crate".to_owned(),
        }
    }

    /// Whether this implementation can compute `algorithm` at `version`.
    fn computes(self, algorithm: Algorithm, version: Version) -> bool {
        match self {
            Self::Libsodium(_) => {
                version == Version::V0x13
                    && matches!(algorithm, Algorithm::Argon2id | Algorithm::Argon2i)
            }
            Self::Crate => true,
        }
    }
}

/// Computes Argon2 of `password` and `salt` into `out` with [`Implementation::preferred`]
/// where it computes this variant, else with the crate. `blocks`, when it holds the hash's
/// blocks, is where they are written (the worker's reused buffer); otherwise the call gets
/// memory of its own.
pub fn compute(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    blocks: Option<&mut [Block]>,
) -> Result<(), String> {
    compute_with(
        Implementation::preferred(),
        algorithm,
        version,
        params,
        password,
        salt,
        out,
        blocks,
    )
    .map(|_| ())
}

/// [`compute`] with the implementation chosen by the caller (the tests and the benchmark
/// compare the two); where it cannot compute this hash, the crate does. Answers which one
/// did.
#[allow(clippy::too_many_arguments)] // Argon2's own inputs, each needed.
pub fn compute_with(
    implementation: Implementation,
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    mut blocks: Option<&mut [Block]>,
) -> Result<Implementation, String> {
    // roster never sets Argon2's key or associated data (a PHC string cannot carry them);
    // libsodium refuses outputs under 16 bytes, which a stored PHC string may have (10+).
    let plain = params.keyid().is_empty() && params.data().is_empty() && out.len() >= 16;
    if let Implementation::Libsodium(_) = implementation
        && implementation.computes(algorithm, version)
        && plain
    {
        let variant = match algorithm {
            Algorithm::Argon2i => sodium_argon2::Variant::Argon2i,
            Algorithm::Argon2id => sodium_argon2::Variant::Argon2id,
            Algorithm::Argon2d => unreachable!("`computes` keeps Argon2d with the crate"),
        };
        let input = sodium_argon2::Input {
            password,
            salt,
            secret: &[],
            associated_data: &[],
            t_cost: params.t_cost(),
            m_cost_kib: params.m_cost(),
            lanes: params.p_cost(),
        };
        let memory = blocks
            .as_deref_mut()
            .filter(|b| b.len() >= params.block_count())
            .map(as_bytes);
        match sodium_argon2::hash(variant, &input, out, memory) {
            Ok(()) => return Ok(implementation),
            // Not built for this target: the crate computes it below.
            Err(sodium_argon2::Error::Unavailable) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let argon2 = Argon2::new(algorithm, version, params.clone());
    match blocks.filter(|b| b.len() >= params.block_count()) {
        Some(blocks) => argon2.hash_password_into_with_memory(password, salt, out, blocks),
        // A one-off buffer: no huge-page advice, which could stall this call in compaction.
        None => argon2.hash_password_into_with_memory(
            password,
            salt,
            out,
            vec![Block::default(); params.block_count()],
        ),
    }
    .map_err(|e| e.to_string())?;
    Ok(Implementation::Crate)
}

/// The blocks as the bytes libsodium writes them in.
fn as_bytes(blocks: &mut [Block]) -> &mut [u8] {
    let len = std::mem::size_of_val(blocks);
    // SAFETY: `Block` is 128 `u64`s with no padding (`size_of::<Block>() == 1024`), so the
    // slice is `len` initialized bytes; every byte pattern is a valid `u64`, so whatever
    // libsodium writes leaves valid `Block`s. The borrow is carried over, so nothing else
    // sees the memory meanwhile.
    unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u8>(), len) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn both(
        algorithm: Algorithm,
        version: Version,
        params: &Params,
        password: &[u8],
        salt: &[u8],
    ) -> (Vec<u8>, Vec<u8>) {
        let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let (mut crate_out, mut sodium_out) = (vec![0u8; len], vec![0u8; len]);
        compute_with(
            Implementation::Crate,
            algorithm,
            version,
            params,
            password,
            salt,
            &mut crate_out,
            None,
        )
        .unwrap();
        // A lent buffer holding a pattern, to see that libsodium wrote its blocks there.
        const PATTERN: u64 = 0xA5A5_A5A5_A5A5_A5A5;
        let mut blocks = vec![Block::default(); params.block_count()];
        for block in &mut blocks {
            block.as_mut().fill(PATTERN);
        }
        let used = compute_with(
            Implementation::preferred(),
            algorithm,
            version,
            params,
            password,
            salt,
            &mut sodium_out,
            Some(&mut blocks),
        )
        .unwrap();
        let libsodium_can = matches!(Implementation::preferred(), Implementation::Libsodium(_))
            && version == Version::V0x13
            && algorithm != Algorithm::Argon2d
            && len >= 16;
        if libsodium_can {
            assert_eq!(used, Implementation::preferred(), "libsodium computed it");
            assert!(
                blocks
                    .iter()
                    .all(|b| b.as_ref().iter().any(|&w| w != PATTERN)),
                "libsodium wrote every block in the lent buffer"
            );
        } else {
            assert_eq!(used, Implementation::Crate);
        }
        (crate_out, sodium_out)
    }

    #[test]
    fn libsodium_is_preferred_where_it_is_built() {
        if cfg!(all(
            target_arch = "x86_64",
            target_os = "linux",
            target_env = "gnu"
        )) {
            assert!(
                matches!(Implementation::preferred(), Implementation::Libsodium(_)),
                "{:?}",
                Implementation::preferred()
            );
        }
    }

    /// RFC 9106's Argon2id vector has a key and associated data, which roster never uses:
    /// `sodium_argon2`'s own tests hold libsodium to it. Here: roster's parameters
    /// (m=19456, t=2, p=1), against the reference implementation's output (argon2-cffi
    /// 25.1, `hash_secret_raw(b"password", b"somesaltsomesalt", 2, 19456, 1, 32, ID)`),
    /// through both implementations.
    #[test]
    fn roster_parameters_give_the_reference_output_on_both() {
        let params = Params::new(19456, 2, 1, Some(32)).unwrap();
        let (a, b) = both(
            Algorithm::Argon2id,
            Version::V0x13,
            &params,
            b"password",
            b"somesaltsomesalt",
        );
        assert_eq!(
            hex(&a),
            "2b5dc4054886ec957ef59c73b661c54dd6fb274590b278f657c6d96aac8fa6d1"
        );
        assert_eq!(a, b);
    }

    /// Django's argon2-cffi defaults (p=8, more memory) and Argon2i: libsodium computes
    /// them too, and identically.
    #[test]
    fn lanes_and_argon2i_agree_too() {
        let params = Params::new(1024, 2, 8, Some(32)).unwrap();
        for algorithm in [Algorithm::Argon2id, Algorithm::Argon2i] {
            let (a, b) = both(algorithm, Version::V0x13, &params, b"pw", b"saltsaltsalt");
            assert_eq!(a, b, "{algorithm:?}");
        }
        // Argon2d and version 0x10 are the crate's alone: both calls take it.
        for (algorithm, version) in [
            (Algorithm::Argon2d, Version::V0x13),
            (Algorithm::Argon2id, Version::V0x10),
        ] {
            let (a, b) = both(algorithm, version, &params, b"pw", b"saltsaltsalt");
            assert_eq!(a, b, "{algorithm:?} {version:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any password and salt, small costs of every shape: the same bytes.
        #[test]
        fn both_implementations_agree_byte_for_byte(
            password in proptest::collection::vec(any::<u8>(), 0..80),
            salt in proptest::collection::vec(any::<u8>(), 8..40),
            m in 8u32..300,
            t in 1u32..4,
            p in 1u32..3,
            // 4 is the crate's least; under 16 libsodium declines and the crate computes.
            out_len in 4usize..80,
            argon2i in any::<bool>(),
        ) {
            let m = m.max(8 * p);
            let params = Params::new(m, t, p, Some(out_len)).unwrap();
            let algorithm = if argon2i { Algorithm::Argon2i } else { Algorithm::Argon2id };
            let (a, b) = both(algorithm, Version::V0x13, &params, &password, &salt);
            prop_assert_eq!(a, b);
        }
    }
}
