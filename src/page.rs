//! Page metadata: the `struct page` analogue, kept in side tables (never in the arena's bytes).
//!
//! Two tables, split by who may touch them:
//!
//! | table | fields | protected by |
//! | --- | --- | --- |
//! | [`PageMeta`] (inside the zone lock) | free-list links, `PageBuddy` flag, buddy order, `page->index` (the freepage migratetype cache) | the zone lock: the buddy core's `ZoneFree` owns the table |
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
//! | `ALLOC [| MOVABLE] | order` | heads an allocated block of `order` (movable or not) owned through the pfn API (`alloc_pfn`, `into_pfn`) | allocation, `into_pfn` | pcp lock (order 0) or zone lock |
//! | `ALLOC | HELD [| MOVABLE] | order` | as above, owned by a handle ([`Pages`](crate::Pages), [`MovablePages`](crate::MovablePages), [`CmaPages`](crate::CmaPages)) or held by the allocator itself on its way elsewhere (the head and tail of an `alloc_contig_range`, a range being onlined, a block being re-freed); the pfn API refuses it | allocation for a handle, `isolate_freepages_range`, onlining | pcp lock (order 0) or zone lock |
//! | `FREEING | order` | a checked free claimed it and is on its way to a free list | `free_pfn`, `free_contig_range`, `Cma::release_pfn` (compare-exchange from `ALLOC | order`, never from `HELD`) | none |
//! | `FREED` | freed (now on a pcp or the buddy lists, or merged into a free block) | free paths | the lock of the list it enters |
//! | `OFFLINE` | offlined by memory hot-remove | `offline_pages` | zone lock |
//!
//! Tail pages keep whatever state they had; only heads are read. `HELD` and `FREEING` share a bit:
//! it means `HELD` when `ALLOC` is set and `FREEING` when it is not.
//!
//! Who may free a block follows from its state: a handle frees its own `HELD` block without a
//! check (it proved ownership by existing); the pfn API claims an `ALLOC` block that is not
//! `HELD` with one compare-exchange, so a block a handle owns can never be freed through a pfn,
//! and two racing checked frees of one block cannot both win. ≤ 16 bytes per page in all:
//! 12 for [`PageMeta`], 1 for the state.

use crate::sync::atomic::{AtomicU8, Ordering};
use crate::types::{Migratetype, Order, Pfn};

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
    pub(crate) index: Migratetype,
    /// The migratetype of the free list the block is on, meaningful when `buddy` is set
    /// (the kernel finds it by walking lists; kept here for `page_state` and the audit).
    pub(crate) list: Migratetype,
}

impl PageMeta {
    pub(crate) const EMPTY: PageMeta = PageMeta {
        prev: NIL,
        next: NIL,
        order: 0,
        buddy: false,
        index: Migratetype::Unmovable,
        list: Migratetype::Unmovable,
    };
}

const _: () = assert!(core::mem::size_of::<PageMeta>() <= 12);

/// Head-page allocation states (see the module table).
pub(crate) mod state {
    pub(crate) const NEVER: u8 = 0;
    pub(crate) const FREED: u8 = 1;
    pub(crate) const OFFLINE: u8 = 3;
    /// `FREEING | order` (without `ALLOC`): claimed by a checked free, still counted as
    /// allocated.
    pub(crate) const FREEING: u8 = 0x40;
    /// `ALLOC | HELD | order`: owned by a handle or held by the allocator (the same bit as
    /// `FREEING`, read with `ALLOC` set).
    pub(crate) const HELD: u8 = 0x40;
    pub(crate) const ALLOC: u8 = 0x80;
    /// With `ALLOC`: a movable allocation (the `PageLRU` analogue `has_unmovable_pages` asks).
    pub(crate) const MOVABLE: u8 = 0x20;
    pub(crate) const ORDER_MASK: u8 = 0x1f;
}

/// Who owns an allocated block (the `HELD` bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The pfn API: whoever holds the pfn frees it with a checked free.
    Pfn,
    /// A handle, or the allocator itself: checked frees refuse it.
    Held,
}

/// The allocation-state table: one atomic byte per page.
pub(crate) struct PageStates {
    /// `64 * stride` bytes rounded up to a power of two (the tail beyond `nr_pages` unused).
    s: Box<[AtomicU8]>,
    /// `ceil(nr_pages / 64)`: the length of one stripe (see [`PageStates::slot`]).
    stride: usize,
    /// `s.len() - 1`: [`cell`](Self::cell) masks with it instead of checking bounds.
    mask: usize,
    nr_pages: u64,
}

