//! The zone: `free_area[order].free_list[migratetype]`, the buddy merge and split, the 3.17
//! allocation and fallback paths, and the exact `NR_FREE_PAGES` / `NR_FREE_CMA_PAGES` counters.
//!
//! # What it owns
//! [`ZoneFree`], behind the zone lock: the free lists (intrusive, doubly linked through the
//! [`PageMeta`] table with one sentinel per list, like `struct list_head`), `nr_free` per order,
//! the two counters, `nr_isolate_pageblock`, and the zone-path event counts. A function that
//! needs the zone lock takes `&mut ZoneFree`: the Rust form of
//! `lockdep_assert_held(&zone->lock)`.
//!
//! # Lock order
//! pcp registry → pcp lock → zone lock. Nothing takes a pcp lock while holding the zone lock.
//!
//! # Kernel functions mirrored (3.17 `mm/page_alloc.c` unless noted)
//! | here | kernel |
//! | --- | --- |
//! | [`ZoneFree::free_one_page_locked`] | `__free_one_page` (merge loop, tail placement; patch 3 / patch 4 / 2016 branches) |
//! | [`ZoneInner::free_one_page`] | `free_one_page` (patch 1 recheck) |
//! | [`ZoneInner::free_pages_ok`] | `__free_pages_ok` |
//! | [`ZoneFree::expand`] | `expand` |
//! | [`ZoneFree::rmqueue_smallest`] | `__rmqueue_smallest` |
//! | [`ZoneFree::rmqueue_fallback`] | `__rmqueue_fallback` + `try_to_steal_freepages` |
//! | [`ZoneFree::rmqueue`] | `__rmqueue` (+ the seed's \[3\] CMA interleave when configured) |
//! | [`ZoneFree::move_freepages`] / [`ZoneFree::move_freepages_block`] | same names |
//! | [`ZoneFree::account`] | `__mod_zone_freepage_state` |
//!
//! # Invariants (checked by [`Zone::audit`](crate::Zone::audit))
//! `nr_free[o]` equals the number of blocks on the order-`o` lists; every free head is
//! aligned, inside the zone, `buddy` with its order; with the fixes on, `NR_FREE_PAGES` equals
//! the pages on non-`Isolate` lists and `NR_FREE_CMA_PAGES` the pages on `CMA` lists.

use crate::arena::Arena;
use crate::config::{CmaPolicy, Geometry, ZoneConfig};
use crate::error::{AllocError, ConfigError, FreeError};
use crate::fixes::Fixes;
use crate::hook::{RaceHook, RaceWindow};
use crate::page::{ClaimError, NIL, Owner, PageMeta, PageStates};
use crate::pageblock::PageblockFlags;
use crate::pcp::PcpRegistry;
use crate::sync::{Arc, Mutex, MutexGuard};
use crate::types::{MIGRATE_TYPES, Migratetype, Order, Pfn};
use crossbeam_utils::CachePadded;

/// Event counters kept under the zone lock (the pcp keeps its own; `vmstat()` sums both).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ZoneEvents {
    /// `pgalloc_normal` (pages) for allocations that bypass the pcp.
    pub(crate) pgalloc: u64,
    /// `pgfree` (pages) for frees that bypass the pcp.
    pub(crate) pgfree: u64,
    /// Blocks taken through `__rmqueue_fallback` (`pgalloc_extfrag` analogue).
    pub(crate) extfrag: u64,
    /// `cma_alloc_success`.
    pub(crate) cma_alloc_success: u64,
    /// `cma_alloc_fail`.
    pub(crate) cma_alloc_fail: u64,
    /// `pgmigrate_success`.
    pub(crate) pgmigrate_success: u64,
    /// `pgmigrate_fail`.
    pub(crate) pgmigrate_fail: u64,
}

/// The seed's patchset \[3\] interleave state (`nr_try_movable`, `nr_try_cma`, and their
/// maxima), under the zone lock.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CmaInterleave {
    pub(crate) nr_try_movable: u64,
    pub(crate) nr_try_cma: u64,
    pub(crate) max_try_movable: u64,
    pub(crate) max_try_cma: u64,
}

/// Everything the zone lock protects.
pub struct ZoneFree {
    /// Per-page metadata, followed by one sentinel per `(order, migratetype)` list.
    pub(crate) page: Box<[PageMeta]>,
    /// `free_area[order].nr_free`: blocks (not pages) of that order on all its lists.
    pub(crate) nr_free: Box<[u64]>,
    /// `NR_FREE_PAGES`.
    pub(crate) nr_free_pages: i64,
    /// `NR_FREE_CMA_PAGES`.
    pub(crate) nr_free_cma_pages: i64,
    /// `zone->nr_isolate_pageblock` (3.18): kept in every mode, read only by the fixes.
    pub(crate) nr_isolate_pageblock: u64,
    /// Pages taken off the free lists by memory offline.
    pub(crate) offline_pages: u64,
    /// Zone-path event counters.
    pub(crate) events: ZoneEvents,
    /// The CMA interleave state (aggressive policy only).
    pub(crate) cma_try: CmaInterleave,
    nr_pages: u32,
}

impl ZoneFree {
    fn new(geo: &Geometry) -> Result<ZoneFree, ConfigError> {
        let n = geo.nr_pages as usize + geo.max_order as usize * MIGRATE_TYPES;
        let mut page = Vec::new();
        page.try_reserve_exact(n)
            .map_err(|_| ConfigError::MetadataAlloc {
                bytes: n * core::mem::size_of::<PageMeta>(),
            })?;
        page.resize(n, PageMeta::EMPTY);
        let mut zf = ZoneFree {
            page: page.into_boxed_slice(),
            nr_free: vec![0; geo.max_order as usize].into_boxed_slice(),
            nr_free_pages: 0,
            nr_free_cma_pages: 0,
            nr_isolate_pageblock: 0,
            offline_pages: 0,
            events: ZoneEvents::default(),
            cma_try: CmaInterleave::default(),
            nr_pages: geo.nr_pages as u32,
        };
        for order in 0..geo.max_order {
            for mt in Migratetype::ALL {
                let s = zf.sentinel(Order(order), mt);
                zf.page[s as usize].prev = s;
                zf.page[s as usize].next = s;
            }
        }
        Ok(zf)
    }

    // ---- list primitives (struct list_head) ----

    #[inline]
    pub(crate) fn sentinel(&self, order: Order, mt: Migratetype) -> u32 {
        self.nr_pages + order.0 * MIGRATE_TYPES as u32 + mt as u32
    }

