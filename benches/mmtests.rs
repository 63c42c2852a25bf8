//! The kernel's page-allocator microbenchmarks, in their own terms, side by side with the peer
//! (`buddy_system_allocator::FrameAllocator` behind a `parking_lot::Mutex`, managing the same
//! frames with the same largest block) in the same run.
//!
//! | group | what | kernel counterpart |
//! | --- | --- | --- |
//! | `pagealloc` | `alloc-odrN-B` / `free-odrN-B` for orders 0–4 and batches 1, 16, 128: allocate `B` blocks of order `N` one call at a time, then free them; **the reported time is ns per page** (each timed half divided by the `B * 2^N` pages it handled), `ours` and `peer` | mmtests `pagealloc` (`pagealloc-micro.stp`), which reports cycles per page |
//! | `page_bench01` | order-0 alloc + free round trip, one thread (`ours`, `peer`) | Jesper Brouer's `page_bench01` |
//! | `page_bench03` | the same round trip on 1 and 2 threads at once (start barrier, each thread pinned to its own CPU where `sched_setaffinity` allows): `own` frees its own page; `cross` allocates a batch of 64, swaps it with the other thread and frees the other thread's pages (`page_bench05`'s cross-CPU free). **Time per round trip per thread** (the slowest thread's time / its round trips); `ours` and `peer` | `page_bench03` / `page_bench05` |
//! | `fixes` | a mixed workload (order-0 batches that overflow the pcp, order-3 blocks through `free_one_page`) under each `Fixes` preset, with no isolation and with one top-order block isolated at the end of the zone, so the rechecks run (two pageblocks: the smallest range `alloc_contig_range` isolates; a lone pageblock would leave a free top-order block straddling it, which 3.17 misplaces — race R3c — and the presets would not run the same workload) | the 2014 claim "re-fetch only if there is an isolated pageblock, so the common case pays nothing" |
//!
//! A userspace allocator pays no page zeroing, `struct page` cache misses or `irqsave`; keep
//! that in mind next to the kernel's cycles.
//!
//! ```text
//! cargo bench --bench mmtests                    # everything (about 6 minutes)
//! cargo bench --bench mmtests -- pagealloc/ours  # a filter
//! ```

// Benches are outside the loom shim rule (clippy.toml's disallowed types guard the library's
// own concurrency): the peer sits behind a plain parking_lot::Mutex, threads meet at a std
// barrier (start) and a spinning one (the `cross` exchanges).
#![allow(clippy::disallowed_types)]

#[path = "../examples/common/mod.rs"]
mod common;

use buddy_system_allocator::FrameAllocator;
use criterion::{BenchmarkId, Criterion};
use pagealloc::{Fixes, Migratetype, Order, Pages, Pfn, Zone, ZoneConfig};
use parking_lot::Mutex;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `MAX_ORDER` 11 as in the zone: the peer's `ORDER` is its `MAX_ORDER + 1`.
type Peer = Mutex<FrameAllocator<11>>;

const ZONE_BYTES: usize = 1 << 30;
const ORDERS: [u32; 5] = [0, 1, 2, 3, 4];
const BATCHES: [usize; 3] = [1, 16, 128];
/// Pages each thread of a `cross` run hands to the other per exchange.
const CROSS_BATCH: usize = 64;

fn zone(fixes: Fixes) -> Zone {
    Zone::new(ZoneConfig {
        size: ZONE_BYTES,
        fixes,
        ..ZoneConfig::default()
    })
    .expect("zone")
}

fn peer() -> Peer {
    let mut f = FrameAllocator::<11>::new();
    f.add_frame(0, ZONE_BYTES / pagealloc::PAGE_SIZE);
    Mutex::new(f)
}

/// An allocator under test, by the operations the benchmarks need.
trait Allocator: Sync {
    type Block: Send;
    fn alloc(&self, order: u32) -> Self::Block;
    fn free(&self, block: Self::Block, order: u32);
}

impl<'z> Allocator for &'z Zone {
    type Block = Pages<'z>;
    #[inline(always)]
    fn alloc(&self, order: u32) -> Pages<'z> {
        self.alloc_pages(Order(order), Migratetype::Movable)
            .unwrap()
    }
    #[inline(always)]
    fn free(&self, block: Pages<'z>, _order: u32) {
        drop(block);
    }
}

impl Allocator for Peer {
    type Block = usize;
    #[inline(always)]
    fn alloc(&self, order: u32) -> usize {
        self.lock().alloc(1 << order).unwrap()
    }
    #[inline(always)]
    fn free(&self, block: usize, order: u32) {
        self.lock().dealloc(block, 1 << order);
    }
}

/// mmtests `pagealloc`: `iters` rounds of `batch` allocations then `batch` frees; returns the
/// time of the half asked for, divided by the pages per round (so criterion's "time per
/// iteration" is ns per page).
fn mmtests_round<A: Allocator>(
    a: &A,
    order: u32,
    batch: usize,
    iters: u64,
    alloc: bool,
) -> Duration {
    let mut held = Vec::with_capacity(batch);
    let mut spent = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        for _ in 0..batch {
            held.push(a.alloc(order));
        }
        let t_alloc = t.elapsed();
        black_box(&held);
        let t = Instant::now();
        for b in held.drain(..) {
            a.free(b, order);
        }
        let t_free = t.elapsed();
        spent += if alloc { t_alloc } else { t_free };
    }
    spent / (batch << order) as u32
}

