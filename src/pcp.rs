//! Page caches (pcp): 3.17's `per_cpu_pages`, one per OS thread per zone
//! ([`PcpMode::PerThread`](crate::PcpMode::PerThread)) or one per modelled CPU
//! ([`PcpMode::PerCpu`](crate::PcpMode::PerCpu), the kernel's).
//!
//! # What it owns
//! Each [`Pcp`] holds `count`, three lists (Unmovable, Reclaimable, Movable) of
//! `(pfn, cached migratetype)` entries, and its order-0 event counts. CMA and Reserve
//! pages sit on the Movable list but keep their real type as the cached migratetype (3.17's
//! `page->index`), which is what race R2 is about. A pcp's index in the registry is its "CPU":
//! the vmstat diffs its zone-lock sections update (see `vmstat`).
//!
//! With [`ZoneConfig::pcp_high_order`](crate::ZoneConfig::pcp_high_order) a pcp has three
//! such lists for each of orders 0 to 3 and `pageblock_order` (5.14's 44042b449872), `count`
//! is in pages, a refill takes `max(batch >> order, 2)` blocks, and the batch free goes round
//! all fifteen lists, a block of order `o` counting `2^o` pages. A block of order 1–3 cached
//! as CMA and drained into a pageblock isolated meanwhile is R2 with a bigger block: patch 2's
//! recheck covers it (`tests/pcp_high_order.rs`, loom `r2-high-order`).
//!
//! # Protection
//! | state | lock |
//! | --- | --- |
//! | a per-thread pcp's lists, `count`, events | the owner's asymmetric protocol (no lock, no read-modify-write), or that pcp's own lock: `drain_all_pages` and `audit` take it from other threads (the 2022 kernel design, instead of IPIs) |
//! | a per-CPU pcp's lists | that pcp's own lock, taken by whichever thread is on the CPU for one operation (3.17's interrupts-off section), and by the drain "IPI" |
//! | the registry of pcps | the registry lock (taken when a thread first uses a zone, by per-thread `drain_all_pages` to read the list, `audit`, `zoneinfo`) |
//! | one `drain_all_pages` at a time | the registry's drain lock (`pcpu_drain_mutex`) |
//!
//! Lock order: drain lock → registry → pcp → zone. `drain_all_pages` drops the registry lock
//! before it takes any pcp lock; per-CPU `drain_all_pages` holds one pcp at a time.
//!
//! # Thread exit
//! Per-thread mode: a thread's pcps live in a thread-local list. Its destructor drains each
//! one into its zone (if the zone still exists), folds its vmstat diffs, and marks the pcp
//! free for reuse by the next new thread. A pcp is also always in its zone's registry, so
//! `drain_all_pages` reaches pages of any thread, alive or not. Per-CPU mode has nothing to do
//! at thread exit: no pcp belongs to a thread, and pages stay on the CPU's pcp, as in 3.17.
//!
//! # Kernel functions mirrored
//! `free_hot_cold_page` ([`ZoneInner::free_hot_cold_page`]; 5.14's `free_unref_page` for high
//! orders, [`ZoneInner::free_unref_page`]), `buffered_rmqueue`'s order-0 branch
//! ([`ZoneInner::rmqueue_pcp`]; 5.14's `rmqueue_pcplist`, [`ZoneInner::rmqueue_pcplist`]),
//! `rmqueue_bulk`, `free_pcppages_bulk` (3.17 round-robin; 5.14's over the high-order lists),
//! `drain_pages`, `drain_all_pages` (per-CPU: 3.17's scan of `cpus_with_pcps`, then
//! `on_each_cpu_mask`).

use crate::gfp::{AllocFlags, Gfp};
use crate::hook::RaceWindow;
use crate::page::Owner;
use crate::types::{Migratetype, Order, Pfn};
use crate::vmstat::{VmStatDiffs, ZoneStatItem};
use crate::zone::pageset::{
    DrainCaller, PcpEntry, PcpLists, PcpZone, order_to_pindex, pindex_to_order,
};
use crate::zone::{ZoneFree, ZoneInner};

