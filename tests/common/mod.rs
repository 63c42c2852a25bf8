//! Shared helpers for the race regression tests: small zones and a gate hook that parks a
//! thread at one race window until the test releases it (real synchronisation, no sleeps).
#![allow(dead_code, clippy::disallowed_types)] // tests are outside the loom shim rule

use pagealloc::*;
use std::sync::{Arc, Condvar, Mutex};

/// The pcp mode the race tests run in: per-thread, or `PcpMode::PerCpu(n)` with
/// `PAGEALLOC_TEST_CPUS=n` (`scripts/ci.sh` runs the race tests both ways).
pub(crate) fn pcp_mode() -> PcpMode {
    match std::env::var("PAGEALLOC_TEST_CPUS") {
        Ok(n) => PcpMode::PerCpu(n.parse().expect("PAGEALLOC_TEST_CPUS: a CPU count")),
        Err(_) => PcpMode::PerThread,
    }
}

/// 16 pages, max_order 3 (top blocks of 4 pages = two pageblocks of 2 pages), the top 8
/// pages CMA.
pub(crate) fn tiny_cma(fixes: Fixes, hook: Option<Arc<dyn RaceHook>>) -> Zone {
    Zone::new(ZoneConfig {
        cma_size: 8 * PAGE_SIZE,
        fixes,
        race_hook: hook,
        pcp_mode: pcp_mode(),
        ..ZoneConfig::tiny(16)
    })
    .unwrap()
}

/// 32 pages, max_order 4 (top blocks of 8 pages), pageblocks of 4 pages, the top 16 pages
/// CMA: room for an order-1 block and its buddy inside one pageblock.
pub(crate) fn small_cma(fixes: Fixes, hook: Option<Arc<dyn RaceHook>>) -> Zone {
    Zone::new(small_cma_config(fixes, hook)).unwrap()
}

/// [`small_cma`]'s configuration, for tests that change one more field.
pub(crate) fn small_cma_config(fixes: Fixes, hook: Option<Arc<dyn RaceHook>>) -> ZoneConfig {
    ZoneConfig {
        max_order: 4,
        pageblock_order: 2,
        cma_size: 16 * PAGE_SIZE,
        fixes,
        race_hook: hook,
        pcp_mode: pcp_mode(),
        ..ZoneConfig::tiny(32)
    }
}

/// R2 under 3.17 on the tiny CMA zone: the page at 8, drained by its cached CMA type into its
/// isolated pageblock, merged with its Isolate-list buddy 9 onto the CMA list, uncounted.
pub(crate) fn assert_r2_misplacement(r: &AuditReport) {
    assert_eq!((r.drift_free, r.drift_cma), (-2, -2), "{r}");
    assert_eq!(r.misplaced_blocks.len(), 1, "{r}");
    let m = r.misplaced_blocks[0];
    assert_eq!(
        (m.pfn, m.order, m.list, m.pageblock),
        (Pfn(8), Order(1), Migratetype::Cma, Migratetype::Isolate)
    );
}

/// Every page free, the counters exact, nothing isolated or reserved (drains first).
pub(crate) fn all_free(z: &Zone) {
    z.drain_all_pages();
    let r = z.audit();
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.true_free_pages, z.geometry().nr_pages, "{r}");
    assert_eq!(z.nr_isolate_pageblock(), 0);
    if let Some(cma) = z.cma() {
        assert_eq!(cma.area().used(), 0, "CMA bitmap bits left reserved");
    }
}

/// Allocate every page of the zone as Movable blocks of `order`; returns the sorted pfns.
pub(crate) fn fill(zone: &Zone, order: Order) -> Vec<Pfn> {
    let mut v = Vec::new();
    while let Ok(p) = zone.alloc_pfn(order, Migratetype::Movable) {
        v.push(p);
    }
    assert_eq!(v.len() as u64, zone.geometry().nr_pages >> order.0);
    v.sort();
    v
}

/// Free a block and push it out of every pcp onto the buddy lists.
pub(crate) fn free_now(zone: &Zone, pfn: u64, order: u32) {
    zone.free_pfn(Pfn(pfn), Order(order)).unwrap();
    zone.drain_all_pages();
}

/// Parks the first thread that reaches `window` for `pfn` until [`Gate::release`].
pub(crate) struct Gate {
    window: RaceWindow,
    pfn: Pfn,
    state: Mutex<(bool, bool, bool)>, // (armed, arrived, released)
    cv: Condvar,
}

impl Gate {
    pub(crate) fn new(window: RaceWindow, pfn: u64) -> Arc<Gate> {
        Arc::new(Gate {
            window,
            pfn: Pfn(pfn),
            state: Mutex::new((true, false, false)),
            cv: Condvar::new(),
        })
    }

    /// Block until a thread is parked in the window.
    pub(crate) fn wait_arrived(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.1 {
            s = self.cv.wait(s).unwrap();
        }
    }

    /// Let the parked thread go on.
    pub(crate) fn release(&self) {
        self.state.lock().unwrap().2 = true;
        self.cv.notify_all();
    }

    pub(crate) fn hook(self: &Arc<Self>) -> Option<Arc<dyn RaceHook>> {
        Some(self.clone() as Arc<dyn RaceHook>)
    }
}

impl RaceHook for Gate {
    fn window(&self, window: RaceWindow, pfn: Pfn) {
        if window != self.window || pfn != self.pfn {
            return;
        }
        let mut s = self.state.lock().unwrap();
        if !s.0 {
            return;
        }
        s.0 = false;
        s.1 = true;
        self.cv.notify_all();
        while !s.2 {
            s = self.cv.wait(s).unwrap();
        }
    }
}

/// Run `free` on another thread, parked at the gate; run `meanwhile` on this thread once it is
/// parked; then release it and wait for it.
pub(crate) fn race<F: FnOnce() + Send, M: FnOnce()>(gate: &Gate, free: F, meanwhile: M) {
    std::thread::scope(|s| {
        let t = s.spawn(free);
        gate.wait_arrived();
        meanwhile();
        gate.release();
        t.join().unwrap();
    });
}
