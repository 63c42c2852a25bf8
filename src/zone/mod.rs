//! The zone: the shared state of one zone ([`ZoneInner`]) and its public handle ([`Zone`]),
//! and the paths that run outside the zone lock — `free_one_page` with patch 1's recheck, the
//! allocation entry and its slow path, the checked pfn frees — around the buddy core.
//!
//! # Layers
//! | module | owns | knows |
//! | --- | --- | --- |
//! | `zone::pageblock` | the per-pageblock migratetype table | types only |
//! | `zone::buddy` | [`ZoneFree`], everything the zone lock protects: free lists, `nr_free`, the free-page counters (exact, and as per-CPU vmstat diffs), merge, split, fallback | the pageblock table and its [`BuddyCtx`]; nothing above |
//! | `zone::pageset` | the pcp structures, their owner / remote protocol, the registry, the thread-local way to a thread's pcp | the zone only through the `PcpZone` trait (a thread's exit drain) |
//! | `zone::cma_area` | the CMA area's range and bitmaps (`struct cma`) | types only |
//! | `zone::movable` | the registry of live movable blocks | types only |
//! | `zone::compact_state` | compaction's deferral counters, cached scanner positions, skip hints | types only |
//! | `zone` (this file) | [`ZoneInner`], [`Zone`]: the lock, the page-state table, the arena, the parts above, the hook | everything below |
//! | `pcp`, `isolate`, `cma`, `migrate`, `compaction`, `audit`, `procfs` | the paths built on `ZoneInner` | the zone |
//!
//! # Lock order
//! pcp registry → pcp lock → zone lock. Nothing takes a pcp lock while holding the zone lock.
//!
//! # Kernel functions mirrored (3.17 `mm/page_alloc.c` unless noted)
//! | here | kernel |
//! | --- | --- |
//! | [`ZoneInner::free_one_page`] | `free_one_page` (patch 1 recheck) |
//! | [`ZoneInner::free_pages_ok`] | `__free_pages_ok` |
//! | [`ZoneInner::rmqueue_locked_block`] | `buffered_rmqueue` for order > 0 |
//! | `ZoneInner::alloc` | `__alloc_pages_nodemask` (fast path, then drain and retry) |
//!
//! The buddy core's functions are listed in `zone::buddy`.

use crate::arena::Arena;
use crate::config::{Geometry, ZoneConfig};
use crate::error::{AllocError, ConfigError, FreeError};
use crate::fixes::Fixes;
use crate::gfp::{AllocFlags, Gfp, Wmark};
use crate::hook::{RaceHook, RaceWindow};
use crate::page::{ClaimError, Owner, PageStates};
use crate::sync::{Arc, Mutex, MutexGuard};
use crate::types::{Migratetype, Order, Pfn};
use crate::vmstat::{ZoneStatItem, ZoneVmStat};
use crossbeam_utils::CachePadded;

mod buddy;
pub(crate) mod cma_area;
pub(crate) mod compact_state;
pub(crate) mod ledger;
pub(crate) mod movable;
pub(crate) mod pageblock;
pub(crate) mod pageset;
mod pcp_list;
pub(crate) mod shrinker;

pub(crate) use buddy::{BuddyCtx, ZoneEvents, ZoneFree};
use pageblock::PageblockFlags;
use pageset::{DrainCaller, PcpRegistry};

/// The shared state of a zone. [`Zone`] is the public handle.
pub(crate) struct ZoneInner {
    pub(crate) id: u64,
    pub(crate) geo: Geometry,
    pub(crate) fixes: Fixes,
    pub(crate) hook: Option<Arc<dyn RaceHook>>,
    /// The kmem tracepoints (off unless configured).
    pub(crate) trace: crate::trace::Tracepoints,
    pub(crate) arena: Arena,
    /// The pageblock table (shared with the buddy core, which writes it under the lock).
    pub(crate) pageblock: PageblockFlags,
    pub(crate) state: PageStates,
    pub(crate) lock: CachePadded<Mutex<ZoneFree>>,
    /// The folded vmstat counters (`zone->vm_stat[]`), read without the lock.
    pub(crate) vm_stat: ZoneVmStat,
    pub(crate) pcps: PcpRegistry,
    /// Live movable blocks by head pfn (for migration).
    pub(crate) movable: movable::MovableRegistry,
    /// The zone's CMA area, if configured.
    pub(crate) cma: Option<cma_area::CmaArea>,
    /// 3.17's global `cma_mutex`: serialises `alloc_contig_range` for CMA.
    pub(crate) cma_mutex: Mutex<()>,
    /// Shrinkers, kswapd's wake-up, reclaim and compaction counters.
    pub(crate) reclaim: shrinker::ReclaimState,
    /// Compaction's deferral, cached scanner positions and skip hints.
    pub(crate) compact: compact_state::CompactState,
}