/// The pcp list a freed block of pageblock type `mt` (not `Isolate`: the leaf paths read it
/// with `get_unless_isolate`) goes on: its own, or Movable's for CMA and Reserve.
#[cfg(not(loom))]
#[inline(always)]
fn leaf_list(mt: Migratetype) -> Migratetype {
    if mt.is_pcp_type() {
        mt
    } else {
        Migratetype::Movable
    }
}

impl ZoneInner {
    /// `free_hot_cold_page(page, cold)`: an order-0 free. Reads the pageblock type without the
    /// zone lock and caches it with the page; `Isolate` pages bypass the pcp; CMA and Reserve
    /// pages go on the Movable list. Frees a batch when the pcp reaches `high`.
    #[inline(always)]
    pub(crate) fn free_hot_cold_page(&self, pfn: Pfn, cold: bool) {
        #[cfg(not(loom))]
        if self.free_pcp_fast(pfn, Order(0), cold) {
            return;
        }
        self.free_hot_cold_page_past_cache(pfn, cold);
    }

    /// [`free_hot_cold_page`](Self::free_hot_cold_page) past the per-thread fast path: the
    /// per-CPU leaf, else the full path. Out of line, so that the per-thread path stays small.
    #[inline(never)]
    fn free_hot_cold_page_past_cache(&self, pfn: Pfn, cold: bool) {
        #[cfg(not(loom))]
        if self.free_hot_cold_page_cpu(pfn, cold) {
            return;
        }
        self.free_unref_page(pfn, Order(0), cold);
    }

    /// The common case of a per-CPU free, as a leaf: a zone without race hook or trace, a
    /// pageblock type the pcp takes, room below `high` on the CPU's pcp. One per-CPU section
    /// (3.17's `local_irq_save` … `local_irq_restore`). `false`, having changed nothing,
    /// otherwise.
    #[cfg(not(loom))]
    #[inline(always)]
    fn free_hot_cold_page_cpu(&self, pfn: Pfn, cold: bool) -> bool {
        if !self.pcps.cpu_fast() {
            return false;
        }
        let Some(mt) = self.pageblock.get_unless_isolate(pfn) else {
            return false;
        };
        let lists = (mt, leaf_list(mt));
        self.pcps
            .cpu_section(|l| self.pcp_push_below_high(l, pfn, Order(0), lists, cold))
    }

    /// The common case of [`free_hot_cold_page`](Self::free_hot_cold_page) (and of a
    /// high-order free with high-order pcps: `order` is a constant at each caller), as a leaf:
    /// no race hook, a pageblock type the pcp takes, the calling thread's cached per-thread pcp
    /// free of remote sessions, and room below `high`. Returns `false`, having changed
    /// nothing, in every other case; the slow path then does the whole free (its second
    /// unlocked read of the pageblock type is as racy as the first, whose value was unused).
    #[cfg(not(loom))]
    #[inline(always)]
    fn free_pcp_fast(&self, pfn: Pfn, order: Order, cold: bool) -> bool {
        if self.hook.is_some() {
            return false;
        }
        let Some(pcp) = self.pcps.cached() else {
            return false;
        };
        let Some(mt) = self.pageblock.get_unless_isolate(pfn) else {
            return false;
        };
        let lists = (mt, leaf_list(mt));
        let Some(mut l) = pcp.try_owner_light() else {
            return false;
        };
        self.pcp_push_below_high(&mut l, pfn, order, lists, cold)
    }

    /// The leaf paths' push: a block of pageblock type `mt` goes on the pcp list for `list`
    /// ([`leaf_list`]`(mt)`) if that keeps the pcp below `high`, where the list has room by
    /// construction (see `PcpLists::new`). `false`, having changed nothing, otherwise.
    #[cfg(not(loom))]
    #[inline(always)]
    fn pcp_push_below_high(
        &self,
        l: &mut PcpLists,
        pfn: Pfn,
        order: Order,
        (mt, list): (Migratetype, Migratetype),
        cold: bool,
    ) -> bool {
        if l.count + (1 << order.0) >= self.geo.pcp_high {
            return false;
        }
        self.pcp_push(l, pfn, order, mt, order_to_pindex(list, order), cold);
        true
    }

