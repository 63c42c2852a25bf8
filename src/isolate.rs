//! Pageblock isolation and memory offline: 3.17's `mm/page_isolation.c` (with the 3.18
//! changes behind [`Fixes`]) and the offline half of `mm/memory_hotplug.c`.
//!
//! # What it owns
//! The transitions of a pageblock to and from `Isolate`, and of whole ranges to and from
//! "offline". State it changes lives elsewhere: pageblock types (`pageblock`), free lists and
//! `nr_isolate_pageblock` (`zone`, under the zone lock), page states (`page`).
//!
//! # Lock order
//! Each pageblock takes and drops the zone lock on its own, and `drain_all_pages` (registry →
//! pcp → zone) runs after the zone lock is dropped, as in 3.17. So a range passes through
//! mixed states (one pageblock isolated, its neighbour not): races R3a and R3b.
//!
//! # Kernel functions mirrored
//! | here | kernel (3.17 unless noted) |
//! | --- | --- |
//! | [`Zone::set_migratetype_isolate`] | `set_migratetype_isolate` (+ 3.18 `nr_isolate_pageblock++`) |
//! | [`Zone::unset_migratetype_isolate`] | `unset_migratetype_isolate`; 3.18's re-free with [`Fixes::UNSET_REFREE`] |
//! | [`Zone::start_isolate_page_range`] / [`Zone::undo_isolate_page_range`] | same names |
//! | [`Zone::test_pages_isolated`] | `test_pages_isolated` + `__test_page_isolated_in_pageblock`, with the test-time "repair" (R4) |
//! | `has_unmovable_pages` | same name |
//! | `ZoneFree::isolate_free_page` (the buddy core, shared with compaction and CMA) | `__isolate_free_page` (2024 accounting with [`Fixes::ISOLATE_HYGIENE`]) |
//! | `ZoneFree::split_large_buddy` | 2024's `split_large_buddy` in `move_freepages_block_isolate` ([`Fixes::ISOLATE_HYGIENE`]) |
//! | [`Zone::offline_pages`] / [`Zone::online_pages`] | `__offline_pages` / `online_pages` |
//!
//! # Deviations, all on input validation, none on the racy paths
//! - Unaligned or out-of-zone ranges are typed errors (3.17 `BUG_ON`s).
//! - Isolating an already isolated pageblock is refused ([`IsolateError::AlreadyIsolated`]):
//!   3.17 relies on its callers (`cma_mutex`, the hotplug lock) never to overlap.
//! - `__test_page_isolated_in_pageblock` also accepts a non-buddy page with `page_count == 0`
//!   whose `page->index` says `Isolate` (a page in the middle of being freed); this model
//!   sets `page->index` under the zone lock, so such a page is reported busy instead, and the
//!   caller retries.
//! - Offline and online ranges must be aligned to the top-order block (the kernel's memory
//!   blocks always are), so no free block straddles their ends.

use crate::error::IsolateError;
use crate::fixes::Fixes;
use crate::hook::RaceWindow;
use crate::page::Owner;
use crate::types::{Migratetype, Order, Pfn};
use crate::zone::ledger::{LedgerPath, Race};
use crate::zone::{Zone, ZoneFree, ZoneInner};

/// Un-isolates the pageblocks of `[start, end)` (restoring `mt`) if dropped, which happens
/// only when a race hook panics while they are isolated: an isolation never outlives the
/// call that made it. [`disarm`](Self::disarm) it on the normal path. No hook runs during
/// the undo (the thread is panicking).
pub(crate) struct UndoIsolation<'a> {
    zone: &'a ZoneInner,
    start: Pfn,
    end: Pfn,
    mt: Migratetype,
}

impl<'a> UndoIsolation<'a> {
    pub(crate) fn new(zone: &'a ZoneInner, start: Pfn, end: Pfn, mt: Migratetype) -> Self {
        UndoIsolation {
            zone,
            start,
            end,
            mt,
        }
    }

    /// The isolation is handed on (or undone) normally.
    pub(crate) fn disarm(self) {
        core::mem::forget(self);
    }
}

impl Drop for UndoIsolation<'_> {
    fn drop(&mut self) {
        let mut pfn = self.start;
        while pfn < self.end {
            self.zone.unset_migratetype_isolate(pfn, self.mt);
            pfn = pfn.add(self.zone.geo.pageblock_nr_pages);
        }
    }
}