    #[inline]
    fn link_between(&mut self, node: u32, prev: u32, next: u32) {
        self.page[node as usize].prev = prev;
        self.page[node as usize].next = next;
        self.page[prev as usize].next = node;
        self.page[next as usize].prev = node;
    }

    #[inline]
    fn list_del(&mut self, node: u32) {
        let PageMeta { prev, next, .. } = self.page[node as usize];
        debug_assert!(
            prev != NIL && next != NIL,
            "list_del of an unlinked page {node}"
        );
        self.page[prev as usize].next = next;
        self.page[next as usize].prev = prev;
        self.page[node as usize].prev = NIL;
        self.page[node as usize].next = NIL;
    }

    /// The first block on `free_list[mt]` of `order`, if any.
    #[inline]
    pub(crate) fn list_first(&self, order: Order, mt: Migratetype) -> Option<Pfn> {
        let s = self.sentinel(order, mt);
        let n = self.page[s as usize].next;
        (n != s).then_some(Pfn(n as u64))
    }

    /// Walk `free_list[mt]` of `order`, calling `f` with each head.
    pub(crate) fn list_for_each(&self, order: Order, mt: Migratetype, mut f: impl FnMut(Pfn)) {
        let s = self.sentinel(order, mt);
        let mut n = self.page[s as usize].next;
        let mut guard = 0u64;
        while n != s {
            f(Pfn(n as u64));
            n = self.page[n as usize].next;
            guard += 1;
            if guard > self.nr_pages as u64 {
                // A corrupted list (a cycle not through the sentinel); the audit reports it.
                break;
            }
        }
    }

    // ---- buddy state ----

    /// `page_is_buddy(page, buddy, order)`: the buddy heads a free block of exactly `order`.
    #[inline]
    pub(crate) fn page_is_buddy(&self, buddy: Pfn, order: Order) -> bool {
        buddy.0 < self.nr_pages as u64 && {
            let m = &self.page[buddy.idx()];
            m.buddy && m.order as u32 == order.0
        }
    }

    /// Whether `pfn` heads a free block (`PageBuddy`), and its order.
    #[inline]
    pub(crate) fn buddy_order(&self, pfn: Pfn) -> Option<Order> {
        let m = &self.page[pfn.idx()];
        m.buddy.then_some(Order(m.order as u32))
    }

    /// `list_add` / `list_add_tail` + `set_page_order` + `nr_free++`.
    #[inline]
    pub(crate) fn add_to_free_list(&mut self, pfn: Pfn, order: Order, mt: Migratetype, tail: bool) {
        let s = self.sentinel(order, mt);
        let node = pfn.0 as u32;
        if tail {
            let prev = self.page[s as usize].prev;
            self.link_between(node, prev, s);
        } else {
            let next = self.page[s as usize].next;
            self.link_between(node, s, next);
        }
        let m = &mut self.page[pfn.idx()];
        m.buddy = true;
        m.order = order.0 as u8;
        m.list = mt as u8;
        self.nr_free[order.0 as usize] += 1;
    }

    /// `list_del` + `rmv_page_order` + `nr_free--`, from whatever list the block is on.
    #[inline]
    pub(crate) fn del_from_free_list(&mut self, pfn: Pfn, order: Order) {
        debug_assert!(
            self.page_is_buddy(pfn, order),
            "{pfn} is not a free {order} block"
        );
        self.list_del(pfn.0 as u32);
        self.page[pfn.idx()].buddy = false;
        self.nr_free[order.0 as usize] -= 1;
    }

    /// Move a free block to the head of another list of the same order (`list_move`).
    #[inline]
    fn move_to_list(&mut self, pfn: Pfn, order: Order, mt: Migratetype) {
        self.list_del(pfn.0 as u32);
        self.page[pfn.idx()].list = mt as u8;
        let s = self.sentinel(order, mt);
        let next = self.page[s as usize].next;
        self.link_between(pfn.0 as u32, s, next);
    }

    /// `set_freepage_migratetype(page, mt)`: `page->index = mt`.
    #[inline]
    pub(crate) fn set_freepage_migratetype(&mut self, pfn: Pfn, mt: Migratetype) {
        self.page[pfn.idx()].index = mt as u8;
    }

    /// `get_freepage_migratetype(page)`.
    #[inline]
    pub(crate) fn get_freepage_migratetype(&self, pfn: Pfn) -> Migratetype {
        Migratetype::from_u8(self.page[pfn.idx()].index).unwrap_or(Migratetype::Unmovable)
    }

    /// `__mod_zone_freepage_state(zone, nr, mt)`: `NR_FREE_PAGES += nr`, and
    /// `NR_FREE_CMA_PAGES += nr` when `mt` is CMA.
    #[inline]
    pub(crate) fn account(&mut self, nr: i64, mt: Migratetype) {
        self.nr_free_pages += nr;
        if mt.is_cma() {
            self.nr_free_cma_pages += nr;
        }
    }

    // ---- freeing ----

    /// `__free_one_page(page, pfn, zone, order, mt)`: merge with free buddies and put the
    /// result on `free_list[mt]`.
    ///
    /// 3.17: no type check on the buddy (a merged buddy is taken off whatever list it is on,
    /// uncounted), no accounting here. With [`Fixes::COUNT_AT_ENTRY`] the block is counted
    /// once at entry; with [`Fixes::ISOLATE_MERGE_LIMIT`] an `Isolate` free stops at
    /// `pageblock_order`; with [`Fixes::NO_ISOLATE_MERGE`] merging above `pageblock_order`
    /// stops between an `Isolate` and a non-`Isolate` pageblock.
    pub(crate) fn free_one_page_locked(
        &mut self,
        z: &ZoneInner,
        mut pfn: Pfn,
        mut order: Order,
        mt: Migratetype,
    ) {
        let fixes = z.fixes;
        if fixes.contains(Fixes::COUNT_AT_ENTRY) && !mt.is_isolate() {
            self.account(order.nr_pages() as i64, mt);
        }
        let top = z.geo.max_order;
        let pb_limit = top.min(z.geo.pageblock_order + 1);
        let mut max_order = top;
        let checked_merge =
            fixes.contains(Fixes::NO_ISOLATE_MERGE) || fixes.contains(Fixes::NO_MIXED_MERGE);
        if checked_merge || (fixes.contains(Fixes::ISOLATE_MERGE_LIMIT) && mt.is_isolate()) {
            max_order = pb_limit;
        }
        debug_assert!(pfn.is_aligned(order) && order.0 < top);
        let mut buddy;
        loop {
            while order.0 + 1 < max_order {
                buddy = Pfn(pfn.0 ^ order.nr_pages());
                if !self.page_is_buddy(buddy, order) {
                    break;
                }
                self.del_from_free_list(buddy, order);
                pfn = Pfn(pfn.0 & buddy.0);
                order = Order(order.0 + 1);
            }
            // d9dddbf55667: we are at pageblock_order; merge further only when both
            // pageblocks have the same type or neither is Isolate (checked while a pageblock
            // is isolated). 1dd214b8f21c (2022) widens it, always checked, to "or both are
            // mergeable (pcp) types": CMA, Reserve and Isolate merge only with their own kind.
            if checked_merge && max_order < top && order.0 + 1 == max_order {
                let buddy = Pfn(pfn.0 ^ order.nr_pages());
                if buddy.0 < self.nr_pages as u64 {
                    let mixed = fixes.contains(Fixes::NO_MIXED_MERGE);
                    if mixed || self.nr_isolate_pageblock > 0 {
                        let buddy_mt = z.pageblock.get(buddy);
                        let stop = if mixed {
                            mt != buddy_mt && (!mt.is_pcp_type() || !buddy_mt.is_pcp_type())
                        } else {
                            mt != buddy_mt && (mt.is_isolate() || buddy_mt.is_isolate())
                        };
                        if stop {
                            break;
                        }
                    }
                }
                max_order += 1;
                continue;
            }
            break;
        }
        // Tail placement: if the next-higher buddy is free, this block is likely to merge
        // soon, so put it at the tail where it is allocated last.
        let mut tail = false;
        if order.0 + 2 < top {
            let combined = Pfn(pfn.0 & !order.nr_pages());
            let higher_buddy = Pfn(combined.0 ^ (order.nr_pages() << 1));
            tail = self.page_is_buddy(higher_buddy, Order(order.0 + 1));
        }
        self.add_to_free_list(pfn, order, mt, tail);
    }

