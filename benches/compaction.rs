//! Direct compaction latency: an order-9 (2 MiB) `GFP_HIGHUSER_MOVABLE` request on a
//! fragmented 1 GiB zone, served because direct compaction (asynchronous, 3.17's first pass)
//! migrates movable pages out of the way.
//!
//! Group `compaction`:
//! - `order9_fragmented_1gib`: the zone (262144 pages, `Fixes::ALL`) has every page taken as
//!   an order-0 [`OwnedMovablePages`] whose page is written (so the whole arena is resident),
//!   then every odd page freed: 131072 free pages, none in a block above order 0. Each timed
//!   iteration is one `alloc_pages_gfp(Order(9), GFP_HIGHUSER_MOVABLE)`: the fast path and
//!   the min-watermark retry fail, compaction runs (the migrate scanner from the bottom, the
//!   free scanner from the top, migrating batches of 32 pages until an order-9 block is free
//!   on the Movable list), the pcp is drained and the block allocated. A compaction changes
//!   the zone, so every iteration gets a fresh fragmented zone, built untimed (about a second
//!   each): the bench runs one iteration per sample, 10 samples, and takes well under a
//!   minute. It prints the mean and the pages migrated per request.
//!
//! ```text
//! cargo bench --bench compaction
//! ```

// Benches are outside the loom shim rule (clippy.toml's disallowed types guard the library's
// own concurrency).
#![allow(clippy::disallowed_types)]

use criterion::{Criterion, SamplingMode};
use pagealloc::{Fixes, Gfp, Order, OwnedMovablePages, Zone, ZoneConfig};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fresh 1 GiB zone with every other page held by a movable handle.
fn fragmented() -> (Arc<Zone>, Vec<OwnedMovablePages>) {
    let zone = Arc::new(
        Zone::new(ZoneConfig {
            size: 1 << 30,
            fixes: Fixes::ALL,
            ..ZoneConfig::default()
        })
        .expect("zone"),
    );
    let mut held = Vec::with_capacity(zone.geometry().nr_pages as usize);
    while let Ok(mut p) = zone.alloc_movable_owned(Order(0)) {
        let tag = held.len() as u64;
        p.pin().as_mut_slice()[..8].copy_from_slice(&tag.to_le_bytes());
        held.push(p);
    }
    held.retain(|p| p.pfn().0 % 2 == 0);
    zone.drain_all_pages();
    (zone, held)
}

/// A `/proc/vmstat` counter.
fn vmstat(z: &Zone, name: &str) -> u64 {
    z.vmstat()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("compaction");
    g.sampling_mode(SamplingMode::Flat);
    let mut times = Vec::new();
    let mut migrated = Vec::new();
    g.bench_function("order9_fragmented_1gib", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let (zone, held) = fragmented();
                let t = Instant::now();
                let block = zone
                    .alloc_pages_gfp(Order(9), Gfp::GFP_HIGHUSER_MOVABLE)
                    .expect("direct compaction serves the order-9 request");
                let dt = t.elapsed();
                black_box(&block);
                assert_eq!(vmstat(&zone, "compact_success"), 1);
                times.push(dt);
                migrated.push(vmstat(&zone, "pgmigrate_success"));
                timed += dt;
                drop(block);
                drop(held);
                zone.drain_all_pages();
                let r = zone.audit();
                assert!(r.is_ok(), "after the compaction: {r}");
            }
            timed
        })
    });
    g.finish();
    if !times.is_empty() {
        let n = times.len() as u32;
        let mean = times.iter().sum::<Duration>() / n;
        let (min, max) = (times.iter().min().unwrap(), times.iter().max().unwrap());
        let pages = migrated.iter().sum::<u64>() as f64 / f64::from(n);
        println!(
            "order-9 request on a fragmented 1 GiB zone, served by direct compaction: mean \
             {:.2} ms (min {:.2}, max {:.2}) over {n} fresh zones, {pages:.0} pages migrated \
             per request ({:.1} us per page)",
            mean.as_secs_f64() * 1e3,
            min.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            mean.as_secs_f64() * 1e6 / pages.max(1.0),
        );
    }
}

fn main() {
    // One iteration per sample (each needs a freshly fragmented zone): a warm-up of one
    // iteration, a measurement time far below one iteration, 10 samples.
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1))
        .sample_size(10)
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
}