/// What a checked free found at a pfn when its claim failed.
pub(crate) enum ClaimError {
    /// Owned by a handle or held by the allocator.
    Held,
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
        let len = (64 * stride).next_power_of_two();
        PageStates {
            s: (0..len).map(|_| AtomicU8::new(state::NEVER)).collect(),
            stride,
            mask: len - 1,
            nr_pages,
        }
    }

    /// `pfn`'s byte for the order-0 fast paths' stores, whose pfns are zone pfns by
    /// construction (a handle's, or a pcp entry's): masked rather than bounds-checked, so a
    /// broken invariant could only alias another page's byte (caught by the debug assertion
    /// and by `audit`), never reach outside the table.
    #[inline(always)]
    fn cell(&self, pfn: Pfn) -> &AtomicU8 {
        debug_assert!(pfn.0 < self.nr_pages, "{pfn} is outside the zone");
        let i = self.slot(pfn) & self.mask;
        // SAFETY: `i <= mask = s.len() - 1` (both set in `new` and never changed).
        unsafe { self.s.get_unchecked(i) }
    }

    /// Mark `pfn` as the head of an allocated block of `order` (`movable`: allocated as
    /// `Movable`) owned by `owner`.
    #[inline]
    pub(crate) fn set_alloc(&self, pfn: Pfn, order: Order, movable: bool, owner: Owner) {
        let m = if movable { state::MOVABLE } else { 0 };
        let h = match owner {
            Owner::Pfn => 0,
            Owner::Held => state::HELD,
        };
        self.cell(pfn)
            .store(state::ALLOC | h | m | order.0 as u8, Ordering::Relaxed);
    }

    /// Hand a `HELD` block to the pfn API (`into_pfn`): the caller is its owner, so nobody
    /// else writes the byte meanwhile.
    #[inline]
    pub(crate) fn release_to_pfn(&self, pfn: Pfn) {
        let cell = &self.s[self.slot(pfn)];
        let s = cell.load(Ordering::Relaxed);
        debug_assert!(
            s & (state::ALLOC | state::HELD) == state::ALLOC | state::HELD,
            "{pfn} is not held (state {s:#x})"
        );
        cell.store(s & !state::HELD, Ordering::Relaxed);
    }

    /// Whether `pfn` heads a `HELD` block of `order` (debug checks of handle frees).
    #[inline]
    pub(crate) fn is_held(&self, pfn: Pfn, order: Order) -> bool {
        self.get(pfn) & !state::MOVABLE == state::ALLOC | state::HELD | order.0 as u8
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
        self.cell(pfn).store(state::FREED, Ordering::Relaxed);
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

    /// Claim an allocated head for a checked free: `ALLOC | order` (not `HELD`) → `FREEING`,
    /// atomically, so two racing frees of one block cannot both pass and a handle's block is
    /// never taken. Returns the byte it replaced, for [`unclaim`](Self::unclaim).
    pub(crate) fn claim_for_free(&self, pfn: Pfn, order: Order) -> Result<u8, ClaimError> {
        let cell = &self.s[self.slot(pfn)];
        let mut cur = cell.load(Ordering::Relaxed);
        let found = loop {
            if cur & (state::ALLOC | state::HELD) != state::ALLOC
                || (cur & state::ORDER_MASK) as u32 != order.0
            {
                break cur;
            }
            match cell.compare_exchange(
                cur,
                state::FREEING | order.0 as u8,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(cur),
                Err(now) => cur = now,
            }
        };
        Err(match found {
            s if s & (state::ALLOC | state::HELD) == state::ALLOC | state::HELD => ClaimError::Held,
            s if s & state::ALLOC != 0 => {
                ClaimError::WrongOrder(Order((s & state::ORDER_MASK) as u32))
            }
            s if s == state::FREED || s & state::FREEING != 0 => ClaimError::DoubleFree,
            state::OFFLINE => ClaimError::Offline,
            _ => ClaimError::NotAllocated,
        })
    }

    /// Undo a [`claim_for_free`](Self::claim_for_free) that a range free could not complete:
    /// the claimer owns the `FREEING` byte, so it puts back what it replaced.
    pub(crate) fn unclaim(&self, pfn: Pfn, prev: u8) {
        self.s[self.slot(pfn)].store(prev, Ordering::Relaxed);
    }

    /// The order of the allocated block headed by `pfn`, if it heads one (or is being freed
    /// by a checked free, which still counts as allocated).
    #[inline]
    pub(crate) fn alloc_order(&self, pfn: Pfn) -> Option<Order> {
        let s = self.get(pfn);
        (s & (state::ALLOC | state::FREEING) != 0).then_some(Order((s & state::ORDER_MASK) as u32))
    }
}
