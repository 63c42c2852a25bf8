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
//!
//! Group `high_order` (issue 18), each with the peer on the same loop:
//! - `{ours,peer}_order{1,2,3}_pair_{cold,warm}`: order-k pairs on a fully merged zone
//!   (cold: each pair splits a top-order block down to k and merges it back) and with one
//!   order-k block held (warm: its buddy stays free at k, no split, no merge);
//! - `{ours,peer}_order3_2threads`: one iteration is an order-3 pair on each of two pinned
//!   threads started together (compare with `..._order3_pair_cold` for the speedup: 2 × the
//!   1-thread time / this time);
//! - `{ours,peer}_cross_thread_64`: one iteration is 64 order-0 pages allocated on one thread
//!   and freed on another (divide by 64 for ns per page);
//! - `hopcp_order{1,2,3}_pair` and `hopcp_order3_2threads`: ours with high-order pcps
//!   (`ZoneConfig::allocator`), where the thread's pcp serves the pair (compare with
//!   `ours_order{k}_pair_cold`, the 3.17 pcps, for the gain, and with `hopcp_order3_pair` for
//!   the 2-thread speedup).
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

/// `iters` calls of `work` on each of `threads` pinned threads started together: the wall time
/// from the first start to the last end.
fn threaded(threads: usize, iters: u64, work: &(dyn Fn() + Sync)) -> Duration {
    let start = std::sync::Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    pin_to_cpu(t);
                    start.wait();
                    let t0 = Instant::now();
                    for _ in 0..iters {
                        work();
                    }
                    (t0, Instant::now())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let first = spans.iter().map(|s| s.0).min().unwrap();
    spans.iter().map(|s| s.1).max().unwrap() - first
}

/// `iters` batches of 64 pages: `alloc` on one thread, handed over, `free` on another.
fn cross_thread<T: Send>(
    iters: u64,
    alloc: &(dyn Fn() -> T + Sync),
    free: &(dyn Fn(T) + Sync),
) -> Duration {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<T>>(4);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            pin_to_cpu(0);
            for _ in 0..iters {
                tx.send((0..64).map(|_| alloc()).collect()).unwrap();
            }
        });
        s.spawn(move || {
            pin_to_cpu(1);
            for batch in rx {
                batch.into_iter().for_each(free);
            }
        });
    });
    t0.elapsed()
}

/// Pin the calling thread to CPU `cpu` modulo the CPUs there are, where the OS allows.
fn pin_to_cpu(cpu: usize) {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: `set` is a plain bitmask owned by this frame; CPU_ZERO/CPU_SET write inside it
    // (the index is reduced below the CPUs there are, far below CPU_SETSIZE), and
    // sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu % n, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn bench_high_order(c: &mut Criterion) {
    let mut g = c.benchmark_group("high_order");
    for k in 1..=3u32 {
        let order = Order(k);
        let count = order.nr_pages() as usize;
        // A zone and a peer of their own, fully merged (nothing on a pcp).
        let zone = new_zone(PcpMode::PerThread);
        let peer = peer(zone.geometry().nr_pages as usize);
        g.bench_function(format!("ours_order{k}_pair_cold"), |b| {
            b.iter(|| ours_pair(&zone, order))
        });
        g.bench_function(format!("peer_order{k}_pair_cold"), |b| {
            b.iter(|| peer_pair(&peer, count))
        });
        let held = zone.alloc_pages(order, Migratetype::Movable).unwrap();
        let held_peer = peer.lock().alloc(count).unwrap();
        g.bench_function(format!("ours_order{k}_pair_warm"), |b| {
            b.iter(|| ours_pair(&zone, order))
        });
        g.bench_function(format!("peer_order{k}_pair_warm"), |b| {
            b.iter(|| peer_pair(&peer, count))
        });
        drop(held);
        peer.lock().dealloc(held_peer, count);
    }
    let hopcp = Zone::new(ZoneConfig {
        size: ZONE_BYTES,
        ..ZoneConfig::allocator()
    })
    .expect("zone");
    for k in 1..=3u32 {
        g.bench_function(format!("hopcp_order{k}_pair"), |b| {
            b.iter(|| ours_pair(&hopcp, Order(k)))
        });
    }
    g.bench_function("hopcp_order3_2threads", |b| {
        b.iter_custom(|iters| threaded(2, iters, &|| ours_pair(&hopcp, Order(3))))
    });
    hopcp.drain_all_pages();
    let r = hopcp.audit();
    assert!(
        r.is_ok() && r.true_free_pages == r.managed_pages,
        "after the high-order pcp benches: {r}"
    );
    let zone = new_zone(PcpMode::PerThread);
    let peer = peer(zone.geometry().nr_pages as usize);
    g.bench_function("ours_order3_2threads", |b| {
        b.iter_custom(|iters| threaded(2, iters, &|| ours_pair(&zone, Order(3))))
    });
    g.bench_function("peer_order3_2threads", |b| {
        b.iter_custom(|iters| threaded(2, iters, &|| peer_pair(&peer, 8)))
    });
    g.bench_function("ours_cross_thread_64", |b| {
        b.iter_custom(|iters| {
            cross_thread(
                iters,
                &|| zone.alloc_pages(Order(0), Migratetype::Movable).unwrap(),
                &drop,
            )
        })
    });
    g.bench_function("peer_cross_thread_64", |b| {
        b.iter_custom(|iters| {
            cross_thread(iters, &|| peer.lock().alloc(1).unwrap(), &|f| {
                peer.lock().dealloc(f, 1)
            })
        })
    });
    g.finish();
    zone.drain_all_pages();
    let r = zone.audit();
    assert!(
        r.is_ok() && r.true_free_pages == r.managed_pages,
        "after the high-order benches: {r}"
    );
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
    bench_high_order(&mut c);
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
