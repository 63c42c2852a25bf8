//! Memory compaction: 3.17's `mm/compaction.c` for the one zone, and the free-page grab
//! (`isolate_freepages_range`) that `alloc_contig_range` shares with it.
//!
//! # What it does
//! A migrate scanner walks up from the bottom of the zone, a pageblock at a time, isolating
//! movable blocks (live, unpinned, order-0 [`MovablePages`]); a free scanner walks down from
//! the top, taking free pages off the buddy lists (`split_free_page`) in pageblocks that are
//! fit to receive movable pages; each batch of movable blocks is migrated into those free
//! pages; the scanners stop when they meet, or earlier when the block the caller wants is
//! free. Free pages the free scanner took but migration did not use are freed again.
//!
//! # What it owns
//! [`CompactControl`] (`struct compact_control`): one compaction's scanner positions, its
//! private lists of isolated free pages (allocated pages, held by the compaction: the audit
//! counts them as allocated, and they are freed when the compaction ends, also on unwind)
//! and of isolated movable blocks. The zone's compaction state (deferral, cached scanner
//! positions, skip hints) lives in `zone::compact_state`; the buddy core's
//! `ZoneFree::isolate_free_page` is `__isolate_free_page`; migration is `migrate`'s
//! `migrate_block`, shared with `alloc_contig_range`.
//!
//! # Locks
//! Every free-list access takes the zone lock: the free scanner holds it for one pageblock at
//! a time (3.17 takes it at the first free page of a pageblock and keeps it to the end of the
//! block, dropping it only when contended), `compact_finished` and `compaction_suitable` hold
//! it to read the free lists and counters. The migrate scanner takes no zone lock (it reads the
//! page-state table and the movable registry). No lock is held across a migration; the
//! compaction state's mutex is a leaf. So compaction runs beside frees, allocations, isolation
//! and `alloc_contig_range` on other threads, as in the kernel: everything it does to the free
//! lists is one zone-locked step.
//!
//! # Kernel functions mirrored (3.17 `mm/compaction.c` unless noted)
//! | here | kernel |
//! | --- | --- |
//! | [`Zone::compact_memory`] | writing `/proc/sys/vm/compact_memory`: `compact_node` (`order == -1`, `MIGRATE_SYNC`, `ignore_skip_hint`) |
//! | [`Zone::compact_zone`] | `__compact_pgdat` for one zone and one order (deferral check, `compaction_defer_reset` when the watermark is met), `MIGRATE_SYNC` |
//! | `ZoneInner::try_to_compact_pages` | `try_to_compact_pages` (the `__GFP_FS` / `__GFP_IO` test, `compact_stall`) |
//! | `ZoneInner::compact_zone_order`, `ZoneInner::compact_zone` | `compact_zone_order`, `compact_zone` (cached scanner positions, `compaction_restarting` reset, the loop, `release_freepages`) |
//! | `ZoneInner::compaction_suitable` | `compaction_suitable` (order-0 watermark + `2 << order`, `fragmentation_index` against `sysctl_extfrag_threshold`) |
//! | `fragmentation_index` | `fragmentation_index` / `__fragmentation_index` (`mm/vmstat.c`) |
//! | `ZoneInner::compact_finished` | `compact_finished` |
//! | `ZoneInner::isolate_migratepages`, `ZoneInner::isolate_migratepages_range` | same names (`PageLRU` = a live unpinned order-0 `MovablePages`; higher-order blocks skipped like THP) |
//! | `ZoneInner::isolate_freepages`, `ZoneInner::isolate_freepages_block` | same names (`strict` for CMA) |
//! | `suitable_migration_target`, `migrate_async_suitable` | same names |
//! | `ZoneInner::split_free_page` | `split_free_page` (`mm/page_alloc.c`): `__isolate_free_page` + `split_page` |
//! | `ZoneInner::isolate_freepages_range` | `isolate_freepages_range` (`alloc_contig_range`'s grab) |
//! | `ZoneInner::migrate_pages` with [`CompactControl`] as the target | `migrate_pages(..., compaction_alloc, compaction_free, ...)` |
//! | `update_pageblock_skip`, `isolation_suitable`, `ZoneInner::reset_isolation_suitable` | same names (`PG_migrate_skip`) |
//! | `compaction_deferred` / `defer_compaction` / `compaction_defer_reset` / `compaction_restarting` | same names (`include/linux/compaction.h`), in `zone::compact_state` |
//! | `slowpath`'s `alloc_pages_direct_compact` | `__alloc_pages_direct_compact` (`mm/page_alloc.c`) |
//!
//! # The accounting path this adds
//! `split_free_page` counts the block it takes out by its **pageblock's** type, not by the list
//! it is on. A block an earlier race left on the wrong list (R1's stranded block on an
//! `Isolate` list inside a normal pageblock, R2's page on the CMA list of an isolated one) is
//! counted out of counters it was never in, or the wrong one: the misplacement becomes drift,
//! as the test-time repair (R4) makes it. `tests/compaction.rs` shows it with R1a's stranded
//! page under [`Fixes::NONE`](crate::Fixes::NONE). Later kernels: 6.10's freelist hygiene
//! ([`Fixes::ISOLATE_HYGIENE`](crate::Fixes::ISOLATE_HYGIENE), on in `Fixes::ALL`) counts a
//! block out by the list it leaves (and keeps the lists and pageblock types in step, so the
//! two agree); 4.8 dropped `split_free_page` (b3ceb05f4bae: the free scanner calls
//! `__isolate_free_page` and splits the block after dropping the zone lock), and by 4.9 the
//! free scanner's watermark is `min` instead of `low`, with `ALLOC_CMA` (free CMA pages
//! count). None of those later changes is modelled beyond the hygiene flag's counting: the
//! check stays 3.17's in every preset.
//!
//! # Where this differs from 3.17, and why
//! - `suitable_migration_target` follows 3.17's code: a free block of `pageblock_order` or
//!   more is *not* a target (since 3.15; before, it was), and only Movable and CMA pageblocks
//!   are, so `Isolate` and `Reserve` never are. Its lockless part is the pageblock type only:
//!   `PageBuddy` and the order are read under the zone lock (the page metadata lives there);
//!   3.17 reads them racily first and rechecks them under the lock, which this does.
//! - No lock contention or `need_resched` aborts (`compact_checklock_irqsave`,
//!   `compact_should_abort`, `cc->contended`), no `too_many_isolated` throttle, no fatal
//!   signals: a compaction runs until it finishes. Async and sync differ in what 3.17 makes
//!   them differ in besides: async scans only Movable and CMA pageblocks for movable pages,
//!   never waits for a pinned block (a sync migration waits up to
//!   [`MIGRATE_PIN_RETRIES`](crate::MIGRATE_PIN_RETRIES) times), restarts from its own
//!   cached position, and never defers compaction. The slow path's later passes are
//!   `MIGRATE_SYNC_LIGHT` in 3.17 (`MIGRATE_SYNC` for kthreads); both are sync here (the
//!   difference is pages under writeback, which do not exist here), and THP faults
//!   (`GFP_TRANSHUGE`, whose bits this library does not have) are not told apart.
//! - The migrate scanner's first pageblock always gets the pageblock checks; 3.17 starts
//!   `last_pageblock_nr` at 0, so a scan starting in pageblock 0 skips them there (a kernel
//!   zone rarely starts in pageblock 0; this one always does).
//! - A movable block of order above 0 is skipped by its order (3.17 skips a transparent huge
//!   page the same way, or the rest of the pageblock when it holds no LRU lock yet).
//! - The destination page is taken before the block is pinned, as 3.17's `unmap_and_move`
//!   calls `get_new_page` before `lock_page`; one migration attempt takes one pin try (async)
//!   or up to ten (sync) instead of `migrate_pages`' ten passes.
//! - kswapd does not compact (3.17's `balance_pgdat` calls `compact_pgdat` for high-order
//!   wake-ups); it does clear the skip hints when it goes to sleep after a full compaction
//!   (`reset_isolation_suitable`).
//! - The zone's cached scanner positions start at the zone's ends (3.17 starts them at 0 and
//!   relies on a range check that a zone starting at pfn 0 would pass).
//! - 3.17 counts `compact_free_scanned` and `compact_isolated` in `alloc_contig_range`'s grab
//!   too (it is the same `isolate_freepages_block`); so does this.

