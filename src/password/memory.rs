//! The block buffer an Argon2 worker hashes in, backed by transparent huge pages where the
//! kernel offers them.
//!
//! Why not a plain `vec![Block::default(); n]`: Argon2 reads a pseudo-random earlier block
//! for every block it writes, so with 4 KiB pages nearly every reference is a TLB miss — and
//! on a virtual machine a miss walks two page tables. With 2 MiB pages the 2 MiB-aligned
//! part of the 19 MiB buffer (nearly all of it) needs about ten TLB entries. Most distributions set transparent huge pages to
//! `madvise`, so the buffer must ask for them, and must ask *before* its pages are first
//! touched (zeroing a `Vec` would fault them in as small pages). No crate does this for
//! `argon2::Block`, hence these few lines; the hashing itself is the `argon2` crate's.

use argon2::Block;

/// Anonymous memory for `len` Argon2 blocks, zeroed by the kernel, unmapped on drop.
pub struct BlockMemory {
    #[cfg(target_os = "linux")]
    map: Mapping,
    #[cfg(not(target_os = "linux"))]
    blocks: Vec<Block>,
}

impl BlockMemory {
    /// Memory for `len` blocks. Falls back to an ordinary allocation if the kernel refuses
    /// the mapping (it never refuses the advice: a kernel without huge pages ignores it).
    pub fn new(len: usize) -> Self {
        #[cfg(target_os = "linux")]
        {
            Self {
                map: Mapping::new(len),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            Self {
                blocks: vec![Block::default(); len],
            }
        }
    }
}

impl AsMut<[Block]> for BlockMemory {
    fn as_mut(&mut self) -> &mut [Block] {
        #[cfg(target_os = "linux")]
        {
            self.map.blocks()
        }
        #[cfg(not(target_os = "linux"))]
        {
            &mut self.blocks
        }
    }
}

#[cfg(target_os = "linux")]
enum Mapping {
    Mapped {
        ptr: std::ptr::NonNull<Block>,
        len: usize,
        bytes: usize,
    },
    Heap(Vec<Block>),
}

// SAFETY: the mapping is owned by this value alone (like a `Vec`): moving it to another
// thread moves the only pointer to it.
#[cfg(target_os = "linux")]
unsafe impl Send for Mapping {}

#[cfg(target_os = "linux")]
impl Mapping {
    fn new(len: usize) -> Self {
        let Some(bytes) = len
            .checked_mul(std::mem::size_of::<Block>())
            .filter(|&b| b > 0)
        else {
            return Self::Heap(vec![Block::default(); len]);
        };
        // SAFETY: a private anonymous mapping of `bytes` at an address of the kernel's
        // choosing; it aliases nothing. The result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Self::Heap(vec![Block::default(); len]);
        }
        // SAFETY: advice on the range just mapped; it changes how pages are backed, never
        // their contents. A refusal (no THP support) is harmless, so the result is ignored.
        unsafe {
            libc::madvise(ptr, bytes, libc::MADV_HUGEPAGE);
        }
        match std::ptr::NonNull::new(ptr.cast::<Block>()) {
            Some(ptr) => Self::Mapped { ptr, len, bytes },
            None => Self::Heap(vec![Block::default(); len]),
        }
    }

    fn blocks(&mut self) -> &mut [Block] {
        match self {
            // SAFETY: the mapping is page-aligned (≥ `Block`'s alignment of 64), `len`
            // blocks long, zero-filled by the kernel (an all-zero `Block` is a valid value:
            // it is plain `u64`s), and borrowed mutably through `&mut self` only.
            Self::Mapped { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(ptr.as_ptr(), *len)
            },
            Self::Heap(blocks) => blocks,
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for Mapping {
    fn drop(&mut self) {
        if let Self::Mapped { ptr, bytes, .. } = self {
            // SAFETY: unmaps exactly the range `new` mapped; no borrow of it outlives `self`.
            unsafe {
                libc::munmap(ptr.as_ptr().cast(), *bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{Algorithm, Argon2, Params, Version};

    #[test]
    fn hashes_in_mapped_memory_match_hashes_in_a_vec() {
        let params = Params::new(1024, 2, 1, None).unwrap();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut mapped = BlockMemory::new(params.block_count());
        let mut plain = vec![Block::default(); params.block_count()];
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        for _ in 0..2 {
            argon2
                .hash_password_into_with_memory(b"pw", b"saltsaltsalt", &mut a, &mut mapped)
                .unwrap();
            argon2
                .hash_password_into_with_memory(b"pw", b"saltsaltsalt", &mut b, &mut plain)
                .unwrap();
            assert_eq!(a, b);
        }
        assert_eq!(mapped.as_mut().len(), params.block_count());
        #[cfg(target_os = "linux")]
        assert!(
            matches!(mapped.map, Mapping::Mapped { .. }),
            "the mapped path, not the fallback"
        );
    }
}