impl ZoneInner {
    /// Validate `[start, end)`: inside the zone, non-empty, aligned to `align` pages. Does no
    /// arithmetic on the caller's pfns, so any `u64` values are safe here; once it passes,
    /// `start < end <= nr_pages`, and the callers' steps through the range cannot overflow.
    pub(crate) fn check_range(&self, start: Pfn, end: Pfn, align: u64) -> Result<(), IsolateError> {
        if start >= end || end.0 > self.geo.nr_pages {
            return Err(IsolateError::OutOfZone { start, end });
        }
        if start.0 % align != 0 || end.0 % align != 0 {
            return Err(IsolateError::Unaligned { start, end, align });
        }
        Ok(())
    }

    /// A pageblock-aligned range in the zone and a real type to restore.
    fn check_isolate_range(
        &self,
        start: Pfn,
        end: Pfn,
        mt: Migratetype,
    ) -> Result<(), IsolateError> {
        self.check_range(start, end, self.geo.pageblock_nr_pages)?;
        if mt.is_isolate() {
            return Err(IsolateError::BadMigratetype(mt));
        }
        Ok(())
    }

    /// `has_unmovable_pages`: Movable and CMA pageblocks pass at once; other blocks are
    /// scanned for allocated pages that are not movable. Returns the first such pfn.
    fn has_unmovable_pages(&self, zf: &ZoneFree, block_start: Pfn) -> Option<Pfn> {
        let mt = self.pageblock.get(block_start);
        if mt == Migratetype::Movable || mt.is_cma() {
            return None;
        }
        let end = block_start.add(self.geo.pageblock_nr_pages);
        let mut pfn = block_start;
        while pfn < end {
            if let Some(order) = zf.buddy_order(pfn) {
                pfn = pfn.add(order.nr_pages());
            } else if self.state.is_unmovable_alloc(pfn) {
                return Some(pfn);
            } else if let Some(order) = self.state.alloc_order(pfn) {
                pfn = pfn.add(order.nr_pages());
            } else {
                pfn = pfn.add(1);
            }
        }
        None
    }

    /// `set_migratetype_isolate(page)`: under the zone lock, check for unmovable pages, set
    /// the pageblock type to `Isolate`, count it in `nr_isolate_pageblock`, move its free
    /// pages to the `Isolate` lists and subtract them; then, without the lock,
    /// `drain_all_pages()`.
    pub(crate) fn set_migratetype_isolate(&self, pfn: Pfn) -> Result<(), IsolateError> {
        let block = Pfn(pfn.0 & !(self.geo.pageblock_nr_pages - 1));
        let old = {
            let mut zf = self.lock();
            let zf = &mut *zf;
            let old = self.pageblock.get(block);
            if old.is_isolate() {
                return Err(IsolateError::AlreadyIsolated(block));
            }
            if let Some(busy) = self.has_unmovable_pages(zf, block) {
                return Err(IsolateError::Busy(busy));
            }
            zf.isolate_pageblock(block, old);
            if self.fixes.contains(Fixes::ISOLATE_HYGIENE) {
                // 2024: no free block straddles the pageblock boundary after this, and the
                // move below counts each block by the list it leaves.
                zf.split_large_buddy(block);
                zf.move_freepages_block(block, Migratetype::Isolate);
            } else {
                let nr_pages = zf.move_freepages_block(block, Migratetype::Isolate);
                zf.account(-(nr_pages as i64), old);
            }
            // A block already on an `Isolate` list (stranded there by R1a) is subtracted again.
            zf.ledger_note(LedgerPath::SetMigratetypeIsolate, |_, f| {
                if f.straddled {
                    Race::R3c
                } else if f.left_isolate_list {
                    Race::R1a
                } else {
                    Race::Unclassified
                }
            });
            old
        };
        let isolated = UndoIsolation::new(self, block, block.add(1), old);
        self.race_window(RaceWindow::IsolateBeforeDrain, block);
        self.drain_all_pages();
        isolated.disarm();
        Ok(())
    }