use crate::error::{CompactError, IsolateError};
use crate::gfp::{AllocFlags, Gfp};
use crate::hook::RaceWindow;
use crate::migrate::{Migrate, MigrateMode, MigrateTarget};
use crate::page::Owner;
use crate::types::{Migratetype, Order, PageblockIdx, Pfn};
use crate::vmstat::ZoneStatItem;
use crate::zone::shrinker::ReclaimStats;
use crate::zone::{Zone, ZoneFree, ZoneInner};

/// `COMPACT_CLUSTER_MAX` (= `SWAP_CLUSTER_MAX`): movable blocks isolated per migration batch.
const COMPACT_CLUSTER_MAX: usize = 32;

/// `sysctl_extfrag_threshold`'s default: below this fragmentation index (in thousandths), a
/// failing allocation is short of memory rather than fragmented, and compaction is skipped.
pub const EXTFRAG_THRESHOLD: i64 = 500;

/// What a compaction did: 3.17's `COMPACT_*` results, and a deferral.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompactResult {
    /// `COMPACT_SKIPPED`: not run. Too few free pages (the order-0 low watermark plus
    /// `2 << order` fails: migration needs room for copies), or the allocation would fail for
    /// lack of memory rather than fragmentation (fragmentation index at most
    /// [`EXTFRAG_THRESHOLD`]). Direct compaction also skips requests that may not do I/O or
    /// enter the filesystem.
    Skipped,
    /// Not run: sync compaction for this order failed recently, and the zone skips the next
    /// `1 << compact_defer_shift` attempts (`compaction_deferred`).
    Deferred,
    /// `COMPACT_PARTIAL`: a block of the order is free (before compaction started, or after
    /// some of the zone was compacted), or compaction stopped when migration found no free
    /// page left before the scanners met.
    Partial,
    /// `COMPACT_COMPLETE`: the scanners met: every suitable pageblock was scanned.
    Complete,
}

