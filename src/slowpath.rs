//! Allocation with a [`Gfp`] mask, as 3.17's `__alloc_pages_nodemask` runs it on a one-zone
//! node: the fast path at the low watermark, then `__alloc_pages_slowpath` — wake kswapd, retry
//! at the min watermark (less for `__GFP_HIGH` and atomic requests), ignore the watermarks for
//! `__GFP_MEMALLOC` or inside reclaim, then, for callers that may wait, direct compaction
//! (asynchronous), direct reclaim with its `drain_all_pages` retry, the retry policy of
//! `should_alloc_retry`, and for a high-order request that will not retry, a last synchronous
//! compaction; and where 3.17 would call the OOM killer, a typed
//! [`AllocError::OutOfMemory`] instead.
//!
//! The plain API ([`Zone::alloc_pages`] and friends) is the thin layer below: no watermarks,
//! no compaction, drain and retry once.
//!
//! # Direct compaction (`__alloc_pages_direct_compact`)
//! For orders above 0, unless `compaction_deferred` says to skip it: compact the zone (see
//! `compaction`; only for requests with `__GFP_IO` and `__GFP_FS`, counted as
//! `compact_stall`), drain this thread's pcp so the pages migration freed can merge, and retry
//! at the min watermark. A served request counts `compact_success` and resets the deferral;
//! a compaction that ran but did not serve it counts `compact_fail`, and defers the next
//! compactions for its order if it was synchronous (async compaction looks at a subset of
//! pageblocks, so its failures prove less). A compaction skipped as unsuitable counts
//! neither. A deferred compaction fails a `__GFP_NO_KSWAPD` request outright (3.17's THP
//! faults) instead of sending it to reclaim.
//!
//! # Where this differs from 3.17, and why
//! - The watermark is checked under the zone lock, at a pcp refill (once per batch) or for the
//!   block itself; a pcp hit reads none (3.17 checks before every `buffered_rmqueue`).
//! - No OOM killer: where 3.17 would kill a task and restart, the allocation fails — after one
//!   last `drain_all_pages` and retry, since pages cached on pcps are the only free memory a
//!   killer-less allocator can still find. As in 3.17, a request that gets no progress from
//!   reclaim goes that way without its last synchronous compaction, and only a request 3.17
//!   would let call the OOM killer does (`oom_gfp_allowed`: `__GFP_FS` and not
//!   `__GFP_NORETRY`); any other goes on to `should_alloc_retry` (a `__GFP_NORETRY` request,
//!   such as a THP fault, to its last compaction and then fails).
//! - `should_alloc_retry` retries order ≤ 3 requests for as long as reclaim makes progress.
//!   Here the progress must be verified (the shrinkers' counts fell by it), and a request
//!   gives up after [`MAX_RECLAIM_RETRIES`] rounds without verified progress (4.7's
//!   `should_reclaim_retry` bounds its `no_progress_loops` the same way) or once it has
//!   reclaimed as many pages as the shrinkers held when it began; so a shrinker that reports
//!   progress it cannot deliver cannot hang the caller, while a request whose reclaim frees
//!   only pages it cannot use for a while (CMA pages, for an unmovable request, with the
//!   oldest cache pages in the CMA area) reclaims on, as in 3.17, until it frees some it can.
//! - The passes after the first compaction are synchronous (`MIGRATE_SYNC_LIGHT` in 3.17,
//!   which differs only for pages under writeback), except for THP faults
//!   ([`Gfp::GFP_TRANSHUGE`]), which 3.17 keeps asynchronous throughout (no kthread here is
//!   khugepaged, the one THP allocator 3.17 lets compact synchronously).
//! - 3.17 sets `PF_MEMALLOC` around compaction; compaction here allocates nothing (its
//!   migration targets are the pages its free scanner took), so there is nothing to mark.

use crate::compaction::CompactResult;
use crate::error::AllocError;
use crate::gfp::{AllocFlags, Gfp};
use crate::migrate::MigrateMode;
use crate::page::Owner;
use crate::sync::atomic::AtomicU64;
use crate::types::{Order, Pfn};
use crate::zone::pageset::DrainCaller;
use crate::zone::shrinker::ReclaimStats;
use crate::zone::{Zone, ZoneInner};

/// `PAGE_ALLOC_COSTLY_ORDER`.
pub const PAGE_ALLOC_COSTLY_ORDER: u32 = 3;

/// How many rounds of direct reclaim without verified progress an allocation makes before it
/// fails (4.7's `MAX_RECLAIM_RETRIES`; 3.17 retries without bound while reclaim reports
/// progress). Rounds that verifiably freed pages do not count (see the module docs).
pub const MAX_RECLAIM_RETRIES: u32 = 16;