    /// `unset_migratetype_isolate(page, migratetype)`.
    ///
    /// 3.17: move the block's free pages back to `mt`'s lists, add them, restore the type.
    /// With [`Fixes::UNSET_REFREE`] (3.18): if the pageblock starts with a free block of order
    /// ≥ `pageblock_order` whose buddy is not isolated, take it off the lists (no accounting:
    /// the block is still `Isolate`) and free it again after the type is restored, so it is
    /// counted once and merges with its buddy.
    pub(crate) fn unset_migratetype_isolate(&self, pfn: Pfn, mt: Migratetype) {
        let block = Pfn(pfn.0 & !(self.geo.pageblock_nr_pages - 1));
        let restore = |requested: Migratetype| {
            if self.fixes.contains(Fixes::ISOLATE_KEEPS_TYPE) {
                self.pageblock.saved(block)
            } else {
                requested
            }
        };
        let mut refree = None;
        {
            let mut zf = self.lock();
            let zf = &mut *zf;
            if !self.pageblock.get(block).is_isolate() {
                return;
            }
            let mt = restore(mt);
            let hygiene = self.fixes.contains(Fixes::ISOLATE_HYGIENE);
            if hygiene {
                zf.split_large_buddy(block);
            }
            if self.fixes.contains(Fixes::UNSET_REFREE)
                && let Some(order) = zf.buddy_order(block)
                && order.0 >= self.geo.pageblock_order
            {
                let buddy = Pfn(block.0 ^ order.nr_pages());
                if buddy.0 < self.geo.nr_pages && !self.pageblock.get(buddy).is_isolate() {
                    // The pageblock is still Isolate: no watermark check, no count.
                    let taken = zf.isolate_free_page(block, order);
                    debug_assert_eq!(taken, order.nr_pages());
                    // set_page_refcounted: the block is held by this function until re-freed.
                    self.state.set_alloc(block, order, false, Owner::Held);
                    refree = Some(order);
                }
            }
            if refree.is_none() {
                let nr_pages = zf.move_freepages_block(block, mt);
                if !hygiene {
                    zf.account(nr_pages as i64, mt);
                }
            }
            zf.unisolate_pageblock(block, mt);
            zf.ledger_note(LedgerPath::UnsetMigratetypeIsolate, |_, f| {
                if f.straddled { Race::R3c } else { Race::Undo }
            });
        }
        if let Some(order) = refree {
            self.free_pages_ok(block, order);
        }
    }

    /// `start_isolate_page_range(start, end, migratetype)`: isolate each pageblock in turn;
    /// on failure un-isolate the ones done (restoring `mt`) and fail.
    pub(crate) fn start_isolate_page_range(
        &self,
        start: Pfn,
        end: Pfn,
        mt: Migratetype,
    ) -> Result<(), IsolateError> {
        self.check_isolate_range(start, end, mt)?;
        let step = self.geo.pageblock_nr_pages;
        // The pageblocks isolated so far, undone if a hook panics on the way.
        let mut done = UndoIsolation::new(self, start, start, mt);
        let mut pfn = start;
        while pfn < end {
            if pfn > start {
                self.race_window(RaceWindow::IsolateBetweenPageblocks, pfn);
            }
            if let Err(e) = self.set_migratetype_isolate(pfn) {
                drop(done);
                return Err(e);
            }
            pfn = pfn.add(step);
            done.end = pfn;
        }
        done.disarm();
        Ok(())
    }

    /// `undo_isolate_page_range(start, end, migratetype)`: un-isolate every isolated pageblock
    /// of the range, one at a time.
    pub(crate) fn undo_isolate_page_range(
        &self,
        start: Pfn,
        end: Pfn,
        mt: Migratetype,
    ) -> Result<(), IsolateError> {
        self.check_isolate_range(start, end, mt)?;
        // The pageblocks still to undo, undone anyway if a hook panics on the way.
        let mut rest = UndoIsolation::new(self, start, end, mt);
        let mut pfn = start;
        while pfn < end {
            if pfn > start {
                self.race_window(RaceWindow::IsolateBetweenPageblocks, pfn);
            }
            self.unset_migratetype_isolate(pfn, mt);
            pfn = pfn.add(self.geo.pageblock_nr_pages);
            rest.start = pfn;
        }
        rest.disarm();
        Ok(())
    }