/// `enum isolate_migrate_t` without `ISOLATE_ABORT` (which needs a fatal signal or lock
/// contention; neither is modelled).
enum IsolateMigrate {
    /// No pages isolated: go on scanning.
    None,
    /// Pages isolated: migrate them.
    Success,
}

/// `struct compact_control`: one compaction's state, private to the compacting thread.
///
/// Pages on `freepages` are allocated (held by this compaction); dropping the control frees
/// them (`release_freepages`), so a compaction that unwinds loses none.
pub(crate) struct CompactControl<'z> {
    zone: &'z ZoneInner,
    /// `cc->freepages`: isolated free pages (order 0), most recently isolated last.
    freepages: Vec<Pfn>,
    /// `cc->migratepages`: heads of isolated movable blocks.
    migratepages: Vec<Pfn>,
    /// `cc->nr_migratepages`: the size of the batch being migrated (kept while
    /// `migratepages` is being worked through).
    nr_migratepages: usize,
    /// `cc->free_pfn`: where the free scanner is (it goes down).
    free_pfn: Pfn,
    /// `cc->migrate_pfn`: where the migrate scanner is (it goes up).
    migrate_pfn: Pfn,
    /// `cc->order`; `None` is `-1`: compact everything (`compact_memory`).
    order: Option<Order>,
    /// `cc->migratetype`: the type the allocation wants (`compact_finished`'s list test).
    migratetype: Migratetype,
    /// `cc->mode`.
    mode: MigrateMode,
    /// `cc->ignore_skip_hint`.
    ignore_skip_hint: bool,
    /// `cc->finished_update_free`: the free scanner isolated something; the cached free
    /// position stays where it was.
    finished_update_free: bool,
    /// `cc->finished_update_migrate`: likewise for the migrate scanner.
    finished_update_migrate: bool,
}

impl<'z> CompactControl<'z> {
    fn new(
        zone: &'z ZoneInner,
        order: Option<Order>,
        migratetype: Migratetype,
        mode: MigrateMode,
        ignore_skip_hint: bool,
    ) -> CompactControl<'z> {
        CompactControl {
            zone,
            freepages: Vec::new(),
            migratepages: Vec::new(),
            nr_migratepages: 0,
            free_pfn: Pfn(zone.geo.nr_pages),
            migrate_pfn: Pfn(0),
            order,
            migratetype,
            mode,
            ignore_skip_hint,
            finished_update_free: false,
            finished_update_migrate: false,
        }
    }

    /// `release_freepages`: free every isolated free page the compaction did not use; the
    /// number freed.
    fn release_freepages(&mut self) -> usize {
        let n = self.freepages.len();
        self.zone
            .free_each(self.freepages.drain(..).map(|p| (p, Order(0))));
        n
    }
}

impl Drop for CompactControl<'_> {
    fn drop(&mut self) {
        // Only on unwind (a race hook's panic): the normal paths release or hand on the pages.
        self.release_freepages();
    }
}

/// `compaction_alloc` / `compaction_free`: migration takes its destinations from the free
/// pages the free scanner isolated, and gives unused ones back to them.
impl MigrateTarget for CompactControl<'_> {
    fn get_new_page(&mut self, order: Order) -> Option<Pfn> {
        // The free scanner's pages are order 0, and the migrate scanner isolates order-0
        // blocks only; but the block it isolated may have been freed and its pfn reused by a
        // larger movable block before the migration looks it up. Such a block gets no
        // destination (migration fails for it, as for -ENOMEM): an order-0 page must never
        // receive a larger block's bytes.
        if order != Order(0) {
            return None;
        }
        if self.freepages.is_empty() {
            let zone = self.zone;
            zone.isolate_freepages(self);
        }
        let pfn = self.freepages.pop()?;
        // Now the destination of a movable block: held, and movable.
        self.zone.state.set_alloc(pfn, Order(0), true, Owner::Held);
        Some(pfn)
    }

    fn put_new_page(&mut self, pfn: Pfn, _order: Order) {
        self.zone.state.set_alloc(pfn, Order(0), false, Owner::Held);
        self.freepages.push(pfn);
    }
}

/// `migrate_async_suitable(migratetype)`: Movable and CMA pageblocks.
#[inline]
fn migrate_async_suitable(mt: Migratetype) -> bool {
    mt == Migratetype::Movable || mt.is_cma()
}

/// `fragmentation_index(zone, order)` (`mm/vmstat.c`) from `free_area[].nr_free`: -1000 if a
/// block of `order` is free; else, in thousandths, how far a failure would be due to
/// fragmentation (towards 1000) rather than lack of memory (towards 0); 0 for an empty zone.
pub(crate) fn fragmentation_index(nr_free: &[u64], order: Order) -> i64 {
    let (mut free_pages, mut total, mut suitable) = (0u64, 0u64, 0u64);
    for (o, &blocks) in nr_free.iter().enumerate() {
        total += blocks;
        free_pages += blocks << o;
        if o as u32 >= order.0 {
            suitable += blocks << (o as u32 - order.0);
        }
    }
    if total == 0 {
        return 0;
    }
    if suitable > 0 {
        return -1000;
    }
    let requested = order.nr_pages();
    1000 - ((1000 + free_pages * 1000 / requested) / total) as i64
}