impl ZoneInner {
    /// Take the zone lock (never held at a race window, so a hook may take it too). The
    /// holder's counter updates go to the vmstat diffs of the CPU it is on.
    #[inline]
    pub(crate) fn lock(&self) -> ZoneLock<'_> {
        self.lock_on(self.pcps.this_cpu())
    }

    /// Take the zone lock on behalf of `cpu` (a pcp section knows its CPU; the pcp code and
    /// thread exit use this so that no thread-local lookup runs inside a pcp section).
    #[inline]
    pub(crate) fn lock_on(&self, cpu: usize) -> ZoneLock<'_> {
        let mut zf = self.lock.lock();
        zf.set_stat_cpu(cpu);
        zf.count_hold();
        ZoneLock(zf)
    }

    /// Call the race hook, if one is installed.
    #[inline]
    pub(crate) fn race_window(&self, w: RaceWindow, pfn: Pfn) {
        if let Some(h) = &self.hook {
            call_hook(&**h, w, pfn);
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
        call_hook(&**hook, w, pfn);
        core::mem::forget(guard);
    }

    /// `free_one_page` after the race window: take the zone lock, recheck (patch 1), free.
    fn free_one_page_locked_entry(&self, pfn: Pfn, order: Order, mut mt: Migratetype) {
        let mut zf = self.lock();
        let zf = &mut *zf;
        if self.fixes.contains(Fixes::RECHECK_FREE_ONE_PAGE)
            && (zf.nr_isolate_pageblock() > 0
                || (self.fixes.contains(Fixes::RECHECK_ISOLATE_MT) && mt.is_isolate()))
        {
            mt = self.get_pageblock_migratetype(pfn);
        }
        zf.set_freepage_migratetype(pfn, mt);
        self.state.set_freed(pfn);
        zf.events_mut().pgfree += order.nr_pages();
        let pb = self.geo.pageblock_order;
        // The list the block (its first pageblock, when split) went to, for the ledger.
        let mut landed = mt;
        if self.fixes.contains(Fixes::ISOLATE_HYGIENE) && order.0 > pb {
            // 2024's split_large_buddy on free: a block larger than a pageblock is freed one
            // pageblock at a time, each by its own pageblock's type, so a block that spans an
            // isolated pageblock does not land whole on one list.
            let mut chunk = pfn;
            while chunk < pfn.add(order.nr_pages()) {
                let cmt = self.get_pageblock_migratetype(chunk);
                if chunk == pfn {
                    landed = cmt;
                }
                zf.set_freepage_migratetype(chunk, cmt);
                zf.free_one_page_counted(chunk, Order(pb), cmt);
                chunk = chunk.add(1u64 << pb);
            }
        } else {
            zf.free_one_page_counted(pfn, order, mt);
        }
        let path = ledger::LedgerPath::FreeOnePage;
        zf.ledger_note(path, |zf, f| zf.classify_free(pfn, landed, path, f));
    }

    /// `__free_pages_ok(page, order)`: read the pageblock type locklessly, then
    /// [`free_one_page`](Self::free_one_page).
    #[inline(never)]
    pub(crate) fn free_pages_ok(&self, pfn: Pfn, order: Order) {
        self.trace.mm_page_free(pfn, order);
        let mt = self.get_pageblock_migratetype(pfn);
        self.free_one_page(pfn, order, mt);
    }

    /// Free an allocated block whose ownership the caller proves (a handle, or a claimed
    /// checked free): order 0 through the pcp, larger orders through `free_one_page` (or,
    /// with high-order pcps, the orders they take through the pcp: 5.14's `free_the_page`).
    #[inline(always)]
    pub(crate) fn free_pages(&self, pfn: Pfn, order: Order) {
        if order.0 == 0 {
            self.free_hot_cold_page(pfn, false);
        } else if self.pcp_takes(order) {
            self.free_pcp_high_order(pfn, order);
        } else {
            self.free_pages_ok(pfn, order);
        }
    }

    /// Whether a block of `order` > 0 goes through the pcp: high-order pcps are on and
    /// `pcp_allowed_order` accepts it.
    #[inline(always)]
    pub(crate) fn pcp_takes(&self, order: Order) -> bool {
        self.geo.pcp_high_order && pageset::pcp_allowed_order(order, self.geo.pageblock_order)
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

    /// `get_page_from_freelist` for this one zone: the watermark `flags` name (checked under
    /// the zone lock: at the refill for order 0, for the block itself above), then
    /// `buffered_rmqueue`.
    #[inline]
    pub(crate) fn get_page_from_freelist(
        &self,
        order: Order,
        mt: Migratetype,
        flags: AllocFlags,
        owner: Owner,
    ) -> Option<Pfn> {
        if order.0 == 0 {
            self.rmqueue_pcp(mt, owner, flags, None)
        } else if self.pcp_takes(order) {
            self.rmqueue_pcplist(order, mt, owner, flags, None)
        } else {
            self.rmqueue_locked_block(order, mt, owner, flags)
        }
    }

    /// Whether an allocation of `order` with `flags` may take pages now: always with
    /// `ALLOC_NO_WATERMARKS` (the plain API), else `zone_watermark_ok` against the mark
    /// `flags` names, with `NR_FREE_PAGES` as a 3.17 reader sees it (the folded vmstat value).
    #[inline]
    pub(crate) fn watermark_allows(&self, zf: &ZoneFree, order: Order, flags: AllocFlags) -> bool {
        match flags.which() {
            None => true,
            Some(w) => zf.zone_watermark_ok(
                order,
                watermark(zf, w),
                flags,
                self.vm_stat.read(ZoneStatItem::NrFreePages).max(0),
            ),
        }
    }

    /// `buffered_rmqueue` for order > 0: one block under the zone lock, for `owner`, if the
    /// zone passes the watermark `flags` name.
    pub(crate) fn rmqueue_locked_block(
        &self,
        order: Order,
        mt: Migratetype,
        owner: Owner,
        flags: AllocFlags,
    ) -> Option<Pfn> {
        let mut zf = self.lock();
        let zf = &mut *zf;
        zf.ledger_path(ledger::LedgerPath::Rmqueue);
        if !self.watermark_allows(zf, order, flags) {
            return None;
        }
        let pfn = zf.rmqueue(order, mt)?;
        let got = zf.get_freepage_migratetype(pfn);
        zf.account(-(order.nr_pages() as i64), got);
        zf.events_mut().pgalloc += order.nr_pages();
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
        // The order-0 fast path inline, and the leaf of the high-order pcps; everything else
        // (larger orders, bad arguments, an empty zone) out of line.
        if order.0 == 0 && mt.is_pcp_type() {
            let traced = Some(Gfp::for_migratetype(mt)); // traced off the pcp cache's path
            if let Some(pfn) = self.rmqueue_pcp(mt, owner, AllocFlags::NO_WATERMARKS, traced) {
                return Ok(pfn);
            }
        } else {
            #[cfg(not(loom))]
            if mt.is_pcp_type()
                && self.pcp_takes(order)
                && let Some(pfn) = self.rmqueue_pcp_fast(mt, order, owner)
            {
                return Ok(pfn);
            }
        }
        self.alloc_slow(order, mt, owner)
    }

    /// [`alloc`](Self::alloc) past its fast path: argument errors, larger orders, and the
    /// drain-and-retry when the zone looked empty.
    #[inline(never)]
    fn alloc_slow(&self, order: Order, mt: Migratetype, owner: Owner) -> Result<Pfn, AllocError> {
        let r = self.alloc_slow_untraced(order, mt, owner);
        let page = r.as_ref().ok().copied();
        self.trace
            .mm_page_alloc(page, order, mt, Gfp::for_migratetype(mt));
        r
    }

    /// [`alloc_slow`](Self::alloc_slow) before its tracepoint.
    fn alloc_slow_untraced(
        &self,
        order: Order,
        mt: Migratetype,
        owner: Owner,
    ) -> Result<Pfn, AllocError> {
        if order.0 >= self.geo.max_order {
            return Err(AllocError::BadOrder {
                order,
                max_order: self.geo.max_order,
            });
        }
        if !mt.is_pcp_type() {
            return Err(AllocError::BadMigratetype(mt));
        }
        let attempt = || self.get_page_from_freelist(order, mt, AllocFlags::NO_WATERMARKS, owner);
        // An order-0 request of a valid type gets here only after the fast path's attempt
        // failed: straight to the drain.
        if order.0 > 0 {
            if let Some(pfn) = attempt() {
                return Ok(pfn);
            }
        }
        self.drain_all_pages_by(DrainCaller::Reclaim);
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
            zf.set_pageblock_migratetype(pfn, mt);
        }
        let top = Order(g.max_order - 1);
        let mut pfn = Pfn(0);
        while pfn.0 < g.nr_pages {
            let mt = self.get_pageblock_migratetype(pfn);
            zf.set_freepage_migratetype(pfn, mt);
            zf.free_one_page_counted(pfn, top, mt);
            pfn = pfn.add(top.nr_pages());
        }
    }
}

