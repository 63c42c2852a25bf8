//! Page metadata: the `struct page` analogue, kept in side tables (never in the arena's bytes).
//!
//! Two tables, split by who may touch them:
//!
//! | table | fields | protected by |
//! | --- | --- | --- |
//! | [`PageMeta`] (inside the zone lock) | free-list links, `PageBuddy` flag, buddy order, `page->index` (the freepage migratetype cache) | the zone lock: it lives in [`ZoneFree`](crate::zone::ZoneFree) |
//! | [`PageStates`] (atomics) | allocation state of block heads | transitions below |
//!
//! Pages sitting on a pcp list are not linked through [`PageMeta`]: the pcp's own lists hold
//! `(pfn, cached migratetype)` entries under the pcp lock, which is where 3.17 keeps
//! `page->index` for them.
//!
//! Allocation state of a block's head page ([`PageStates`]), one byte:
//!
//! | state | meaning | set by | lock held |
//! | --- | --- | --- | --- |
//! | `NEVER` | never handed out as a head | init | — |
//! | `ALLOC [| MOVABLE] | order` | heads an allocated block of `order` (movable or not) | allocation | pcp lock (order 0) or zone lock |
//! | `FREEING | order` | a checked free claimed it and is on its way to a free list | `free_pfn` (compare-exchange from `ALLOC | order`) | none |
//! | `FREED` | freed (now on a pcp or the buddy lists, or merged into a free block) | free paths | the lock of the list it enters |
//! | `OFFLINE` | offlined by memory hot-remove | `offline_pages` | zone lock |
//!
//! Tail pages keep whatever state they had; only heads are read. ≤ 16 bytes per page in all:
//! 12 for [`PageMeta`], 1 for the state.

use crate::sync::atomic::{AtomicU8, Ordering};
use crate::types::{Order, Pfn};

/// "No page" in a list link.
pub(crate) const NIL: u32 = u32::MAX;

/// Zone-locked per-page metadata (and the list sentinels, which follow the last page).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PageMeta {
    /// Previous entry on the page's free list (or a sentinel).
    pub(crate) prev: u32,
    /// Next entry on the page's free list (or a sentinel).
    pub(crate) next: u32,
    /// Buddy order, meaningful when `buddy` is set (`page_private`).
    pub(crate) order: u8,
    /// `PageBuddy`: this page heads a free block on a buddy list.
    pub(crate) buddy: bool,
    /// `page->index`: the freepage migratetype cache, written where 3.17 writes it
    /// (`set_freepage_migratetype`) and stale everywhere else, as in the kernel.
    pub(crate) index: u8,
    /// The migratetype of the free list the block is on, meaningful when `buddy` is set
    /// (the kernel finds it by walking lists; kept here for `page_state` and the audit).
    pub(crate) list: u8,
}

impl PageMeta {
    pub(crate) const EMPTY: PageMeta = PageMeta {
        prev: NIL,
        next: NIL,
        order: 0,
        buddy: false,
        index: 0,
        list: 0,
    };
}

const _: () = assert!(core::mem::size_of::<PageMeta>() <= 12);

/// Head-page allocation states (see the module table).
pub(crate) mod state {
    pub(crate) const NEVER: u8 = 0;
    pub(crate) const FREED: u8 = 1;
    pub(crate) const OFFLINE: u8 = 3;
    /// `FREEING | order`: claimed by a checked free, still counted as allocated.
    pub(crate) const FREEING: u8 = 0x40;
    pub(crate) const ALLOC: u8 = 0x80;
    /// With `ALLOC`: a movable allocation (the `PageLRU` analogue `has_unmovable_pages` asks).
    pub(crate) const MOVABLE: u8 = 0x20;
    pub(crate) const ORDER_MASK: u8 = 0x1f;
}

/// The allocation-state table: one atomic byte per page.
pub(crate) struct PageStates {
    /// `64 * stride` bytes (the tail beyond `nr_pages` unused).
    s: Box<[AtomicU8]>,
    /// `ceil(nr_pages / 64)`: the length of one stripe (see [`PageStates::slot`]).
    stride: usize,
}

