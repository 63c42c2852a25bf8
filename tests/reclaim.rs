//! Reclaim through the caller's shrinkers: kswapd, direct reclaim, and shrinkers that misbehave
//! (panic, over-report, block, allocate). Synchronisation is by channels and barriers; the only
//! time bound is a generous deadline that turns a hang into a failure.
#![allow(clippy::disallowed_types)] // tests are outside the loom shim rule

use pagealloc::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// 8 MiB, no Reserve pageblock: min 90, low 112, high 135 pages.
fn zone() -> Arc<Zone> {
    Arc::new(
        Zone::new(ZoneConfig {
            size: 8 << 20,
            fixes: Fixes::ALL,
            reserve_pageblocks: Some(0),
            ..ZoneConfig::default()
        })
        .unwrap(),
    )
}

/// Reclaimable pages held for a cache; `scan` frees them and reports on `tx`. It holds its
/// zone weakly (the zone holds the shrinker).
struct Cache {
    zone: std::sync::Weak<Zone>,
    pages: Mutex<Vec<Pfn>>,
    tx: Mutex<Option<mpsc::Sender<u64>>>,
}

impl Cache {
    fn new(zone: &Arc<Zone>) -> Arc<Cache> {
        Arc::new(Cache {
            zone: Arc::downgrade(zone),
            pages: Mutex::new(Vec::new()),
            tx: Mutex::new(None),
        })
    }

    /// Fill the zone with cache pages until `left` pages are truly free.
    fn fill_until(&self, left: u64) {
        let zone = self.zone.upgrade().unwrap();
        while zone.audit().true_free_pages > left {
            let p = zone.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
            self.pages.lock().unwrap().push(p);
            zone.drain_all_pages();
        }
        zone.vmstat_update();
    }
}

impl Shrinker for Cache {
    fn count(&self) -> u64 {
        self.pages.lock().unwrap().len() as u64
    }
    fn scan(&self, nr: u64) -> u64 {
        let freed: Vec<Pfn> = {
            let mut p = self.pages.lock().unwrap();
            let n = (nr as usize).min(p.len());
            p.drain(..n).collect()
        };
        let zone = self.zone.upgrade().expect("the zone calls its shrinkers");
        for &pfn in &freed {
            zone.free_pfn(pfn, Order(0)).unwrap();
        }
        if let Some(tx) = self.tx.lock().unwrap().as_ref() {
            let _ = tx.send(freed.len() as u64);
        }
        freed.len() as u64
    }
}

/// kswapd wakes when an allocation finds the zone below low, and reclaims until the zone is
/// balanced at high; stopping it joins its thread.
#[test]
fn kswapd_reclaims_to_the_high_watermark() {
    let z = zone();
    let cache = Cache::new(&z);
    cache.fill_until(100); // between min (90) and low (112)
    let (tx, rx) = mpsc::channel();
    *cache.tx.lock().unwrap() = Some(tx);
    z.register_shrinker(cache.clone());
    let kswapd = z.start_kswapd().expect("first kswapd");
    assert!(z.start_kswapd().is_none(), "one kswapd per zone");
    // Served at min by the slow path, which wakes kswapd (the zone is below low).
    let p = z.alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL).unwrap();
    let high = z.geometry().wmark.high;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        rx.recv_timeout(left).expect("kswapd scans the cache");
        let free = z.zone_page_state_snapshot(ZoneStatItem::NrFreePages);
        if free > high as i64 {
            break;
        }
    }
    drop(kswapd);
    let c = z.reclaim_counters();
    assert!(c.pageoutrun >= 1 && c.pgsteal_kswapd > 0, "{c:?}");
    assert_eq!(c.allocstall, 0, "no direct reclaim needed: {c:?}");
    z.free_pfn(p, Order(0)).unwrap();
    z.audit().assert_ok();
}

