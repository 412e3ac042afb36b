//! Compiles the vendored libsodium sources (`vendor/`, see its README) with the `cc` crate.
//!
//! Why not `libsodium-sys-stable`, libsodium's maintained binding: it builds with libsodium's
//! `./configure` and `make`, which need a shell toolbox and make on PATH. roster promises
//! `cargo test` on a machine with nothing but the Rust toolchain and a C compiler (CI checks
//! it with PATH holding only those). So this script does what libsodium's own `build.zig`
//! does — every source file with the platform's `HAVE_*` settings, no configure step —
//! for the files Argon2 needs. The SIMD files carry their own `#pragma GCC target`, so one
//! set of flags builds all of them and libsodium picks the fastest at run time.
//!
//! Only x86-64 Linux with glibc is set up (the settings below are that platform's); elsewhere
//! nothing is built and roster hashes with the `argon2` crate, as before.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=vendor");
    println!("cargo:rustc-check-cfg=cfg(sodium_argon2)");
    let cfg = |key: &str| std::env::var(key).unwrap_or_default();
    if cfg("CARGO_CFG_TARGET_ARCH") != "x86_64"
        || cfg("CARGO_CFG_TARGET_OS") != "linux"
        || cfg("CARGO_CFG_TARGET_ENV") != "gnu"
        || cfg("CARGO_CFG_TARGET_POINTER_WIDTH") != "64"
    {
        return;
    }
    let root = Path::new(&cfg("CARGO_MANIFEST_DIR")).join("vendor");
    let src = root.join("src/libsodium");
    let core = src.join("crypto_pwhash/argon2/argon2-core.c");
    let mut files = Vec::new();
    collect(&src, &mut files);
    files.retain(|f| *f != core);
    files.sort();

    // argon2-core.c maps (with MAP_POPULATE) and unmaps its whole block region on every
    // hash: 19 MiB faulted in and zeroed by the kernel each time, measured at 4–8 ms against
    // a 16 ms hash. For that one file (and no other: `sodium_malloc`'s guard pages must stay
    // real mappings) two names send the calls to `src/lib.rs`, which hands it the calling
    // worker's own reused, huge-page-backed buffer when one is lent, and maps and unmaps for
    // real otherwise. The source stays as released.
    let mut hooked = configured(&src);
    hooked
        .file(&core)
        .define("mmap", "roster_sodium_argon2_mmap")
        .define("munmap", "roster_sodium_argon2_munmap");
    let core_objects = hooked.compile_intermediates();

    let mut build = configured(&src);
    build.files(&files).objects(core_objects);
    build.compile("roster_sodium_argon2");
    println!("cargo:rustc-cfg=sodium_argon2");
}

/// A build with the platform's settings (what `./configure` finds on x86-64 glibc Linux,
/// as libsodium's own `build.zig` sets them).
fn configured(src: &Path) -> cc::Build {
    let mut build = cc::Build::new();
    build
        .include(src.join("include/sodium"))
        .include(src.join("include"))
        .flag("-fvisibility=hidden")
        .flag("-fno-strict-aliasing")
        .flag("-fno-strict-overflow")
        .flag("-fwrapv")
        .flag("-flax-vector-conversions")
        .warnings(false);
    for (name, value) in [
        ("_GNU_SOURCE", "1"),
        ("CONFIGURED", "1"),
        ("HAVE_ATOMIC_OPS", "1"),
        ("HAVE_C11_MEMORY_FENCES", "1"),
        ("HAVE_GCC_MEMORY_FENCES", "1"),
        ("HAVE_INLINE_ASM", "1"),
        ("HAVE_INTTYPES_H", "1"),
        ("HAVE_STDINT_H", "1"),
        ("HAVE_TI_MODE", "1"),
        ("NATIVE_LITTLE_ENDIAN", "1"),
        ("ASM_HIDE_SYMBOL", ".hidden"),
        ("TLS", "_Thread_local"),
        ("HAVE_CLOCK_GETTIME", "1"),
        ("HAVE_GETPID", "1"),
        ("HAVE_MADVISE", "1"),
        ("HAVE_MLOCK", "1"),
        ("HAVE_MMAP", "1"),
        ("HAVE_MPROTECT", "1"),
        ("HAVE_NANOSLEEP", "1"),
        ("HAVE_POSIX_MEMALIGN", "1"),
        ("HAVE_PTHREAD", "1"),
        ("HAVE_RAISE", "1"),
        ("HAVE_SYSCONF", "1"),
        ("HAVE_SYS_AUXV_H", "1"),
        ("HAVE_SYS_MMAN_H", "1"),
        ("HAVE_SYS_PARAM_H", "1"),
        ("HAVE_SYS_RANDOM_H", "1"),
        ("HAVE_WEAK_SYMBOLS", "1"),
        ("HAVE_CPUID", "1"),
        ("HAVE_XGETBV_ASM", "1"),
        ("HAVE_MMINTRIN_H", "1"),
        ("HAVE_EMMINTRIN_H", "1"),
        ("HAVE_PMMINTRIN_H", "1"),
        ("HAVE_TMMINTRIN_H", "1"),
        ("HAVE_SMMINTRIN_H", "1"),
        ("HAVE_AVXINTRIN_H", "1"),
        ("HAVE_AVX2INTRIN_H", "1"),
        ("HAVE_AVX512FINTRIN_H", "1"),
        ("HAVE_WMMINTRIN_H", "1"),
        ("HAVE_RDRAND", "1"),
    ] {
        build.define(name, value);
    }
    build
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("vendor/ is part of the crate") {
        let path = entry.expect("readable vendor/").path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "c") {
            out.push(path);
        }
    }
}
