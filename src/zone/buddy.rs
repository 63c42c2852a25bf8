//! The buddy core: everything the zone lock protects — `free_area[order].free_list[mt]`,
//! `nr_free`, the merge and split, the 3.17 allocation and fallback paths, and the exact
//! `NR_FREE_PAGES` / `NR_FREE_CMA_PAGES` counters.
//!
//! # What it owns
//! [`ZoneFree`], the value inside the zone lock: the free lists (intrusive, doubly linked
//! through the [`PageMeta`] table with one sentinel per list, like `struct list_head`),
//! `nr_free` per order, the two counters, `nr_isolate_pageblock`, the offlined page count, the
//! zone-path event counts, and a [`BuddyCtx`] (geometry, fixes, the pageblock table) so its
//! methods need nothing from the layers above. Its fields are private: the counters change
//! only through [`ZoneFree::account`] (`__mod_zone_freepage_state`),
//! [`ZoneFree::mod_zone_page_state`] and the named transitions below, which is what lets
//! `audit()` trust nothing and recount. A method that needs the zone lock takes `&mut ZoneFree`:
//! the Rust form of `lockdep_assert_held(&zone->lock)`. The pageblock table is written only
//! through these methods, so every write happens under the lock.
//!
//! # Kernel functions mirrored (3.17 `mm/page_alloc.c` unless noted)
//! | here | kernel |
//! | --- | --- |
//! | [`ZoneFree::free_one_page_locked`] | `__free_one_page` (merge loop, tail placement; patch 3 / patch 4 / 2016 / 2022 branches) |
//! | [`ZoneFree::free_one_page_counted`] | `__free_one_page` + its caller's count in `free_one_page` |
//! | [`ZoneFree::free_pcppage`] | one page of `free_pcppages_bulk`, with its count |
//! | [`ZoneFree::expand`] | `expand` |
//! | [`ZoneFree::rmqueue_smallest`] | `__rmqueue_smallest` |
//! | [`ZoneFree::rmqueue_fallback`] | `__rmqueue_fallback` + `try_to_steal_freepages` |
//! | [`ZoneFree::rmqueue`] | `__rmqueue` (+ the seed's \[3\] CMA interleave when configured) |
//! | [`ZoneFree::move_freepages`] / [`ZoneFree::move_freepages_block`] | same names |
//! | [`ZoneFree::account`] | `__mod_zone_freepage_state` |
//! | [`ZoneFree::mod_zone_page_state`] | `__mod_zone_page_state` |
//! | [`ZoneFree::split_large_buddy`] | 2024's `split_large_buddy` |
//!
//! # Invariants (checked by `Zone::audit`)
//! `nr_free[o]` equals the number of blocks on the order-`o` lists; every free head is
//! aligned, inside the zone, `buddy` with its order; with the fixes on, `NR_FREE_PAGES` equals
//! the pages on non-`Isolate` lists and `NR_FREE_CMA_PAGES` the pages on `CMA` lists.

use super::pageblock::PageblockFlags;
use crate::config::{CmaPolicy, Geometry, Watermarks};
use crate::error::ConfigError;
use crate::fixes::Fixes;
use crate::gfp::AllocFlags;
use crate::page::{NIL, PageMeta};
use crate::trace::Extfrag;
use crate::types::{MIGRATE_TYPES, Migratetype, Order, Pfn};
use crate::vmstat::{VmStatDiffs, ZoneStatItem, ZoneVmStat};
use crate::zone::ledger::{Ledger, LedgerEntry, LedgerFlags, LedgerPath, Race};

/// What the buddy core needs to know about its zone: fixed at zone creation.
#[derive(Debug)]
pub(crate) struct BuddyCtx {
    pub(crate) geo: Geometry,
    pub(crate) fixes: Fixes,
    pub(crate) cma_policy: CmaPolicy,
    /// The pageblock table, shared with the lockless readers of the free paths.
    pub(crate) pageblock: PageblockFlags,
    /// The folded vmstat counters, shared with the lockless readers (`zone_page_state`).
    pub(crate) vm_stat: ZoneVmStat,
    /// Keep the drift ledger (see `zone::ledger`).
    pub(crate) ledger: bool,
    /// The kmem tracepoints emitted under the zone lock.
    pub(crate) trace: crate::trace::Tracepoints,
    /// `vm.min_free_kbytes` as configured (the user's value), if any.
    pub(crate) min_free_kbytes: Option<u64>,
    /// The `Reserve` pageblock count follows the watermarks (`setup_zone_migrate_reserve`):
    /// no explicit [`ZoneConfig::reserve_pageblocks`](crate::ZoneConfig::reserve_pageblocks)
    /// and no [`Fixes::NO_RESERVE`].
    pub(crate) reserve_auto: bool,
}

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
    /// `thp_fault_alloc`: THP-fault requests ([`Gfp::is_thp_fault`](crate::Gfp::is_thp_fault)) served.
    pub(crate) thp_fault_alloc: u64,
    /// `thp_fault_fallback`: THP-fault requests that failed.
    pub(crate) thp_fault_fallback: u64,
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
#[derive(Debug)]
pub(crate) struct ZoneFree {
    /// Per-page metadata, followed by one sentinel per `(order, migratetype)` list.
    page: Box<[PageMeta]>,
    /// `free_area[order].nr_free`: blocks (not pages) of that order on all its lists.
    nr_free: Box<[u64]>,
    /// `NR_FREE_PAGES`, exact (the folded value plus every CPU's diff).
    nr_free_pages: i64,
    /// `NR_FREE_CMA_PAGES`, exact.
    nr_free_cma_pages: i64,
    /// The same counters as 3.17 keeps them: per-CPU diffs and the folded value.
    vmstat: VmStatDiffs,
    /// The CPU whose diffs this lock holder's updates go to (set when the lock is taken).
    stat_cpu: usize,
    /// `zone->nr_isolate_pageblock` (3.18): kept in every mode, read only by the fixes.
    nr_isolate_pageblock: u64,
    /// How many times the lock has been taken (wrapping): the chunked audit's test that no
    /// one else held the lock between its chunks.
    holds: u64,
    /// Pages taken off the free lists by memory offline.
    offline_pages: u64,
    /// Zone-path event counters.
    events: ZoneEvents,
    /// The CMA interleave state (aggressive policy only).
    cma_try: CmaInterleave,
    /// The watermarks (`zone->watermark[]`), from `min_free_kbytes`.
    wmark: Watermarks,
    /// `min_free_kbytes`, and the value last written by the user (`user_min_free_kbytes`).
    min_free_kbytes: u64,
    user_min_free_kbytes: u64,
    /// `zone->percpu_drift_mark`.
    percpu_drift_mark: u64,
    /// `zone->nr_migrate_reserve_block`.
    nr_migrate_reserve_block: u64,
    /// The drift ledger, when on.
    ledger: Option<Box<Ledger>>,
    nr_pages: u32,
    ctx: BuddyCtx,
}