impl ZoneInner {
    /// `ALIGN(pfn, pageblock_nr_pages)`.
    #[inline]
    fn pageblock_align_up(&self, pfn: u64) -> Pfn {
        let pb = self.geo.pageblock_nr_pages;
        Pfn(pfn.div_ceil(pb) * pb)
    }

    #[inline]
    fn block_idx(&self, pfn: Pfn) -> PageblockIdx {
        PageblockIdx(pfn.0 >> self.geo.pageblock_order)
    }

    /// `isolation_suitable(cc, page)`: the pageblock is not marked to be skipped.
    #[inline]
    fn isolation_suitable(&self, cc: &CompactControl<'_>, pfn: Pfn) -> bool {
        cc.ignore_skip_hint || !self.compact.get_skip(self.block_idx(pfn))
    }

    /// `update_pageblock_skip(cc, page, nr_isolated, set_unsuitable, migrate_scanner)`: a
    /// whole pageblock was scanned and gave nothing: mark it to be skipped (when every kind
    /// of compaction would fail there), and unless this compaction already isolated
    /// something, let the next one of its kind start there (the zone's cached position).
    fn update_pageblock_skip(
        &self,
        cc: &CompactControl<'_>,
        page: Option<Pfn>,
        nr_isolated: u64,
        set_unsuitable: bool,
        migrate_scanner: bool,
    ) {
        if cc.ignore_skip_hint || nr_isolated > 0 {
            return;
        }
        let Some(pfn) = page else { return };
        if set_unsuitable {
            self.compact.set_skip(self.block_idx(pfn));
        }
        self.compact.with(|z| {
            if migrate_scanner {
                if cc.finished_update_migrate {
                    return;
                }
                if pfn > z.cached_migrate_pfn[0] {
                    z.cached_migrate_pfn[0] = pfn;
                }
                if cc.mode != MigrateMode::Async && pfn > z.cached_migrate_pfn[1] {
                    z.cached_migrate_pfn[1] = pfn;
                }
            } else {
                if cc.finished_update_free {
                    return;
                }
                if pfn < z.cached_free_pfn {
                    z.cached_free_pfn = pfn;
                }
            }
        });
    }

    /// `reset_isolation_suitable(pgdat)`: clear the skip hints if a compaction ran to
    /// completion since the last reset (kswapd calls it when it goes to sleep).
    #[cfg_attr(loom, allow(dead_code))] // kswapd is a real thread, not in loom builds
    pub(crate) fn reset_isolation_suitable(&self) {
        if self.compact.with(|z| z.blockskip_flush) {
            self.compact.reset_isolation_suitable();
        }
    }

    /// `suitable_migration_target(page)` under the zone lock, for the first free block found
    /// in a pageblock: not a free block of `pageblock_order` or more (a whole free pageblock
    /// is worth more to a high-order allocation than as a target), and a Movable or CMA
    /// pageblock.
    fn suitable_migration_target(&self, zf: &ZoneFree, pfn: Pfn) -> bool {
        if zf
            .buddy_order(pfn)
            .is_some_and(|o| o.0 >= self.geo.pageblock_order)
        {
            return false;
        }
        migrate_async_suitable(self.pageblock.get(pfn))
    }

    /// `split_free_page(page)` (`mm/page_alloc.c`): take the free block of `order` at `pfn`
    /// off its list (`__isolate_free_page`: the watermark check and the count by pageblock
    /// type) and split it into order-0 pages, allocated and held by the caller. The pages
    /// taken (0 if the watermark refused).
    pub(crate) fn split_free_page(&self, zf: &mut ZoneFree, pfn: Pfn, order: Order) -> u64 {
        let n = zf.isolate_free_page(pfn, order);
        for p in pfn.0..pfn.0 + n {
            self.state.set_alloc(Pfn(p), Order(0), false, Owner::Held);
        }
        n
    }