/// The zone lock held (`spin_lock(&zone->lock)`): the buddy core, by `Deref`. Releasing it
/// closes the drift ledger's open decision, if the ledger is on.
pub(crate) struct ZoneLock<'a>(MutexGuard<'a, ZoneFree>);

impl core::ops::Deref for ZoneLock<'_> {
    type Target = ZoneFree;
    #[inline]
    fn deref(&self) -> &ZoneFree {
        &self.0
    }
}

impl core::ops::DerefMut for ZoneLock<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut ZoneFree {
        &mut self.0
    }
}

impl ZoneLock<'_> {
    /// Let the threads waiting for the zone lock in first, then go on holding it (a queued
    /// spinlock's release and re-take: `cond_resched()` between two parts of a long walk).
    /// Call it between writes, not in the middle of one: the waiters see and change the zone.
    pub(crate) fn let_waiters_in(&mut self) {
        let cpu = self.0.stat_cpu();
        crate::sync::hand_over(&mut self.0);
        self.0.set_stat_cpu(cpu);
    }
}

impl Drop for ZoneLock<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.ledger_release();
    }
}

/// `min_wmark_pages` / `low_wmark_pages` / `high_wmark_pages` (read under the zone lock).
#[inline]
pub(crate) fn watermark(zf: &ZoneFree, w: Wmark) -> u64 {
    let m = zf.watermarks();
    match w {
        Wmark::Min => m.min,
        Wmark::Low => m.low,
        Wmark::High => m.high,
    }
}