/// What a checked free found at a pfn when its claim failed.
pub(crate) enum ClaimError {
    WrongOrder(Order),
    DoubleFree,
    NotAllocated,
    Offline,
}

impl PageStates {
    /// The table index of `pfn`'s byte. Neighbouring pfns go to different cache lines
    /// (`pfn % 64` picks a stripe of `stride` bytes, `pfn / 64` the byte in it), so the
    /// pcps of different threads, which hold runs of neighbouring pages, do not write the same
    /// line on every allocation and free (measured: two threads went from 1.05-1.09x to
    /// 2.0-2.1x the pcp throughput of one).
    #[inline(always)]
    fn slot(&self, pfn: Pfn) -> usize {
        (pfn.idx() & 63) * self.stride + (pfn.idx() >> 6)
    }

    pub(crate) fn new(nr_pages: u64) -> Self {
        let stride = nr_pages.div_ceil(64) as usize;
        PageStates {
            s: (0..64 * stride)
                .map(|_| AtomicU8::new(state::NEVER))
                .collect(),
            stride,
        }
    }

    /// Mark `pfn` as the head of an allocated block of `order` (`movable`: allocated as
    /// `Movable`).
    #[inline]
    pub(crate) fn set_alloc(&self, pfn: Pfn, order: Order, movable: bool) {
        let m = if movable { state::MOVABLE } else { 0 };
        self.s[self.slot(pfn)].store(state::ALLOC | m | order.0 as u8, Ordering::Relaxed);
    }

    /// Whether `pfn` heads an allocated block that is not movable.
    #[inline]
    pub(crate) fn is_unmovable_alloc(&self, pfn: Pfn) -> bool {
        let s = self.get(pfn);
        s & state::ALLOC != 0 && s & state::MOVABLE == 0
    }

    /// Mark `pfn` freed (on a free list or pcp from now on).
    #[inline]
    pub(crate) fn set_freed(&self, pfn: Pfn) {
        self.s[self.slot(pfn)].store(state::FREED, Ordering::Relaxed);
    }

    /// Mark `pfn` offline.
    pub(crate) fn set_offline(&self, pfn: Pfn) {
        self.s[self.slot(pfn)].store(state::OFFLINE, Ordering::Relaxed);
    }

    /// The raw state byte of `pfn`.
    #[inline]
    pub(crate) fn get(&self, pfn: Pfn) -> u8 {
        self.s[self.slot(pfn)].load(Ordering::Relaxed)
    }

    /// Claim an allocated head for a checked free: `ALLOC | order` → `FREEING`, atomically,
    /// so two racing frees of one block cannot both pass.
    pub(crate) fn claim_for_free(&self, pfn: Pfn, order: Order) -> Result<(), ClaimError> {
        let cell = &self.s[self.slot(pfn)];
        let mut cur = cell.load(Ordering::Relaxed);
        let found = loop {
            if cur & state::ALLOC == 0 || (cur & state::ORDER_MASK) as u32 != order.0 {
                break cur;
            }
            match cell.compare_exchange(
                cur,
                state::FREEING | order.0 as u8,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        };
        Err(match found {
            s if s & state::ALLOC != 0 => {
                ClaimError::WrongOrder(Order((s & state::ORDER_MASK) as u32))
            }
            s if s == state::FREED || s & state::FREEING != 0 => ClaimError::DoubleFree,
            state::OFFLINE => ClaimError::Offline,
            _ => ClaimError::NotAllocated,
        })
    }

    /// The order of the allocated block headed by `pfn`, if it heads one (or is being freed
    /// by a checked free, which still counts as allocated).
    #[inline]
    pub(crate) fn alloc_order(&self, pfn: Pfn) -> Option<Order> {
        let s = self.get(pfn);
        (s & (state::ALLOC | state::FREEING) != 0).then_some(Order((s & state::ORDER_MASK) as u32))
    }
}
