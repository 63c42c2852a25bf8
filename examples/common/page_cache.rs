//! `--page-cache` (`stress`, `cma_stress`): a page cache that fills free memory and is
//! reclaimed, so the zone runs near its watermarks as the seed's VM did (1 GiB full of page
//! cache during a kernel build), and what the counters' drift then does to the watermark
//! decisions.
//!
//! - [`PageCache`]: order-0 pages allocated with `GFP_HIGHUSER_MOVABLE` (what 3.17's
//!   `page_cache_alloc` asks for a regular file: page cache is movable), kept in LRU order. It
//!   is the zone's [`Shrinker`]: kswapd and direct reclaim free the oldest pages first. It
//!   holds its zone weakly (the zone holds the shrinker). Every page is "clean" (read, never
//!   written), so reclaim just frees it.
//! - [`Reader`]: the thread that reads files into it. Warm-up: it reads as fast as it can until
//!   reclaim has started (kswapd ran or an allocation reclaimed directly): a machine that has
//!   been building for a while has no free memory left but its watermarks' worth. Then it
//!   reads new pages at a steady rate ([`PageCacheOpts::read_mib_s()`]), and reclaim makes room
//!   for them; each page read is a page never read before (no re-reference: the LRU is a
//!   FIFO, like 3.17's inactive file list for streaming reads).
//! - [`Pressure`]: the consequences, sampled: **watermark breaches** (a sample, every
//!   [`SAMPLE_INTERVAL`], whose audit found fewer pages on the free lists than the `min`
//!   watermark) and **premature failures** (an `OutOfMemory` although the zone, counted
//!   exactly, passed the check the slow path makes: 3.17's `__zone_watermark_ok` at `min` for
//!   the request's order and flags — CMA pages not counted for a request without `ALLOC_CMA`,
//!   the per-order loop — run on the free lists of an audit taken right after the failure;
//!   other threads free and allocate meanwhile, so it is an estimate). Of those, the ones whose
//!   same audit shows the check failing on the counters as 3.17 reads them (the folded
//!   `zone_page_state` values, which lag the exact ones by the per-CPU diffs not folded yet)
//!   are counted apart: the vmstat lag explains them.
//!
//! The read rate is the workload's only parameter, and it models I/O, not the races: 3.17
//! reclaims page cache at the rate new pages come in. [`BUILD_READ_MIB_S`] is its source.

use super::{CpuOpts, Periodic};
use pagealloc::{AllocError, AuditReport, Gfp, Migratetype, Order, Pfn, Shrinker, Zone};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

/// New page cache per second of a kernel build, in MiB/s: an estimate, not a measurement —
/// a 3.17 `defconfig` build on 4 CPUs (`make -j16`, 5 to 10 minutes) reads a few hundred MB
/// of sources and headers for the first time and writes a few hundred MB of objects, about
/// 1-2 MiB/s of pages new to the page cache; rounded up to 2. The examples compress time
/// (`cma_stress` makes its 30 allocations every 150 ms where the seed waited 5 s), so they
/// scale this rate by the same factor.
pub(crate) const BUILD_READ_MIB_S: f64 = 2.0;

/// How often [`Pressure`] samples the zone (one audit, taking every lock, per sample).
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// How often the reader wakes to read the pages due.
const READ_TICK: Duration = Duration::from_millis(10);

/// The gfp mask of a page-cache read: 3.17's `mapping_gfp_mask` of a regular file.
pub(crate) const PAGE_CACHE_GFP: Gfp = Gfp::GFP_HIGHUSER_MOVABLE;

/// `--page-cache` and its rate.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub(crate) struct PageCacheOpts {
    /// Fill free memory with page cache (movable order-0 pages read by a
    /// reader thread, reclaimed oldest first by kswapd and direct reclaim),
    /// so the zone runs near its watermarks; the workers allocate through
    /// the watermarks (Gfp: all of stress's blocks, cma_stress's unmovable
    /// ones); report watermark breaches, premature failures and the reclaim
    /// counters
    #[arg(long, verbatim_doc_comment)]
    pub(crate) page_cache: bool,
    /// Page-cache read rate in MiB/s, with --page-cache [default: 2 MiB/s
    /// (a kernel build's new page cache) times the example's time
    /// compression]
    #[arg(
        long,
        value_name = "R",
        requires = "page_cache",
        value_parser = positive_rate,
        verbatim_doc_comment
    )]
    pub(crate) read_mib_s: Option<f64>,
}