    /// `isolate_freepages_block(cc, blockpfn, end_pfn, freelist, strict)`: under the zone
    /// lock, split every free block whose head lies in `[start, end)` onto `cc.freepages`.
    /// Not strict (compaction): the first free block found must be a suitable target, else
    /// the pageblock is left alone. Strict (CMA): stop at the first page that is not free,
    /// and report 0 pages if that was before `end` (the caller gives back what was taken).
    /// Returns the pages isolated and the pfn where the scan stopped.
    fn isolate_freepages_block(
        &self,
        cc: &mut CompactControl<'_>,
        start: Pfn,
        end: Pfn,
        strict: bool,
    ) -> (u64, Pfn) {
        let (mut nr_scanned, mut total_isolated) = (0u64, 0u64);
        let mut valid_page = None;
        let mut checked_pageblock = false;
        let mut pfn = start;
        {
            let mut zf = self.lock();
            let zf = &mut *zf;
            while pfn < end {
                nr_scanned += 1;
                valid_page.get_or_insert(pfn);
                let Some(order) = zf.buddy_order(pfn) else {
                    if strict {
                        break;
                    }
                    pfn = pfn.add(1);
                    continue;
                };
                // Recheck this is a suitable migration target under the lock, once per
                // pageblock (the caller scans one pageblock).
                if !strict && !checked_pageblock {
                    checked_pageblock = true;
                    if !self.suitable_migration_target(zf, pfn) {
                        break;
                    }
                }
                let isolated = self.split_free_page(zf, pfn, order);
                total_isolated += isolated;
                cc.freepages.extend((pfn.0..pfn.0 + isolated).map(Pfn));
                if isolated > 0 {
                    pfn = pfn.add(isolated);
                    continue;
                }
                if strict {
                    break;
                }
                pfn = pfn.add(1);
            }
        }
        if strict && pfn < end {
            total_isolated = 0;
        }
        if pfn == end {
            self.update_pageblock_skip(cc, valid_page, total_isolated, true, false);
        }
        let st = &self.reclaim.stats;
        ReclaimStats::add(&st.compact_free_scanned, nr_scanned);
        ReclaimStats::add(&st.compact_isolated, total_isolated);
        (total_isolated, pfn)
    }

    /// `isolate_freepages_range(cc, start, end)` (strict, for `alloc_contig_range`): take
    /// every free block from `start` up to `end` off the lists (`split_free_page`: no
    /// watermark and no count in `Isolate` pageblocks), a pageblock at a time, as allocated
    /// order-0 pages held by the caller. Returns `outer_end` (past `end` when the last block
    /// runs over it). If a page on the way is not free, gives back what it took and fails
    /// with that page.
    pub(crate) fn isolate_freepages_range(
        &self,
        start: Pfn,
        end: Pfn,
    ) -> Result<Pfn, IsolateError> {
        // alloc_contig_range's compact_control: order -1, sync, ignore_skip_hint.
        let mut cc = CompactControl::new(self, None, Migratetype::Movable, MigrateMode::Sync, true);
        let mut pfn = start;
        while pfn < end {
            let block_end = self.pageblock_align_up(pfn.0 + 1).min(end);
            let (isolated, stopped) = self.isolate_freepages_block(&mut cc, pfn, block_end, true);
            if isolated == 0 {
                // `cc` gives the pages back when dropped.
                return Err(IsolateError::NotIsolated(stopped));
            }
            pfn = pfn.add(isolated);
        }
        // Handed to the caller: the pages stay allocated.
        cc.freepages.clear();
        Ok(pfn)
    }

    /// `isolate_migratepages_range(zone, cc, low_pfn, end_pfn, false)`: isolate movable
    /// blocks of `[low, end)` onto `cc.migratepages`, at most [`COMPACT_CLUSTER_MAX`];
    /// returns the first pfn not scanned.
    fn isolate_migratepages_range(&self, cc: &mut CompactControl<'_>, low: Pfn, end: Pfn) -> Pfn {
        let (mut nr_scanned, mut nr_isolated) = (0u64, 0u64);
        let mut last_pageblock = None;
        let mut valid_page = None;
        let mut set_unsuitable = true;
        let mut pfn = low;
        while pfn < end {
            nr_scanned += 1;
            valid_page.get_or_insert(pfn);
            let pageblock = self.block_idx(pfn);
            if last_pageblock != Some(pageblock) {
                last_pageblock = Some(pageblock);
                let mut skip = !self.isolation_suitable(cc, pfn);
                // Async compaction is optimistic: only Movable and CMA pageblocks.
                if !skip
                    && cc.mode == MigrateMode::Async
                    && !migrate_async_suitable(self.pageblock.get(pfn))
                {
                    set_unsuitable = false;
                    skip = true;
                }
                if skip {
                    // next_pageblock
                    pfn = self.pageblock_align_up(pfn.0 + 1);
                    continue;
                }
            }
            match self.state.alloc_order(pfn) {
                // Free (on the buddy lists or a pcp), offline, or a tail page: skip it.
                None => {}
                // A larger block (3.17 skips a transparent huge page by its order).
                Some(order) if order.0 > 0 => {
                    pfn = pfn.add(order.nr_pages());
                    continue;
                }
                // An order-0 block: isolate it if it is a movable block nobody pins.
                Some(_) if self.movable_candidate(pfn) => {
                    cc.finished_update_migrate = true;
                    cc.migratepages.push(pfn);
                    cc.nr_migratepages += 1;
                    nr_isolated += 1;
                    // Avoid isolating too much.
                    if cc.nr_migratepages == COMPACT_CLUSTER_MAX {
                        pfn = pfn.add(1);
                        break;
                    }
                }
                // Anything else (not `PageLRU`): skip it.
                Some(_) => {}
            }
            pfn = pfn.add(1);
        }
        if pfn == end {
            self.update_pageblock_skip(cc, valid_page, nr_isolated, set_unsuitable, true);
        }
        let st = &self.reclaim.stats;
        ReclaimStats::add(&st.compact_migrate_scanned, nr_scanned);
        ReclaimStats::add(&st.compact_isolated, nr_isolated);
        pfn
    }