    // ---- allocation ----

    /// `expand()`: split a block of `high` down to `low`, putting the upper halves on
    /// `free_list[mt]`. Does not set `page->index` on the halves (as 3.17).
    pub(crate) fn expand(&mut self, pfn: Pfn, low: Order, high: Order, mt: Migratetype) {
        let mut h = high.0;
        while h > low.0 {
            h -= 1;
            let half = pfn.add(1u64 << h);
            self.add_to_free_list(half, Order(h), mt, false);
        }
    }

    /// `__rmqueue_smallest(zone, order, mt)`.
    pub(crate) fn rmqueue_smallest(
        &mut self,
        z: &ZoneInner,
        order: Order,
        mt: Migratetype,
    ) -> Option<Pfn> {
        for cur in order.0..z.geo.max_order {
            if let Some(pfn) = self.list_first(Order(cur), mt) {
                self.del_from_free_list(pfn, Order(cur));
                self.expand(pfn, order, Order(cur), mt);
                self.set_freepage_migratetype(pfn, mt);
                return Some(pfn);
            }
        }
        None
    }

    /// `move_freepages(zone, start, end, mt)`: move every free block whose head lies in
    /// `[start, end]` to `free_list[mt]`, set its `page->index`, and return the pages moved.
    /// 3.17: no accounting, and no look at which list a block was on (callers account the
    /// total by a type they believe). With [`Fixes::ISOLATE_HYGIENE`] each block is counted
    /// out of the list it leaves and into the one it joins (2024's `move_to_free_list`), and
    /// callers do not account.
    pub(crate) fn move_freepages(
        &mut self,
        z: &ZoneInner,
        start: Pfn,
        end: Pfn,
        mt: Migratetype,
    ) -> u64 {
        let hygiene = z.fixes.contains(Fixes::ISOLATE_HYGIENE);
        let mut moved = 0;
        let mut pfn = start;
        while pfn <= end {
            match self.buddy_order(pfn) {
                Some(order) => {
                    if hygiene {
                        self.account_list(pfn, -(order.nr_pages() as i64));
                        if !mt.is_isolate() {
                            self.account(order.nr_pages() as i64, mt);
                        }
                    }
                    self.move_to_list(pfn, order, mt);
                    self.set_freepage_migratetype(pfn, mt);
                    pfn = pfn.add(order.nr_pages());
                    moved += order.nr_pages();
                }
                None => pfn = pfn.add(1),
            }
        }
        moved
    }

    /// `move_freepages_block(zone, page, mt)`: [`move_freepages`](Self::move_freepages) over
    /// the pageblock holding `pfn`.
    pub(crate) fn move_freepages_block(&mut self, z: &ZoneInner, pfn: Pfn, mt: Migratetype) -> u64 {
        let start = Pfn(pfn.0 & !(z.geo.pageblock_nr_pages - 1));
        let end = start.add(z.geo.pageblock_nr_pages - 1);
        self.move_freepages(z, start, end, mt)
    }

    /// Account `nr` pages by the list the free block at `pfn` is on (nothing for `Isolate`):
    /// 2024's `account_freepages` at the freelist boundary.
    pub(crate) fn account_list(&mut self, pfn: Pfn, nr: i64) {
        let list =
            Migratetype::from_u8(self.page[pfn.idx()].list).unwrap_or(Migratetype::Unmovable);
        if !list.is_isolate() {
            self.account(nr, list);
        }
    }

    /// 2024's `find_large_buddy` + `split_large_buddy`: if a free block larger than a
    /// pageblock covers the pageblock at `block`, take it off its list (counted out by that
    /// list) and free it again as pageblock-sized blocks, each on the list of its own
    /// pageblock's type (counted in unless `Isolate`), without merging.
    pub(crate) fn split_large_buddy(&mut self, z: &ZoneInner, block: Pfn) {
        let pb = z.geo.pageblock_order;
        let Some((head, order)) = (pb + 1..z.geo.max_order).find_map(|o| {
            let head = Pfn(block.0 & !((1u64 << o) - 1));
            self.buddy_order(head)
                .filter(|k| k.0 >= o)
                .map(|k| (head, k))
        }) else {
            return;
        };
        self.account_list(head, -(order.nr_pages() as i64));
        self.del_from_free_list(head, order);
        let mut chunk = head;
        while chunk < head.add(order.nr_pages()) {
            let mt = z.pageblock.get(chunk);
            self.add_to_free_list(chunk, Order(pb), mt, false);
            self.set_freepage_migratetype(chunk, mt);
            if !mt.is_isolate() {
                self.account(1i64 << pb, mt);
            }
            chunk = chunk.add(1u64 << pb);
        }
    }

