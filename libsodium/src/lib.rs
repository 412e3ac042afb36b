//! libsodium's Argon2i and Argon2id (version 1.3), built from the vendored release sources
//! (`vendor/`) by `build.rs`, for roster's password hashing.
//!
//! Why libsodium and not only the `argon2` crate: its block function is written by hand for
//! SSSE3, AVX2 and AVX-512F and picked at run time for the CPU at hand; on the machines
//! roster is measured on it hashes the same bytes in about four fifths of the crate's time
//! (docs/benchmarks.md). The output is Argon2 itself, byte for byte (the tests hold both to
//! RFC 9106 and to each other).
//!
//! What it adds to libsodium: the caller may lend the memory the blocks are written in (see
//! [`hash`]), so a worker hashes in one buffer of its own, reused, instead of a mapping
//! made, faulted in and unmapped by every call.
//!
//! Built on x86-64 glibc Linux only ([`available`]); elsewhere every call answers
//! [`Error::Unavailable`] and the caller uses its other implementation.

use std::fmt;

/// The size of an Argon2 block: the unit of the memory cost (KiB).
pub const BLOCK_SIZE: usize = 1024;

/// The two variants libsodium implements (Argon2d it does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Argon2i,
    Argon2id,
}

/// What to hash, as Argon2 defines its inputs (RFC 9106, section 3.1).
#[derive(Clone, Copy)]
pub struct Input<'a> {
    pub password: &'a [u8],
    pub salt: &'a [u8],
    /// The optional key K (empty for none).
    pub secret: &'a [u8],
    /// The optional associated data X (empty for none).
    pub associated_data: &'a [u8],
    /// Passes (t).
    pub t_cost: u32,
    /// Memory in KiB (m).
    pub m_cost_kib: u32,
    /// Lanes (p). Computed one after the other on the calling thread.
    pub lanes: u32,
}

impl fmt::Debug for Input<'_> {
    // Never the password or the key: a `{:?}` in a log must not print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input")
            .field("salt_len", &self.salt.len())
            .field("t_cost", &self.t_cost)
            .field("m_cost_kib", &self.m_cost_kib)
            .field("lanes", &self.lanes)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// libsodium is not built for this target.
    Unavailable,
    /// libsodium refused: Argon2's error code (`argon2.h`), e.g. -6 for a salt under 8 bytes.
    Argon2(i32),
    /// A length does not fit Argon2's 32-bit fields.
    TooLong,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable => f.write_str("libsodium's Argon2 is not built for this target"),
            Self::Argon2(code) => write!(f, "libsodium's Argon2 refused the input (code {code})"),
            Self::TooLong => f.write_str("an Argon2 input is longer than 2^32 - 1 bytes"),
        }
    }
}

impl std::error::Error for Error {}

/// Whether libsodium's Argon2 is built into this program (x86-64 glibc Linux).
pub fn available() -> bool {
    cfg!(sodium_argon2)
}

/// The block function libsodium uses on this CPU (`avx512f`, `avx2`, `ssse3` or `ref`), as
/// its own start-up picks it; `None` where it is not built.
pub fn implementation() -> Option<&'static str> {
    imp::implementation()
}

/// Computes Argon2 (version 1.3) of `input` into `out` (at least 16 bytes).
///
/// `memory`, when given, is where the blocks are written if it holds them all (m KiB, as
/// Argon2 rounds it: down to a multiple of 4 × lanes, at least 8 × lanes); otherwise, and
/// without it, libsodium maps memory of its own for the call. Whatever it held before is
/// irrelevant (Argon2 writes every block before reading it) and what it holds after is the
/// last pass's blocks: the caller decides whether to wipe or reuse it.
pub fn hash(
    variant: Variant,
    input: &Input<'_>,
    out: &mut [u8],
    memory: Option<&mut [u8]>,
) -> Result<(), Error> {
    imp::hash(variant, input, out, memory)
}

#[cfg(sodium_argon2)]
mod imp {
    use super::{Error, Input, Variant};
    use std::cell::Cell;
    use std::ffi::{c_int, c_void};
    use std::sync::OnceLock;

    /// `argon2_context` from `vendor/src/libsodium/crypto_pwhash/argon2/argon2.h`.
    #[repr(C)]
    struct Context {
        out: *mut u8,
        outlen: u32,
        pwd: *mut u8,
        pwdlen: u32,
        salt: *mut u8,
        saltlen: u32,
        secret: *mut u8,
        secretlen: u32,
        ad: *mut u8,
        adlen: u32,
        t_cost: u32,
        m_cost: u32,
        lanes: u32,
        threads: u32,
        flags: u32,
    }

    // `argon2_type` (argon2.h).
    const ARGON2_I: c_int = 1;
    const ARGON2_ID: c_int = 2;
    const ARGON2_OK: c_int = 0;