    /// `isolate_migratepages(zone, cc)`: scan the rest of the migrate scanner's pageblock.
    fn isolate_migratepages(&self, cc: &mut CompactControl<'_>) -> IsolateMigrate {
        let low = cc.migrate_pfn;
        let end = self.pageblock_align_up(low.0 + 1);
        // Do not cross the free scanner.
        if end > cc.free_pfn {
            cc.migrate_pfn = end;
            return IsolateMigrate::None;
        }
        cc.migrate_pfn = self.isolate_migratepages_range(cc, low, end);
        IsolateMigrate::Success
    }

    /// `isolate_freepages(zone, cc)`: from the free scanner's position down, pageblock by
    /// pageblock, isolate free pages in suitable pageblocks until there are as many as
    /// movable blocks to migrate, or the scanner reaches the migrate scanner's pageblock.
    fn isolate_freepages(&self, cc: &mut CompactControl<'_>) {
        let pb = self.geo.pageblock_nr_pages;
        let zone_end = self.geo.nr_pages;
        let mut block_start = Pfn(cc.free_pfn.0 & !(pb - 1));
        let mut block_end = Pfn((block_start.0 + pb).min(zone_end));
        // The lowest pfn the scanner may reach: the end of the migrate scanner's pageblock.
        let low_pfn = self.pageblock_align_up(cc.migrate_pfn.0 + 1);
        let mut nr_freepages = cc.freepages.len();
        while block_start >= low_pfn && cc.nr_migratepages > nr_freepages {
            // pfn_valid: the first "pageblock" is past the end when the zone's end is aligned.
            if block_start.0 < zone_end
                && migrate_async_suitable(self.pageblock.get(block_start))
                && self.isolation_suitable(cc, block_start)
            {
                cc.free_pfn = block_start;
                self.race_window(RaceWindow::FreeScannerBeforeZoneLock, block_start);
                let (isolated, _) = self.isolate_freepages_block(cc, block_start, block_end, false);
                nr_freepages += isolated as usize;
                if isolated > 0 {
                    cc.finished_update_free = true;
                }
            }
            block_end = block_start;
            // block_start >= low_pfn >= one pageblock, so this cannot underflow.
            block_start = Pfn(block_start.0 - pb);
        }
        // If the scanner crossed the migrate scanner, keep it so for compact_finished.
        if block_start < low_pfn {
            cc.free_pfn = cc.migrate_pfn;
        }
    }

    /// `migrate_pages(&cc->migratepages, compaction_alloc, compaction_free, cc, mode)`:
    /// migrate the isolated batch into the isolated free pages. `Err(())` is `-ENOMEM`: the
    /// free scanner found nothing more, and the rest of the batch was left alone.
    fn migrate_pages(&self, cc: &mut CompactControl<'_>) -> Result<(), ()> {
        let batch = core::mem::take(&mut cc.migratepages);
        let mode = cc.mode;
        for pfn in batch {
            if self.migrate_block(pfn, mode, cc) == Migrate::NoMemory {
                return Err(());
            }
        }
        Ok(())
    }

    /// `compact_finished(zone, cc)`: `None` is `COMPACT_CONTINUE`.
    fn compact_finished(&self, cc: &CompactControl<'_>) -> Option<CompactResult> {
        // The run is complete when the migrate and free scanners meet.
        if cc.free_pfn <= cc.migrate_pfn {
            // Let the next compaction start anew (kswapd does not compact here).
            self.compact.scanners_met(false);
            return Some(CompactResult::Complete);
        }
        let order = cc.order?;
        let zf = self.lock();
        let mark = zf.watermarks().low + order.nr_pages();
        let free = self.vm_stat.read(ZoneStatItem::NrFreePages).max(0);
        if !zf.zone_watermark_ok(order, mark, AllocFlags::NONE, free) {
            return None;
        }
        // Direct compactor: is a suitable block free?
        for o in order.0..self.geo.max_order {
            if zf.list_first(Order(o), cc.migratetype).is_some() {
                return Some(CompactResult::Partial);
            }
            // An allocation of a pageblock or more takes any block (and sets its type).
            if order.0 >= self.geo.pageblock_order && zf.nr_free()[o as usize] > 0 {
                return Some(CompactResult::Partial);
            }
        }
        None
    }