    /// `test_pages_isolated(start, end)`: every pageblock touched is `Isolate` (lockless
    /// check), and, under the zone lock, every page of `[start, end)` is in a free block. A
    /// free block whose `page->index` is not `Isolate` is "repaired" by moving it to the
    /// `Isolate` list **without accounting** (3.17/3.18; race R4).
    pub(crate) fn test_pages_isolated(&self, start: Pfn, end: Pfn) -> Result<(), IsolateError> {
        self.check_range(start, end, 1)?;
        let mut pfn = start;
        while pfn < end {
            if !self.pageblock.get(pfn).is_isolate() {
                return Err(IsolateError::NotIsolated(pfn));
            }
            pfn = pfn.add(self.geo.pageblock_nr_pages);
        }
        let fin = self.test_pages_isolated_locked(start, end);
        self.trace.test_pages_isolated(start, end, fin);
        if fin < end {
            return Err(IsolateError::NotIsolated(fin));
        }
        Ok(())
    }

    /// `__test_page_isolated_in_pageblock` under the zone lock: the first pfn of
    /// `[start, end)` not in a free block, or `end`.
    fn test_pages_isolated_locked(&self, start: Pfn, end: Pfn) -> Pfn {
        let mut zf = self.lock();
        let zf = &mut *zf;
        let mut pfn = start;
        while pfn < end {
            match zf.buddy_order(pfn) {
                Some(order) => {
                    if !zf.get_freepage_migratetype(pfn).is_isolate() {
                        let last = pfn.add(order.nr_pages() - 1);
                        zf.move_freepages(pfn, last, Migratetype::Isolate);
                        zf.ledger_note(LedgerPath::TestPagesIsolated, |_, _| Race::R4);
                    }
                    pfn = pfn.add(order.nr_pages());
                }
                None => return pfn,
            }
        }
        pfn
    }

    /// `__offline_pages(start, end)`: isolate as Movable, migrate movable blocks away, drain, test, take the free blocks
    /// off the `Isolate` lists without accounting (`__offline_isolated_pages`), mark them
    /// offline, and restore the pageblocks to Movable.
    pub(crate) fn offline_pages(&self, start: Pfn, end: Pfn) -> Result<(), IsolateError> {
        self.check_range(start, end, self.geo.max_order_nr_pages())?;
        if let Some(p) = (start.0..end.0)
            .map(Pfn)
            .find(|&p| self.state.get(p) == crate::page::state::OFFLINE)
        {
            return Err(IsolateError::AlreadyOffline(p));
        }
        self.start_isolate_page_range(start, end, Migratetype::Movable)?;
        let isolated = UndoIsolation::new(self, start, end, Migratetype::Movable);
        let tested = self
            .migrate_range(start, end)
            .map_err(IsolateError::Busy)
            .and_then(|_| {
                self.drain_all_pages();
                self.test_pages_isolated(start, end)
            });
        isolated.disarm();
        if let Err(e) = tested {
            self.undo_isolate_page_range(start, end, Migratetype::Movable)?;
            return Err(e);
        }
        {
            let mut zf = self.lock();
            let zf = &mut *zf;
            let mut pfn = start;
            while pfn < end {
                match zf.buddy_order(pfn) {
                    Some(order) => {
                        zf.offline_free_block(pfn, order);
                        // 3.17 takes the block off its list uncounted: a block some race left
                        // on a counted list of the isolated range leaves the lists still
                        // counted.
                        zf.ledger_note(LedgerPath::Hotplug, |_, f| {
                            if f.left_counted_list {
                                Race::Stranded
                            } else {
                                Race::Unclassified
                            }
                        });
                        for p in pfn.0..pfn.0 + order.nr_pages() {
                            self.state.set_offline(Pfn(p));
                        }
                        pfn = pfn.add(order.nr_pages());
                    }
                    None => {
                        // test_pages_isolated passed under the lock a moment ago and only
                        // frees into isolated blocks happened since: they are buddy blocks
                        // inside the range, so this cannot be reached.
                        debug_assert!(false, "{pfn} is not free after test_pages_isolated");
                        pfn = pfn.add(1);
                    }
                }
            }
            // The managed pages shrank: 3.17's offline_pages ends in init_per_zone_wmark_min.
            zf.init_per_zone_wmark_min();
        }
        self.undo_isolate_page_range(start, end, Migratetype::Movable)
    }