    /// `try_to_steal_freepages(zone, page, start_type, fallback_type)` (3.17).
    fn try_to_steal_freepages(
        &mut self,
        z: &ZoneInner,
        pfn: Pfn,
        order: Order,
        start_type: Migratetype,
        fallback_type: Migratetype,
    ) -> Migratetype {
        if fallback_type.is_cma() {
            return fallback_type;
        }
        let pb = z.geo.pageblock_order;
        if order.0 >= pb {
            // change_pageblock_range
            let mut p = pfn;
            let end = pfn.add(order.nr_pages());
            while p < end {
                z.pageblock.set(p, start_type, self);
                p = p.add(z.geo.pageblock_nr_pages);
            }
            return start_type;
        }
        if order.0 >= pb / 2 || start_type == Migratetype::Reclaimable {
            let pages = self.move_freepages_block(z, pfn, start_type);
            if pages >= (1u64 << pb) >> 1 {
                z.pageblock.set(pfn, start_type, self);
                return start_type;
            }
        }
        fallback_type
    }

    /// `__rmqueue_fallback(zone, order, start_migratetype)` (3.17): the largest block from the
    /// first fallback type that has one.
    pub(crate) fn rmqueue_fallback(
        &mut self,
        z: &ZoneInner,
        order: Order,
        start: Migratetype,
    ) -> Option<Pfn> {
        for cur in (order.0..z.geo.max_order).rev() {
            for &fallback in start.fallbacks() {
                let Some(pfn) = self.list_first(Order(cur), fallback) else {
                    continue;
                };
                let new_type = self.try_to_steal_freepages(z, pfn, Order(cur), start, fallback);
                self.del_from_free_list(pfn, Order(cur));
                self.expand(pfn, order, Order(cur), new_type);
                self.set_freepage_migratetype(pfn, new_type);
                self.events.extfrag += 1;
                return Some(pfn);
            }
        }
        None
    }

    /// The seed's patchset \[3\] `__rmqueue_cma`: for Movable requests on a zone with CMA,
    /// alternate runs on the normal and the CMA lists. `None` means "use the normal path".
    fn rmqueue_cma(&mut self, z: &ZoneInner, order: Order) -> Option<Pfn> {
        let n = order.nr_pages();
        if self.cma_try.nr_try_movable == 0 && self.cma_try.nr_try_cma == 0 {
            self.adjust_cma_interleave(z);
        }
        if self.cma_try.nr_try_movable > 0 {
            self.cma_try.nr_try_movable = self.cma_try.nr_try_movable.saturating_sub(n);
            return None;
        }
        if self.cma_try.nr_try_cma > 0 {
            self.cma_try.nr_try_cma = self.cma_try.nr_try_cma.saturating_sub(n);
            let page = self.rmqueue_smallest(z, order, Migratetype::Cma);
            if page.is_none() && order.0 == 0 {
                self.cma_try.nr_try_cma = 0;
            }
            return page;
        }
        None
    }

    /// `adjust_managed_cma_page_count`: refill the interleave budgets in proportion to free
    /// normal vs free CMA pages, each run at least a pageblock.
    fn adjust_cma_interleave(&mut self, z: &ZoneInner) {
        let pb = z.geo.pageblock_nr_pages;
        let cma = self.nr_free_cma_pages.max(0) as u64;
        let movable = (self.nr_free_pages.max(0) as u64)
            .saturating_sub(cma)
            .saturating_sub(z.geo.wmark.high);
        let t = &mut self.cma_try;
        if cma == 0 {
            t.max_try_movable = pb;
            t.max_try_cma = 0;
        } else if movable > cma {
            t.max_try_movable = movable * pb / cma;
            t.max_try_cma = pb;
        } else {
            t.max_try_movable = pb;
            t.max_try_cma = (cma * pb).checked_div(movable).unwrap_or(pb);
        }
        t.nr_try_movable = t.max_try_movable;
        t.nr_try_cma = t.max_try_cma;
    }

    /// `__rmqueue(zone, order, mt)`: the type's own lists, then the fallbacks, then Reserve.
    pub(crate) fn rmqueue(&mut self, z: &ZoneInner, order: Order, mt: Migratetype) -> Option<Pfn> {
        if mt == Migratetype::Movable
            && z.cma_policy == CmaPolicy::Aggressive
            && z.geo.cma_pages > 0
            && let Some(pfn) = self.rmqueue_cma(z, order)
        {
            return Some(pfn);
        }
        if let Some(pfn) = self.rmqueue_smallest(z, order, mt) {
            return Some(pfn);
        }
        if mt != Migratetype::Reserve {
            if let Some(pfn) = self.rmqueue_fallback(z, order, mt) {
                return Some(pfn);
            }
            return self.rmqueue_smallest(z, order, Migratetype::Reserve);
        }
        None
    }
}

/// The shared state of a zone. [`Zone`] is the public handle.
pub struct ZoneInner {
    pub(crate) id: u64,
    /// This zone, weakly: what a thread's pcp list remembers to drain at thread exit.
    pub(crate) me: crate::sync::Weak<ZoneInner>,
    pub(crate) geo: Geometry,
    pub(crate) fixes: Fixes,
    pub(crate) cma_policy: CmaPolicy,
    pub(crate) hook: Option<Arc<dyn RaceHook>>,
    pub(crate) arena: Arena,
    pub(crate) pageblock: PageblockFlags,
    pub(crate) state: PageStates,
    pub(crate) lock: CachePadded<Mutex<ZoneFree>>,
    pub(crate) pcps: PcpRegistry,
    /// Live movable blocks by head pfn (for migration).
    pub(crate) movable: crate::migrate::MovableRegistry,
    /// The zone's CMA area, if configured.
    pub(crate) cma: Option<crate::cma::CmaArea>,
    /// 3.17's global `cma_mutex`: serialises `alloc_contig_range` for CMA.
    pub(crate) cma_mutex: Mutex<()>,
}

impl ZoneInner {
    /// Take the zone lock (never held at a race window, so a hook may take it too).
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, ZoneFree> {
        self.lock.lock()
    }

    /// Call the race hook, if one is installed.
    #[inline]
    pub(crate) fn race_window(&self, w: RaceWindow, pfn: Pfn) {
        if let Some(h) = &self.hook {
            crate::hook::call(&**h, w, pfn);
        }
    }

    /// `get_pfnblock_migratetype`: lockless.
    #[inline]
    pub(crate) fn get_pageblock_migratetype(&self, pfn: Pfn) -> Migratetype {
        self.pageblock.get(pfn)
    }

    /// `free_one_page(zone, page, pfn, order, mt)` with `mt` read by the caller without the
    /// lock. Patch 1 re-reads it under the lock when a pageblock is isolated (and, as merged,
    /// when `mt` is `Isolate`). Marks the head freed.
    pub(crate) fn free_one_page(&self, pfn: Pfn, order: Order, mt: Migratetype) {
        self.free_window(RaceWindow::FreeBeforeZoneLock, pfn, order, mt);
        self.free_one_page_locked_entry(pfn, order, mt);
    }