    unsafe extern "C" {
        fn sodium_init() -> c_int;
        fn sodium_runtime_has_avx512f() -> c_int;
        fn sodium_runtime_has_avx2() -> c_int;
        fn sodium_runtime_has_ssse3() -> c_int;
        fn argon2_ctx(context: *mut Context, kind: c_int) -> c_int;
    }

    /// `sodium_init` detects the CPU's features and picks every primitive's implementation;
    /// before it, Argon2 runs the portable code. Once per process (it is itself idempotent
    /// and thread-safe; this only saves the lock).
    fn init() -> bool {
        static DONE: OnceLock<bool> = OnceLock::new();
        // SAFETY: no arguments; libsodium documents it as safe to call from any thread.
        *DONE.get_or_init(|| unsafe { sodium_init() } >= 0)
    }

    pub fn implementation() -> Option<&'static str> {
        if !init() {
            return None;
        }
        // SAFETY: read-only queries of the features `sodium_init` recorded. The order is
        // `argon2_pick_best_implementation`'s (argon2-core.c).
        let name = unsafe {
            if sodium_runtime_has_avx512f() != 0 {
                "avx512f"
            } else if sodium_runtime_has_avx2() != 0 {
                "avx2"
            } else if sodium_runtime_has_ssse3() != 0 {
                "ssse3"
            } else {
                "ref"
            }
        };
        Some(name)
    }

    thread_local! {
        /// The memory the running call on this thread may use: (start, bytes).
        static LENT: Cell<(*mut u8, usize)> = const { Cell::new((std::ptr::null_mut(), 0)) };
        /// The lent memory once argon2-core.c has taken it, so its unmap is not real.
        static TAKEN: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
    }

    /// Clears the loan when the call ends, however it ends; holds the borrow of the lent
    /// memory as long as libsodium may use it.
    struct Loan<'a>(std::marker::PhantomData<&'a mut [u8]>);

    impl<'a> Loan<'a> {
        fn new(memory: Option<&'a mut [u8]>) -> Self {
            let lent = memory.map_or((std::ptr::null_mut(), 0), |m| (m.as_mut_ptr(), m.len()));
            LENT.with(|l| l.set(lent));
            TAKEN.with(|t| t.set(std::ptr::null_mut()));
            Self(std::marker::PhantomData)
        }
    }

    impl Drop for Loan<'_> {
        fn drop(&mut self) {
            LENT.with(|l| l.set((std::ptr::null_mut(), 0)));
            TAKEN.with(|t| t.set(std::ptr::null_mut()));
        }
    }

    /// argon2-core.c's `mmap` (see build.rs): the lent memory if it is large enough and not
    /// yet taken, else a real mapping with the caller's arguments.
    ///
    /// # Safety
    /// Called by libsodium with `mmap`'s contract.
    #[unsafe(no_mangle)]
    unsafe extern "C" fn roster_sodium_argon2_mmap(
        addr: *mut c_void,
        len: libc::size_t,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        offset: libc::off_t,
    ) -> *mut c_void {
        let lent = LENT
            .try_with(Cell::get)
            .unwrap_or((std::ptr::null_mut(), 0));
        if !lent.0.is_null() && len <= lent.1 {
            LENT.with(|l| l.set((std::ptr::null_mut(), 0)));
            TAKEN.with(|t| t.set(lent.0));
            return lent.0.cast();
        }
        // SAFETY: forwarded unchanged; the caller keeps `mmap`'s contract.
        unsafe { libc::mmap(addr, len, prot, flags, fd, offset) }
    }

    /// argon2-core.c's `munmap`: nothing for the lent memory (its owner keeps it), a real
    /// unmap for anything else.
    ///
    /// # Safety
    /// Called by libsodium with `munmap`'s contract.
    #[unsafe(no_mangle)]
    unsafe extern "C" fn roster_sodium_argon2_munmap(
        addr: *mut c_void,
        len: libc::size_t,
    ) -> c_int {
        let taken = TAKEN.try_with(Cell::get).unwrap_or(std::ptr::null_mut());
        if !addr.is_null() && addr.cast::<u8>() == taken {
            TAKEN.with(|t| t.set(std::ptr::null_mut()));
            return 0;
        }
        // SAFETY: forwarded unchanged; the caller keeps `munmap`'s contract.
        unsafe { libc::munmap(addr, len) }
    }

    fn len32(bytes: &[u8]) -> Result<u32, Error> {
        u32::try_from(bytes.len()).map_err(|_| Error::TooLong)
    }

    /// A pointer libsodium may be handed for `bytes`: null for an empty slice, as Argon2's
    /// checks expect (a non-null pointer with length 0 is fine too, but null is plainer).
    fn ptr(bytes: &[u8]) -> *mut u8 {
        if bytes.is_empty() {
            std::ptr::null_mut()
        } else {
            // libsodium only reads these (flags 0: it clears neither password nor key).
            bytes.as_ptr().cast_mut()
        }
    }

    pub fn hash(
        variant: Variant,
        input: &Input<'_>,
        out: &mut [u8],
        memory: Option<&mut [u8]>,
    ) -> Result<(), Error> {
        if !init() {
            return Err(Error::Unavailable);
        }
        let mut context = Context {
            out: out.as_mut_ptr(),
            outlen: len32(out)?,
            pwd: ptr(input.password),
            pwdlen: len32(input.password)?,
            salt: ptr(input.salt),
            saltlen: len32(input.salt)?,
            secret: ptr(input.secret),
            secretlen: len32(input.secret)?,
            ad: ptr(input.associated_data),
            adlen: len32(input.associated_data)?,
            t_cost: input.t_cost,
            m_cost: input.m_cost_kib,
            lanes: input.lanes,
            threads: 1,
            flags: 0,
        };
        let kind = match variant {
            Variant::Argon2i => ARGON2_I,
            Variant::Argon2id => ARGON2_ID,
        };
        let _loan = Loan::new(memory);
        // SAFETY: every pointer in `context` is valid for its length for the whole call
        // (borrowed from `input` and `out`), libsodium writes only `outlen` bytes of `out`
        // and, through the loan, at most the lent memory's length (a larger request gets a
        // real mapping); it validates every field and runs on this thread only (threads 1).
        let code = unsafe { argon2_ctx(&mut context, kind) };
        if code == ARGON2_OK {
            Ok(())
        } else {
            Err(Error::Argon2(code))
        }
    }
}