/// A kswapd with nothing to reclaim records its failure and sleeps; dropping it returns.
#[test]
fn kswapd_that_cannot_reach_high_gives_up_and_stops() {
    /// Nothing to reclaim; reports each `count` call.
    struct Empty(Mutex<mpsc::Sender<()>>);
    impl Shrinker for Empty {
        fn count(&self) -> u64 {
            let _ = self.0.lock().unwrap().send(());
            0
        }
        fn scan(&self, _: u64) -> u64 {
            unreachable!("count is 0")
        }
    }
    let z = zone();
    while z.audit().true_free_pages > 100 {
        z.alloc_pfn(Order(0), Migratetype::Unmovable).unwrap();
        z.drain_all_pages();
    }
    z.vmstat_update();
    let (tx, rx) = mpsc::channel();
    z.register_shrinker(Arc::new(Empty(Mutex::new(tx))));
    let kswapd = z.start_kswapd().unwrap();
    z.alloc_pfn_gfp(Order(0), Gfp::GFP_ATOMIC).unwrap(); // wakes kswapd, no reclaim itself
    rx.recv_timeout(Duration::from_secs(20))
        .expect("kswapd looks at the shrinker");
    // Stopping joins kswapd after the run it is in, which ends below high.
    drop(kswapd);
    let c = z.reclaim_counters();
    assert_eq!(
        (c.kswapd_failed, c.pageoutrun, c.allocstall),
        (1, 1, 0),
        "{c:?}"
    );
    z.audit().assert_ok();
}

/// A shrinker that panics: the panic reaches the allocating thread, which can allocate again
/// afterwards (it is no longer marked as reclaiming), and nothing is lost.
#[test]
fn a_panicking_shrinker_unwinds_to_the_caller_and_leaves_the_zone_usable() {
    struct Bomb;
    impl Shrinker for Bomb {
        fn count(&self) -> u64 {
            64
        }
        fn scan(&self, _: u64) -> u64 {
            panic!("shrinker bomb");
        }
    }
    let z = zone();
    let cache = Cache::new(&z);
    cache.fill_until(80); // below min: GFP_KERNEL must reclaim
    let bomb: Arc<dyn Shrinker> = Arc::new(Bomb);
    z.register_shrinker(bomb.clone());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        z.alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL)
    }));
    assert!(r.is_err(), "the shrinker's panic propagates");
    assert!(z.unregister_shrinker(&bomb));
    z.register_shrinker(cache.clone());
    // Not stuck in PF_MEMALLOC: this allocation reclaims (allocstall counts both runs).
    let p = z.alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL).unwrap();
    assert_eq!(z.reclaim_counters().allocstall, 2);
    z.free_pfn(p, Order(0)).unwrap();
    z.audit().assert_ok();
}

/// A shrinker that claims progress it does not make: the slow path gives up after
/// MAX_RECLAIM_RETRIES rounds with a typed error; the over-reports are counted.
#[test]
fn a_lying_shrinker_cannot_hang_an_allocation() {
    struct Liar(AtomicU64);
    impl Shrinker for Liar {
        fn count(&self) -> u64 {
            1 << 20
        }
        fn scan(&self, nr: u64) -> u64 {
            self.0.fetch_add(1, Ordering::Relaxed);
            nr * 2 // frees nothing, claims double
        }
    }
    let z = zone();
    while z.audit().true_free_pages > 80 {
        z.alloc_pfn(Order(0), Migratetype::Unmovable).unwrap();
        z.drain_all_pages();
    }
    z.vmstat_update();
    let liar = Arc::new(Liar(AtomicU64::new(0)));
    z.register_shrinker(liar.clone());
    let e = z
        .alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL | Gfp::NOWARN)
        .unwrap_err();
    assert!(
        matches!(e, AllocError::OutOfMemory { quiet: true, .. }),
        "{e}"
    );
    let c = z.reclaim_counters();
    assert_eq!(c.allocstall, u64::from(MAX_RECLAIM_RETRIES), "{c:?}");
    assert!(c.shrinker_overreported > 0 && c.alloc_fail == 1, "{c:?}");
    z.audit().assert_ok();
}

/// A shrinker that blocks holds up only its caller: no allocator lock is held while it runs,
/// so another thread allocates, frees, drains and audits meanwhile.
#[test]
fn a_blocking_shrinker_blocks_only_its_caller() {
    struct Gate {
        cache: Arc<Cache>,
        entered: Mutex<Option<mpsc::Sender<()>>>,
        release: Mutex<mpsc::Receiver<()>>,
    }
    impl Shrinker for Gate {
        fn count(&self) -> u64 {
            self.cache.count()
        }
        fn scan(&self, nr: u64) -> u64 {
            if let Some(tx) = self.entered.lock().unwrap().take() {
                tx.send(()).unwrap();
                self.release.lock().unwrap().recv().unwrap();
            }
            self.cache.scan(nr)
        }
    }
    let z = zone();
    let cache = Cache::new(&z);
    cache.fill_until(80);
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    z.register_shrinker(Arc::new(Gate {
        cache: cache.clone(),
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(release_rx),
    }));
    let blocked = AtomicBool::new(true);
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            let p = z.alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL).unwrap();
            assert!(!blocked.load(Ordering::Acquire));
            z.free_pfn(p, Order(0)).unwrap();
        });
        entered_rx.recv().unwrap();
        // The reclaimer is parked inside its shrinker.
        let q = z.alloc_pfn(Order(3), Migratetype::Unmovable).unwrap();
        z.free_pfn(q, Order(3)).unwrap();
        z.drain_all_pages();
        assert!(z.audit().is_ok());
        blocked.store(false, Ordering::Release);
        release_tx.send(()).unwrap();
        t.join().unwrap();
    });
    z.audit().assert_ok();
}

