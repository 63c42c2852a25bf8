//! Reclaim, as 3.17's `mm/vmscan.c` drives it, over the caller's [`Shrinker`]s: direct reclaim
//! (`try_to_free_pages`) on the allocating thread, and `kswapd`, a thread per zone woken below
//! the low watermark that reclaims until the zone is balanced at the high watermark.
//!
//! # The LRU, here
//! 3.17 scans the LRU lists at a priority from `DEF_PRIORITY` (12) down to 0, each pass
//! looking at `lru_size >> priority` pages, until it has reclaimed `SWAP_CLUSTER_MAX` (32)
//! pages (direct reclaim) or the zone is balanced (kswapd). The zone's LRU is the registered
//! shrinkers: at priority `p` each is asked to scan `max(count >> p, min(count, 32))` pages.
//!
//! # Re-entry
//! While a thread reclaims it is marked as 3.17 marks it (`PF_MEMALLOC`): its own allocations
//! (a shrinker that allocates to write back, say) ignore the watermarks and never recurse into
//! reclaim. No allocator lock is held while a shrinker runs.
//!
//! # Failures
//! A shrinker that reports more than it was asked to scan counts as the amount asked
//! (`shrinker_overreported`); one that panics unwinds through direct reclaim to the allocating
//! thread (the mark is cleared on the way) and is caught and counted on kswapd's thread
//! (`shrinker_panics`); a kswapd pass that makes no progress below `high` is counted
//! (`kswapd_failed`) and kswapd sleeps until the next wake-up.

use crate::gfp::{AllocFlags, Wmark};
use crate::sync::atomic::Ordering;
use crate::types::Order;
use crate::vmstat::ZoneStatItem;
use crate::zone::shrinker::{ReclaimStats, Shrinker};
use crate::zone::{Zone, ZoneInner};
use std::cell::Cell;

/// `DEF_PRIORITY`.
const DEF_PRIORITY: u32 = 12;
/// `SWAP_CLUSTER_MAX`.
pub(crate) const SWAP_CLUSTER_MAX: u64 = 32;

#[cfg(not(loom))]
crate::sync::thread_local! {
    /// `current->flags & PF_MEMALLOC`: this thread is reclaiming.
    static PF_MEMALLOC: Cell<bool> = const { Cell::new(false) };
}

// loom's `thread_local!` takes no `const` initialiser.
#[cfg(loom)]
crate::sync::thread_local! {
    static PF_MEMALLOC: Cell<bool> = Cell::new(false);
}

/// Whether the calling thread is inside reclaim (`PF_MEMALLOC`).
pub(crate) fn in_reclaim() -> bool {
    PF_MEMALLOC.try_with(Cell::get).unwrap_or(false)
}

/// Sets `PF_MEMALLOC` for its lifetime and restores the previous value, also on unwind.
struct MemallocScope(bool);

impl MemallocScope {
    fn enter() -> MemallocScope {
        MemallocScope(PF_MEMALLOC.with(|f| f.replace(true)))
    }
}

impl Drop for MemallocScope {
    fn drop(&mut self) {
        let _ = PF_MEMALLOC.try_with(|f| f.set(self.0));
    }
}

/// Who is reclaiming (which counters move).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(loom, allow(dead_code))] // no kswapd under loom
enum Reclaimer {
    Direct,
    Kswapd,
}

impl ZoneInner {
    /// One shrink pass over every shrinker at `priority`: pages reclaimed.
    fn shrink_zone(&self, priority: u32, who: Reclaimer) -> u64 {
        let st = &self.reclaim.stats;
        let mut reclaimed = 0;
        for s in self.reclaim.shrinkers() {
            let count = s.count();
            if count == 0 {
                continue;
            }
            let nr = (count >> priority).max(count.min(SWAP_CLUSTER_MAX));
            let freed = s.scan(nr);
            if freed > nr {
                ReclaimStats::add(&st.shrinker_overreported, 1);
            }
            let freed = freed.min(nr);
            let (scan, steal) = match who {
                Reclaimer::Direct => (&st.pgscan_direct, &st.pgsteal_direct),
                Reclaimer::Kswapd => (&st.pgscan_kswapd, &st.pgsteal_kswapd),
            };
            ReclaimStats::add(scan, nr);
            ReclaimStats::add(steal, freed);
            reclaimed += freed;
        }
        reclaimed
    }

