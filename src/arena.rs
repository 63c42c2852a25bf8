//! The arena: the zone's pages as real memory, one anonymous mapping (or a heap block for
//! loom models). This module owns the crate's only raw-pointer arithmetic on page memory.

use crate::config::Backend;
use crate::error::ConfigError;
use crate::types::{PAGE_SIZE, Pfn};

enum Backing {
    Mmap(memmap2::MmapMut),
    // Kept alive for `base`; never read through this field.
    Heap(#[allow(dead_code)] Box<[u8]>),
}

/// The memory of `nr_pages` pages. Page `pfn` occupies bytes
/// `[pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE)`.
///
/// The arena hands out raw pointers only; exclusive access to a page's bytes is the owner's
/// (the allocation handle's) business.
pub(crate) struct Arena {
    base: *mut u8,
    len: usize,
    _backing: Backing,
}

// SAFETY: `Arena` owns its mapping or heap block exclusively; the raw pointer is only an
// address into that memory. Sharing it between threads hands out addresses, never references;
// the allocator's ownership protocol (one owner per allocated block) guards the bytes.
unsafe impl Send for Arena {}
// SAFETY: as above: `&Arena` only gives out addresses (`page_ptr`), no shared access to bytes.
unsafe impl Sync for Arena {}

impl Arena {
    /// Map `len` bytes (a multiple of `PAGE_SIZE`).
    pub(crate) fn new(len: usize, backend: Backend) -> Result<Arena, ConfigError> {
        debug_assert!(len > 0 && len % PAGE_SIZE == 0);
        let mut backing = match backend {
            Backend::Mmap => {
                Backing::Mmap(memmap2::MmapMut::map_anon(len).map_err(ConfigError::Mmap)?)
            }
            Backend::Heap => {
                let mut v = Vec::new();
                v.try_reserve_exact(len)
                    .map_err(|_| ConfigError::MetadataAlloc { bytes: len })?;
                v.resize(len, 0u8);
                Backing::Heap(v.into_boxed_slice())
            }
        };
        let base = match &mut backing {
            Backing::Mmap(m) => m.as_mut_ptr(),
            Backing::Heap(b) => b.as_mut_ptr(),
        };
        Ok(Arena {
            base,
            len,
            _backing: backing,
        })
    }

    /// The address of the first byte of page `pfn`.
    ///
    /// # Panics
    /// In debug builds, if `pfn` is outside the arena (callers check the range first).
    #[inline]
    pub(crate) fn page_ptr(&self, pfn: Pfn) -> *mut u8 {
        let off = pfn.idx() * PAGE_SIZE;
        debug_assert!(off < self.len);
        // Address arithmetic only; `wrapping_add` keeps this safe, and callers only pass pfns
        // of this zone, so the result stays inside the mapping.
        self.base.wrapping_add(off)
    }
}