    /// Call the race hook at a free-path window for the block being freed. If the hook
    /// panics, the block is still freed (straight to the buddy lists, no hook) while the
    /// thread unwinds, so a panicking hook loses no page.
    #[inline]
    pub(crate) fn free_window(&self, w: RaceWindow, pfn: Pfn, order: Order, mt: Migratetype) {
        let Some(hook) = &self.hook else {
            return;
        };
        struct FreeOnUnwind<'a> {
            zone: &'a ZoneInner,
            pfn: Pfn,
            order: Order,
            mt: Migratetype,
        }
        impl Drop for FreeOnUnwind<'_> {
            fn drop(&mut self) {
                self.zone
                    .free_one_page_locked_entry(self.pfn, self.order, self.mt);
            }
        }
        let guard = FreeOnUnwind {
            zone: self,
            pfn,
            order,
            mt,
        };
        crate::hook::call(&**hook, w, pfn);
        core::mem::forget(guard);
    }

    /// `free_one_page` after the race window: take the zone lock, recheck (patch 1), free.
    fn free_one_page_locked_entry(&self, pfn: Pfn, order: Order, mut mt: Migratetype) {
        let mut zf = self.lock();
        let zf = &mut *zf;
        if self.fixes.contains(Fixes::RECHECK_FREE_ONE_PAGE)
            && (zf.nr_isolate_pageblock > 0
                || (self.fixes.contains(Fixes::RECHECK_ISOLATE_MT) && mt.is_isolate()))
        {
            mt = self.get_pageblock_migratetype(pfn);
        }
        zf.set_freepage_migratetype(pfn, mt);
        self.state.set_freed(pfn);
        zf.events.pgfree += order.nr_pages();
        let pb = self.geo.pageblock_order;
        if self.fixes.contains(Fixes::ISOLATE_HYGIENE) && order.0 > pb {
            // 2024's split_large_buddy on free: a block larger than a pageblock is freed one
            // pageblock at a time, each by its own pageblock's type, so a block that spans an
            // isolated pageblock does not land whole on one list.
            let mut chunk = pfn;
            while chunk < pfn.add(order.nr_pages()) {
                let cmt = self.get_pageblock_migratetype(chunk);
                zf.set_freepage_migratetype(chunk, cmt);
                zf.free_one_page_locked(self, chunk, Order(pb), cmt);
                chunk = chunk.add(1u64 << pb);
            }
            return;
        }
        zf.free_one_page_locked(self, pfn, order, mt);
        if !self.fixes.contains(Fixes::COUNT_AT_ENTRY) && !mt.is_isolate() {
            zf.account(order.nr_pages() as i64, mt);
        }
    }

    /// `__free_pages_ok(page, order)`: read the pageblock type locklessly, then
    /// [`free_one_page`](Self::free_one_page).
    #[inline(never)]
    pub(crate) fn free_pages_ok(&self, pfn: Pfn, order: Order) {
        let mt = self.get_pageblock_migratetype(pfn);
        self.free_one_page(pfn, order, mt);
    }

    /// Free an allocated block whose ownership the caller proves (a handle, or a claimed
    /// checked free): order 0 through the pcp, larger orders through `free_one_page`.
    #[inline(always)]
    pub(crate) fn free_pages(&self, pfn: Pfn, order: Order) {
        if order.0 == 0 {
            self.free_hot_cold_page(pfn, false);
        } else {
            self.free_pages_ok(pfn, order);
        }
    }

    /// Free blocks the caller owns (held pages of a range, a grabbed block's pages), each
    /// exactly once even if a race hook panics in one of the frees: the block being freed is
    /// freed by that free's own unwind path and the rest by [`FreeRest`] (no hooks run while
    /// unwinding).
    pub(crate) fn free_each(&self, blocks: impl Iterator<Item = (Pfn, Order)>) {
        let mut rest = FreeRest::new(self, blocks);
        for (pfn, order) in rest.blocks.by_ref() {
            self.free_pages(pfn, order);
        }
    }

    /// `buffered_rmqueue` for order > 0: one block under the zone lock, for `owner`.
    pub(crate) fn rmqueue_locked_block(
        &self,
        order: Order,
        mt: Migratetype,
        owner: Owner,
    ) -> Option<Pfn> {
        let mut zf = self.lock();
        let zf = &mut *zf;
        let pfn = zf.rmqueue(self, order, mt)?;
        let got = zf.get_freepage_migratetype(pfn);
        zf.account(-(order.nr_pages() as i64), got);
        zf.events.pgalloc += order.nr_pages();
        self.state
            .set_alloc(pfn, order, mt == Migratetype::Movable, owner);
        Some(pfn)
    }

    /// Allocate a block for `owner` (a handle, or the pfn API): order 0 through this
    /// thread's pcp, larger orders from the buddy lists; on failure drain every pcp and retry
    /// once (as the slow path's `drain_all_pages` after direct reclaim).
    #[inline(always)]
    pub(crate) fn alloc(
        &self,
        order: Order,
        mt: Migratetype,
        owner: Owner,
    ) -> Result<Pfn, AllocError> {
        // The order-0 fast path inline; everything else (larger orders, bad arguments, an
        // empty zone) out of line.
        if order.0 == 0 && mt.is_pcp_type() {
            if let Some(pfn) = self.rmqueue_pcp(mt, owner) {
                return Ok(pfn);
            }
        }
        self.alloc_slow(order, mt, owner)
    }

    /// [`alloc`](Self::alloc) past its fast path: argument errors, larger orders, and the
    /// drain-and-retry when the zone looked empty.
    #[inline(never)]
    fn alloc_slow(&self, order: Order, mt: Migratetype, owner: Owner) -> Result<Pfn, AllocError> {
        if order.0 >= self.geo.max_order {
            return Err(AllocError::BadOrder {
                order,
                max_order: self.geo.max_order,
            });
        }
        if !mt.is_pcp_type() {
            return Err(AllocError::BadMigratetype(mt));
        }
        let attempt = || {
            if order.0 == 0 {
                self.rmqueue_pcp(mt, owner)
            } else {
                self.rmqueue_locked_block(order, mt, owner)
            }
        };
        // An order-0 request of a valid type gets here only after the fast path's attempt
        // failed: straight to the drain.
        if order.0 > 0 {
            if let Some(pfn) = attempt() {
                return Ok(pfn);
            }
        }
        self.drain_all_pages();
        attempt().ok_or(AllocError::NoMemory {
            order,
            migratetype: mt,
        })
    }

    /// The checked pfn-level free: validate, claim the head atomically, then free.
    pub(crate) fn free_checked(&self, pfn: Pfn, order: Order) -> Result<(), FreeError> {
        self.claim_pfn(pfn, order)?;
        self.free_pages(pfn, order);
        Ok(())
    }

    /// Validate a pfn-API free of the block `(pfn, order)` and claim its head
    /// (`ALLOC | order` → `FREEING`, refused for a block a handle owns). On success the caller
    /// owns the claim: it frees the block, or puts the returned byte back with
    /// `PageStates::unclaim`.
    pub(crate) fn claim_pfn(&self, pfn: Pfn, order: Order) -> Result<u8, FreeError> {
        if pfn.0 >= self.geo.nr_pages {
            return Err(FreeError::Foreign(pfn));
        }
        if order.0 >= self.geo.max_order {
            return Err(FreeError::BadOrder(order));
        }
        if !pfn.is_aligned(order) {
            return Err(FreeError::Unaligned { pfn, order });
        }
        self.state.claim_for_free(pfn, order).map_err(|e| match e {
            ClaimError::Held => match &self.cma {
                Some(area) if area.is_pfn_owned(pfn) => FreeError::CmaAllocation(pfn),
                _ => FreeError::HandleOwned(pfn),
            },
            ClaimError::WrongOrder(allocated) => FreeError::WrongOrder {
                pfn,
                order,
                allocated,
            },
            ClaimError::DoubleFree => FreeError::DoubleFree(pfn),
            ClaimError::NotAllocated => FreeError::NotAllocated(pfn),
            ClaimError::Offline => FreeError::Offline(pfn),
        })
    }

    /// Set up the zone: pageblock types (CMA at the top, Reserve at the bottom, Movable
    /// elsewhere), then free every top-order block to the list of its head's pageblock type.
    fn init_free_lists(&self) {
        let g = &self.geo;
        let mut zf = self.lock();
        let zf = &mut *zf;
        let mut reserve = g.reserve_pageblocks;
        for b in 0..g.nr_pageblocks {
            let pfn = Pfn(b << g.pageblock_order);
            let mt = if pfn >= g.cma_start {
                Migratetype::Cma
            } else if reserve > 0 {
                reserve -= 1;
                Migratetype::Reserve
            } else {
                Migratetype::Movable
            };
            self.pageblock.set(pfn, mt, zf);
        }
        let top = Order(g.max_order - 1);
        let mut pfn = Pfn(0);
        while pfn.0 < g.nr_pages {
            let mt = self.get_pageblock_migratetype(pfn);
            zf.set_freepage_migratetype(pfn, mt);
            zf.free_one_page_locked(self, pfn, top, mt);
            if !self.fixes.contains(Fixes::COUNT_AT_ENTRY) {
                zf.account(top.nr_pages() as i64, mt);
            }
            pfn = pfn.add(top.nr_pages());
        }
    }
}

