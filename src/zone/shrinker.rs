//! The zone's reclaim state: the registered [`Shrinker`]s (the zone's "LRU": the caller's
//! reclaimable memory), kswapd's wake-up request, and the 3.17 reclaim and compaction event
//! counters `/proc/vmstat` prints. State owned by the zone; `vmscan` holds the reclaim paths.

use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use crate::sync::{Arc, Mutex};

/// Reclaimable memory the allocator can ask for back: the zone's LRU, as the caller's code
/// knows it (a page cache, a buffer pool). 3.17's reclaim scans the LRU lists and shrinkers;
/// here everything reclaimable is behind this trait.
///
/// Both methods run with no allocator lock held, on the allocating thread (direct reclaim) or
/// on kswapd's thread. Frees made inside [`scan`](Self::scan) go through the normal free
/// paths; allocations made inside it ignore the watermarks and never recurse into reclaim
/// (3.17's `PF_MEMALLOC`).
pub trait Shrinker: Send + Sync {
    /// Pages this shrinker could free now (`count_objects`).
    fn count(&self) -> u64;
    /// Free up to `nr_to_scan` pages back to the zone and return how many were freed
    /// (`scan_objects`). A return above `nr_to_scan` is counted as `nr_to_scan` (and recorded
    /// as a misbehaving shrinker); a panic propagates to the allocating thread (direct reclaim)
    /// or is caught and recorded (kswapd).
    fn scan(&self, nr_to_scan: u64) -> u64;
}

/// The event counters of reclaim and compaction (3.17 `enum vm_event_item` names).
#[derive(Debug, Default)]
pub(crate) struct ReclaimStats {
    pub(crate) pgscan_kswapd: AtomicU64,
    pub(crate) pgscan_direct: AtomicU64,
    pub(crate) pgsteal_kswapd: AtomicU64,
    pub(crate) pgsteal_direct: AtomicU64,
    pub(crate) allocstall: AtomicU64,
    pub(crate) pageoutrun: AtomicU64,
    pub(crate) compact_stall: AtomicU64,
    pub(crate) compact_fail: AtomicU64,
    pub(crate) compact_success: AtomicU64,
    pub(crate) compact_migrate_scanned: AtomicU64,
    pub(crate) compact_free_scanned: AtomicU64,
    pub(crate) compact_isolated: AtomicU64,
    /// Not a 3.17 counter: shrinkers that reported more pages than asked for.
    pub(crate) shrinker_overreported: AtomicU64,
    /// Not a 3.17 counter: shrinker panics caught on kswapd's thread.
    pub(crate) shrinker_panics: AtomicU64,
    /// Not a 3.17 counter: kswapd passes that ended below `high` with no progress.
    pub(crate) kswapd_failed: AtomicU64,
    /// Not a 3.17 counter: allocations that failed after the slow path (no OOM killer).
    pub(crate) alloc_fail: AtomicU64,
}

impl ReclaimStats {
    /// Add `n` to a counter (statistics only: relaxed).
    #[inline]
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        if n > 0 {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Read a counter.
    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// The zone's reclaim state.
pub(crate) struct ReclaimState {
    shrinkers: Mutex<Vec<Arc<dyn Shrinker>>>,
    pub(crate) stats: ReclaimStats,
    /// kswapd has been asked to balance the zone (`wakeup_kswapd`), and at what order.
    pub(crate) kswapd_wanted: AtomicBool,
    pub(crate) kswapd_order: AtomicU64,
    /// A kswapd thread runs for this zone.
    pub(crate) kswapd_running: AtomicBool,
    /// The kswapd thread, to wake it.
    pub(crate) kswapd_thread: Mutex<Option<std::thread::Thread>>,
}

impl Default for ReclaimState {
    fn default() -> Self {
        ReclaimState {
            shrinkers: Mutex::new(Vec::new()),
            stats: ReclaimStats::default(),
            kswapd_wanted: AtomicBool::new(false),
            kswapd_order: AtomicU64::new(0),
            kswapd_running: AtomicBool::new(false),
            kswapd_thread: Mutex::new(None),
        }
    }
}

impl ReclaimState {
    /// Register a shrinker (`register_shrinker`).
    pub(crate) fn register(&self, s: Arc<dyn Shrinker>) {
        self.shrinkers.lock().push(s);
    }

    /// Unregister a shrinker; whether it was registered.
    pub(crate) fn unregister(&self, s: &Arc<dyn Shrinker>) -> bool {
        let mut v = self.shrinkers.lock();
        let before = v.len();
        v.retain(|x| !Arc::ptr_eq(x, s));
        v.len() != before
    }

    /// The registered shrinkers, to call without the registry lock held.
    pub(crate) fn shrinkers(&self) -> Vec<Arc<dyn Shrinker>> {
        self.shrinkers.lock().clone()
    }
}

impl core::fmt::Debug for ReclaimState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReclaimState")
            .field("shrinkers", &self.shrinkers.lock().len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