    /// A free of a block of `order` > 0 that high-order pcps take (5.14's `free_unref_page`):
    /// the leaf, else the full path. Out of line, so that the order-0 free stays small where
    /// it is inlined.
    #[inline(never)]
    pub(crate) fn free_pcp_high_order(&self, pfn: Pfn, order: Order) {
        #[cfg(not(loom))]
        if self.free_pcp_fast(pfn, order, false) {
            return;
        }
        self.free_unref_page(pfn, order, false);
    }

    /// `free_unref_page(page, order)` in full (3.17's `free_hot_cold_page` for order 0; 5.14's
    /// high-order pcps for the orders [`pcp_allowed_order`](crate::zone::pageset::pcp_allowed_order) accepts): race windows, `Isolate`
    /// pages, per-CPU pcps, a per-thread pcp past the cache or held remotely, the batch free
    /// at `high`.
    #[inline(never)]
    pub(crate) fn free_unref_page(&self, pfn: Pfn, order: Order, cold: bool) {
        // `free_pages_prepare`'s tracepoint (a traced zone never takes the fast path).
        self.trace.mm_page_free(pfn, order);
        let mt = self.get_pageblock_migratetype(pfn);
        self.free_window(RaceWindow::FreeBeforePcpAdd, pfn, order, mt);
        let Some(list) = mt.pcp_list() else {
            self.free_one_page(pfn, order, mt);
            return;
        };
        let pindex = order_to_pindex(list, order);
        let add = |l: &mut PcpLists| self.pcp_add(l, pfn, order, mt, pindex, cold);
        let added = if self.pcps.is_per_cpu() {
            self.pcps.with_cpu_lists(add)
        } else {
            self.pcps.with_lists(add)
        };
        if added != Some(true) {
            // The thread is exiting (no pcp), a race hook bars the pcp, or the block's list is
            // full: free straight to the buddy lists.
            self.free_one_page(pfn, order, mt);
        }
    }

    /// Put a freed block on the pcp's list `pindex` with its cached type `mt` (the head for a
    /// hot page, the tail for a cold one), and count it. The caller has checked for room.
    #[inline(always)]
    fn pcp_push(
        &self,
        l: &mut PcpLists,
        pfn: Pfn,
        order: Order,
        mt: Migratetype,
        pindex: usize,
        cold: bool,
    ) {
        let entry = PcpEntry {
            pfn: pfn.0 as u32,
            mt,
        };
        if cold {
            l.lists[pindex].push_back(entry);
        } else {
            l.lists[pindex].push_front(entry);
        }
        let pages = 1u32 << order.0;
        l.count += pages;
        l.events.pgfree += u64::from(pages);
        self.state.set_freed(pfn);
    }

    /// Add a freed block to the pcp's list `pindex` with its cached type `mt`; free a batch at
    /// `high`. `false`, having changed nothing, if the list has no room (see
    /// [`PcpLists::new`]).
    #[inline(always)]
    fn pcp_add(
        &self,
        l: &mut PcpLists,
        pfn: Pfn,
        order: Order,
        mt: Migratetype,
        pindex: usize,
        cold: bool,
    ) -> bool {
        if l.lists[pindex].is_full() {
            return false;
        }
        self.pcp_push(l, pfn, order, mt, pindex, cold);
        if l.count >= self.geo.pcp_high {
            self.free_pcppages_batch(l);
        }
        true
    }

    /// The high-watermark free, out of the fast path: one `batch` (3.17), or with high-order
    /// pcps 5.14's `nr_pcp_free`, which grows while frees come with no allocation between.
    #[cold]
    #[inline(never)]
    fn free_pcppages_batch(&self, l: &mut PcpLists) {
        let (high, batch) = (self.geo.pcp_high, self.geo.pcp_batch);
        let count = if self.geo.pcp_high_order {
            l.nr_pcp_free(high, batch)
        } else {
            batch
        };
        self.free_pcppages_bulk(count, l);
    }