    /// `online_pages(start, end)`: give offline pages back, freeing them one by one.
    pub(crate) fn online_pages(&self, start: Pfn, end: Pfn) -> Result<(), IsolateError> {
        self.check_range(start, end, self.geo.max_order_nr_pages())?;
        {
            let mut zf = self.lock();
            if let Some(p) = (start.0..end.0)
                .map(Pfn)
                .find(|&p| self.state.get(p) != crate::page::state::OFFLINE)
            {
                return Err(IsolateError::NotOffline(p));
            }
            for p in start.0..end.0 {
                // Held by the onlining code until freed below.
                self.state.set_alloc(Pfn(p), Order(0), false, Owner::Held);
            }
            zf.online(end.0 - start.0);
            zf.init_per_zone_wmark_min();
        }
        self.free_each((start.0..end.0).map(|p| (Pfn(p), Order(0))));
        Ok(())
    }
}

impl Zone {
    /// `set_migratetype_isolate`: isolate the pageblock holding `pfn`, then drain every pcp.
    /// Fails with [`IsolateError::Busy`] if the block holds unmovable allocations.
    pub fn set_migratetype_isolate(&self, pfn: Pfn) -> Result<(), IsolateError> {
        if pfn.0 >= self.inner.geo.nr_pages {
            return Err(IsolateError::OutOfZone {
                start: pfn,
                // Saturating: `pfn` is the caller's and may be `u64::MAX`.
                end: Pfn(pfn.0.saturating_add(1)),
            });
        }
        self.inner.set_migratetype_isolate(pfn)
    }

    /// `unset_migratetype_isolate`: give the pageblock holding `pfn` back as `mt` (no-op if it
    /// is not isolated).
    pub fn unset_migratetype_isolate(&self, pfn: Pfn, mt: Migratetype) -> Result<(), IsolateError> {
        if pfn.0 >= self.inner.geo.nr_pages {
            return Err(IsolateError::OutOfZone {
                start: pfn,
                // Saturating: `pfn` is the caller's and may be `u64::MAX`.
                end: Pfn(pfn.0.saturating_add(1)),
            });
        }
        if mt.is_isolate() {
            return Err(IsolateError::BadMigratetype(mt));
        }
        self.inner.unset_migratetype_isolate(pfn, mt);
        Ok(())
    }

    /// `start_isolate_page_range(start, end, mt)`: isolate every pageblock of the
    /// pageblock-aligned range `[start, end)`; on failure, restore the ones done to `mt`.
    pub fn start_isolate_page_range(
        &self,
        start: Pfn,
        end: Pfn,
        mt: Migratetype,
    ) -> Result<(), IsolateError> {
        self.inner.start_isolate_page_range(start, end, mt)
    }

    /// `undo_isolate_page_range(start, end, mt)`: un-isolate every isolated pageblock of the
    /// range as `mt`.
    pub fn undo_isolate_page_range(
        &self,
        start: Pfn,
        end: Pfn,
        mt: Migratetype,
    ) -> Result<(), IsolateError> {
        self.inner.undo_isolate_page_range(start, end, mt)
    }

    /// `test_pages_isolated(start, end)`: whether every page of `[start, end)` is free in an
    /// isolated pageblock, with 3.17's test-time repair (race R4, see
    /// [`Fixes`](crate::Fixes#the-races)).
    pub fn test_pages_isolated(&self, start: Pfn, end: Pfn) -> Result<(), IsolateError> {
        self.inner.test_pages_isolated(start, end)
    }

    /// Memory hot-remove of `[start, end)` (aligned to the top-order block): isolate, migrate
    /// [`MovablePages`](crate::MovablePages) away, drain, test, take the free pages out without
    /// accounting, mark them offline. Fails with [`IsolateError::Busy`] /
    /// [`IsolateError::NotIsolated`] (and changes nothing) if a page in the range is in use and
    /// cannot be migrated.
    pub fn offline_pages(&self, start: Pfn, end: Pfn) -> Result<(), IsolateError> {
        self.inner.offline_pages(start, end)
    }

    /// Give an offlined range back to the allocator.
    pub fn online_pages(&self, start: Pfn, end: Pfn) -> Result<(), IsolateError> {
        self.inner.online_pages(start, end)
    }

    /// `zone->nr_isolate_pageblock`.
    pub fn nr_isolate_pageblock(&self) -> u64 {
        self.inner.lock().nr_isolate_pageblock()
    }
}