    /// `try_to_free_pages` (`do_try_to_free_pages`): shrink at falling priority until
    /// `SWAP_CLUSTER_MAX` pages are reclaimed; the pages reclaimed (0: no progress).
    pub(crate) fn try_to_free_pages(&self) -> u64 {
        ReclaimStats::add(&self.reclaim.stats.allocstall, 1);
        let _memalloc = MemallocScope::enter();
        let mut reclaimed = 0;
        for priority in (0..=DEF_PRIORITY).rev() {
            reclaimed += self.shrink_zone(priority, Reclaimer::Direct);
            if reclaimed >= SWAP_CLUSTER_MAX {
                break;
            }
        }
        reclaimed
    }

    /// The pages the shrinkers say they hold now (the sum of their counts): how direct
    /// reclaim checks the progress they report.
    pub(crate) fn reclaimable_pages(&self) -> u64 {
        self.reclaim
            .shrinkers()
            .iter()
            .map(|s| s.count())
            .fold(0, u64::saturating_add)
    }

    /// `zone_watermark_ok_safe(z, order, mark, 0, 0)`: the watermark check kswapd uses, with
    /// the per-CPU diffs added (`zone_page_state_snapshot`) when the folded value is below
    /// `percpu_drift_mark`, where they could hide a breach.
    pub(crate) fn zone_watermark_ok_safe(&self, order: Order, w: Wmark) -> bool {
        let zf = self.lock();
        let mut free = self.vm_stat.read(ZoneStatItem::NrFreePages).max(0);
        let drift_mark = zf.percpu_drift_mark();
        if drift_mark > 0 && (free as u64) < drift_mark {
            free = zf.vmstat().snapshot(ZoneStatItem::NrFreePages).max(0);
        }
        zf.zone_watermark_ok(
            order,
            crate::zone::watermark(&zf, w),
            AllocFlags::wmark(w),
            free,
        )
    }

    /// `wakeup_kswapd(zone, order)`: if the zone is below `low` (checked safely), ask kswapd
    /// to balance it. A no-op without a running kswapd.
    pub(crate) fn wakeup_kswapd(&self, order: Order) {
        let r = &self.reclaim;
        if !r.kswapd_running.load(Ordering::Relaxed) {
            return;
        }
        if self.zone_watermark_ok_safe(order, Wmark::Low) {
            return;
        }
        r.kswapd_order.store(u64::from(order.0), Ordering::Relaxed);
        if !r.kswapd_wanted.swap(true, Ordering::AcqRel) {
            if let Some(t) = self.reclaim.kswapd_thread.lock().as_ref() {
                t.unpark();
            }
        }
    }

    /// `balance_pgdat`: reclaim at falling priority until the zone is balanced at `high`
    /// for `order`; whether it got there.
    #[cfg_attr(loom, allow(dead_code))] // no kswapd under loom
    fn balance_pgdat(&self, order: Order) -> bool {
        let st = &self.reclaim.stats;
        ReclaimStats::add(&st.pageoutrun, 1);
        if self.zone_watermark_ok_safe(order, Wmark::High) {
            return true;
        }
        let _memalloc = MemallocScope::enter();
        for priority in (0..=DEF_PRIORITY).rev() {
            let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.shrink_zone(priority, Reclaimer::Kswapd)
            }));
            if got.is_err() {
                ReclaimStats::add(&st.shrinker_panics, 1);
                return false;
            }
            if self.zone_watermark_ok_safe(order, Wmark::High) {
                return true;
            }
        }
        false
    }
}

/// The reclaim and compaction counters of a zone ([`Zone::reclaim_counters`]): the 3.17
/// `/proc/vmstat` events, and the failures this library records where 3.17 has no counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReclaimCounters {
    /// `pgscan_kswapd_normal`: pages kswapd asked shrinkers to scan.
    pub pgscan_kswapd: u64,
    /// `pgscan_direct_normal`: pages direct reclaim asked shrinkers to scan.
    pub pgscan_direct: u64,
    /// `pgsteal_kswapd_normal`: pages kswapd reclaimed.
    pub pgsteal_kswapd: u64,
    /// `pgsteal_direct_normal`: pages direct reclaim reclaimed.
    pub pgsteal_direct: u64,
    /// `allocstall`: direct reclaim runs.
    pub allocstall: u64,
    /// `pageoutrun`: kswapd balancing runs.
    pub pageoutrun: u64,
    /// `compact_stall`: direct compaction runs.
    pub compact_stall: u64,
    /// `compact_fail`: direct compaction runs that did not serve the allocation.
    pub compact_fail: u64,
    /// `compact_success`: direct compaction runs that did.
    pub compact_success: u64,
    /// Shrinker calls that reported more pages than they were asked to scan.
    pub shrinker_overreported: u64,
    /// Shrinker panics caught on kswapd's thread.
    pub shrinker_panics: u64,
    /// kswapd runs that ended below the high watermark.
    pub kswapd_failed: u64,
    /// `Gfp` allocations that failed after the slow path (where 3.17 would call the OOM
    /// killer).
    pub alloc_fail: u64,
}