    /// `buffered_rmqueue` for order 0: pop from this thread's pcp list for `mt`, refilling it
    /// with `rmqueue_bulk` when empty; the page goes to `owner`. `trace_as`: the caller is
    /// `__alloc_pages_nodemask` itself, which traces the page it gets here with this mask.
    #[inline(always)]
    pub(crate) fn rmqueue_pcp(
        &self,
        mt: Migratetype,
        owner: Owner,
        flags: AllocFlags,
        trace_as: Option<Gfp>,
    ) -> Option<Pfn> {
        #[cfg(not(loom))]
        if let Some(pfn) = self.rmqueue_pcp_fast(mt, Order(0), owner) {
            return Some(pfn);
        }
        self.rmqueue_pcp_past_cache(mt, owner, flags, trace_as)
    }

    /// [`rmqueue_pcp`](Self::rmqueue_pcp) past the per-thread fast path: the per-CPU leaf,
    /// else the full path. Out of line, so that the per-thread path stays small.
    #[inline(never)]
    fn rmqueue_pcp_past_cache(
        &self,
        mt: Migratetype,
        owner: Owner,
        flags: AllocFlags,
        trace_as: Option<Gfp>,
    ) -> Option<Pfn> {
        #[cfg(not(loom))]
        if let Some(pfn) = self.rmqueue_pcp_cpu(mt, owner) {
            return Some(pfn);
        }
        self.rmqueue_pcplist(Order(0), mt, owner, flags, trace_as)
    }

    /// The common case of a per-CPU order-0 allocation, as a leaf: a zone without race hook
    /// or trace whose CPU pcp has a page on the list for `mt`, taken in one per-CPU section.
    /// `None`, having changed nothing, otherwise.
    #[cfg(not(loom))]
    #[inline(always)]
    fn rmqueue_pcp_cpu(&self, mt: Migratetype, owner: Owner) -> Option<Pfn> {
        if !self.pcps.cpu_fast() {
            return None;
        }
        self.pcps.cpu_section(|l| {
            let e = l.lists[mt.idx()].pop_front()?;
            l.count -= 1;
            let pfn = Pfn(u64::from(e.pfn));
            self.state
                .set_alloc(pfn, Order(0), mt == Migratetype::Movable, owner);
            Some(pfn)
        })
    }