impl ZoneInner {
    /// `__alloc_pages_nodemask(gfp, order)` on this zone, for `owner`, with its
    /// `trace_mm_page_alloc` (success or failure).
    pub(crate) fn alloc_gfp(
        &self,
        order: Order,
        gfp: Gfp,
        owner: Owner,
    ) -> Result<Pfn, AllocError> {
        let r = self.alloc_gfp_untraced(order, gfp, owner);
        if gfp.is_thp_fault() {
            // `do_huge_pmd_anonymous_page`: `count_vm_event(THP_FAULT_FALLBACK)` when
            // `alloc_hugepage_vma` returns NULL, `THP_FAULT_ALLOC` once the huge page is
            // mapped. (3.17 also counts a fallback, not an alloc, when the page was had but
            // the memcg charge or the page table for the pmd then failed: a caller's business
            // after this allocation, which the zone cannot see.)
            let mut z = self.lock();
            let e = z.events_mut();
            if r.is_ok() {
                e.thp_fault_alloc += 1;
            } else {
                e.thp_fault_fallback += 1;
            }
        }
        let page = r.as_ref().ok().copied();
        self.trace
            .mm_page_alloc(page, order, gfp.migratetype(), gfp);
        r
    }

    /// [`alloc_gfp`](Self::alloc_gfp) before its tracepoint.
    fn alloc_gfp_untraced(&self, order: Order, gfp: Gfp, owner: Owner) -> Result<Pfn, AllocError> {
        if order.0 >= self.geo.max_order {
            return Err(AllocError::BadOrder {
                order,
                max_order: self.geo.max_order,
            });
        }
        let mt = gfp.migratetype();
        if let Some(pfn) = self.get_page_from_freelist(order, mt, AllocFlags::fast_path(mt), owner)
        {
            return Ok(pfn);
        }
        self.alloc_pages_slowpath(order, gfp, owner)
    }

    /// `__alloc_pages_slowpath`.
    fn alloc_pages_slowpath(
        &self,
        order: Order,
        gfp: Gfp,
        owner: Owner,
    ) -> Result<Pfn, AllocError> {
        let mt = gfp.migratetype();
        let in_reclaim = crate::vmscan::in_reclaim();
        if !gfp.contains(Gfp::NO_KSWAPD) {
            self.wakeup_kswapd(order);
        }
        let flags = AllocFlags::from_gfp(gfp, in_reclaim);
        let checked = flags.without(AllocFlags::NO_WATERMARKS);
        let attempt = |f: AllocFlags| self.get_page_from_freelist(order, mt, f, owner);
        if let Some(pfn) = attempt(checked) {
            return Ok(pfn);
        }
        // `__alloc_pages_high_priority`: __GFP_MEMALLOC, or a reclaimer's own allocation.
        if flags.which().is_none() {
            if let Some(pfn) = attempt(flags) {
                return Ok(pfn);
            }
        }
        // Atomic requests, and reclaim itself, go no further.
        if !gfp.can_wait() || in_reclaim {
            return self.alloc_failed(order, gfp, attempt(checked));
        }
        // Direct compaction: the first pass is asynchronous.
        let mut deferred_compaction = false;
        if let Some(pfn) = self.alloc_pages_direct_compact(
            order,
            gfp,
            checked,
            owner,
            MigrateMode::Async,
            &mut deferred_compaction,
        ) {
            return Ok(pfn);
        }
        // Compaction deferred after recent sync failures: a request that would not even wake
        // kswapd (3.17's THP faults) fails rather than entering direct reclaim.
        if deferred_compaction && gfp.contains(Gfp::NO_KSWAPD) {
            return self.alloc_failed(order, gfp, None);
        }
        // Later passes are synchronous (3.17: MIGRATE_SYNC_LIGHT; see `compaction`), except
        // for THP faults: "it can become very expensive to allocate transparent hugepages at
        // fault, so use asynchronous memory compaction for THP unless it is khugepaged".
        let migration_mode = if gfp.is_transhuge() {
            MigrateMode::Async
        } else {
            MigrateMode::Sync
        };
        // Rounds of reclaim without verified progress, the pages verified reclaimed, and
        // what the shrinkers held when this request first reclaimed (see `should_alloc_retry`
        // below).
        let mut rounds = 0;
        let mut reclaimed = 0u64;
        let mut reclaimable_at_start = None;
        loop {
            // `__alloc_pages_direct_reclaim`: reclaim, retry, drain the pcps, retry.
            let before = self.reclaimable_pages();
            let budget = *reclaimable_at_start.get_or_insert(before);
            let progress = self.try_to_free_pages();
            // Progress the shrinkers' counts confirm: a shrinker that reports pages it did
            // not free (or a cache refilled as fast as it is reclaimed) confirms none.
            let verified = progress.min(before.saturating_sub(self.reclaimable_pages()));
            if progress > 0 {
                if let Some(pfn) = attempt(checked) {
                    return Ok(pfn);
                }
                self.drain_all_pages_by(DrainCaller::Reclaim);
                if let Some(pfn) = attempt(checked) {
                    return Ok(pfn);
                }
            } else if gfp.oom_allowed() {
                // `__alloc_pages_may_oom`: one try at the high watermark, then (no OOM
                // killer) the pcps' pages as the last resort.
                if let Some(pfn) = attempt(AllocFlags::wmark(crate::gfp::Wmark::High)) {
                    return Ok(pfn);
                }
                self.drain_all_pages_by(DrainCaller::Reclaim);
                return self.alloc_failed(order, gfp, attempt(checked));
            }
            // Progress that did not serve the request, or none and no OOM path
            // (`!oom_gfp_allowed`): on to `should_alloc_retry`, which in 3.17 retries an order
            // <= 3 request without bound. Bounded here: at most MAX_RECLAIM_RETRIES rounds
            // without verified progress (4.7's `no_progress_loops`), and rounds with it to one
            // pass over what was reclaimable when the request began. Rounds that really freed pages do not
            // count: they may have freed only pages the request cannot use (CMA pages for an
            // unmovable request), and 3.17 reclaims on until it frees some it can.
            reclaimed += verified;
            if verified == 0 {
                rounds += 1;
            }
            let retry = !gfp.contains(Gfp::NORETRY)
                && order.0 <= PAGE_ALLOC_COSTLY_ORDER
                && rounds < MAX_RECLAIM_RETRIES
                && (verified == 0 || reclaimed < budget);
            if !retry {
                // High-order allocations do not loop after reclaim: compact (synchronously)
                // one last time.
                let last = self.alloc_pages_direct_compact(
                    order,
                    gfp,
                    checked,
                    owner,
                    migration_mode,
                    &mut deferred_compaction,
                );
                return self.alloc_failed(order, gfp, last);
            }
        }
    }