#[cfg(not(sodium_argon2))]
mod imp {
    use super::{Error, Input, Variant};

    pub fn implementation() -> Option<&'static str> {
        None
    }

    pub fn hash(
        _: Variant,
        _: &Input<'_>,
        _: &mut [u8],
        _: Option<&mut [u8]>,
    ) -> Result<(), Error> {
        Err(Error::Unavailable)
    }
}

#[cfg(all(test, sodium_argon2))]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 9106's inputs (section 5): a key and associated data, 4 lanes.
    const RFC_9106: Input<'static> = Input {
        password: &[0x01; 32],
        salt: &[0x02; 16],
        secret: &[0x03; 8],
        associated_data: &[0x04; 12],
        t_cost: 3,
        m_cost_kib: 32,
        lanes: 4,
    };

    /// RFC 9106, section 5.3: Argon2id.
    #[test]
    fn rfc_9106_argon2id_test_vector() {
        let input = RFC_9106;
        let mut out = [0u8; 32];
        hash(Variant::Argon2id, &input, &mut out, None).unwrap();
        assert_eq!(
            hex(&out),
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
        );
        // The same in lent memory, and in lent memory too small (a mapping of its own).
        let mut memory = vec![0xAAu8; 32 * BLOCK_SIZE];
        let mut again = [0u8; 32];
        hash(Variant::Argon2id, &input, &mut again, Some(&mut memory)).unwrap();
        assert_eq!(again, out);
        assert!(
            memory.iter().any(|&b| b != 0xAA),
            "the lent memory was used"
        );
        let mut small = vec![0u8; 16 * BLOCK_SIZE];
        hash(Variant::Argon2id, &input, &mut again, Some(&mut small)).unwrap();
        assert_eq!(again, out);
        assert!(small.iter().all(|&b| b == 0), "too small: left alone");
    }

    /// RFC 9106, section 5.2: Argon2i.
    #[test]
    fn rfc_9106_argon2i_test_vector() {
        let input = RFC_9106;
        let mut out = [0u8; 32];
        hash(Variant::Argon2i, &input, &mut out, None).unwrap();
        assert_eq!(
            hex(&out),
            "c814d9d1dc7f37aa13f0d77f2494bda1c8de6b016dd388d29952a4c4672b6ce8"
        );
    }

    #[test]
    fn refusals_are_errors_not_crashes() {
        let input = Input {
            password: b"password",
            salt: b"short",
            secret: &[],
            associated_data: &[],
            t_cost: 1,
            m_cost_kib: 8,
            lanes: 1,
        };
        let mut out = [0u8; 32];
        // ARGON2_SALT_TOO_SHORT.
        assert_eq!(
            hash(Variant::Argon2id, &input, &mut out, None),
            Err(Error::Argon2(-6))
        );
        let input = Input {
            salt: b"saltsalt",
            t_cost: 0,
            ..input
        };
        // ARGON2_TIME_TOO_SMALL.
        assert_eq!(
            hash(Variant::Argon2id, &input, &mut out, None),
            Err(Error::Argon2(-12))
        );
        let input = Input { t_cost: 1, ..input };
        // ARGON2_OUTPUT_TOO_SHORT.
        assert_eq!(
            hash(Variant::Argon2id, &input, &mut out[..8], None),
            Err(Error::Argon2(-2))
        );
        assert!(implementation().is_some());
    }
}