/// Call a race hook with this thread's pcp cache parked (see [`crate::hook`]).
#[cold]
#[inline(never)]
fn call_hook(hook: &dyn RaceHook, w: RaceWindow, pfn: Pfn) {
    let _parked = pageset::ParkedPcp::new();
    crate::hook::call(hook, w, pfn);
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
        let pageblock = PageblockFlags::new(geo.nr_pageblocks, geo.pageblock_order);
        let vm_stat = ZoneVmStat::new();
        let zone_free = ZoneFree::new(BuddyCtx {
            geo,
            fixes: cfg.fixes,
            cma_policy: cfg.cma_policy,
            pageblock: pageblock.clone(),
            vm_stat: vm_stat.clone(),
            ledger: cfg.ledger,
            trace: crate::trace::Tracepoints::new(cfg.trace.clone()),
            min_free_kbytes: cfg.min_free_kbytes,
            reserve_auto: cfg.reserve_pageblocks.is_none()
                && !cfg.fixes.contains(Fixes::NO_RESERVE),
        })?;
        let id = crate::sync::next_id();
        let inner = Arc::new_cyclic(|me: &crate::sync::Weak<ZoneInner>| ZoneInner {
            id,
            geo,
            fixes: cfg.fixes,
            hook: cfg.race_hook.clone(),
            trace: crate::trace::Tracepoints::new(cfg.trace.clone()),
            arena,
            pageblock,
            state: PageStates::new(geo.nr_pages),
            lock: CachePadded::new(Mutex::new(zone_free)),
            vm_stat,
            pcps: PcpRegistry::new(
                id,
                me.clone(),
                cfg.race_hook.is_some(),
                cfg.trace.is_some(),
                geo.cpus,
                pageset::PcpShape {
                    high: geo.pcp_high,
                    batch: geo.pcp_batch,
                    high_order: geo.pcp_high_order,
                },
            ),
            movable: movable::MovableRegistry::new(),
            cma: cma_area::CmaArea::new(&geo),
            cma_mutex: Mutex::new(()),
            reclaim: shrinker::ReclaimState::default(),
            compact: compact_state::CompactState::new(geo.nr_pageblocks, geo.pageblock_nr_pages),
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

    /// [`alloc_pages`](Self::alloc_pages) for a zone shared by `Arc`: the handle keeps the
    /// zone alive, so it is `'static` and can move to any thread (see [`OwnedPages`]).
    ///
    /// [`OwnedPages`]: crate::OwnedPages
    #[inline]
    pub fn alloc_pages_owned(
        self: &Arc<Self>,
        order: Order,
        mt: Migratetype,
    ) -> Result<crate::OwnedPages, AllocError> {
        let pfn = self.inner.alloc(order, mt, Owner::Held)?;
        Ok(crate::OwnedPages::new(self.clone(), pfn, order))
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

    /// `free_hot_cold_page_list(list, cold)`: free order-0 pages obtained from
    /// [`alloc_pfn`](Self::alloc_pfn), each through this thread's pcp (at the list's tail when
    /// `cold`, as 3.17's reclaim frees what it reclaimed), with `mm_page_free_batched` for
    /// each page before its `mm_page_free`. Every page is checked first, as
    /// [`free_pfn`](Self::free_pfn) checks one: on the first bad one this returns its error
    /// and frees none.
    pub fn free_hot_cold_page_list(&self, pfns: &[Pfn], cold: bool) -> Result<(), FreeError> {
        let z = &self.inner;
        let mut claimed = Vec::with_capacity(pfns.len());
        for &pfn in pfns {
            match z.claim_pfn(pfn, Order(0)) {
                Ok(prev) => claimed.push(prev),
                Err(e) => {
                    for (&q, prev) in pfns.iter().zip(claimed) {
                        z.state.unclaim(q, prev);
                    }
                    return Err(e);
                }
            }
        }
        for &pfn in pfns {
            z.trace.mm_page_free_batched(pfn, cold);
            z.free_hot_cold_page(pfn, cold);
        }
        Ok(())
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

    /// `NR_FREE_PAGES` and `NR_FREE_CMA_PAGES` as the counters say (not recounted), exactly:
    /// the folded values plus every CPU's diff, read under the zone lock.
    pub fn free_counters(&self) -> (i64, i64) {
        let zf = self.inner.lock();
        (zf.nr_free_pages(), zf.nr_free_cma_pages())
    }

    /// `zone_page_state(zone, item)`: what a 3.17 reader sees — the folded value only
    /// (lagging the truth by up to `stat_threshold` pages per CPU until the next
    /// [`vmstat_update`](Self::vmstat_update)), clamped at 0. No lock.
    pub fn zone_page_state(&self, item: ZoneStatItem) -> u64 {
        self.inner.vm_stat.read(item).max(0) as u64
    }

    /// `zone_page_state_snapshot(zone, item)`: the folded value plus every CPU's diff (not
    /// clamped; the kernel clamps this one at 0 too, which would hide a negative drift).
    pub fn zone_page_state_snapshot(&self, item: ZoneStatItem) -> i64 {
        self.inner.lock().vmstat().snapshot(item)
    }

    /// `vmstat_update` on every CPU: fold every CPU's counter diffs into the zone's values.
    /// 3.17 runs it from each CPU's deferrable work about once a second
    /// (`sysctl_stat_interval`); call it from a timer thread to model that, or before reading
    /// [`zone_page_state`](Self::zone_page_state) to fold on demand.
    pub fn vmstat_update(&self) {
        self.inner
            .lock_on(crate::vmstat::VmStatDiffs::NO_CPU)
            .refresh_vm_stats(None);
    }

    /// The watermarks now (`zone->watermark[]`): from `min_free_kbytes`, recomputed when
    /// it is set and when memory goes offline or online.
    pub fn watermarks(&self) -> crate::Watermarks {
        self.inner.lock().watermarks()
    }

    /// `min_free_kbytes`.
    pub fn min_free_kbytes(&self) -> u64 {
        self.inner.lock().min_free_kbytes()
    }

    /// Write `/proc/sys/vm/min_free_kbytes`: recompute the watermarks and (unless the
    /// configuration fixes the count, or [`Fixes::NO_RESERVE`] removes them) the `Reserve`
    /// pageblocks, as 3.17's `setup_per_zone_wmarks` and `setup_zone_migrate_reserve` do.
    pub fn set_min_free_kbytes(&self, kbytes: u64) {
        self.inner.lock().set_min_free_kbytes(kbytes);
    }

    /// `zone->nr_migrate_reserve_block`: the `Reserve` pageblocks the zone keeps.
    pub fn nr_migrate_reserve_block(&self) -> u64 {
        self.inner.lock().nr_migrate_reserve_block()
    }

    /// The drift ledger (see [`LedgerEntry`](crate::LedgerEntry)): every accounting
    /// decision that moved `NR_FREE_PAGES` or `NR_FREE_CMA_PAGES` away from the free lists,
    /// summed by race and path, sorted; `None` unless [`ZoneConfig::ledger`] is on. Its
    /// `free` and `cma` sums equal the audit's `drift_free` and `drift_cma`.
    pub fn ledger(&self) -> Option<Vec<ledger::LedgerEntry>> {
        self.inner.lock().ledger_entries()
    }

    /// The drift now, exactly and as `zone_page_state` shows it, for `NR_FREE_PAGES` and
    /// `NR_FREE_CMA_PAGES`; `None` unless [`ZoneConfig::ledger`] is on.
    ///
    /// The ledger keeps the pages on the free lists beside the counters, so this needs no walk:
    /// one zone-lock hold reads the exact counters, the folded ones and the ledger's count (a
    /// few loads), all at one instant. Cheap enough to sample a running zone often (the
    /// examples' `--plot` does, every 100 ms), where [`audit`](Self::audit) takes every lock
    /// and walks everything. At a quiescent point `free`/`cma` equal the audit's
    /// `drift_free`/`drift_cma` and the sums of [`ledger`](Self::ledger).
    ///
    /// ```
    /// use pagealloc::{Zone, ZoneConfig};
    /// let zone = Zone::new(ZoneConfig { size: 64 << 20, ledger: true, ..ZoneConfig::default() })?;
    /// let d = zone.drift_sample().expect("the ledger is on");
    /// assert_eq!((d.free, d.cma, d.vmstat_free, d.vmstat_cma), (0, 0, 0, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn drift_sample(&self) -> Option<ledger::DriftSample> {
        let zf = self.inner.lock();
        let (truth_free, truth_cma) = zf.ledger_truth()?;
        let vm = &self.inner.vm_stat;
        Some(ledger::DriftSample {
            free: zf.nr_free_pages() - truth_free,
            cma: zf.nr_free_cma_pages() - truth_cma,
            vmstat_free: vm.read(ZoneStatItem::NrFreePages) - truth_free,
            vmstat_cma: vm.read(ZoneStatItem::NrFreeCmaPages) - truth_cma,
        })
    }

    /// This zone's pcp mode.
    pub fn pcp_mode(&self) -> crate::PcpMode {
        match self.inner.geo.cpus {
            Some(n) => crate::PcpMode::PerCpu(n),
            None => crate::PcpMode::PerThread,
        }
    }

    /// `drain_all_pages()`: free every thread's pcp pages to the buddy lists, synchronously.
    ///
    /// One drain runs at a time per zone (the kernel's `pcpu_drain_mutex`): a call that finds
    /// one in progress waits for it, then drains, so every page cached before the call is on
    /// the buddy lists when it returns (unless it was allocated again meanwhile). Pages freed
    /// into a pcp after the drain passed it stay there.
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
    use crate::config::CmaPolicy;

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
        assert_eq!(zf.nr_free(), &[0, 0, 4]);
        assert_eq!(zf.nr_free_pages(), 16);
        drop(zf);
        // Each top block was put at the head of the list.
        assert_eq!(lists(&z, 2, Migratetype::Movable), vec![12, 8, 4, 0]);
        z.audit().assert_ok();
    }

    #[test]
    fn rmqueue_smallest_splits_with_expand() {
        let z = tiny();
        let mut zf = z.inner.lock();
        let pfn = zf.rmqueue_smallest(Order(0), Migratetype::Movable).unwrap();
        assert_eq!(pfn, Pfn(12));
        assert_eq!(zf.nr_free(), &[1, 1, 3]);
        assert_eq!(zf.buddy_order(Pfn(14)), Some(Order(1)));
        assert_eq!(zf.buddy_order(Pfn(13)), Some(Order(0)));
        assert_eq!(zf.get_freepage_migratetype(pfn), Migratetype::Movable);
        // Free it back: merges 12+13, then with 14 into the order-2 block at 12.
        zf.free_one_page_locked(pfn, Order(0), Migratetype::Movable);
        assert_eq!(zf.nr_free(), &[0, 0, 4]);
        assert_eq!(zf.buddy_order(Pfn(12)), Some(Order(2)));
        assert!(zf.buddy_order(Pfn(13)).is_none() && zf.buddy_order(Pfn(14)).is_none());
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
        assert_eq!(z.inner.lock().events().extfrag, 1);
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
                let e = l.lists[Migratetype::Movable.idx()].get(0).unwrap();
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