/// A shrinker that allocates while it reclaims (to write back, say) is served without the
/// watermarks and without recursing into reclaim (PF_MEMALLOC).
#[test]
fn allocations_inside_reclaim_do_not_recurse() {
    struct Writeback {
        cache: Arc<Cache>,
        depth: AtomicU64,
        max_depth: AtomicU64,
    }
    impl Shrinker for Writeback {
        fn count(&self) -> u64 {
            self.cache.count()
        }
        fn scan(&self, nr: u64) -> u64 {
            let d = self.depth.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_depth.fetch_max(d, Ordering::SeqCst);
            let zone = self.cache.zone.upgrade().unwrap();
            // Below min, yet served: a reclaimer's allocation ignores the watermarks.
            let p = zone.alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL).unwrap();
            zone.free_pfn(p, Order(0)).unwrap();
            self.depth.fetch_sub(1, Ordering::SeqCst);
            self.cache.scan(nr)
        }
    }
    let z = zone();
    let cache = Cache::new(&z);
    cache.fill_until(80);
    let wb = Arc::new(Writeback {
        cache: cache.clone(),
        depth: AtomicU64::new(0),
        max_depth: AtomicU64::new(0),
    });
    z.register_shrinker(wb.clone());
    z.alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL).unwrap();
    assert_eq!(wb.max_depth.load(Ordering::SeqCst), 1, "no nested reclaim");
    assert_eq!(z.reclaim_counters().allocstall, 1);
    z.audit().assert_ok();
}

/// An unmovable request cannot use free CMA pages, and reclaim frees pages wherever the
/// cache's LRU has them: with the oldest cache pages in the CMA area, many rounds of real
/// reclaim free only CMA pages before any the request can use. 3.17's `should_alloc_retry`
/// retries an order-0 request for as long as reclaim makes progress, so the request is
/// served once reclaim reaches the cache pages outside CMA; it must not fail after
/// `MAX_RECLAIM_RETRIES` rounds that each freed pages (the bound is for rounds without
/// real progress, as in 4.7's `should_reclaim_retry`).
#[test]
fn reclaim_that_frees_only_cma_pages_for_a_while_does_not_fail_an_unmovable_request() {
    let z = Arc::new(
        Zone::new(ZoneConfig {
            size: 8 << 20,
            cma_size: 4 << 20,
            fixes: Fixes::ALL,
            reserve_pageblocks: Some(0),
            ..ZoneConfig::default()
        })
        .unwrap(),
    );
    let cache = Cache::new(&z);
    z.register_shrinker(cache.clone());
    // Every page outside CMA held unmovable, so the cache's first pages are CMA pages.
    let mut held = Vec::new();
    while let Ok(p) = z.alloc_pfn(Order(0), Migratetype::Unmovable) {
        held.push(p);
        z.drain_all_pages();
    }
    cache.fill_until(0);
    let cma_cached = cache.count();
    assert!(
        cma_cached > u64::from(MAX_RECLAIM_RETRIES) * 32,
        "{cma_cached}"
    );
    // Then 200 cache pages outside CMA, at the young end of the LRU.
    for p in held.drain(..200) {
        z.free_pfn(p, Order(0)).unwrap();
    }
    z.drain_all_pages();
    cache.fill_until(0);
    z.vmstat_update();
    let r = z.audit();
    assert_eq!(r.true_free_pages, 0, "{r}");
    let p = z
        .alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL)
        .unwrap_or_else(|e| {
            panic!(
                "3.17 keeps reclaiming while reclaim makes progress: {e}, {:?}",
                z.reclaim_counters()
            )
        });
    let c = z.reclaim_counters();
    assert!(
        c.allocstall > u64::from(MAX_RECLAIM_RETRIES) && c.alloc_fail == 0,
        "{c:?}"
    );
    z.free_pfn(p, Order(0)).unwrap();
    drop(held);
    z.audit().assert_ok();
}