/// Blocks still to be freed: frees them when dropped, so that a panic between taking pages
/// and handing them on loses none. [`disarm`](Self::disarm) when someone else owns them.
pub(crate) struct FreeRest<'a, I: Iterator<Item = (Pfn, Order)>> {
    zone: &'a ZoneInner,
    blocks: I,
}

impl<'a, I: Iterator<Item = (Pfn, Order)>> FreeRest<'a, I> {
    pub(crate) fn new(zone: &'a ZoneInner, blocks: I) -> Self {
        FreeRest { zone, blocks }
    }

    /// The blocks have an owner: free nothing.
    pub(crate) fn disarm(self) {
        core::mem::forget(self);
    }
}

impl<I: Iterator<Item = (Pfn, Order)>> Drop for FreeRest<'_, I> {
    fn drop(&mut self) {
        for (pfn, order) in &mut self.blocks {
            self.zone.free_pages(pfn, order);
        }
    }
}

/// A zone: an mmap'd arena of pages managed by the 3.17 buddy allocator with per-thread pcp
/// caches. Cheap to share by reference across threads (`Send + Sync`).
///
/// ```
/// use pagealloc::{Zone, ZoneConfig, Order, Migratetype};
/// let zone = Zone::new(ZoneConfig { size: 64 << 20, ..ZoneConfig::default() })?;
/// let mut page = zone.alloc_pages(Order(0), Migratetype::Movable)?;
/// page.as_mut_slice().fill(0xa5);
/// drop(page); // back through this thread's pcp
/// zone.drain_all_pages();
/// assert!(zone.audit().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Zone {
    pub(crate) inner: Arc<ZoneInner>,
}

impl Zone {
    /// Map the arena, carve it into pageblocks (CMA area at the top, Reserve blocks at the
    /// bottom), and free every page to the buddy lists.
    pub fn new(cfg: ZoneConfig) -> Result<Zone, ConfigError> {
        let geo = cfg.geometry()?;
        crate::sync::init_barriers();
        // The mapping first: a size the machine cannot map fails here, before any metadata is
        // allocated for it.
        let arena = Arena::new(cfg.size, cfg.backend)?;
        let zone_free = ZoneFree::new(&geo)?;
        let inner = Arc::new_cyclic(|me| ZoneInner {
            id: crate::sync::next_id(),
            me: me.clone(),
            geo,
            fixes: cfg.fixes,
            cma_policy: cfg.cma_policy,
            hook: cfg.race_hook.clone(),
            arena,
            pageblock: PageblockFlags::new(geo.nr_pageblocks, geo.pageblock_order),
            state: PageStates::new(geo.nr_pages),
            lock: CachePadded::new(Mutex::new(zone_free)),
            pcps: PcpRegistry::new(),
            movable: crate::migrate::MovableRegistry::new(),
            cma: crate::cma::CmaArea::new(&geo),
            cma_mutex: Mutex::new(()),
        });
        inner.init_free_lists();
        Ok(Zone { inner })
    }