/// A running kswapd for one zone: stopped and joined when dropped.
#[derive(Debug)]
pub struct Kswapd {
    zone: std::sync::Weak<ZoneInner>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Zone {
    /// The zone's reclaim and compaction counters.
    pub fn reclaim_counters(&self) -> ReclaimCounters {
        let s = &self.inner.reclaim.stats;
        let g = ReclaimStats::get;
        ReclaimCounters {
            pgscan_kswapd: g(&s.pgscan_kswapd),
            pgscan_direct: g(&s.pgscan_direct),
            pgsteal_kswapd: g(&s.pgsteal_kswapd),
            pgsteal_direct: g(&s.pgsteal_direct),
            allocstall: g(&s.allocstall),
            pageoutrun: g(&s.pageoutrun),
            compact_stall: g(&s.compact_stall),
            compact_fail: g(&s.compact_fail),
            compact_success: g(&s.compact_success),
            shrinker_overreported: g(&s.shrinker_overreported),
            shrinker_panics: g(&s.shrinker_panics),
            kswapd_failed: g(&s.kswapd_failed),
            alloc_fail: g(&s.alloc_fail),
        }
    }

    /// Register a shrinker: memory the allocator may reclaim (3.17's LRU and shrinkers).
    pub fn register_shrinker(&self, s: std::sync::Arc<dyn Shrinker>) {
        self.inner.reclaim.register(s);
    }

    /// Unregister a shrinker; whether it was registered.
    pub fn unregister_shrinker(&self, s: &std::sync::Arc<dyn Shrinker>) -> bool {
        self.inner.reclaim.unregister(s)
    }

    /// Start kswapd for this zone: a thread that sleeps until an allocation finds the zone
    /// below its low watermark, then reclaims through the shrinkers until the zone is
    /// balanced at the high watermark, and sleeps again. It holds the zone weakly and stops
    /// when the returned handle is dropped (or the zone is). At most one runs per zone: a
    /// second call returns `None`.
    #[cfg(not(loom))]
    pub fn start_kswapd(&self) -> Option<Kswapd> {
        let r = &self.inner.reclaim;
        if r.kswapd_running.swap(true, Ordering::AcqRel) {
            return None;
        }
        let weak = std::sync::Arc::downgrade(&self.inner);
        let w = weak.clone();
        let thread = std::thread::Builder::new()
            .name("kswapd0".into())
            .spawn(move || kswapd(w))
            .expect("spawn kswapd");
        *self.inner.reclaim.kswapd_thread.lock() = Some(thread.thread().clone());
        Some(Kswapd {
            zone: weak,
            thread: Some(thread),
        })
    }
}

/// kswapd's loop: sleep until woken, balance, repeat; exit when the zone is gone or kswapd is
/// stopped.
#[cfg(not(loom))]
fn kswapd(zone: std::sync::Weak<ZoneInner>) {
    loop {
        let Some(z) = zone.upgrade() else { return };
        let r = &z.reclaim;
        if !r.kswapd_running.load(Ordering::Acquire) {
            return;
        }
        if r.kswapd_wanted.swap(false, Ordering::AcqRel) {
            let order = Order(r.kswapd_order.load(Ordering::Relaxed) as u32);
            if !z.balance_pgdat(order) {
                ReclaimStats::add(&r.stats.kswapd_failed, 1);
            }
            continue;
        }
        // Going to sleep: clear compaction's skip hints if a compaction ran to completion
        // since (`kswapd_try_to_sleep` → `reset_isolation_suitable`).
        z.reset_isolation_suitable();
        drop(z);
        std::thread::park();
    }
}

impl Drop for Kswapd {
    fn drop(&mut self) {
        if let Some(z) = self.zone.upgrade() {
            z.reclaim.kswapd_running.store(false, Ordering::Release);
            *z.reclaim.kswapd_thread.lock() = None;
        }
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