    /// `compaction_suitable(zone, order)`: `None` is `COMPACT_CONTINUE` (run it).
    pub(crate) fn compaction_suitable(&self, order: Option<Order>) -> Option<CompactResult> {
        // order -1: compact_memory always runs.
        let order = order?;
        let zf = self.lock();
        let free = self.vm_stat.read(ZoneStatItem::NrFreePages).max(0);
        // Order-0 watermarks must be met, with room for the copies migration makes (2UL).
        let mark = zf.watermarks().low + (2u64 << order.0);
        if !zf.zone_watermark_ok(Order(0), mark, AllocFlags::NONE, free) {
            return Some(CompactResult::Skipped);
        }
        // Only compact if a failure would be due to fragmentation.
        let fragindex = fragmentation_index(zf.nr_free(), order);
        if (0..=EXTFRAG_THRESHOLD).contains(&fragindex) {
            return Some(CompactResult::Skipped);
        }
        if fragindex == -1000 && zf.zone_watermark_ok(order, mark, AllocFlags::NONE, free) {
            return Some(CompactResult::Partial);
        }
        None
    }

    /// `compact_zone(zone, cc)`.
    fn compact_zone(&self, cc: &mut CompactControl<'_>) -> CompactResult {
        if let Some(r) = self.compaction_suitable(cc.order) {
            return r;
        }
        // Clear the skip hints if compaction is about to be retried after a full deferral
        // (kswapd, which would not, does not compact here).
        if let Some(order) = cc.order {
            if self.compact.compaction_restarting(order.0) {
                self.compact.reset_isolation_suitable();
            }
        }
        // Start where the last compaction of this mode stopped, if that is inside the zone.
        let end = Pfn(self.geo.nr_pages);
        let sync = usize::from(cc.mode != MigrateMode::Async);
        let pb = self.geo.pageblock_nr_pages;
        (cc.migrate_pfn, cc.free_pfn) = self.compact.with(|z| {
            let mut free = z.cached_free_pfn;
            if free > end {
                free = Pfn(end.0 & !(pb - 1));
                z.cached_free_pfn = free;
            }
            let mut migrate = z.cached_migrate_pfn[sync];
            if migrate > end {
                migrate = Pfn(0);
                z.cached_migrate_pfn = [migrate; 2];
            }
            (migrate, free)
        });
        let ret = loop {
            if let Some(r) = self.compact_finished(cc) {
                break r;
            }
            match self.isolate_migratepages(cc) {
                IsolateMigrate::None => continue,
                IsolateMigrate::Success => {}
            }
            if cc.nr_migratepages == 0 {
                continue;
            }
            let err = self.migrate_pages(cc);
            // All pages were either migrated or are back where they were.
            cc.migratepages.clear();
            cc.nr_migratepages = 0;
            // -ENOMEM before the scanners met: stop here.
            if err.is_err() && cc.free_pfn > cc.migrate_pfn {
                break CompactResult::Partial;
            }
        };
        cc.release_freepages();
        ret
    }

    /// `compact_zone_order(zone, order, gfp_mask, mode)`.
    fn compact_zone_order(
        &self,
        order: Order,
        mt: Migratetype,
        mode: MigrateMode,
    ) -> CompactResult {
        let mut cc = CompactControl::new(self, Some(order), mt, mode, false);
        self.compact_zone(&mut cc)
    }

    /// `try_to_compact_pages(zonelist, order, gfp_mask, nodemask, mode)` for this zone:
    /// only for orders above 0 and callers that may do I/O and enter the filesystem (counted
    /// as a `compact_stall`).
    pub(crate) fn try_to_compact_pages(
        &self,
        order: Order,
        gfp: Gfp,
        mode: MigrateMode,
    ) -> CompactResult {
        if order.0 == 0 || !gfp.contains(Gfp::FS) || !gfp.contains(Gfp::IO) {
            return CompactResult::Skipped;
        }
        ReclaimStats::add(&self.reclaim.stats.compact_stall, 1);
        self.compact_zone_order(order, gfp.migratetype(), mode)
    }

    /// Whether the low watermark for `order` is met with no allocation flags (the test after
    /// `__compact_pgdat`).
    fn low_wmark_ok(&self, order: Order) -> bool {
        let zf = self.lock();
        let free = self.vm_stat.read(ZoneStatItem::NrFreePages).max(0);
        zf.zone_watermark_ok(order, zf.watermarks().low, AllocFlags::NONE, free)
    }
}

impl Zone {
    /// Compact the whole zone, as writing to `/proc/sys/vm/compact_memory` does
    /// (`compact_node`: order -1, synchronous migration, skip hints ignored): move every
    /// movable block the migrate scanner can take (a live, unpinned, order-0
    /// [`MovablePages`](crate::MovablePages)) from the bottom of the zone into free pages at
    /// the top, until the scanners meet.
    ///
    /// Returns [`CompactResult::Complete`] when the scanners met, or
    /// [`CompactResult::Partial`] if migration ran out of free pages first. Like 3.17 it
    /// starts where the last compaction stopped (the cached scanner positions) and does not
    /// drain the pcps: the pages migration freed may sit on this thread's pcp until a drain
    /// ([`drain_all_pages`](Self::drain_all_pages)) merges them.
    ///
    /// ```
    /// use pagealloc::{CompactResult, Order, Zone, ZoneConfig};
    /// let zone = Zone::new(ZoneConfig { size: 16 << 20, ..ZoneConfig::default() })?;
    /// // Every other page held by a movable handle: no free block above order 0.
    /// let mut held: Vec<_> = (0..4096).map(|_| zone.alloc_movable(Order(0)).unwrap()).collect();
    /// held.retain(|m| m.pfn().0 % 2 == 0);
    /// assert_eq!(zone.compact_memory(), CompactResult::Complete);
    /// zone.drain_all_pages();
    /// assert!(zone.audit().nr_free[9] > 0); // whole free pageblocks again
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compact_memory(&self) -> CompactResult {
        let z = &*self.inner;
        let mut cc = CompactControl::new(z, None, Migratetype::Movable, MigrateMode::Sync, true);
        z.compact_zone(&mut cc)
    }

