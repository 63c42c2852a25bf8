//! Allocation + free pairs, one thread, against a peer buddy allocator.
//!
//! Group `alloc_free`:
//! - `pcp_order0_pair`: `alloc_pages(Order(0), Movable)` + drop, served by the thread's pcp
//!   (a refill / batch free under the zone lock every `batch` pairs at most);
//! - `zone_order3_pair`: the same with `Order(3)`, every call under the zone lock;
//! - `percpu_order0_pair`: `pcp_order0_pair` on a zone in `PcpMode::PerCpu(2)` (the CPU's pcp
//!   under its lock, the CPU from `sched_getcpu`);
//! - `peer_order0_pair` / `peer_order3_pair`: `buddy_system_allocator::FrameAllocator`
//!   (`alloc(1)` / `dealloc(_, 1)`, `alloc(8)` / `dealloc(_, 8)`) behind a `parking_lot::Mutex`,
//!   managing the same number of frames with the same largest block (2^10 frames).
//!
//! After criterion, a ratio table (peer ns / ours ns) from plain timed loops: the median of 5
//! rounds of `ROUND` pairs each.
//!
//! ```text
//! cargo bench --bench alloc_free
//! ```

// Benches are outside the loom shim rule (clippy.toml's disallowed types guard the library's
// own concurrency): the peer allocator sits behind a plain parking_lot::Mutex.
#![allow(clippy::disallowed_types)]

use buddy_system_allocator::FrameAllocator;
use criterion::Criterion;
use pagealloc::{Fixes, Migratetype, Order, PcpMode, Zone, ZoneConfig};
use parking_lot::Mutex;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// `MAX_ORDER` 11 as in the zone: the peer's `ORDER` is its `MAX_ORDER + 1`.
type Peer = Mutex<FrameAllocator<11>>;

const ZONE_BYTES: usize = 1 << 30;
const ROUND: u32 = 1_000_000;

fn new_zone(pcp_mode: PcpMode) -> Zone {
    Zone::new(ZoneConfig {
        size: ZONE_BYTES,
        fixes: Fixes::ALL,
        pcp_mode,
        ..ZoneConfig::default()
    })
    .expect("zone")
}

fn peer(frames: usize) -> Peer {
    let mut f = FrameAllocator::<11>::new();
    f.add_frame(0, frames);
    Mutex::new(f)
}

#[inline(always)]
fn ours_pair(zone: &Zone, order: Order) {
    let p = zone.alloc_pages(order, Migratetype::Movable).unwrap();
    black_box(&p);
    drop(p);
}

#[inline(always)]
fn peer_pair(peer: &Peer, count: usize) {
    let f = peer.lock().alloc(count).unwrap();
    black_box(f);
    peer.lock().dealloc(f, count);
}

fn bench(c: &mut Criterion, zone: &Zone, percpu: &Zone, peer: &Peer) {
    let mut g = c.benchmark_group("alloc_free");
    g.bench_function("pcp_order0_pair", |b| b.iter(|| ours_pair(zone, Order(0))));
    g.bench_function("percpu_order0_pair", |b| {
        b.iter(|| ours_pair(percpu, Order(0)))
    });
    g.bench_function("zone_order3_pair", |b| b.iter(|| ours_pair(zone, Order(3))));
    g.bench_function("peer_order0_pair", |b| b.iter(|| peer_pair(peer, 1)));
    g.bench_function("peer_order3_pair", |b| b.iter(|| peer_pair(peer, 8)));
    g.finish();
}

/// Median over 5 rounds of the ns per call of `f`.
fn median_ns(mut f: impl FnMut()) -> f64 {
    for _ in 0..ROUND / 10 {
        f();
    }
    let mut v: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..ROUND {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(ROUND)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[2]
}

fn main() {
    let zone = new_zone(PcpMode::PerThread);
    let percpu = new_zone(PcpMode::PerCpu(2));
    let peer = peer(zone.geometry().nr_pages as usize);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(1000))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    bench(&mut c, &zone, &percpu, &peer);
    c.final_summary();

    // `cargo bench -- --test` / `--list` (and `cargo test --benches`): no timing table.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    println!("\nratio table (median of 5 rounds of {ROUND} pairs; ratio = peer ns / ours ns):");
    for (name, order) in [
        ("pcp_order0_pair", Order(0)),
        ("zone_order3_pair", Order(3)),
    ] {
        let ours = median_ns(|| ours_pair(&zone, order));
        let theirs = median_ns(|| peer_pair(&peer, order.nr_pages() as usize));
        println!(
            "{name}: ours {ours:.1} ns, peer {theirs:.1} ns, ratio {:.1}x",
            theirs / ours
        );
    }
    let per_thread = median_ns(|| ours_pair(&zone, Order(0)));
    let per_cpu = median_ns(|| ours_pair(&percpu, Order(0)));
    println!(
        "order-0 pair per-CPU / per-thread: {per_cpu:.1} / {per_thread:.1} ns, ratio {:.2} (target <= 2)",
        per_cpu / per_thread
    );
    for z in [&zone, &percpu] {
        z.drain_all_pages();
        let r = z.audit();
        assert!(
            r.is_ok() && r.true_free_pages == r.managed_pages,
            "after the bench: {r}"
        );
    }
}
