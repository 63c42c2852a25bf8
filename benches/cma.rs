//! CMA allocation latency: `Cma::alloc(2048 pages = 8 MiB, Order(8))` and its release, the
//! operation of the seed's experiment, on a 1 GiB zone with a 256 MiB CMA area (aggressive
//! policy, `Fixes::ALL`).
//!
//! Group `cma`:
//! - `idle_8mib`: the zone holds nothing. Each iteration is one `alloc` (isolate the 4
//!   pageblocks of the range, nothing to migrate, drain, test, take the free pages, undo the
//!   isolation) and one release (2048 order-0 frees through the thread's pcp). The pages the
//!   release leaves on the pcp are drained by the next iteration's isolation, as in the
//!   kernel. Target: ≤ 1 ms.
//! - `busy_8mib`: the whole CMA area is in use by order-0 [`MovablePages`] held by the bench
//!   (65536 blocks), unmovable ballast fills the normal memory except `DEST_PAGES` free pages
//!   (room for the migration targets). Each timed iteration is one `alloc`, which must migrate
//!   every one of the 2048 blocks in its range (allocate a target page, copy 4 KiB, free the
//!   source into the isolated pageblock), and one release. Between iterations, untimed, the
//!   bench refills the range: it frees the blocks that were migrated out (they are now in
//!   normal memory), drains the pcps, and allocates movable pages until 2048 of them land in
//!   the released range again (the rest of the CMA area is still full, so every CMA page it
//!   gets is in the range; the normal pages it gets on the way are freed again). So every
//!   timed iteration sees a range that is completely in use. Target: ≤ 20 ms.
//!
//! ```text
//! cargo bench --bench cma
//! ```

// Benches are outside the loom shim rule (clippy.toml's disallowed types guard the library's
// own concurrency); nothing here needs an atomic, but keep the same header as the other bench.
#![allow(clippy::disallowed_types)]

use criterion::Criterion;
use pagealloc::{CmaPolicy, Fixes, Migratetype, MovablePages, Order, Pages, Zone, ZoneConfig};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// 8 MiB of 4 KiB pages.
const COUNT: u64 = 2048;
/// `CONFIG_CMA_ALIGNMENT` 8: 1 MiB.
const ALIGN: Order = Order(8);
/// Free normal pages left for migration targets in the busy zone (32 MiB).
const DEST_PAGES: i64 = 8192;

fn zone() -> Zone {
    Zone::new(ZoneConfig {
        size: 1 << 30,
        cma_size: 256 << 20,
        cma_policy: CmaPolicy::Aggressive,
        fixes: Fixes::ALL,
        ..ZoneConfig::default()
    })
    .expect("zone")
}

/// The busy zone's state: what the bench holds.
struct Busy<'z> {
    zone: &'z Zone,
    /// Fills the normal memory but `DEST_PAGES`.
    _ballast: Vec<Pages<'z>>,
    /// Every page of the CMA area (order 0), and after an allocation the migrated ones.
    held: Vec<MovablePages<'z>>,
    cma_start: u64,
}

impl<'z> Busy<'z> {
    fn new(zone: &'z Zone) -> Busy<'z> {
        let cma_start = zone.geometry().cma_start.0;
        // Ballast: unmovable blocks (never in the CMA area) until only about DEST_PAGES normal
        // pages are free.
        let mut ballast = Vec::new();
        let normal_free = |z: &Zone| {
            let (f, c) = z.free_counters();
            f - c
        };
        for order in (0..=10).rev() {
            let order = Order(order);
            while normal_free(zone) - order.nr_pages() as i64 >= DEST_PAGES {
                match zone.alloc_pages(order, Migratetype::Unmovable) {
                    Ok(p) => ballast.push(p),
                    Err(_) => break,
                }
            }
        }
        // Fill the rest of the zone with movable pages; keep the ones in the CMA area.
        let mut held = Vec::new();
        let mut spill = Vec::new();
        while let Ok(p) = zone.alloc_movable(Order(0)) {
            if p.pfn().0 >= cma_start {
                held.push(p);
            } else {
                spill.push(p);
            }
        }
        drop(spill);
        zone.drain_all_pages();
        let area = zone.cma().expect("CMA area").area().count();
        assert_eq!(held.len() as u64, area, "the CMA area is not full");
        Busy {
            zone,
            _ballast: ballast,
            held,
            cma_start,
        }
    }

    /// Untimed: give the migrated blocks back and fill the released range again.
    fn refill(&mut self) {
        let start = self.cma_start;
        self.held.retain(|p| p.pfn().0 >= start);
        self.zone.drain_all_pages();
        let area = self.zone.cma().expect("CMA area").area().count() as usize;
        let mut spill = Vec::new();
        while self.held.len() < area {
            let p = self
                .zone
                .alloc_movable(Order(0))
                .expect("refilling the CMA range");
            if p.pfn().0 >= start {
                self.held.push(p);
            } else {
                spill.push(p);
            }
        }
        drop(spill);
        self.zone.drain_all_pages();
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("cma");

    let idle = zone();
    let cma = idle.cma().expect("CMA area");
    g.bench_function("idle_8mib", |b| {
        b.iter(|| {
            let a = cma.alloc(COUNT, ALIGN).expect("idle CMA allocation");
            drop(black_box(a));
        })
    });

    let busy_zone = zone();
    let mut busy = Busy::new(&busy_zone);
    let cma = busy_zone.cma().expect("CMA area");
    g.bench_function("busy_8mib", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                busy.refill();
                let t = Instant::now();
                let a = cma.alloc(COUNT, ALIGN).expect("busy CMA allocation");
                drop(black_box(a));
                timed += t.elapsed();
            }
            timed
        })
    });
    g.finish();

    // Every allocation of the busy zone migrated a full range.
    let migrated: u64 = busy_zone
        .vmstat()
        .lines()
        .find_map(|l| l.strip_prefix("pgmigrate_success "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let allocs: u64 = busy_zone
        .vmstat()
        .lines()
        .find_map(|l| l.strip_prefix("cma_alloc_success "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if allocs > 0 {
        println!(
            "busy zone: {allocs} CMA allocations, {migrated} pages migrated ({:.0} per allocation)",
            migrated as f64 / allocs as f64
        );
    }
    drop(busy);
    for z in [&idle, &busy_zone] {
        z.drain_all_pages();
        let r = z.audit();
        assert!(r.is_ok(), "after the bench: {r}");
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .sample_size(20)
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
}