    /// The validated geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.inner.geo
    }

    /// The fixes this zone runs with.
    pub fn fixes(&self) -> Fixes {
        self.inner.fixes
    }

    /// Allocate a block of `2^order` pages of migratetype `mt` (`Unmovable`, `Reclaimable` or
    /// `Movable`) and return an owned handle that frees it when dropped.
    #[inline]
    pub fn alloc_pages(
        &self,
        order: Order,
        mt: Migratetype,
    ) -> Result<crate::Pages<'_>, AllocError> {
        let pfn = self.inner.alloc(order, mt, Owner::Held)?;
        Ok(crate::Pages::new(self, pfn, order))
    }

    /// Kernel-style allocation: the head pfn of a block of `2^order` pages. The caller owns
    /// the block and gives it back with [`free_pfn`](Self::free_pfn).
    #[inline]
    pub fn alloc_pfn(&self, order: Order, mt: Migratetype) -> Result<Pfn, AllocError> {
        self.inner.alloc(order, mt, Owner::Pfn)
    }

    /// Kernel-style free of a block obtained from [`alloc_pfn`](Self::alloc_pfn) (or
    /// [`Pages::into_pfn`](crate::Pages::into_pfn)). Foreign, unaligned, wrong-order,
    /// double and never-allocated frees return an error and change nothing, and so does a
    /// free of a block that a live handle owns ([`FreeError::HandleOwned`]): only the handle
    /// frees it, or [`Pages::into_pfn`](crate::Pages::into_pfn) hands it to the pfn API.
    pub fn free_pfn(&self, pfn: Pfn, order: Order) -> Result<(), FreeError> {
        self.inner.free_checked(pfn, order)
    }

    /// The address of page `pfn`'s first byte, if `pfn` is in this zone. Dereferencing it is
    /// the caller's business: only the owner of an allocated block may touch its bytes.
    pub fn pfn_to_ptr(&self, pfn: Pfn) -> Option<*mut u8> {
        (pfn.0 < self.inner.geo.nr_pages).then(|| self.inner.arena.page_ptr(pfn))
    }

    /// The migratetype of the pageblock holding `pfn` (lockless read), if `pfn` is in the zone.
    pub fn pageblock_migratetype(&self, pfn: Pfn) -> Option<Migratetype> {
        (pfn.0 < self.inner.geo.nr_pages).then(|| self.inner.get_pageblock_migratetype(pfn))
    }

    /// `NR_FREE_PAGES` and `NR_FREE_CMA_PAGES` as the counters say (not recounted).
    pub fn free_counters(&self) -> (i64, i64) {
        let zf = self.inner.lock();
        (zf.nr_free_pages, zf.nr_free_cma_pages)
    }

    /// `drain_all_pages()`: free every thread's pcp pages to the buddy lists, synchronously.
    pub fn drain_all_pages(&self) {
        self.inner.drain_all_pages();
    }

    /// `drain_local_pages()`: free the calling thread's pcp pages to the buddy lists.
    pub fn drain_local_pages(&self) {
        self.inner.drain_local_pages();
    }
}

impl core::fmt::Debug for Zone {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Zone")
            .field("geometry", &self.inner.geo)
            .field("fixes", &self.inner.fixes)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// 16 pages, max_order 3 (top blocks of 4 pages), pageblocks of 2 pages.
    fn tiny() -> Zone {
        Zone::new(ZoneConfig::tiny(16)).unwrap()
    }

    fn lists(z: &Zone, order: u32, mt: Migratetype) -> Vec<u64> {
        let zf = z.inner.lock();
        let mut v = Vec::new();
        zf.list_for_each(Order(order), mt, |p| v.push(p.0));
        v
    }

    #[test]
    fn init_frees_top_order_blocks() {
        let z = tiny();
        let zf = z.inner.lock();
        assert_eq!(&*zf.nr_free, &[0, 0, 4]);
        assert_eq!(zf.nr_free_pages, 16);
        drop(zf);
        // Each top block was put at the head of the list.
        assert_eq!(lists(&z, 2, Migratetype::Movable), vec![12, 8, 4, 0]);
        z.audit().assert_ok();
    }

    #[test]
    fn rmqueue_smallest_splits_with_expand() {
        let z = tiny();
        let mut zf = z.inner.lock();
        let pfn = zf
            .rmqueue_smallest(&z.inner, Order(0), Migratetype::Movable)
            .unwrap();
        assert_eq!(pfn, Pfn(12));
        assert_eq!(&*zf.nr_free, &[1, 1, 3]);
        assert_eq!(zf.buddy_order(Pfn(14)), Some(Order(1)));
        assert_eq!(zf.buddy_order(Pfn(13)), Some(Order(0)));
        assert_eq!(zf.get_freepage_migratetype(pfn), Migratetype::Movable);
        // Free it back: merges 12+13, then with 14 into the order-2 block at 12.
        zf.free_one_page_locked(&z.inner, pfn, Order(0), Migratetype::Movable);
        assert_eq!(&*zf.nr_free, &[0, 0, 4]);
        assert_eq!(zf.buddy_order(Pfn(12)), Some(Order(2)));
        assert!(!zf.page[13].buddy && !zf.page[14].buddy);
    }

    #[test]
    fn merge_stops_at_a_busy_buddy_and_uses_tail_placement() {
        let mut cfg = ZoneConfig::tiny(16);
        cfg.max_order = 4; // top blocks of 8 pages, so order-1 blocks can be tail-placed
        let z = Zone::new(cfg).unwrap();
        let a = z.alloc_pfn(Order(1), Migratetype::Movable).unwrap();
        let b = z.alloc_pfn(Order(1), Migratetype::Movable).unwrap();
        assert_eq!((a, b), (Pfn(8), Pfn(10)));
        // Free a: its buddy b is allocated, so it stays order 1. The next-higher buddy (12,
        // order 2) is free, so a goes to the tail of the order-1 list.
        z.free_pfn(a, Order(1)).unwrap();
        {
            let zf = z.inner.lock();
            assert_eq!(zf.buddy_order(Pfn(8)), Some(Order(1)));
        }
        z.free_pfn(b, Order(1)).unwrap();
        assert_eq!(lists(&z, 3, Migratetype::Movable), vec![8, 0]);
        z.audit().assert_ok();
    }

    #[test]
    fn fallback_steals_whole_pageblocks_for_large_blocks() {
        let z = tiny();
        // No Unmovable lists at all: falls back to the largest Movable block and, as it is
        // >= pageblock_order, takes ownership of its pageblocks.
        let pfn = z.alloc_pfn(Order(1), Migratetype::Unmovable).unwrap();
        assert_eq!(pfn, Pfn(12));
        assert_eq!(
            z.pageblock_migratetype(Pfn(12)),
            Some(Migratetype::Unmovable)
        );
        assert_eq!(
            z.pageblock_migratetype(Pfn(14)),
            Some(Migratetype::Unmovable)
        );
        assert_eq!(lists(&z, 1, Migratetype::Unmovable), vec![14]);
        assert_eq!(z.inner.lock().events.extfrag, 1);
        z.free_pfn(pfn, Order(1)).unwrap();
        assert_eq!(lists(&z, 2, Migratetype::Unmovable), vec![12]);
        z.audit().assert_ok();
    }

