//! The arena: the zone's pages as real memory, one anonymous mapping (or a heap block for
//! loom models and small tests). This module owns the crate's only raw-pointer arithmetic on
//! page memory.

use crate::config::Backend;
use crate::error::ConfigError;
use crate::types::{PAGE_SIZE, Pfn};
use core::ptr::NonNull;
use std::alloc::Layout;

/// Who owns the arena's bytes. The arena's `base` pointer is the one pointer every page
/// access derives from; for the heap backend it *is* the allocation (no `Box` or `Vec` holds
/// it as well, so no reference to the whole block is ever created or moved while pages are
/// accessed through `base`).
enum Backing {
    /// The mapping; `base` is its `as_mut_ptr()`, taken once. `MmapMut` keeps only a raw
    /// pointer, so moving it does not retag the bytes. Kept alive for `base` (it unmaps on
    /// drop); never read through this field.
    Mmap(#[allow(dead_code)] memmap2::MmapMut),
    /// `std::alloc::alloc_zeroed(layout)`, freed with `dealloc(base, layout)` in `Drop`.
    Heap(Layout),
}

/// The memory of `nr_pages` pages. Page `pfn` occupies bytes
/// `[pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE)`.
///
/// The arena hands out raw pointers only; exclusive access to a page's bytes is the owner's
/// (the allocation handle's) business.
pub(crate) struct Arena {
    base: NonNull<u8>,
    len: usize,
    backing: Backing,
}

// SAFETY: `Arena` owns its mapping or heap block exclusively; the raw pointer is only an
// address into that memory. Sharing it between threads hands out addresses, never references;
// the allocator's ownership protocol (one owner per allocated block) guards the bytes.
unsafe impl Send for Arena {}
// SAFETY: as above: `&Arena` only gives out addresses (`page_ptr`), no shared access to bytes.
unsafe impl Sync for Arena {}

impl Arena {
    /// Map (or allocate, zeroed) `len` bytes, a non-zero multiple of `PAGE_SIZE`.
    pub(crate) fn new(len: usize, backend: Backend) -> Result<Arena, ConfigError> {
        debug_assert!(len > 0 && len % PAGE_SIZE == 0);
        match backend {
            Backend::Mmap => {
                let mut map = memmap2::MmapMut::map_anon(len).map_err(ConfigError::Mmap)?;
                let base = NonNull::new(map.as_mut_ptr()).ok_or_else(|| {
                    ConfigError::Mmap(std::io::Error::other("mmap returned a null pointer"))
                })?;
                Ok(Arena {
                    base,
                    len,
                    backing: Backing::Mmap(map),
                })
            }
            Backend::Heap => {
                // Page-aligned, like the mapping. `from_size_align` refuses sizes that round
                // up past `isize::MAX`.
                let layout = Layout::from_size_align(len, PAGE_SIZE)
                    .map_err(|_| ConfigError::ArenaAlloc { bytes: len })?;
                // SAFETY: `layout` has a non-zero size (`len > 0`, checked by the geometry).
                let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
                let base = NonNull::new(ptr).ok_or(ConfigError::ArenaAlloc { bytes: len })?;
                Ok(Arena {
                    base,
                    len,
                    backing: Backing::Heap(layout),
                })
            }
        }
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
        self.base.as_ptr().wrapping_add(off)
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        match &self.backing {
            // The mapping unmaps itself when the field drops.
            Backing::Mmap(_) => {}
            Backing::Heap(layout) => {
                // SAFETY: `base` came from `alloc_zeroed(*layout)` in `new` and is freed only
                // here, once. Every handle that could reach the bytes borrows the zone, which
                // owns this arena, so none is alive while the zone drops.
                unsafe { std::alloc::dealloc(self.base.as_ptr(), *layout) }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn heap_arena_is_zeroed_and_page_aligned() {
        let a = Arena::new(4 * PAGE_SIZE, Backend::Heap).unwrap();
        let p = a.page_ptr(Pfn(3));
        assert_eq!(p as usize % PAGE_SIZE, 0);
        assert_eq!(p as usize - a.page_ptr(Pfn(0)) as usize, 3 * PAGE_SIZE);
        // SAFETY: page 3 is inside the live 4-page arena, and nothing else uses it.
        let page = unsafe { core::slice::from_raw_parts_mut(p, PAGE_SIZE) };
        assert!(page.iter().all(|&b| b == 0));
        page.fill(0xa5);
    }

    #[test]
    fn heap_arena_past_isize_max_is_arena_alloc() {
        // A multiple of PAGE_SIZE that no `Layout` accepts.
        let len = isize::MAX as usize + 1;
        match Arena::new(len, Backend::Heap) {
            Err(ConfigError::ArenaAlloc { bytes }) => assert_eq!(bytes, len),
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("allocated {len} bytes"),
        }
    }

    #[test]
    // Miri reports an allocation this large as resource exhaustion, not as a null pointer;
    // under AddressSanitizer it needs ASAN_OPTIONS=allocator_may_return_null=1 (.ci/run).
    #[cfg_attr(miri, ignore = "Miri stops at an allocation it cannot serve")]
    fn heap_arena_the_allocator_refuses_is_arena_alloc() {
        // 2^62 bytes: a valid layout beyond any x86-64 (or AArch64) user address space, so
        // the allocator returns null whatever the overcommit policy.
        let len = 1usize << 62;
        match Arena::new(len, Backend::Heap) {
            Err(e @ ConfigError::ArenaAlloc { .. }) => {
                assert!(
                    e.to_string().contains("could not allocate the arena"),
                    "{e}"
                )
            }
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("allocated {len} bytes"),
        }
    }
}