impl ZoneFree {
    /// Empty free lists for `ctx`'s geometry (the caller frees the pages in).
    pub(crate) fn new(ctx: BuddyCtx) -> Result<ZoneFree, ConfigError> {
        let geo = ctx.geo;
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
            vmstat: VmStatDiffs::new(ctx.vm_stat.clone(), geo.stat_threshold),
            stat_cpu: VmStatDiffs::NO_CPU,
            nr_isolate_pageblock: 0,
            holds: 0,
            offline_pages: 0,
            events: ZoneEvents::default(),
            cma_try: CmaInterleave::default(),
            wmark: geo.wmark,
            min_free_kbytes: ctx
                .min_free_kbytes
                .unwrap_or(geo.wmark.min << (crate::types::PAGE_SHIFT - 10)),
            user_min_free_kbytes: ctx.min_free_kbytes.unwrap_or(0),
            percpu_drift_mark: geo.percpu_drift_mark,
            nr_migrate_reserve_block: geo.reserve_pageblocks,
            ledger: ctx.ledger.then(Box::default),
            nr_pages: geo.nr_pages as u32,
            ctx,
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

    // ---- reading the state (the audit, /proc, the upper layers) ----

    /// `NR_FREE_PAGES`, exact.
    #[inline]
    pub(crate) fn nr_free_pages(&self) -> i64 {
        self.nr_free_pages
    }

    /// `NR_FREE_CMA_PAGES`, exact.
    #[inline]
    pub(crate) fn nr_free_cma_pages(&self) -> i64 {
        self.nr_free_cma_pages
    }

    /// The vmstat view of the counters (per-CPU diffs, `stat_threshold`).
    pub(crate) fn vmstat(&self) -> &VmStatDiffs {
        &self.vmstat
    }

    /// Direct this lock holder's counter updates to `cpu`'s diffs
    /// ([`VmStatDiffs::NO_CPU`]: straight to the folded value). The zone sets it each time it
    /// takes the lock: the lock holder is "on" that CPU.
    #[inline]
    pub(crate) fn set_stat_cpu(&mut self, cpu: usize) {
        self.vmstat.reserve_cpu(cpu);
        self.stat_cpu = cpu;
    }

    /// The CPU whose diffs this lock holder's updates go to.
    pub(crate) fn stat_cpu(&self) -> usize {
        self.stat_cpu
    }

    /// Count one taking of the lock (the zone calls it each time it takes the lock).
    #[inline]
    pub(crate) fn count_hold(&mut self) {
        self.holds = self.holds.wrapping_add(1);
    }

    /// How many times the lock has been taken, wrapping.
    pub(crate) fn holds(&self) -> u64 {
        self.holds
    }

    /// Fold `cpu`'s diffs (`None`: every CPU's) into the folded values (`vmstat_update`).
    pub(crate) fn refresh_vm_stats(&mut self, cpu: Option<usize>) {
        match cpu {
            Some(c) => self.vmstat.fold_cpu(c),
            None => self.vmstat.fold_all(),
        }
    }

    /// `free_area[order].nr_free` for every order.
    pub(crate) fn nr_free(&self) -> &[u64] {
        &self.nr_free
    }

    /// `zone->nr_isolate_pageblock`.
    #[inline]
    pub(crate) fn nr_isolate_pageblock(&self) -> u64 {
        self.nr_isolate_pageblock
    }

    /// Pages taken off the free lists by memory offline.
    pub(crate) fn offline_pages(&self) -> u64 {
        self.offline_pages
    }

    /// The watermarks now.
    #[inline]
    pub(crate) fn watermarks(&self) -> Watermarks {
        self.wmark
    }

    /// `zone->percpu_drift_mark`.
    pub(crate) fn percpu_drift_mark(&self) -> u64 {
        self.percpu_drift_mark
    }

    /// `min_free_kbytes`.
    pub(crate) fn min_free_kbytes(&self) -> u64 {
        self.min_free_kbytes
    }

    /// `zone->nr_migrate_reserve_block`.
    pub(crate) fn nr_migrate_reserve_block(&self) -> u64 {
        self.nr_migrate_reserve_block
    }

    /// `min_free_kbytes_sysctl_handler`: the user writes `min_free_kbytes`.
    pub(crate) fn set_min_free_kbytes(&mut self, kbytes: u64) {
        self.user_min_free_kbytes = kbytes;
        self.min_free_kbytes = kbytes;
        self.setup_per_zone_wmarks();
    }

    /// `init_per_zone_wmark_min` (after memory offline or online): recompute
    /// `min_free_kbytes` from the lowmem left (`nr_free_buffer_pages`: managed pages above
    /// the high watermark), unless the user's value is larger, then the watermarks.
    pub(crate) fn init_per_zone_wmark_min(&mut self) {
        let managed = u64::from(self.nr_pages) - self.offline_pages;
        let lowmem = managed.saturating_sub(self.wmark.high);
        let new = crate::config::min_free_kbytes_for(lowmem);
        if new > self.user_min_free_kbytes {
            self.min_free_kbytes = new;
        }
        self.setup_per_zone_wmarks();
    }

    /// `setup_per_zone_wmarks` (one zone: `min` is all of `min_free_kbytes`), then
    /// `refresh_zone_stat_thresholds`' `percpu_drift_mark` and `setup_zone_migrate_reserve`.
    fn setup_per_zone_wmarks(&mut self) {
        let g = &self.ctx.geo;
        self.wmark = Watermarks::from_min_free_kbytes(self.min_free_kbytes);
        self.percpu_drift_mark =
            crate::config::percpu_drift_mark(&self.wmark, g.online_cpus, g.stat_threshold);
        if self.ctx.reserve_auto {
            let pb = g.pageblock_nr_pages;
            let reserve = (self.wmark.min.div_ceil(pb)).min(2);
            self.setup_zone_migrate_reserve(reserve);
        }
    }

    /// `setup_zone_migrate_reserve(zone)` (3.17): keep `reserve` pageblocks of type
    /// `Reserve`, taking Movable ones from the bottom of the zone and giving back extra ones
    /// as Movable; their free pages move lists with `move_freepages_block` (both lists are
    /// counted, so nothing is accounted).
    fn setup_zone_migrate_reserve(&mut self, reserve: u64) {
        let old_reserve = self.nr_migrate_reserve_block;
        if reserve == old_reserve {
            return;
        }
        self.nr_migrate_reserve_block = reserve;
        let mut reserve = reserve;
        let g = self.ctx.geo;
        for b in 0..g.nr_pageblocks {
            let pfn = Pfn(b << g.pageblock_order);
            let mt = self.ctx.pageblock.get(pfn);
            if reserve > 0 {
                if mt == Migratetype::Reserve {
                    reserve -= 1;
                    continue;
                }
                if mt == Migratetype::Movable {
                    self.set_pageblock_migratetype(pfn, Migratetype::Reserve);
                    self.move_freepages_block(pfn, Migratetype::Reserve);
                    reserve -= 1;
                    continue;
                }
            } else if old_reserve == 0 {
                break;
            }
            if mt == Migratetype::Reserve {
                self.set_pageblock_migratetype(pfn, Migratetype::Movable);
                self.move_freepages_block(pfn, Migratetype::Movable);
            }
        }
    }

    // ---- the drift ledger ----

    /// Close an accounting decision on `path`: if the counters moved away from the lists
    /// since the last note, record it with the race `classify` names (called only then, with
    /// what the core saw since the last note).
    #[inline]
    pub(crate) fn ledger_note(
        &mut self,
        path: LedgerPath,
        classify: impl FnOnce(&ZoneFree, LedgerFlags) -> Race,
    ) {
        if self.ledger.is_some() {
            self.ledger_note_slow(path, classify);
        }
    }

    #[cold]
    fn ledger_note_slow(
        &mut self,
        path: LedgerPath,
        classify: impl FnOnce(&ZoneFree, LedgerFlags) -> Race,
    ) {
        let Some(mut l) = self.ledger.take() else {
            return;
        };
        let counter = (self.nr_free_pages, self.nr_free_cma_pages);
        let flags = l.take_flags();
        if l.pending(counter) {
            let race = classify(self, flags);
            let (free, cma) = l.note(counter, path, race);
            self.ctx.trace.ledger(race.name(), path.name(), free, cma);
        }
        l.path = Some(path);
        self.ledger = Some(l);
    }

    /// Name the path the lock holder is on, for a change it records no note for.
    #[inline]
    pub(crate) fn ledger_path(&mut self, path: LedgerPath) {
        if let Some(l) = self.ledger.as_deref_mut() {
            l.path = Some(path);
        }
    }

    /// The zone lock is released: record whatever moved since the last note as
    /// [`Race::Unclassified`] on the path last named.
    #[inline]
    pub(crate) fn ledger_release(&mut self) {
        if let Some(l) = self.ledger.as_deref_mut() {
            let counter = (self.nr_free_pages, self.nr_free_cma_pages);
            if l.pending(counter) {
                l.take_flags();
                let path = l.path.unwrap_or(LedgerPath::Other);
                let (free, cma) = l.note(counter, path, Race::Unclassified);
                self.ctx
                    .trace
                    .ledger(Race::Unclassified.name(), path.name(), free, cma);
            }
            l.path = None;
        }
    }

    /// The pages on non-`Isolate` and on `CMA` free lists as the ledger keeps them, if it is
    /// on.
    pub(crate) fn ledger_truth(&self) -> Option<(i64, i64)> {
        self.ledger.as_deref().map(Ledger::truth)
    }

    /// The ledger's entries, if it is on.
    pub(crate) fn ledger_entries(&self) -> Option<Vec<LedgerEntry>> {
        self.ledger.as_deref().map(Ledger::entries)
    }

    /// The race of a free of the block at `pfn` that went to list `landed` (the type it was
    /// freed by, after whatever recheck the fixes made), on `path`, given what the core saw: a
    /// type that disagrees with the pageblock's isolation (R1a, R1b, R2), else a merge across
    /// an isolation boundary (R3a into an isolated pageblock, R3b into a normal one), else a
    /// merge with a buddy stranded on an `Isolate` list of a normal pageblock (R1a's block,
    /// counted back in or not). A stale type that a fix corrected is no race of its own: when
    /// such a free then merges across a boundary (v3.18: patch 1 rechecked the type, but
    /// nothing limits the merge until 4.6), the drift is R3b's, not R1a's.
    pub(crate) fn classify_free(
        &self,
        pfn: Pfn,
        landed: Migratetype,
        path: LedgerPath,
        flags: LedgerFlags,
    ) -> Race {
        let pb = self.ctx.pageblock.get(pfn);
        if landed.is_isolate() && !pb.is_isolate() {
            Race::R1a
        } else if !landed.is_isolate() && pb.is_isolate() {
            if path == LedgerPath::FreePcppagesBulk {
                Race::R2
            } else {
                Race::R1b
            }
        } else if flags.crossed_isolation {
            if pb.is_isolate() {
                Race::R3a
            } else {
                Race::R3b
            }
        } else if flags.left_isolate_list && !pb.is_isolate() {
            // The free merged a buddy R1a had stranded on an `Isolate` list.
            Race::R1a
        } else if flags.left_counted_list && pb.is_isolate() {
            // The mirror: it merged a buddy R1b or R2 had stranded on a counted list.
            Race::Stranded
        } else {
            Race::Unclassified
        }
    }

    /// The zone-path event counts.
    pub(crate) fn events(&self) -> &ZoneEvents {
        &self.events
    }

    /// The zone-path event counts, to count an event.
    pub(crate) fn events_mut(&mut self) -> &mut ZoneEvents {
        &mut self.events
    }

    /// `__zone_watermark_ok(z, order, mark, classzone_idx, alloc_flags, free_pages)` (3.17):
    /// `free_pages` less the pages the request itself takes must stay above `mark` (less a
    /// half with `ALLOC_HIGH`, less a quarter with `ALLOC_HARDER`; free CMA pages, as
    /// `zone_page_state` reads them, do not count without `ALLOC_CMA`; `lowmem_reserve` is 0
    /// in a one-zone node), and for each order below `order` the pages free at higher orders
    /// must stay above a mark halved per order.
    pub(crate) fn zone_watermark_ok(
        &self,
        order: Order,
        mark: u64,
        flags: AllocFlags,
        free_pages: i64,
    ) -> bool {
        let mut free_pages = free_pages - (order.nr_pages() as i64 - 1);
        let mut min = mark as i64;
        if flags.contains(AllocFlags::HIGH) {
            min -= min / 2;
        }
        if flags.contains(AllocFlags::HARDER) {
            min -= min / 4;
        }
        let free_cma = if flags.contains(AllocFlags::CMA) {
            0
        } else {
            self.ctx.vm_stat.read(ZoneStatItem::NrFreeCmaPages).max(0)
        };
        if free_pages - free_cma <= min {
            return false;
        }
        for o in 0..order.0 as usize {
            // At the next order, this order's pages become unavailable.
            free_pages -= (self.nr_free[o] << o) as i64;
            // Require fewer higher order pages to be free.
            min >>= 1;
            if free_pages <= min {
                return false;
            }
        }
        true
    }

    /// The list the free block headed by `pfn` is on (meaningful when it heads one).
    #[inline]
    pub(crate) fn list_of(&self, pfn: Pfn) -> Migratetype {
        self.page[pfn.idx()].list
    }

    /// Corrupt the counters on purpose (the audit's own tests): `NR_FREE_PAGES += free`,
    /// `NR_FREE_CMA_PAGES += cma`, and one more block counted in `nr_free[order]`.
    #[cfg(test)]
    pub(crate) fn skew_for_test(&mut self, free: i64, cma: i64, order: Option<usize>) {
        self.mod_zone_page_state(ZoneStatItem::NrFreePages, free);
        self.mod_zone_page_state(ZoneStatItem::NrFreeCmaPages, cma);
        if let Some(o) = order {
            self.nr_free[o] += 1;
        }
    }

    /// Corrupt on purpose (the audit's own tests): record `list` as the free head's list
    /// without moving it.
    #[cfg(test)]
    pub(crate) fn set_list_for_test(&mut self, pfn: Pfn, list: Migratetype) {
        self.page[pfn.idx()].list = list;
    }

    // ---- list primitives (struct list_head) ----

    #[inline]
    fn sentinel(&self, order: Order, mt: Migratetype) -> u32 {
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

    /// The blocks on `free_list[mt]` of `order`, counted up to `cap` (`pagetypeinfo`'s walk).
    pub(crate) fn list_count(&self, order: Order, mt: Migratetype, cap: u64) -> u64 {
        let s = self.sentinel(order, mt);
        let mut n = self.page[s as usize].next;
        let mut count = 0;
        // A corrupted list may cycle without reaching the sentinel: never count past the zone.
        let cap = cap.min(u64::from(self.nr_pages) + 1);
        while n != s && count < cap {
            count += 1;
            n = self.page[n as usize].next;
        }
        count
    }

    /// Whether the free head `pfn` sits in a well-formed stretch of its free list: both links
    /// set and pointing back at it, and each neighbour the sentinel of the head's own
    /// `(order, list)` or another free head of that order on that list. `Err` says what is
    /// wrong. (Checks one head in O(1); a walk from the sentinel is what proves the whole
    /// list.)
    pub(crate) fn check_links(&self, pfn: Pfn) -> Result<(), String> {
        let m = self.page[pfn.idx()];
        let order = Order(u32::from(m.order));
        let s = self.sentinel(order, m.list);
        let node = pfn.0 as u32;
        let len = self.page.len() as u32;
        if m.prev >= len || m.next >= len {
            return Err(format!("free head {pfn} is not linked on a list"));
        }
        if self.page[m.prev as usize].next != node || self.page[m.next as usize].prev != node {
            return Err(format!(
                "free head {pfn}: its neighbours do not link back to it"
            ));
        }
        for n in [m.prev, m.next] {
            let ok = n == s
                || (n < self.nr_pages && {
                    let q = &self.page[n as usize];
                    q.buddy && u32::from(q.order) == order.0 && q.list == m.list
                });
            if !ok {
                return Err(format!(
                    "free head {pfn} ({order} on the {} list) is linked to {}, which is not on \
                     that list",
                    m.list,
                    if n < self.nr_pages {
                        format!("pfn {n:#x}")
                    } else {
                        "another list's head".to_string()
                    }
                ));
            }
        }
        Ok(())
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
        m.list = mt;
        self.nr_free[order.0 as usize] += 1;
        if let Some(l) = self.ledger.as_deref_mut() {
            l.list_change(mt, order.nr_pages() as i64);
        }
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
        if let Some(l) = self.ledger.as_deref_mut() {
            let list = self.page[pfn.idx()].list;
            l.list_change(list, -(order.nr_pages() as i64));
            l.left_isolate_list |= list.is_isolate();
            l.left_counted_list |= !list.is_isolate();
        }
    }

    /// Move a free block to the head of another list of the same order (`list_move`).
    #[inline]
    fn move_to_list(&mut self, pfn: Pfn, order: Order, mt: Migratetype) {
        self.list_del(pfn.0 as u32);
        if let Some(l) = self.ledger.as_deref_mut() {
            let n = order.nr_pages() as i64;
            let from = self.page[pfn.idx()].list;
            l.list_change(from, -n);
            l.list_change(mt, n);
            l.left_isolate_list |= from.is_isolate();
            if order.0 > self.ctx.geo.pageblock_order {
                l.straddled = true;
            }
        }
        self.page[pfn.idx()].list = mt;
        let s = self.sentinel(order, mt);
        let next = self.page[s as usize].next;
        self.link_between(pfn.0 as u32, s, next);
    }

    /// `set_freepage_migratetype(page, mt)`: `page->index = mt`.
    #[inline]
    pub(crate) fn set_freepage_migratetype(&mut self, pfn: Pfn, mt: Migratetype) {
        self.page[pfn.idx()].index = mt;
    }

    /// `get_freepage_migratetype(page)`.
    #[inline]
    pub(crate) fn get_freepage_migratetype(&self, pfn: Pfn) -> Migratetype {
        self.page[pfn.idx()].index
    }

    /// `__mod_zone_freepage_state(zone, nr, mt)`: `NR_FREE_PAGES += nr`, and
    /// `NR_FREE_CMA_PAGES += nr` when `mt` is CMA.
    #[inline]
    pub(crate) fn account(&mut self, nr: i64, mt: Migratetype) {
        self.mod_zone_page_state(ZoneStatItem::NrFreePages, nr);
        if mt.is_cma() {
            self.mod_zone_page_state(ZoneStatItem::NrFreeCmaPages, nr);
        }
    }

    /// `__mod_zone_page_state(zone, item, delta)`.
    #[inline]
    pub(crate) fn mod_zone_page_state(&mut self, item: ZoneStatItem, delta: i64) {
        match item {
            ZoneStatItem::NrFreePages => self.nr_free_pages += delta,
            ZoneStatItem::NrFreeCmaPages => self.nr_free_cma_pages += delta,
        }
        self.vmstat.mod_state(self.stat_cpu, item, delta);
    }

    // ---- pageblock types and isolation (written only here, under the zone lock) ----

    /// `set_pageblock_migratetype(page, mt)`.
    #[inline]
    pub(crate) fn set_pageblock_migratetype(&mut self, pfn: Pfn, mt: Migratetype) {
        self.ctx.pageblock.set(pfn, mt);
    }

    /// 3.18's isolation of the pageblock holding `pfn`: type `Isolate` (remembering `old`),
    /// `nr_isolate_pageblock++`.
    pub(crate) fn isolate_pageblock(&mut self, pfn: Pfn, old: Migratetype) {
        self.ctx.pageblock.set_isolate(pfn, old);
        self.nr_isolate_pageblock += 1;
    }

    /// The end of an isolation: type `mt`, `nr_isolate_pageblock--`.
    pub(crate) fn unisolate_pageblock(&mut self, pfn: Pfn, mt: Migratetype) {
        self.ctx.pageblock.set(pfn, mt);
        self.nr_isolate_pageblock -= 1;
    }

    // ---- taking free blocks for compaction and CMA ----

    /// `__isolate_free_page(page, order)` (3.17): take the free block headed by `pfn` off its
    /// list for a caller that keeps it (`split_free_page` for compaction and CMA, 3.18's
    /// re-free on un-isolation). Returns its pages, or 0 (and changes nothing) when the zone
    /// is too low.
    ///
    /// Outside an `Isolate` pageblock it obeys the watermark "as if the page was being
    /// allocated": the order-0 check against `low + 2^order`, with no allocation flags (so free
    /// CMA pages do not count), and it counts the block out **by its pageblock's type**
    /// (`__mod_zone_freepage_state(zone, -(1 << order), get_pageblock_migratetype(page))`),
    /// whatever list the block is really on: a misplaced block becomes drift here, as in R4.
    /// In an `Isolate` pageblock it checks nothing and counts nothing. With
    /// [`Fixes::ISOLATE_HYGIENE`] the block is counted out by the list it leaves (2024).
    /// A block of at least half a pageblock retypes the pageblocks it covers to Movable unless
    /// they are CMA or `Isolate`.
    pub(crate) fn isolate_free_page(&mut self, pfn: Pfn, order: Order) -> u64 {
        debug_assert!(
            self.page_is_buddy(pfn, order),
            "{pfn} is not a free {order} block"
        );
        let nr = order.nr_pages();
        let mt = self.ctx.pageblock.get(pfn);
        if !mt.is_isolate() {
            let mark = self.wmark.low + nr;
            let free = self.ctx.vm_stat.read(ZoneStatItem::NrFreePages).max(0);
            if !self.zone_watermark_ok(Order(0), mark, AllocFlags::NONE, free) {
                return 0;
            }
        }
        let on_list = self.page[pfn.idx()].list;
        if self.ctx.fixes.contains(Fixes::ISOLATE_HYGIENE) {
            self.account_list(pfn, -(nr as i64));
        } else if !mt.is_isolate() {
            self.account(-(nr as i64), mt);
        }
        self.del_from_free_list(pfn, order);
        // Counted out by the pageblock's type, not the list: a block on a counted list inside
        // an isolated pageblock leaves uncounted (R3c's second half), one R1a stranded on an
        // `Isolate` list of a normal pageblock is counted out although it never counted.
        self.ledger_note(LedgerPath::IsolateFreePage, |_, _| {
            match (on_list.is_isolate(), mt.is_isolate()) {
                (false, true) => Race::R3c,
                (true, false) => Race::R1a,
                _ => Race::Unclassified,
            }
        });
        if order.0 + 1 >= self.ctx.geo.pageblock_order {
            let end = pfn.add(nr);
            let mut p = pfn;
            while p < end {
                let t = self.ctx.pageblock.get(p);
                if !t.is_cma() && !t.is_isolate() {
                    self.set_pageblock_migratetype(p, Migratetype::Movable);
                }
                p = p.add(self.ctx.geo.pageblock_nr_pages);
            }
        }
        nr
    }

    // ---- memory offline ----

    /// `__offline_isolated_pages` for one free block: off its list, uncounted (its pageblock
    /// is isolated) except with [`Fixes::ISOLATE_HYGIENE`], which counts it out of the list it
    /// leaves; its pages are offline from now on.
    pub(crate) fn offline_free_block(&mut self, pfn: Pfn, order: Order) {
        if self.ctx.fixes.contains(Fixes::ISOLATE_HYGIENE) {
            self.account_list(pfn, -(order.nr_pages() as i64));
        }
        self.del_from_free_list(pfn, order);
        self.offline_pages += order.nr_pages();
    }

    /// `online_pages`: `nr` offline pages are handed back (and freed by the caller).
    pub(crate) fn online(&mut self, nr: u64) {
        self.offline_pages -= nr;
    }

    // ---- freeing ----

    /// `__free_one_page(page, pfn, zone, order, mt)`: merge with free buddies and put the
    /// result on `free_list[mt]`.
    ///
    /// 3.17: no type check on the buddy (a merged buddy is taken off whatever list it is on,
    /// uncounted), no accounting here. With [`Fixes::COUNT_AT_ENTRY`] the block is counted
    /// once at entry (patch 3); with [`Fixes::ISOLATE_MERGE_LIMIT`] a free into an isolated
    /// pageblock stops at `pageblock_order` (patch 4); both decide "into an isolated
    /// pageblock" by [`isolated_free`](Self::isolated_free). With [`Fixes::NO_ISOLATE_MERGE`]
    /// or [`Fixes::NO_MIXED_MERGE`] merging past `pageblock_order` is decided by
    /// [`may_merge_past_pageblock`](Self::may_merge_past_pageblock).
    pub(crate) fn free_one_page_locked(&mut self, mut pfn: Pfn, mut order: Order, mt: Migratetype) {
        let fixes = self.ctx.fixes;
        let isolated = self.isolated_free(mt);
        if fixes.contains(Fixes::COUNT_AT_ENTRY) && !isolated {
            self.account(order.nr_pages() as i64, mt);
        }
        let top = self.ctx.geo.max_order;
        debug_assert!(pfn.is_aligned(order) && order.0 < top);
        let checked =
            fixes.contains(Fixes::NO_ISOLATE_MERGE) || fixes.contains(Fixes::NO_MIXED_MERGE);
        // v3 wrote `pageblock_order + 1`, v4 `min(MAX_ORDER, pageblock_order + 1)`; the same
        // here, where the configuration requires pageblock_order < max_order.
        let mut max_order = if checked || (fixes.contains(Fixes::ISOLATE_MERGE_LIMIT) && isolated) {
            top.min(self.ctx.geo.pageblock_order + 1)
        } else {
            top
        };
        'continue_merging: loop {
            while order.0 + 1 < max_order {
                let buddy = Pfn(pfn.0 ^ order.nr_pages());
                if !self.page_is_buddy(buddy, order) {
                    break 'continue_merging;
                }
                self.del_from_free_list(buddy, order);
                pfn = Pfn(pfn.0 & buddy.0);
                order = Order(order.0 + 1);
            }
            // At pageblock_order (or above): one more level if the rule allows it.
            if checked && max_order < top && self.may_merge_past_pageblock(pfn, order, mt) {
                max_order += 1;
                continue 'continue_merging;
            }
            break;
        }
        self.done_merging(pfn, order, mt);
    }

    /// `done_merging:` put the merged block on `free_list[mt]`, at the tail if the next-higher
    /// buddy is free (it is likely to merge soon, so allocated last); the ledger notes a merge
    /// that crossed an isolation boundary above `pageblock_order`.
    fn done_merging(&mut self, pfn: Pfn, order: Order, mt: Migratetype) {
        let top = self.ctx.geo.max_order;
        let pb = self.ctx.geo.pageblock_order;
        if order.0 > pb && self.ledger.is_some() {
            let pageblocks = 1u64 << (order.0 - pb);
            let first = self.ctx.pageblock.get(pfn).is_isolate();
            let crossed = (1..pageblocks)
                .any(|i| self.ctx.pageblock.get(pfn.add(i << pb)).is_isolate() != first);
            if let Some(l) = self.ledger.as_deref_mut() {
                l.crossed_isolation |= crossed;
            }
        }
        let mut tail = false;
        if order.0 + 2 < top {
            let combined = Pfn(pfn.0 & !order.nr_pages());
            let higher_buddy = Pfn(combined.0 ^ (order.nr_pages() << 1));
            tail = self.page_is_buddy(higher_buddy, Order(order.0 + 1));
        }
        self.add_to_free_list(pfn, order, mt, tail);
    }

    /// Whether the block `(pfn, order)` of type `mt`, at `pageblock_order` or above, may merge
    /// with its buddy's pageblock.
    ///
    /// d9dddbf55667 (2016): while a pageblock is isolated, not when exactly one of the two is
    /// `Isolate`. 1dd214b8f21c (2022) widens it, always checked: different types merge only
    /// when both are pcp types (CMA, Reserve and Isolate merge only with their own kind).
    fn may_merge_past_pageblock(&self, pfn: Pfn, order: Order, mt: Migratetype) -> bool {
        let buddy = Pfn(pfn.0 ^ order.nr_pages());
        if buddy.0 >= self.nr_pages as u64 {
            return true; // no buddy: the merge loop finds nothing to merge
        }
        let mixed = self.ctx.fixes.contains(Fixes::NO_MIXED_MERGE);
        if !mixed && self.nr_isolate_pageblock == 0 {
            return true;
        }
        let buddy_mt = self.ctx.pageblock.get(buddy);
        if mt == buddy_mt {
            return true;
        }
        if mixed {
            mt.is_pcp_type() && buddy_mt.is_pcp_type()
        } else {
            !mt.is_isolate() && !buddy_mt.is_isolate()
        }
    }

    /// `__free_one_page` followed by its caller's count, as `free_one_page` does: the block is
    /// counted once, by `mt`, unless it is a free into an isolated pageblock
    /// ([`isolated_free`](Self::isolated_free)) — at entry with [`Fixes::COUNT_AT_ENTRY`]
    /// (patch 3), after the merge without it (3.17; v3's patch 1 counts before
    /// `__free_one_page`, which is the same under the zone lock).
    pub(crate) fn free_one_page_counted(&mut self, pfn: Pfn, order: Order, mt: Migratetype) {
        // Decided before the free, as the kernel does (the free does not change it).
        let counted = !self.isolated_free(mt);
        self.free_one_page_locked(pfn, order, mt);
        if !self.ctx.fixes.contains(Fixes::COUNT_AT_ENTRY) && counted {
            self.account(order.nr_pages() as i64, mt);
        }
    }

    /// Whether a free of type `mt` (the type after any recheck) is a free into an isolated
    /// pageblock: left uncounted, and capped at `pageblock_order` with
    /// [`Fixes::ISOLATE_MERGE_LIMIT`]. The one place the free paths' count is decided.
    ///
    /// 3.17 (`if (unlikely(!is_migrate_isolate(migratetype)))` after the free) and the
    /// merged patches (v5: `if (is_migrate_isolate(migratetype)) max_order = ...; else
    /// __mod_zone_freepage_state(...)`) decide by the type handed in. v3 as posted decides
    /// inside the recheck, and only there (patches 1/4 and 3/4: `if
    /// (unlikely(has_isolate_pageblock(zone))) { migratetype = get_pfnblock_migratetype(page,
    /// pfn); if (is_migrate_isolate(migratetype)) goto skip_counting; }
    /// __mod_zone_freepage_state(zone, 1 << order, migratetype);`, and 4/4 sets `max_order`
    /// in the same branch): with no pageblock isolated, a stale `Isolate` type is counted
    /// (`NR_FREE_PAGES` only) and merges without limit. So with
    /// [`Fixes::RECHECK_FREE_ONE_PAGE`] but not [`Fixes::RECHECK_ISOLATE_MT`] an `Isolate` type
    /// is an isolated free only while `nr_isolate_pageblock > 0`. v4 widened the branch to
    /// `|| is_migrate_isolate(migratetype)`, which makes the two rules agree.
    fn isolated_free(&self, mt: Migratetype) -> bool {
        let fixes = self.ctx.fixes;
        let v3_branch = fixes.contains(Fixes::RECHECK_FREE_ONE_PAGE)
            && !fixes.contains(Fixes::RECHECK_ISOLATE_MT);
        mt.is_isolate() && (!v3_branch || self.nr_isolate_pageblock > 0)
    }

    /// One block of `free_pcppages_bulk` (a page of order 0, or of `order` with high-order
    /// pcps): `cached` is the type the block took onto the pcp.
    ///
    /// 3.17 frees it to `cached`'s list and counts it when its pageblock is *now* not
    /// `Isolate` (CMA by the cached type): race R2. Patch 2 ([`Fixes::RECHECK_PCP_BULK`])
    /// re-reads the pageblock type while a pageblock is isolated and frees and counts by it.
    /// Patch 3 counts at entry.
    pub(crate) fn free_pcppage(&mut self, pfn: Pfn, order: Order, cached: Migratetype) {
        let fixes = self.ctx.fixes;
        let mut mt = cached;
        if fixes.contains(Fixes::RECHECK_PCP_BULK) && self.nr_isolate_pageblock > 0 {
            mt = self.ctx.pageblock.get(pfn);
        }
        self.set_freepage_migratetype(pfn, cached);
        if fixes.contains(Fixes::COUNT_AT_ENTRY) || fixes.contains(Fixes::RECHECK_PCP_BULK) {
            // v3 patch 2 before patch 3 already counts by the chosen type.
            self.free_one_page_counted(pfn, order, mt);
            self.ctx.trace.mm_page_pcpu_drain(pfn, order, mt);
            self.ledger_note_pcppage(pfn, mt);
            return;
        }
        self.free_one_page_locked(pfn, order, mt);
        self.ctx.trace.mm_page_pcpu_drain(pfn, order, mt);
        if !self.ctx.pageblock.get(pfn).is_isolate() {
            let pages = order.nr_pages() as i64;
            self.mod_zone_page_state(ZoneStatItem::NrFreePages, pages);
            if mt.is_cma() {
                self.mod_zone_page_state(ZoneStatItem::NrFreeCmaPages, pages);
            }
        }
        self.ledger_note_pcppage(pfn, mt);
    }

    /// The ledger's note for one page of `free_pcppages_bulk`.
    #[inline]
    fn ledger_note_pcppage(&mut self, pfn: Pfn, landed: Migratetype) {
        let path = LedgerPath::FreePcppagesBulk;
        self.ledger_note(path, |zf, f| zf.classify_free(pfn, landed, path, f));
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
    pub(crate) fn rmqueue_smallest(&mut self, order: Order, mt: Migratetype) -> Option<Pfn> {
        for cur in order.0..self.ctx.geo.max_order {
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
    pub(crate) fn move_freepages(&mut self, start: Pfn, end: Pfn, mt: Migratetype) -> u64 {
        let hygiene = self.ctx.fixes.contains(Fixes::ISOLATE_HYGIENE);
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
    pub(crate) fn move_freepages_block(&mut self, pfn: Pfn, mt: Migratetype) -> u64 {
        let start = Pfn(pfn.0 & !(self.ctx.geo.pageblock_nr_pages - 1));
        let end = start.add(self.ctx.geo.pageblock_nr_pages - 1);
        self.move_freepages(start, end, mt)
    }

    /// Account `nr` pages by the list the free block at `pfn` is on (nothing for `Isolate`):
    /// 2024's `account_freepages` at the freelist boundary.
    pub(crate) fn account_list(&mut self, pfn: Pfn, nr: i64) {
        let list = self.page[pfn.idx()].list;
        if !list.is_isolate() {
            self.account(nr, list);
        }
    }

    /// 2024's `find_large_buddy` + `split_large_buddy`: if a free block larger than a
    /// pageblock covers the pageblock at `block`, take it off its list (counted out by that
    /// list) and free it again as pageblock-sized blocks, each on the list of its own
    /// pageblock's type (counted in unless `Isolate`), without merging.
    pub(crate) fn split_large_buddy(&mut self, block: Pfn) {
        let pb = self.ctx.geo.pageblock_order;
        let Some((head, order)) = (pb + 1..self.ctx.geo.max_order).find_map(|o| {
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
            let mt = self.ctx.pageblock.get(chunk);
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
        pfn: Pfn,
        order: Order,
        start_type: Migratetype,
        fallback_type: Migratetype,
    ) -> Migratetype {
        if fallback_type.is_cma() {
            return fallback_type;
        }
        let pb = self.ctx.geo.pageblock_order;
        if order.0 >= pb {
            // change_pageblock_range
            let mut p = pfn;
            let end = pfn.add(order.nr_pages());
            while p < end {
                self.set_pageblock_migratetype(p, start_type);
                p = p.add(self.ctx.geo.pageblock_nr_pages);
            }
            return start_type;
        }
        if order.0 >= pb / 2 || start_type == Migratetype::Reclaimable {
            let pages = self.move_freepages_block(pfn, start_type);
            if pages >= (1u64 << pb) >> 1 {
                self.set_pageblock_migratetype(pfn, start_type);
                return start_type;
            }
        }
        fallback_type
    }

    /// `__rmqueue_fallback(zone, order, start_migratetype)` (3.17): the largest block from the
    /// first fallback type that has one.
    pub(crate) fn rmqueue_fallback(&mut self, order: Order, start: Migratetype) -> Option<Pfn> {
        for cur in (order.0..self.ctx.geo.max_order).rev() {
            for &fallback in start.fallbacks() {
                let Some(pfn) = self.list_first(Order(cur), fallback) else {
                    continue;
                };
                let new_type = self.try_to_steal_freepages(pfn, Order(cur), start, fallback);
                self.del_from_free_list(pfn, Order(cur));
                self.expand(pfn, order, Order(cur), new_type);
                self.set_freepage_migratetype(pfn, new_type);
                self.events.extfrag += 1;
                self.ctx.trace.mm_page_alloc_extfrag(|| Extfrag {
                    pfn,
                    alloc_order: order,
                    fallback_order: Order(cur),
                    pageblock_order: self.ctx.geo.pageblock_order,
                    alloc_mt: start,
                    fallback_mt: fallback,
                    new_mt: new_type,
                });
                return Some(pfn);
            }
        }
        None
    }

    /// The seed's patchset \[3\] `__rmqueue_cma`: for Movable requests on a zone with CMA,
    /// alternate runs on the normal and the CMA lists. `None` means "use the normal path".
    fn rmqueue_cma(&mut self, order: Order) -> Option<Pfn> {
        let n = order.nr_pages();
        if self.cma_try.nr_try_movable == 0 && self.cma_try.nr_try_cma == 0 {
            self.adjust_cma_interleave();
        }
        if self.cma_try.nr_try_movable > 0 {
            self.cma_try.nr_try_movable = self.cma_try.nr_try_movable.saturating_sub(n);
            return None;
        }
        if self.cma_try.nr_try_cma > 0 {
            self.cma_try.nr_try_cma = self.cma_try.nr_try_cma.saturating_sub(n);
            let page = self.rmqueue_smallest(order, Migratetype::Cma);
            if page.is_none() && order.0 == 0 {
                self.cma_try.nr_try_cma = 0;
            }
            return page;
        }
        None
    }

    /// `adjust_managed_cma_page_count`: refill the interleave budgets in proportion to free
    /// normal vs free CMA pages, each run at least a pageblock.
    fn adjust_cma_interleave(&mut self) {
        let pb = self.ctx.geo.pageblock_nr_pages;
        // The seed's patch reads the counters as 3.17 does: zone_page_state, the folded value.
        let cma = self.ctx.vm_stat.read(ZoneStatItem::NrFreeCmaPages).max(0) as u64;
        let movable = (self.ctx.vm_stat.read(ZoneStatItem::NrFreePages).max(0) as u64)
            .saturating_sub(cma)
            .saturating_sub(self.wmark.high);
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

    /// `__rmqueue(zone, order, mt)`: the type's own lists, then the fallbacks, then Reserve;
    /// then `trace_mm_page_alloc_zone_locked` with the type last asked for.
    pub(crate) fn rmqueue(&mut self, order: Order, mt: Migratetype) -> Option<Pfn> {
        let (page, asked) = self.rmqueue_untraced(order, mt);
        self.ctx.trace.mm_page_alloc_zone_locked(page, order, asked);
        page
    }

    /// [`rmqueue`](Self::rmqueue) before its tracepoint: the block, and the type last asked
    /// for (`Reserve` once the fallbacks failed, as 3.17's `retry_reserve`).
    fn rmqueue_untraced(&mut self, order: Order, mt: Migratetype) -> (Option<Pfn>, Migratetype) {
        if mt == Migratetype::Movable
            && self.ctx.cma_policy == CmaPolicy::Aggressive
            && self.ctx.geo.cma_pages > 0
            && let Some(pfn) = self.rmqueue_cma(order)
        {
            return (Some(pfn), mt);
        }
        if let Some(pfn) = self.rmqueue_smallest(order, mt) {
            return (Some(pfn), mt);
        }
        if mt != Migratetype::Reserve {
            if let Some(pfn) = self.rmqueue_fallback(order, mt) {
                return (Some(pfn), mt);
            }
            let reserve = Migratetype::Reserve;
            return (self.rmqueue_smallest(order, reserve), reserve);
        }
        (None, mt)
    }
}