    #[test]
    fn fallback_small_block_moves_freepages_block() {
        // pageblock_order 2 (4 pages), max_order 4: a small fallback block moves the free pages
        // of its pageblock and claims the block when at least half of it is free.
        let cfg = ZoneConfig {
            max_order: 4,
            pageblock_order: 2,
            ..ZoneConfig::tiny(16)
        };
        let z = Zone::new(cfg).unwrap();
        // Fragment everything: allocate all 16 pages as Movable order 0, free 2 per block.
        let mut pfns: Vec<Pfn> = (0..16)
            .map(|_| z.alloc_pfn(Order(0), Migratetype::Movable).unwrap())
            .collect();
        pfns.sort();
        for p in &pfns {
            if p.0 % 4 == 0 || p.0 % 4 == 1 {
                z.free_pfn(*p, Order(0)).unwrap();
            }
        }
        z.drain_all_pages();
        let r = z.audit();
        assert!(r.is_ok(), "{r}");
        assert_eq!(r.true_free_pages, 8);
        // Every pageblock has one free order-1 block. An Unmovable order-0 request falls back
        // to an order-1 Movable block (order 1 >= pageblock_order/2), moves its pageblock's
        // free pages (2 of 4 = half) and claims the pageblock.
        let u = z.alloc_pfn(Order(0), Migratetype::Unmovable).unwrap();
        let pb = z.pageblock_migratetype(u).unwrap();
        assert_eq!(pb, Migratetype::Unmovable);
        z.free_pfn(u, Order(0)).unwrap();
        for p in pfns.iter().filter(|p| p.0 % 4 >= 2) {
            z.free_pfn(*p, Order(0)).unwrap();
        }
        z.drain_all_pages();
        let r = z.audit();
        assert!(r.is_ok(), "{r}");
        assert_eq!(r.true_free_pages, 16);
    }

    #[test]
    fn cma_is_only_a_movable_fallback() {
        let cfg = ZoneConfig {
            cma_size: 8 * crate::PAGE_SIZE,
            ..ZoneConfig::tiny(16)
        };
        let z = Zone::new(cfg).unwrap();
        assert_eq!(z.pageblock_migratetype(Pfn(8)), Some(Migratetype::Cma));
        assert_eq!(z.free_counters(), (16, 8));
        // Unmovable: takes the 8 normal pages (via fallback) and then fails: CMA is never an
        // Unmovable fallback.
        let mut held = Vec::new();
        while let Ok(p) = z.alloc_pfn(Order(1), Migratetype::Unmovable) {
            assert!(p.0 < 8, "unmovable allocation from the CMA area at {p}");
            held.push(p);
        }
        assert_eq!(held.len(), 4);
        // Movable falls back to CMA first.
        let m = z.alloc_pfn(Order(1), Migratetype::Movable).unwrap();
        assert!(m.0 >= 8);
        assert_eq!(z.free_counters(), (6, 6));
        z.free_pfn(m, Order(1)).unwrap();
        for p in held {
            z.free_pfn(p, Order(1)).unwrap();
        }
        let r = z.audit();
        assert!(r.is_ok(), "{r}");
        assert_eq!((r.true_free_pages, r.true_free_cma_pages), (16, 8));
    }

    #[test]
    fn reserve_is_the_last_resort() {
        let cfg = ZoneConfig {
            reserve_pageblocks: Some(2),
            ..ZoneConfig::tiny(16)
        };
        let z = Zone::new(cfg).unwrap();
        assert_eq!(z.pageblock_migratetype(Pfn(0)), Some(Migratetype::Reserve));
        assert_eq!(z.pageblock_migratetype(Pfn(2)), Some(Migratetype::Reserve));
        assert_eq!(z.pageblock_migratetype(Pfn(4)), Some(Migratetype::Movable));
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(z.alloc_pfn(Order(1), Migratetype::Movable).unwrap());
        }
        // The Reserve block (pfns 0..4) went last.
        assert!(held[..6].iter().all(|p| p.0 >= 4), "{held:?}");
        assert!(held[6..].iter().all(|p| p.0 < 4), "{held:?}");
        assert!(z.alloc_pfn(Order(0), Migratetype::Movable).is_err());
        for p in held {
            z.free_pfn(p, Order(1)).unwrap();
        }
        z.drain_all_pages();
        z.audit().assert_ok();
    }

    #[test]
    fn pcp_refill_takes_a_batch_and_keeps_cached_types() {
        let cfg = ZoneConfig {
            cma_size: 8 * crate::PAGE_SIZE,
            cma_policy: CmaPolicy::Fallback,
            ..ZoneConfig::tiny(16)
        };
        let z = Zone::new(cfg).unwrap();
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(z.alloc_pfn(Order(0), Migratetype::Unmovable).unwrap());
        }
        // Movable now falls back to CMA: the pcp refill caches those pages as CMA.
        let m = z.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
        assert!(m.0 >= 8);
        z.inner.pcps.with_all_locked(|sessions| {
            assert_eq!(sessions.len(), 1);
            sessions[0].with(|l| {
                assert_eq!(l.count, 1); // batch 2, one handed out
                let e = l.lists[Migratetype::Movable.idx()][0];
                assert_eq!(e.mt, Migratetype::Cma);
            });
        });
        // rmqueue_bulk counted both pages out of NR_FREE_CMA_PAGES.
        assert_eq!(z.free_counters(), (6, 6));
        z.free_pfn(m, Order(0)).unwrap();
        for p in held {
            z.free_pfn(p, Order(0)).unwrap();
        }
        z.drain_all_pages();
        let r = z.audit();
        assert!(r.is_ok(), "{r}");
        assert_eq!((r.true_free_pages, r.true_free_cma_pages), (16, 8));
    }

    #[test]
    fn aggressive_policy_uses_cma_while_normal_pages_are_free() {
        let cfg = ZoneConfig {
            size: 64 << 20,
            cma_size: 16 << 20,
            cma_policy: CmaPolicy::Aggressive,
            ..ZoneConfig::default()
        };
        let z = Zone::new(cfg).unwrap();
        let cma_start = z.geometry().cma_start;
        let mut held = Vec::new();
        let mut in_cma = 0;
        for _ in 0..4096 {
            let p = z.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
            in_cma += (p >= cma_start) as u32;
            held.push(p);
        }
        assert!(in_cma > 0, "the aggressive policy never used CMA");
        assert!(in_cma < 4096, "the aggressive policy only used CMA");
        for p in held {
            z.free_pfn(p, Order(0)).unwrap();
        }
        z.drain_all_pages();
        z.audit().assert_ok();
    }
}