    /// The common case of [`rmqueue_pcp`](Self::rmqueue_pcp) (and of a high-order allocation
    /// with high-order pcps: `order` is a constant at each caller), as a leaf: the calling
    /// thread's cached per-thread pcp, free of remote sessions, has a block on the list for
    /// `mt` and `order`. `None`, having changed nothing, otherwise.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn rmqueue_pcp_fast(
        &self,
        mt: Migratetype,
        order: Order,
        owner: Owner,
    ) -> Option<Pfn> {
        let mut l = self.pcps.cached()?.try_owner_light()?;
        let e = l.lists[order_to_pindex(mt, order)].pop_front()?;
        l.count -= 1 << order.0;
        let pfn = Pfn(u64::from(e.pfn));
        self.state
            .set_alloc(pfn, order, mt == Migratetype::Movable, owner);
        Some(pfn)
    }

    /// `rmqueue_pcplist` (3.17's order-0 branch of `buffered_rmqueue`; 5.14's for every order
    /// [`pcp_allowed_order`](crate::zone::pageset::pcp_allowed_order) accepts) in full: per-CPU pcps, a per-thread pcp past the cache or
    /// held remotely, the refill; straight to the buddy lists when the thread has no pcp.
    #[inline(never)]
    pub(crate) fn rmqueue_pcplist(
        &self,
        order: Order,
        mt: Migratetype,
        owner: Owner,
        flags: AllocFlags,
        trace_as: Option<Gfp>,
    ) -> Option<Pfn> {
        let pindex = order_to_pindex(mt, order);
        let pop = |l: &mut PcpLists| {
            let e = match l.lists[pindex].pop_front() {
                Some(e) => e,
                None => self.pcp_refill_pop(order, mt, pindex, l, flags)?,
            };
            l.count -= 1 << order.0;
            let pfn = Pfn(u64::from(e.pfn));
            self.state
                .set_alloc(pfn, order, mt == Migratetype::Movable, owner);
            Some(pfn)
        };
        let got = if self.pcps.is_per_cpu() {
            self.pcps.with_cpu_lists(pop)
        } else {
            self.pcps.with_lists(pop)
        };
        let page = got.unwrap_or_else(|| self.rmqueue_locked_block(order, mt, owner, flags));
        // A traced zone never takes the fast path, so only this path has the tracepoint.
        if let (Some(gfp), Some(_)) = (trace_as, page) {
            self.trace.mm_page_alloc(page, order, mt, gfp);
        }
        page
    }

    /// The pcp list `pindex` (blocks of `order` for `mt`) is empty: refill it and pop its
    /// head. 5.14 refills a high-order list with `max(batch >> order, 2)` blocks (a `batch` of
    /// 1, a pcp that caches nothing, stays 1); for order 0 that is 3.17's `batch`.
    #[cold]
    #[inline(never)]
    fn pcp_refill_pop(
        &self,
        order: Order,
        mt: Migratetype,
        pindex: usize,
        l: &mut PcpLists,
        flags: AllocFlags,
    ) -> Option<PcpEntry> {
        let batch = self.geo.pcp_batch;
        let blocks = if batch > 1 {
            (batch >> order.0).max(2)
        } else {
            batch
        };
        let got = self.rmqueue_bulk(order, blocks, mt, pindex, l, flags);
        l.count += got << order.0;
        l.events.refilled += u64::from(got) << order.0;
        l.lists[pindex].pop_front()
    }

    /// `rmqueue_bulk(zone, order, count, list, mt, cold=0)`: take up to `count` blocks of
    /// `order` under the zone lock onto the pcp list `pindex`, each keeping the type
    /// `__rmqueue` gave it, if the zone passes the watermark `flags` name. Returns how many
    /// it got.
    fn rmqueue_bulk(
        &self,
        order: Order,
        count: u32,
        mt: Migratetype,
        pindex: usize,
        l: &mut PcpLists,
        flags: AllocFlags,
    ) -> u32 {
        let mut zf = self.lock_on(l.cpu);
        let zf = &mut *zf;
        zf.ledger_path(crate::zone::ledger::LedgerPath::Rmqueue);
        // The watermark is checked once per batch (the pcp hit path reads none).
        if !self.watermark_allows(zf, order, flags) {
            return 0;
        }
        let pages = 1i64 << order.0;
        let mut i = 0;
        while i < count && !l.lists[pindex].is_full() {
            let Some(pfn) = zf.rmqueue(order, mt) else {
                break;
            };
            let cached = zf.get_freepage_migratetype(pfn);
            l.lists[pindex].push_back(PcpEntry {
                pfn: pfn.0 as u32,
                mt: cached,
            });
            if cached.is_cma() {
                zf.mod_zone_page_state(ZoneStatItem::NrFreeCmaPages, -pages);
            }
            i += 1;
        }
        zf.mod_zone_page_state(ZoneStatItem::NrFreePages, -(i64::from(i) * pages));
        i
    }

    /// `free_pcppages_bulk(zone, count, pcp)`: free `count` pages from the pcp lists,
    /// round-robin over the lists in use, each list from its tail, then take the pages freed
    /// off `pcp->count`. 3.17's, over its three order-0 lists; with high-order lists, 5.14's:
    /// a block of order `o` counts `2^o` of `count`, so the last block may take it past 0.
    ///
    /// 3.17 frees each page to the list of its *cached* type and counts it if its pageblock is
    /// *now* not `Isolate` (race R2; with high-order lists, a whole block at a time). Patch 2
    /// re-reads the type when a pageblock is isolated.
    pub(crate) fn free_pcppages_bulk(&self, count: u32, l: &mut PcpLists) {
        let pb = self.geo.pageblock_order;
        debug_assert_eq!(
            u64::from(l.count),
            l.listed_pages(pb),
            "pcp count out of step with its lists"
        );
        let count = count.min(l.count);
        if count == 0 {
            return;
        }
        let nr_lists = l.nr_lists;
        if let Some(e) = l.lists[..nr_lists].iter().find_map(|q| q.back()) {
            self.race_window(RaceWindow::PcpBulkBeforeZoneLock, Pfn(e.pfn as u64));
        }
        let mut zf = self.lock_on(l.cpu);
        let zf: &mut ZoneFree = &mut zf;
        let mut pindex = 0usize;
        let mut batch_free = 0u32;
        let mut to_free = i64::from(count);
        let mut freed = 0u32;
        while to_free > 0 {
            loop {
                batch_free += 1;
                pindex += 1;
                if pindex == nr_lists {
                    pindex = 0;
                }
                if !l.lists[pindex].is_empty() {
                    break;
                }
            }
            // This is the only non-empty list: free them all.
            if batch_free == nr_lists as u32 {
                batch_free = to_free as u32;
            }
            let order = pindex_to_order(pindex, pb);
            while let Some(e) = l.lists[pindex].pop_back() {
                zf.free_pcppage(Pfn(e.pfn as u64), order, e.mt);
                to_free -= 1 << order.0;
                freed += 1 << order.0;
                batch_free -= 1;
                if to_free <= 0 || batch_free == 0 || l.lists[pindex].is_empty() {
                    break;
                }
            }
        }
        l.count -= freed;
        l.events.bulk_freed += u64::from(freed);
    }

    /// `drain_pages` for one pcp: free everything on it.
    pub(crate) fn drain_pages(&self, l: &mut PcpLists) {
        let n = l.count;
        self.free_pcppages_bulk(n, l);
    }

    /// `drain_all_pages()`: drain every pcp of this zone that holds pages, synchronously,
    /// one drain at a time (see [`DrainCaller`] for what a caller that finds a drain in
    /// progress does). Pages freed into a pcp after its drain stay there, as in the kernel.
    ///
    /// Per-CPU mode skips empty CPUs without taking their lock, by the count their last
    /// section published (3.17 reads `pcp->count` of each CPU before choosing whom to
    /// interrupt), and drains each CPU with pages in its own per-CPU section (what
    /// `on_each_cpu_mask(drain_local_pages)` runs on each CPU with interrupts off), one pcp at
    /// a time. Per-thread mode drains through remote sessions (the 2022 kernel's remote drain,
    /// under the pcp locks), only tried, and checks the count in the session (the owner's fast
    /// path publishes none: see `Pcp::count`). No drain waits for a pcp while it holds the
    /// registry or the drain lock (see `PcpRegistry::drain_each`).
    pub(crate) fn drain_all_pages_by(&self, caller: DrainCaller) {
        self.pcps.drain_each(caller, |l| {
            if l.count > 0 {
                self.drain_pages(l);
            }
        });
    }

    /// [`drain_all_pages_by`](Self::drain_all_pages_by) for a caller that needs the drain
    /// complete ([`DrainCaller::Complete`]).
    pub(crate) fn drain_all_pages(&self) {
        self.drain_all_pages_by(DrainCaller::Complete);
    }

    /// Drain the calling thread's pcp for this zone.
    pub(crate) fn drain_local_pages(&self) {
        self.pcps.with_lists(|l| self.drain_pages(l));
    }
}

impl PcpZone for ZoneInner {
    fn exit_drain(&self, l: &mut PcpLists) {
        self.drain_pages(l);
    }

    fn exit_fold(&self, cpu: usize) {
        self.lock_on(VmStatDiffs::NO_CPU)
            .refresh_vm_stats(Some(cpu));
    }
}