impl PageCacheOpts {
    /// The read rate: `--read-mib-s`, else [`BUILD_READ_MIB_S`] × `time_compression`.
    pub(crate) fn read_mib_s(&self, time_compression: f64) -> f64 {
        self.read_mib_s
            .unwrap_or(BUILD_READ_MIB_S * time_compression)
    }
}

fn positive_rate(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e6 => Ok(r),
        _ => Err("expected a positive number of MiB/s".into()),
    }
}

// ---- the page cache ----

/// Clean page-cache pages in LRU order (oldest first), the zone's shrinker.
#[derive(Debug)]
pub(crate) struct PageCache {
    zone: Weak<Zone>,
    lru: Mutex<VecDeque<Pfn>>,
    /// Pages read (allocated into the cache).
    read: AtomicU64,
    /// Reads that failed (`OutOfMemory`).
    read_failures: AtomicU64,
    /// Pages freed by reclaim (kswapd or direct).
    reclaimed: AtomicU64,
    /// Pages dropped by [`drop_range`](Self::drop_range).
    dropped: AtomicU64,
}

impl PageCache {
    /// An empty page cache for `zone`, registered as its shrinker.
    pub(crate) fn register(zone: &Arc<Zone>) -> Arc<PageCache> {
        let cache = Arc::new(PageCache {
            zone: Arc::downgrade(zone),
            lru: Mutex::new(VecDeque::new()),
            read: AtomicU64::new(0),
            read_failures: AtomicU64::new(0),
            reclaimed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        zone.register_shrinker(cache.clone());
        cache
    }

    fn lru(&self) -> std::sync::MutexGuard<'_, VecDeque<Pfn>> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pages in the cache now.
    pub(crate) fn len(&self) -> u64 {
        self.lru().len() as u64
    }

    /// Read one page: allocate it with [`PAGE_CACHE_GFP`] (watermarks, kswapd, direct
    /// reclaim) and add it at the young end of the LRU.
    pub(crate) fn read_page(&self, zone: &Zone) -> Result<(), AllocError> {
        // No lock held across the allocation: its direct reclaim may scan this cache.
        match zone.alloc_pfn_gfp(Order(0), PAGE_CACHE_GFP) {
            Ok(pfn) => {
                self.lru().push_back(pfn);
                self.read.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.read_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Free every cached page in `[lo, hi)` at once, wherever it is in the LRU: what 3.17's
    /// `alloc_contig_range` does to the clean page cache of the range it has isolated
    /// (`reclaim_clean_pages_from_list`) instead of migrating it. Returns the pages freed.
    pub(crate) fn drop_range(&self, lo: Pfn, hi: Pfn) -> u64 {
        let Some(zone) = self.zone.upgrade() else {
            return 0;
        };
        let mut out = Vec::new();
        self.lru().retain(|&p| {
            let inside = p >= lo && p < hi;
            if inside {
                out.push(p);
            }
            !inside
        });
        free_all(&zone, &out);
        self.dropped.fetch_add(out.len() as u64, Ordering::Relaxed);
        out.len() as u64
    }

    /// Free every cached page (the end of a run). Returns the pages freed.
    pub(crate) fn release_all(&self, zone: &Zone) -> u64 {
        let all: Vec<Pfn> = std::mem::take(&mut *self.lru()).into();
        free_all(zone, &all);
        all.len() as u64
    }
}

fn free_all(zone: &Zone, pfns: &[Pfn]) {
    for &pfn in pfns {
        zone.free_pfn(pfn, Order(0))
            .expect("a page-cache page is an order-0 pfn allocation of this zone");
    }
}

impl Shrinker for PageCache {
    fn count(&self) -> u64 {
        self.len()
    }

    /// Free the `nr_to_scan` oldest pages (all clean: each scanned page is reclaimed).
    fn scan(&self, nr_to_scan: u64) -> u64 {
        let Some(zone) = self.zone.upgrade() else {
            return 0;
        };
        let old: Vec<Pfn> = {
            let mut lru = self.lru();
            let n = (nr_to_scan as usize).min(lru.len());
            lru.drain(..n).collect()
        };
        free_all(&zone, &old);
        self.reclaimed
            .fetch_add(old.len() as u64, Ordering::Relaxed);
        old.len() as u64
    }
}

// ---- the reader ----

/// The reader thread (see the module docs), stopped with [`stop`](Self::stop) or when
/// dropped.
#[derive(Debug)]
pub(crate) struct Reader<'scope> {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<ScopedJoinHandle<'scope, ()>>,
    filled: Arc<AtomicBool>,
}

impl<'scope> Reader<'scope> {
    /// Start reading into `cache` at `mib_s` MiB/s, on CPU `cpu` of `cpus` (per-CPU mode).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spawn(
        s: &'scope Scope<'scope, '_>,
        zone: &'scope Zone,
        cache: &'scope PageCache,
        pressure: &'scope Pressure,
        mib_s: f64,
        cpus: CpuOpts,
        cpu: usize,
    ) -> Reader<'scope> {
        let (tx, rx) = mpsc::channel::<()>();
        let filled = Arc::new(AtomicBool::new(false));
        let f = filled.clone();
        let pages_per_s = mib_s * f64::from(1u32 << 20) / pagealloc::PAGE_SIZE as f64;
        let handle = std::thread::Builder::new()
            .name("page-cache-reader".into())
            .spawn_scoped(s, move || {
                cpus.bind(cpu);
                read_loop(zone, cache, pressure, pages_per_s, &f, &rx);
            })
            .expect("spawn the page-cache reader");
        Reader {
            stop: Some(tx),
            handle: Some(handle),
            filled,
        }
    }

    /// Whether the warm-up is over (free memory filled, reclaim started).
    pub(crate) fn filled(&self) -> bool {
        self.filled.load(Ordering::Acquire)
    }

    /// Wait until the warm-up is over, `give_up` returns true, or the reader has stopped.
    pub(crate) fn wait_filled(&self, give_up: impl Fn() -> bool) {
        while !self.filled() && !give_up() && !self.handle.as_ref().is_none_or(|h| h.is_finished())
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stop reading and join the thread.
    pub(crate) fn stop(mut self) {
        self.stop = None;
        if let Some(Err(panic)) = self.handle.take().map(ScopedJoinHandle::join) {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        self.stop = None;
    }
}

fn read_loop(
    zone: &Zone,
    cache: &PageCache,
    pressure: &Pressure,
    pages_per_s: f64,
    filled: &AtomicBool,
    stop: &mpsc::Receiver<()>,
) {
    let stopped = || !matches!(stop.try_recv(), Err(mpsc::TryRecvError::Empty));
    // Warm-up: read until reclaim has started (or a read fails: memory is full).
    let c0 = zone.reclaim_counters();
    let mut n = 0u64;
    loop {
        if cache.read_page(zone).is_err() {
            pressure.allocation_failed(zone, Order(0), PAGE_CACHE_GFP);
            break;
        }
        n += 1;
        if n % 64 == 0 {
            if stopped() {
                return;
            }
            let c = zone.reclaim_counters();
            if c.pageoutrun > c0.pageoutrun || c.allocstall > c0.allocstall {
                break;
            }
        }
    }
    filled.store(true, Ordering::Release);
    // Steady reading: the pages due since the warm-up, every READ_TICK.
    let t0 = Instant::now();
    let per_s = pages_per_s.max(1.0) as u64;
    let mut done = 0u64;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(READ_TICK) {
        let due = (t0.elapsed().as_secs_f64() * pages_per_s) as u64;
        // A reader that fell behind (failed reads) does not catch up more than a second's
        // worth in a burst.
        done = done.max(due.saturating_sub(per_s));
        while done < due {
            if cache.read_page(zone).is_err() {
                pressure.allocation_failed(zone, Order(0), PAGE_CACHE_GFP);
                done = due;
                break;
            }
            done += 1;
        }
    }
}

// ---- the consequences ----

/// Watermark breaches and premature failures (see the module docs).
#[derive(Debug)]
pub(crate) struct Pressure {
    samples: AtomicU64,
    breaches: AtomicU64,
    min_true_free: AtomicU64,
    oom: AtomicU64,
    premature: AtomicU64,
    premature_lag: AtomicU64,
}

impl Default for Pressure {
    fn default() -> Self {
        Pressure {
            samples: AtomicU64::new(0),
            breaches: AtomicU64::new(0),
            min_true_free: AtomicU64::new(u64::MAX),
            oom: AtomicU64::new(0),
            premature: AtomicU64::new(0),
            premature_lag: AtomicU64::new(0),
        }
    }
}

impl Pressure {
    /// One sample: audit the zone (every lock, no drain) and compare the pages on the free
    /// lists with the `min` watermark.
    pub(crate) fn sample(&self, zone: &Zone) {
        let r = zone.audit();
        let min = zone.watermarks().min;
        self.samples.fetch_add(1, Ordering::Relaxed);
        self.min_true_free
            .fetch_min(r.true_free_pages, Ordering::Relaxed);
        if r.true_free_pages < min {
            self.breaches.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A sampling timer: [`sample`](Self::sample) every [`SAMPLE_INTERVAL`].
    pub(crate) fn sampler<'scope>(
        &'scope self,
        s: &'scope Scope<'scope, '_>,
        zone: &'scope Zone,
    ) -> Periodic<'scope> {
        Periodic::spawn(s, "wmark-sampler", SAMPLE_INTERVAL, move || {
            self.sample(zone)
        })
    }

    /// An allocation of `order` with `gfp` failed with `OutOfMemory`: count it, audit, and
    /// count it as premature if the zone, counted exactly, passes the slow path's watermark
    /// check for it ([`exact_watermark_ok`]); and apart if the folded counters of the same
    /// audit fail that check ([`folded_watermark_ok`]).
    pub(crate) fn allocation_failed(&self, zone: &Zone, order: Order, gfp: Gfp) {
        self.oom.fetch_add(1, Ordering::Relaxed);
        let r = zone.audit();
        let min = zone.watermarks().min;
        if exact_watermark_ok(&r, min, order, gfp) {
            self.premature.fetch_add(1, Ordering::Relaxed);
            if !folded_watermark_ok(&r, min, order, gfp) {
                self.premature_lag.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn oom_failures(&self) -> u64 {
        self.oom.load(Ordering::Relaxed)
    }
}

/// 3.17's `__zone_watermark_ok(z, order, mark, 0, alloc_flags)` for the flags
/// `gfp_to_alloc_flags(gfp)` gives (`ALLOC_HIGH`, `ALLOC_HARDER`, `ALLOC_CMA`), on the truth of
/// an audit instead of the counters: the pages on the non-`Isolate` free lists and their
/// blocks per order.
pub(crate) fn exact_watermark_ok(r: &AuditReport, mark: u64, order: Order, gfp: Gfp) -> bool {
    let blocks = |o: usize| -> u64 {
        Migratetype::ALL
            .iter()
            .filter(|&&mt| mt != Migratetype::Isolate)
            .map(|&mt| r.free_blocks.get(o).map_or(0, |b| b[mt as usize]))
            .sum()
    };
    watermark_ok(
        r.true_free_pages as i64,
        r.true_free_cma_pages as i64,
        blocks,
        mark,
        order,
        gfp,
    )
}

/// The same check on the counters as the library's allocator reads them at the audit: the
/// folded `NR_FREE_PAGES` and `NR_FREE_CMA_PAGES` (what `zone_page_state` showed) and the
/// counted `free_area[o].nr_free`.
pub(crate) fn folded_watermark_ok(r: &AuditReport, mark: u64, order: Order, gfp: Gfp) -> bool {
    watermark_ok(
        r.vmstat_free_pages.max(0),
        r.vmstat_free_cma_pages.max(0),
        |o| r.nr_free.get(o).copied().unwrap_or(0),
        mark,
        order,
        gfp,
    )
}

/// `__zone_watermark_ok` on the given free pages, free CMA pages and blocks per order.
fn watermark_ok(
    free_pages: i64,
    free_cma_pages: i64,
    blocks: impl Fn(usize) -> u64,
    mark: u64,
    order: Order,
    gfp: Gfp,
) -> bool {
    let mut free = free_pages - (order.nr_pages() as i64 - 1);
    let mut min = mark as i64;
    if gfp.contains(Gfp::HIGH) {
        min -= min / 2;
    }
    if !gfp.can_wait() && !gfp.contains(Gfp::NO_KSWAPD) {
        min -= min / 4;
    }
    let free_cma = if gfp.migratetype() == Migratetype::Movable {
        0
    } else {
        free_cma_pages
    };
    if free - free_cma <= min {
        return false;
    }
    for o in 0..order.0 as usize {
        free -= (blocks(o) << o) as i64;
        min >>= 1;
        if free <= min {
            return false;
        }
    }
    true
}

/// What a `--page-cache` run reports, flattened into the example's `--json` object (every
/// key new; absent without `--page-cache`).
#[derive(serde::Serialize, Clone, Debug, Default)]
pub(crate) struct PageCacheReport {
    pub(crate) page_cache_read_mib_s: f64,
    pub(crate) page_cache_pages_read: u64,
    pub(crate) page_cache_read_failures: u64,
    pub(crate) page_cache_reclaimed: u64,
    pub(crate) page_cache_dropped: u64,
    pub(crate) page_cache_pages_at_end: u64,
    pub(crate) wmark_min: u64,
    pub(crate) wmark_samples: u64,
    pub(crate) wmark_breaches: u64,
    pub(crate) min_true_free_pages: u64,
    pub(crate) oom_failures: u64,
    pub(crate) premature_failures: u64,
    /// Premature failures the folded counters explain (see the module docs).
    pub(crate) premature_failures_vmstat_lag: u64,
    pub(crate) pgscan_kswapd: u64,
    pub(crate) pgscan_direct: u64,
    pub(crate) pgsteal_kswapd: u64,
    pub(crate) pgsteal_direct: u64,
    pub(crate) allocstall: u64,
    pub(crate) pageoutrun: u64,
    pub(crate) kswapd_failed: u64,
    pub(crate) compact_stall: u64,
    pub(crate) compact_success: u64,
    pub(crate) compact_fail: u64,
}

impl PageCacheReport {
    /// Collect at the end of a run, before the cache is released.
    pub(crate) fn collect(
        zone: &Zone,
        cache: &PageCache,
        pressure: &Pressure,
        mib_s: f64,
    ) -> PageCacheReport {
        let c = zone.reclaim_counters();
        let min_free = pressure.min_true_free.load(Ordering::Relaxed);
        PageCacheReport {
            page_cache_read_mib_s: mib_s,
            page_cache_pages_read: cache.read.load(Ordering::Relaxed),
            page_cache_read_failures: cache.read_failures.load(Ordering::Relaxed),
            page_cache_reclaimed: cache.reclaimed.load(Ordering::Relaxed),
            page_cache_dropped: cache.dropped.load(Ordering::Relaxed),
            page_cache_pages_at_end: cache.len(),
            wmark_min: zone.watermarks().min,
            wmark_samples: pressure.samples.load(Ordering::Relaxed),
            wmark_breaches: pressure.breaches.load(Ordering::Relaxed),
            min_true_free_pages: if min_free == u64::MAX { 0 } else { min_free },
            oom_failures: pressure.oom.load(Ordering::Relaxed),
            premature_failures: pressure.premature.load(Ordering::Relaxed),
            premature_failures_vmstat_lag: pressure.premature_lag.load(Ordering::Relaxed),
            pgscan_kswapd: c.pgscan_kswapd,
            pgscan_direct: c.pgscan_direct,
            pgsteal_kswapd: c.pgsteal_kswapd,
            pgsteal_direct: c.pgsteal_direct,
            allocstall: c.allocstall,
            pageoutrun: c.pageoutrun,
            kswapd_failed: c.kswapd_failed,
            compact_stall: c.compact_stall,
            compact_success: c.compact_success,
            compact_fail: c.compact_fail,
        }
    }

    /// The text lines of a run.
    pub(crate) fn lines(&self) -> [String; 3] {
        [
            format!(
                "page cache: {:.1} MiB/s, {} pages read ({} reads failed), {} reclaimed, {} dropped by CMA, {} left at the end",
                self.page_cache_read_mib_s,
                self.page_cache_pages_read,
                self.page_cache_read_failures,
                self.page_cache_reclaimed,
                self.page_cache_dropped,
                self.page_cache_pages_at_end
            ),
            format!(
                "watermarks: min {}: breached in {} of {} samples (fewest free pages seen {}); {} allocations failed (OutOfMemory), {} of them premature ({} with zone_page_state below the mark)",
                self.wmark_min,
                self.wmark_breaches,
                self.wmark_samples,
                self.min_true_free_pages,
                self.oom_failures,
                self.premature_failures,
                self.premature_failures_vmstat_lag
            ),
            format!(
                "reclaim: pgscan kswapd/direct {}/{}, pgsteal kswapd/direct {}/{}, allocstall {}, pageoutrun {} ({} below high), compact stall/success/fail {}/{}/{}",
                self.pgscan_kswapd,
                self.pgscan_direct,
                self.pgsteal_kswapd,
                self.pgsteal_direct,
                self.allocstall,
                self.pageoutrun,
                self.kswapd_failed,
                self.compact_stall,
                self.compact_success,
                self.compact_fail
            ),
        ]
    }
}