    /// `__alloc_pages_direct_compact`: unless compaction is deferred for `order` (then
    /// `deferred` is set), compact the zone (`try_to_compact_pages`), drain this thread's pcp
    /// (migration frees to it, and the freed pages should merge), and retry. Counts
    /// `compact_success` when that serves the request (and resets the deferral),
    /// `compact_fail` when compaction ran but the retry failed (deferring further compaction
    /// for `order` if it was synchronous). Nothing for order 0.
    fn alloc_pages_direct_compact(
        &self,
        order: Order,
        gfp: Gfp,
        flags: AllocFlags,
        owner: Owner,
        mode: MigrateMode,
        deferred: &mut bool,
    ) -> Option<Pfn> {
        if order.0 == 0 {
            return None;
        }
        if self.compact.compaction_deferred(order.0) {
            *deferred = true;
            return None;
        }
        if self.try_to_compact_pages(order, gfp, mode) == CompactResult::Skipped {
            return None;
        }
        // Page migration frees to the pcp, but we want merging.
        self.drain_local_pages();
        let st = &self.reclaim.stats;
        match self.get_page_from_freelist(order, gfp.migratetype(), flags, owner) {
            Some(pfn) => {
                self.compact.with(|z| z.blockskip_flush = false);
                self.compact.compaction_defer_reset(order.0, true);
                ReclaimStats::add(&st.compact_success, 1);
                Some(pfn)
            }
            None => {
                // Pages exist, most likely, but not enough to satisfy the watermarks.
                ReclaimStats::add(&st.compact_fail, 1);
                // Async compaction considers a subset of pageblocks: only a sync failure
                // defers.
                if mode != MigrateMode::Async {
                    self.compact.defer_compaction(order.0);
                }
                None
            }
        }
    }

    /// The end of the slow path: `last` if the final attempt found a page, else the
    /// out-of-memory error (counted; `warn_alloc_failed`'s message unless `__GFP_NOWARN`).
    fn alloc_failed(&self, order: Order, gfp: Gfp, last: Option<Pfn>) -> Result<Pfn, AllocError> {
        if let Some(pfn) = last {
            return Ok(pfn);
        }
        let fails: &AtomicU64 = &self.reclaim.stats.alloc_fail;
        ReclaimStats::add(fails, 1);
        Err(AllocError::OutOfMemory {
            order,
            gfp,
            quiet: gfp.contains(Gfp::NOWARN),
        })
    }
}

impl Zone {
    /// `alloc_pages(gfp, order)`: a block of `2^order` pages of `gfp`'s migratetype, through
    /// the watermark checks, kswapd, direct reclaim and the retry policy of 3.17 (see the
    /// module docs). Fails with [`AllocError::OutOfMemory`] where 3.17 would invoke the OOM
    /// killer.
    ///
    /// ```
    /// use pagealloc::{Gfp, Order, Zone, ZoneConfig};
    /// let zone = Zone::new(ZoneConfig { size: 16 << 20, ..ZoneConfig::default() })?;
    /// let page = zone.alloc_pages_gfp(Order(0), Gfp::GFP_KERNEL)?;
    /// drop(page);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn alloc_pages_gfp(&self, order: Order, gfp: Gfp) -> Result<crate::Pages<'_>, AllocError> {
        let pfn = self.inner.alloc_gfp(order, gfp, Owner::Held)?;
        Ok(crate::Pages::new(self, pfn, order))
    }

    /// [`alloc_pages_gfp`](Self::alloc_pages_gfp) for the pfn API: the caller frees the block
    /// with [`free_pfn`](Self::free_pfn).
    pub fn alloc_pfn_gfp(&self, order: Order, gfp: Gfp) -> Result<Pfn, AllocError> {
        self.inner.alloc_gfp(order, gfp, Owner::Pfn)
    }
}