    /// Compact the zone for a block of `order`, as 3.17's `__compact_pgdat` does for a zone
    /// (with synchronous migration, as a direct compactor's later passes use, and for a
    /// movable request): [`CompactResult::Deferred`] if recent sync compactions for `order`
    /// failed (counting this attempt: `compaction_deferred`), else the result of
    /// `compact_zone`: [`Skipped`](CompactResult::Skipped) when the zone has too few free
    /// pages or is not fragmented, [`Partial`](CompactResult::Partial) when a movable block
    /// of `order` is free (already, or once enough was moved),
    /// [`Complete`](CompactResult::Complete) when the whole zone was scanned. If the low
    /// watermark for `order` is met afterwards, the deferral for `order` is relaxed
    /// (`compaction_defer_reset(zone, order, false)`). Only the allocator's failed sync
    /// compactions defer; this call never does.
    ///
    /// Like [`compact_memory`](Self::compact_memory) it does not drain the pcps.
    ///
    /// # Errors
    /// [`CompactError::BadOrder`] if `order` is not below the zone's `max_order`.
    pub fn compact_zone(&self, order: Order) -> Result<CompactResult, CompactError> {
        let z = &*self.inner;
        if order.0 >= z.geo.max_order {
            return Err(CompactError::BadOrder {
                order,
                max_order: z.geo.max_order,
            });
        }
        if z.compact.compaction_deferred(order.0) {
            return Ok(CompactResult::Deferred);
        }
        let r = z.compact_zone_order(order, Migratetype::Movable, MigrateMode::Sync);
        if order.0 > 0 && z.low_wmark_ok(order) {
            z.compact.compaction_defer_reset(order.0, false);
        }
        Ok(r)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A block found at order 0 by the migrate scanner may be a larger block by the time it is
    /// migrated (freed, its pfn reused): it gets no order-0 destination, so migration fails
    /// for it and its bytes stay where they are (`cma_stress --page-cache` crashed on this:
    /// a debug assertion, and in release a larger block copied into one page).
    #[test]
    fn a_larger_block_gets_no_order_0_destination() {
        let zone = crate::Zone::new(crate::ZoneConfig {
            size: 16 << 20,
            fixes: crate::Fixes::ALL,
            ..crate::ZoneConfig::default()
        })
        .unwrap();
        let mut m = zone.alloc_movable(Order(2)).unwrap();
        m.pin().as_mut_slice().fill(0x5a);
        let pfn = m.pfn();
        let z = &*zone.inner;
        let mut cc = CompactControl::new(
            z,
            Some(Order(9)),
            Migratetype::Movable,
            MigrateMode::Sync,
            true,
        );
        assert_eq!(
            z.migrate_block(pfn, MigrateMode::Sync, &mut cc),
            Migrate::NoMemory
        );
        drop(cc);
        assert_eq!(m.pfn(), pfn);
        assert!(m.pin().as_slice().iter().all(|&b| b == 0x5a));
        drop(m);
        zone.drain_all_pages();
        zone.audit().assert_ok();
    }

    /// `__fragmentation_index` on hand-made `nr_free` tables.
    #[test]
    fn fragmentation_index_as_vmstat_c() {
        // Nothing free: 0.
        assert_eq!(fragmentation_index(&[0; 11], Order(9)), 0);
        // A suitable block exists: -1000.
        let mut nr_free = [0u64; 11];
        nr_free[9] = 1;
        nr_free[0] = 100;
        assert_eq!(fragmentation_index(&nr_free, Order(9)), -1000);
        // 8192 free order-0 pages, an order-9 request: 1000 - (1000 + 16000) / 8192 = 998.
        let mut nr_free = [0u64; 11];
        nr_free[0] = 8192;
        assert_eq!(fragmentation_index(&nr_free, Order(9)), 998);
        // One free page for an order-9 request: the C arithmetic goes below 0 (-1).
        let mut nr_free = [0u64; 11];
        nr_free[0] = 1;
        assert_eq!(fragmentation_index(&nr_free, Order(9)), -1);
        // Three order-8 blocks for an order-9 request: 1000 - (1000 + 1500) / 3 = 167, a
        // failure for lack of memory rather than fragmentation (at most 500: skipped).
        let mut nr_free = [0u64; 11];
        nr_free[8] = 3;
        assert_eq!(fragmentation_index(&nr_free, Order(9)), 167);
    }
}