fn pagealloc(c: &mut Criterion, z: &Zone, p: &Peer) {
    let mut g = c.benchmark_group("pagealloc");
    for order in ORDERS {
        for batch in BATCHES {
            for (half, alloc) in [("alloc", true), ("free", false)] {
                let name = format!("{half}-odr{order}-{batch}");
                g.bench_function(BenchmarkId::new("ours", &name), |b| {
                    b.iter_custom(|iters| mmtests_round(&z, order, batch, iters, alloc))
                });
                g.bench_function(BenchmarkId::new("peer", &name), |b| {
                    b.iter_custom(|iters| mmtests_round(p, order, batch, iters, alloc))
                });
            }
        }
    }
    g.finish();
}

fn page_bench01(c: &mut Criterion, z: &Zone, p: &Peer) {
    let mut g = c.benchmark_group("page_bench01");
    g.bench_function("ours", |b| {
        b.iter(|| {
            let pg = (&z).alloc(0);
            (&z).free(black_box(pg), 0);
        })
    });
    g.bench_function("peer", |b| {
        b.iter(|| {
            let f = p.alloc(0);
            p.free(black_box(f), 0);
        })
    });
    g.finish();
}

/// A barrier for the `cross` exchanges that spins instead of sleeping: `std::sync::Barrier`
/// parks the first thread on a futex, and its wake-up (microseconds) would be most of the time
/// per exchange. The threads are pinned to different CPUs, so the spinning costs only the
/// cache-line hand-over; it yields now and then in case they share one.
struct SpinBarrier {
    n: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn new(n: usize) -> SpinBarrier {
        SpinBarrier {
            n,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    fn wait(&self) {
        let g = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == g {
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 {
                #[allow(clippy::disallowed_methods)] // the library shim is private
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// page_bench03: `threads` threads released by one barrier, each doing `iters` order-0
/// round trips (`own`) or `iters / CROSS_BATCH` exchanges of `CROSS_BATCH` pages with its
/// neighbour (`cross`); the slowest thread's time.
fn parallel<A: Allocator>(a: &A, threads: usize, cross: bool, iters: u64) -> Duration {
    let start = Barrier::new(threads);
    let swap = SpinBarrier::new(threads);
    let slots: Vec<Mutex<Vec<A::Block>>> = (0..threads).map(|_| Mutex::new(Vec::new())).collect();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (start, swap, slots) = (&start, &swap, &slots);
                s.spawn(move || {
                    common::pin_to_cpu(t);
                    start.wait();
                    let t0 = Instant::now();
                    if cross {
                        let rounds = iters.div_ceil(CROSS_BATCH as u64);
                        for _ in 0..rounds {
                            let mine: Vec<_> = (0..CROSS_BATCH).map(|_| a.alloc(0)).collect();
                            *slots[t].lock() = mine;
                            swap.wait();
                            let theirs = std::mem::take(&mut *slots[(t + 1) % threads].lock());
                            swap.wait();
                            for b in theirs {
                                a.free(b, 0);
                            }
                        }
                    } else {
                        for _ in 0..iters {
                            let b = a.alloc(0);
                            a.free(black_box(b), 0);
                        }
                    }
                    let spent = t0.elapsed();
                    if cross {
                        // Scale to `iters` round trips (the last exchange may overshoot).
                        let done = iters.div_ceil(CROSS_BATCH as u64) * CROSS_BATCH as u64;
                        spent.mul_f64(iters as f64 / done as f64)
                    } else {
                        spent
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).max().unwrap()
    })
}

fn page_bench03(c: &mut Criterion, z: &Zone, p: &Peer) {
    let mut g = c.benchmark_group("page_bench03");
    for threads in [1, 2] {
        for (mode, cross) in [("own", false), ("cross", true)] {
            if cross && threads == 1 {
                continue;
            }
            let name = format!("{mode}-{threads}t");
            g.bench_function(BenchmarkId::new("ours", &name), |b| {
                b.iter_custom(|iters| parallel(&z, threads, cross, iters))
            });
            g.bench_function(BenchmarkId::new("peer", &name), |b| {
                b.iter_custom(|iters| parallel(p, threads, cross, iters))
            });
        }
    }
    g.finish();
}

/// A mixed workload per iteration: one block, order 3 every eighth call (`free_one_page`),
/// else order 0, held in batches of 256 (past pcp `high`, so the pcp bulk-frees): every free
/// path the fixes touch.
fn fixes(c: &mut Criterion) {
    let mut g = c.benchmark_group("fixes");
    for isolated in [false, true] {
        for name in ["none", "seed", "v3.18", "v4.6", "all"] {
            let z = zone(name.parse::<Fixes>().expect("preset"));
            if isolated {
                let top = z.geometry().max_order_nr_pages();
                let last = Pfn(z.geometry().nr_pages - top);
                z.start_isolate_page_range(last, last.add(top), Migratetype::Movable)
                    .expect("isolate the last block");
            }
            let what = if isolated {
                "one_block_isolated"
            } else {
                "no_isolation"
            };
            g.bench_function(BenchmarkId::new(what, name), |b| {
                let mut held = Vec::with_capacity(256);
                let mut i = 0u64;
                b.iter(|| {
                    let order = if i % 8 == 0 { 3 } else { 0 };
                    held.push(z.alloc_pages(Order(order), Migratetype::Movable).unwrap());
                    if held.len() == 256 {
                        held.clear();
                    }
                    i += 1;
                });
            });
            z.drain_all_pages();
            let r = z.audit();
            assert!(r.is_ok(), "fixes {name}: {r}");
        }
    }
    g.finish();
}

fn main() {
    let z = zone(Fixes::ALL);
    let p = peer();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();
    pagealloc(&mut c, &z, &p);
    page_bench01(&mut c, &z, &p);
    page_bench03(&mut c, &z, &p);
    fixes(&mut c);
    c.final_summary();
    z.drain_all_pages();
    let r = z.audit();
    assert!(
        r.is_ok() && r.true_free_pages == r.managed_pages,
        "after the bench: {r}"
    );
}
