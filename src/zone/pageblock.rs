//! Pageblock flags: one migratetype per pageblock, the analogue of 3.17's `pageblock_flags`
//! bitmap (`get_pfnblock_migratetype` / `set_pageblock_migratetype`).
//!
//! | access | lock | ordering |
//! | --- | --- | --- |
//! | write (`set`, `set_isolate`) | the zone lock: the only writers are the buddy core's methods (`ZoneFree::set_pageblock_migratetype`, `isolate_pageblock`, `unisolate_pageblock`), which take `&mut ZoneFree` | `Relaxed` store: the zone lock's release publishes it to readers that take the lock |
//! | read in the free paths (`get`) | **none**: the lockless read that is race R1 | `Relaxed` load: may be stale, as in the kernel |
//! | re-read under the zone lock (the fixes) | zone lock | `Relaxed` load after the lock's acquire: sees the latest write |

use crate::sync::Arc;
use crate::sync::atomic::{AtomicU8, Ordering};
use crate::types::{Migratetype, PageblockIdx, Pfn};

const TYPE_MASK: u8 = 0x0f;
const SAVED_SHIFT: u8 = 4;

/// The per-pageblock migratetype table: the type in the low 4 bits; while the type is
/// `Isolate`, the high 4 bits keep the type it replaced.
///
/// A clone shares the table (the zone's lockless readers and the buddy core each hold one,
/// with no extra indirection on the readers' path).
#[derive(Clone, Debug)]
pub(crate) struct PageblockFlags {
    mt: Arc<[AtomicU8]>,
    pageblock_order: u32,
}

impl PageblockFlags {
    /// `n` pageblocks of `pageblock_order`, all `Movable` (as `memmap_init_zone`).
    pub(crate) fn new(n: u64, pageblock_order: u32) -> Self {
        let mt = (0..n)
            .map(|_| AtomicU8::new(Migratetype::Movable as u8))
            .collect();
        PageblockFlags {
            mt,
            pageblock_order,
        }
    }

    /// The pageblock holding `pfn`.
    #[inline]
    pub(crate) fn block_of(&self, pfn: Pfn) -> PageblockIdx {
        PageblockIdx(pfn.0 >> self.pageblock_order)
    }

    /// `get_pfnblock_migratetype`: lockless.
    #[inline]
    pub(crate) fn get(&self, pfn: Pfn) -> Migratetype {
        self.get_block(self.block_of(pfn))
    }

    /// The type of pageblock `idx`: lockless.
    #[inline]
    pub(crate) fn get_block(&self, idx: PageblockIdx) -> Migratetype {
        let v = self.mt[idx.idx()].load(Ordering::Relaxed);
        // Only `set`/`set_isolate` write the table, always with a valid type in the low bits.
        Migratetype::from_u8(v & TYPE_MASK).unwrap_or(Migratetype::Unmovable)
    }

    /// [`get`](Self::get) for the pcp free fast path: the type, unless it is `Isolate` (whose
    /// pages bypass the pcp). One compare where `get` and the caller's test take three.
    #[inline(always)]
    #[cfg_attr(loom, allow(dead_code))] // the fast path it serves is not built under loom
    pub(crate) fn get_unless_isolate(&self, pfn: Pfn) -> Option<Migratetype> {
        let v = self.mt[self.block_of(pfn).idx()].load(Ordering::Relaxed);
        match Migratetype::from_u8(v & TYPE_MASK) {
            Some(Migratetype::Isolate) | None => None,
            mt => mt,
        }
    }

    /// `set_pageblock_migratetype`: only through the buddy core, under the zone lock.
    #[inline]
    pub(super) fn set(&self, pfn: Pfn, mt: Migratetype) {
        self.mt[self.block_of(pfn).idx()].store(mt as u8, Ordering::Relaxed);
    }

    /// Set `Isolate`, remembering the type it replaces in the high bits (2025's standalone
    /// isolate bit; readers see `Isolate`).
    #[inline]
    pub(super) fn set_isolate(&self, pfn: Pfn, old: Migratetype) {
        let v = Migratetype::Isolate as u8 | ((old as u8) << SAVED_SHIFT);
        self.mt[self.block_of(pfn).idx()].store(v, Ordering::Relaxed);
    }

    /// The type an isolated pageblock had before `set_isolate`.
    #[inline]
    pub(crate) fn saved(&self, pfn: Pfn) -> Migratetype {
        let v = self.mt[self.block_of(pfn).idx()].load(Ordering::Relaxed);
        Migratetype::from_u8(v >> SAVED_SHIFT).unwrap_or(Migratetype::Movable)
    }
}
