//! Real-thread tests: many threads allocating and freeing with pattern-checked pages, frees on
//! another thread than the allocation, thread exit with pages cached in its pcp, and the exact
//! pcp refill / high-watermark counts of 3.17.
//!
//! Synchronisation between threads is by channels, barriers and joins only (no sleeps). A
//! scoped thread is always joined explicitly before the zone is inspected: `join()` waits for
//! the thread's thread-local destructors (where its pcp is drained), the implicit join at the
//! end of `std::thread::scope` does not.

use pagealloc::{
    AllocError, AuditReport, Fixes, Migratetype, Order, PAGE_SIZE, Pages, PcpConfig, Zone,
    ZoneConfig,
};
use std::sync::{Barrier, mpsc};

// The examples' PRNG (xorshift64* seeded through splitmix64).
#[path = "../examples/common/mod.rs"]
mod shared;
use shared::{Rng, splitmix64};

// ---- helpers ----

const HEADER: usize = 16;

fn pattern_byte(pfn: u64, tag: u64) -> u8 {
    (splitmix64(pfn ^ tag.rotate_left(17)) >> 56) as u8
}

/// Fill every page: its pfn and the tag in the first 16 bytes, then a byte derived from both.
/// (memset/memcmp-based so the debug build stays fast.)
fn fill(p: &mut Pages<'_>, tag: u64) {
    let pfn0 = p.pfn().0;
    for (i, page) in p.as_mut_slice().chunks_exact_mut(PAGE_SIZE).enumerate() {
        let pfn = pfn0 + i as u64;
        page.fill(pattern_byte(pfn, tag));
        page[..8].copy_from_slice(&pfn.to_le_bytes());
        page[8..HEADER].copy_from_slice(&tag.to_le_bytes());
    }
}

/// Pages of the block whose contents are not what `fill(_, tag)` wrote.
fn bad_pages(p: &Pages<'_>, tag: u64, scratch: &mut [u8]) -> u64 {
    let pfn0 = p.pfn().0;
    let mut bad = 0;
    for (i, page) in p.as_slice().chunks_exact(PAGE_SIZE).enumerate() {
        let pfn = pfn0 + i as u64;
        scratch.fill(pattern_byte(pfn, tag));
        let ok = page[..8] == pfn.to_le_bytes()
            && page[8..HEADER] == tag.to_le_bytes()
            && page[HEADER..] == scratch[HEADER..];
        if !ok {
            bad += 1;
        }
    }
    bad
}

/// The end state every test must reach: a clean audit with every page free.
#[track_caller]
fn assert_all_free(zone: &Zone, what: &str) -> AuditReport {
    let r = zone.audit();
    assert!(r.is_ok(), "{what}: audit not clean: {r}");
    assert!(r.conservation_ok(), "{what}: conservation broken: {r}");
    assert_eq!((r.drift_free, r.drift_cma), (0, 0), "{what}: drift: {r}");
    assert_eq!(r.pcp_pages, 0, "{what}: pages left in pcps: {r}");
    assert_eq!(r.allocated_pages, 0, "{what}: pages left allocated: {r}");
    assert_eq!(
        r.true_free_pages, r.managed_pages,
        "{what}: not every page is free: {r}"
    );
    assert_eq!(
        zone.free_counters().0,
        r.managed_pages as i64,
        "{what}: NR_FREE_PAGES"
    );
    r
}

#[track_caller]
fn assert_clean(zone: &Zone, what: &str) -> AuditReport {
    let r = zone.audit();
    assert!(r.is_ok(), "{what}: audit not clean: {r}");
    assert!(r.conservation_ok(), "{what}: conservation broken: {r}");
    r
}

/// A zone of `pages` pages with the tiny geometry (max_order 3, 2-page pageblocks) and the
/// given pcp sizes.
fn tiny_zone(pages: usize, high: u32, batch: u32) -> Zone {
    Zone::new(ZoneConfig {
        pcp: Some(PcpConfig { high, batch }),
        ..ZoneConfig::tiny(pages)
    })
    .unwrap()
}

// ---- many threads ----

struct Block<'z> {
    pages: Pages<'z>,
    tag: u64,
}

#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    allocs: u64,
    frees: u64,
    cross_frees: u64,
    alloc_failures: u64,
    verify_errors: u64,
    audits: u64,
}

const ORDERS: [u32; 8] = [0, 0, 0, 1, 1, 2, 3, 4];
const TYPES: [Migratetype; 3] = [
    Migratetype::Unmovable,
    Migratetype::Reclaimable,
    Migratetype::Movable,
];

/// One worker: `quota` alloc/free operations on a working set that swings between `cap/8` and
/// `cap` pages; a quarter of the frees are handed to the next thread through `tx`; every
/// `audit_every` operations a `drain_all_pages()` + `audit()` while the others keep running.
#[allow(clippy::too_many_arguments)]
fn worker<'z>(
    zone: &'z Zone,
    id: u64,
    quota: u64,
    cap: u64,
    audit_every: u64,
    tx: mpsc::Sender<Block<'z>>,
    rx: mpsc::Receiver<Block<'z>>,
) -> Stats {
    let mut rng = Rng::new(0x7e57 ^ id);
    let mut st = Stats::default();
    let mut scratch = vec![0u8; PAGE_SIZE];
    let mut live: Vec<Block<'z>> = Vec::new();
    let mut live_pages = 0u64;
    let mut growing = true;
    let mut next_audit = audit_every;
    let mut free = |b: Block<'z>, st: &mut Stats| {
        st.verify_errors += bad_pages(&b.pages, b.tag, &mut scratch);
        drop(b.pages);
        st.frees += 1;
    };
    let take = |live: &mut Vec<Block<'z>>, live_pages: &mut u64, rng: &mut Rng| {
        let b = live.swap_remove(rng.below(live.len() as u64) as usize);
        *live_pages -= b.pages.order().nr_pages();
        b
    };
    while st.allocs + st.frees < quota {
        while let Ok(b) = rx.try_recv() {
            free(b, &mut st);
            st.cross_frees += 1;
        }
        if st.allocs + st.frees >= next_audit {
            next_audit += audit_every;
            zone.drain_all_pages();
            let r = zone.audit();
            assert!(
                r.is_ok() && r.conservation_ok(),
                "thread {id}: audit while running: {r}"
            );
            st.audits += 1;
        }
        let p_alloc = if growing { 70 } else { 30 };
        if live.is_empty() || rng.below(100) < p_alloc {
            let order = Order(ORDERS[rng.below(8) as usize]);
            let mt = TYPES[rng.below(3) as usize];
            match zone.alloc_pages(order, mt) {
                Ok(mut pages) => {
                    let tag = splitmix64((id << 48) ^ st.allocs);
                    fill(&mut pages, tag);
                    live_pages += order.nr_pages();
                    live.push(Block { pages, tag });
                    st.allocs += 1;
                    if live_pages >= cap {
                        growing = false;
                    }
                }
                Err(AllocError::NoMemory { .. }) => {
                    st.alloc_failures += 1;
                    growing = false;
                    if live.is_empty() {
                        // Nothing to give back: let the threads holding the memory run.
                        #[allow(clippy::disallowed_methods)] // the library shim is private
                        std::thread::yield_now();
                    }
                    for _ in 0..8.min(live.len()) {
                        let b = take(&mut live, &mut live_pages, &mut rng);
                        free(b, &mut st);
                    }
                }
                Err(e) => panic!("thread {id}: unexpected allocation error {e}"),
            }
        } else {
            let b = take(&mut live, &mut live_pages, &mut rng);
            if rng.below(4) == 0 {
                tx.send(b)
                    .expect("the next thread keeps its inbox until we drop tx");
            } else {
                free(b, &mut st);
            }
            if live_pages <= cap / 8 {
                growing = true;
            }
        }
    }
    // Stop sending, free our set, then free what the previous thread still sends until it
    // drops its sender.
    drop(tx);
    while let Some(b) = live.pop() {
        free(b, &mut st);
    }
    while let Ok(b) = rx.recv() {
        free(b, &mut st);
        st.cross_frees += 1;
    }
    st
}

fn many_threads(fixes: Fixes, pcp: Option<PcpConfig>) {
    const THREADS: usize = 4;
    let total_ops: u64 = if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    let zone = Zone::new(ZoneConfig {
        size: 32 << 20,
        fixes,
        pcp,
        ..ZoneConfig::default()
    })
    .unwrap();
    let nr_pages = zone.geometry().nr_pages;
    // Caps adding up to 110% of the zone: some NoMemory when all threads grow at once.
    let cap = nr_pages * 11 / 10 / THREADS as u64;
    let quota = total_ops / THREADS as u64;
    let stats: Vec<Stats> = std::thread::scope(|s| {
        let (mut txs, rxs): (Vec<_>, Vec<_>) =
            (0..THREADS).map(|_| mpsc::channel::<Block<'_>>()).unzip();
        txs.rotate_left(1); // thread i sends to thread i+1
        let handles: Vec<_> = txs
            .into_iter()
            .zip(rxs)
            .enumerate()
            .map(|(i, (tx, rx))| {
                let zone = &zone;
                s.spawn(move || worker(zone, i as u64, quota, cap, quota / 4, tx, rx))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    let allocs: u64 = stats.iter().map(|s| s.allocs).sum();
    let frees: u64 = stats.iter().map(|s| s.frees).sum();
    let cross: u64 = stats.iter().map(|s| s.cross_frees).sum();
    let verify: u64 = stats.iter().map(|s| s.verify_errors).sum();
    let audits: u64 = stats.iter().map(|s| s.audits).sum();
    eprintln!("{fixes}: {stats:?}");
    assert_eq!(verify, 0, "pattern mismatches: {stats:?}");
    assert_eq!(allocs, frees, "{stats:?}");
    assert!(
        allocs + frees >= total_ops,
        "only {} ops: {stats:?}",
        allocs + frees
    );
    assert!(cross > 0, "no cross-thread frees: {stats:?}");
    assert!(audits >= THREADS as u64, "{stats:?}");
    zone.drain_all_pages();
    assert_all_free(&zone, "after the threads");
}

#[test]
fn many_threads_fixes_none() {
    // The default pcp for 32 MiB (3.17's zone_batchsize): high 6, batch 1.
    many_threads(Fixes::NONE, None);
}

#[test]
fn many_threads_fixes_all() {
    // The pcp of a large zone (high 186, batch 31) on a small one: more pages cached.
    many_threads(
        Fixes::ALL,
        Some(PcpConfig {
            high: 186,
            batch: 31,
        }),
    );
}

// ---- cross-thread free ----

#[test]
fn cross_thread_free() {
    let zone = Zone::new(ZoneConfig {
        size: 16 << 20,
        pcp: Some(PcpConfig {
            high: 64,
            batch: 16,
        }),
        ..ZoneConfig::default()
    })
    .unwrap();
    const BLOCKS: u64 = 2000;
    // Bounded, so A cannot run the zone dry while B lags.
    let (tx, rx) = mpsc::sync_channel::<Block<'_>>(64);
    // B reports after its frees and before exiting, then waits for the go-ahead.
    let (b_done_tx, b_done_rx) = mpsc::channel::<(u64, u64)>();
    let (exit_tx, exit_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let zone = &zone;
        let a = s.spawn(move || {
            let mut rng = Rng::new(1);
            let mut pages_sent = 0;
            for i in 0..BLOCKS {
                let order = Order(ORDERS[rng.below(8) as usize]);
                let mt = TYPES[rng.below(3) as usize];
                let mut pages = zone.alloc_pages(order, mt).unwrap();
                let tag = splitmix64(i);
                fill(&mut pages, tag);
                pages_sent += order.nr_pages();
                tx.send(Block { pages, tag }).unwrap();
            }
            pages_sent
        });
        let b = s.spawn(move || {
            let mut scratch = vec![0u8; PAGE_SIZE];
            let (mut n, mut bad) = (0, 0);
            for blk in rx {
                bad += bad_pages(&blk.pages, blk.tag, &mut scratch);
                drop(blk.pages);
                n += 1;
            }
            b_done_tx.send((n, bad)).unwrap();
            exit_rx.recv().unwrap();
        });
        let (n, bad) = b_done_rx.recv().unwrap();
        assert_eq!((n, bad), (BLOCKS, 0));
        // Everything A allocated is back; the order-0 pages B freed sit in B's pcp (A's pcp may
        // still hold its refill leftovers).
        let r = assert_clean(zone, "A done, B alive");
        assert_eq!(r.allocated_pages, 0, "{r}");
        assert!(r.pcp_pages > 0, "B's order-0 frees should be cached: {r}");
        exit_tx.send(()).unwrap();
        let sent = a.join().unwrap();
        b.join().unwrap();
        assert!(sent >= BLOCKS);
    });
    // Both threads exited and drained their pcps.
    assert_all_free(&zone, "after A and B exited");
    zone.drain_all_pages();
    assert_all_free(&zone, "after drain_all_pages");
}

/// A block allocated on one thread, freed by `free_pfn` on another (the kernel-style API).
#[test]
fn cross_thread_free_pfn() {
    let zone = tiny_zone(64, 8, 4);
    let pfns: Vec<(pagealloc::Pfn, Order)> = std::thread::scope(|s| {
        s.spawn(|| {
            [0, 0, 1, 2, 0, 1]
                .into_iter()
                .map(|o| {
                    (
                        zone.alloc_pfn(Order(o), Migratetype::Movable).unwrap(),
                        Order(o),
                    )
                })
                .collect()
        })
        .join()
        .unwrap()
    });
    let r = assert_clean(&zone, "allocated");
    assert_eq!(r.allocated_pages, 1 + 1 + 2 + 4 + 1 + 2);
    std::thread::scope(|s| {
        s.spawn(|| {
            for &(pfn, order) in &pfns {
                zone.free_pfn(pfn, order).unwrap();
            }
            // A second free of the same block is refused on any thread.
            assert!(zone.free_pfn(pfns[2].0, pfns[2].1).is_err());
        })
        .join()
        .unwrap();
    });
    assert_all_free(&zone, "after the frees");
}

// ---- thread exit with a non-empty pcp ----

/// A thread that leaves `batch` pages in its pcp: one refill, then the page freed back.
fn fill_pcp_then_exit(zone: &Zone, batch: u64) {
    let total = zone.geometry().nr_pages as i64;
    std::thread::scope(|s| {
        s.spawn(|| {
            let p = zone.alloc_pages(Order(0), Migratetype::Movable).unwrap();
            drop(p);
            assert_eq!(
                zone.free_counters().0,
                total - batch as i64,
                "pages sit in the pcp"
            );
            let r = assert_clean(zone, "before exit");
            assert_eq!(r.pcp_pages, batch, "{r}");
            assert_eq!(r.allocated_pages, 0, "{r}");
        })
        .join()
        .unwrap();
    });
}

#[test]
fn thread_exit_drains_its_pcp() {
    let zone = tiny_zone(64, 32, 8);
    fill_pcp_then_exit(&zone, 8);
    // No drain_all_pages: the exiting thread drained its own pcp.
    assert_all_free(&zone, "after the thread exited");
}

#[test]
fn thread_exit_then_drain_all_pages() {
    let zone = tiny_zone(64, 32, 8);
    fill_pcp_then_exit(&zone, 8);
    zone.drain_all_pages();
    assert_all_free(&zone, "after the exit and drain_all_pages");
    // The released pcp is reused by the next thread; everything still adds up.
    fill_pcp_then_exit(&zone, 8);
    zone.drain_all_pages();
    assert_all_free(&zone, "after a second thread");
}

#[test]
fn many_threads_exit_with_cached_pages() {
    let zone = Zone::new(ZoneConfig {
        size: 16 << 20,
        pcp: Some(PcpConfig {
            high: 64,
            batch: 16,
        }),
        ..ZoneConfig::default()
    })
    .unwrap();
    const THREADS: usize = 6;
    // Every thread holds its pcp pages at the barrier, so all pcps are non-empty at once.
    let barrier = Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (zone, barrier) = (&zone, &barrier);
                s.spawn(move || {
                    let held: Vec<_> = (0..3)
                        .map(|_| zone.alloc_pages(Order(0), TYPES[i % 3]).unwrap())
                        .collect();
                    drop(held);
                    barrier.wait();
                    barrier.wait();
                })
            })
            .collect();
        barrier.wait();
        let r = assert_clean(&zone, "all threads alive");
        assert_eq!(r.pcp_pages, THREADS as u64 * 16, "{r}");
        barrier.wait();
        for h in handles {
            h.join().unwrap();
        }
    });
    assert_all_free(&zone, "after all threads exited");
}

/// `drain_all_pages` from another thread empties a live thread's pcp.
#[test]
fn drain_all_pages_reaches_a_live_thread() {
    let zone = tiny_zone(64, 32, 8);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let zone = &zone;
        let h = s.spawn(move || {
            drop(zone.alloc_pages(Order(0), Migratetype::Unmovable).unwrap());
            ready_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            // The pcp is empty again: the next order-0 allocation refills it.
            let p = zone.alloc_pages(Order(0), Migratetype::Unmovable).unwrap();
            assert_eq!(zone.audit().pcp_pages, 7);
            drop(p);
        });
        ready_rx.recv().unwrap();
        assert_eq!(zone.audit().pcp_pages, 8);
        zone.drain_all_pages();
        assert_all_free(zone, "drained while the thread lives");
        go_tx.send(()).unwrap();
        h.join().unwrap();
    });
    assert_all_free(&zone, "after exit");
}

/// The zone goes away before a thread with pages cached for it exits.
#[test]
fn zone_dropped_before_thread_exit() {
    std::thread::scope(|s| {
        s.spawn(|| {
            let zone = tiny_zone(64, 32, 8);
            drop(zone.alloc_pages(Order(0), Migratetype::Movable).unwrap());
            assert_eq!(zone.audit().pcp_pages, 8);
            drop(zone);
            // A new zone used by the same thread afterwards works normally.
            let zone = tiny_zone(64, 32, 8);
            drop(zone.alloc_pages(Order(0), Migratetype::Movable).unwrap());
            zone.drain_local_pages();
            assert_all_free(&zone, "second zone");
        })
        .join()
        .unwrap();
    });
}

// ---- exact pcp counts (3.17 free_hot_cold_page / buffered_rmqueue) ----

#[test]
fn pcp_high_watermark_frees_a_batch() {
    let zone = tiny_zone(64, 8, 4);
    std::thread::scope(|s| {
        s.spawn(|| {
            let pages: Vec<_> = (0..8)
                .map(|_| zone.alloc_pages(Order(0), Migratetype::Movable).unwrap())
                .collect();
            // Two refills of 4, all handed out.
            let r = assert_clean(&zone, "8 allocated");
            assert_eq!((r.pcp_pages, r.allocated_pages), (0, 8), "{r}");
            assert_eq!(zone.free_counters().0, 64 - 8);
            for (i, p) in pages.into_iter().enumerate() {
                drop(p);
                let freed = i as u64 + 1;
                let r = assert_clean(&zone, "freeing");
                // count >= high (8) frees a batch (4) to the buddy lists.
                let want = if freed < 8 { freed } else { 8 - 4 };
                assert_eq!(r.pcp_pages, want, "after {freed} frees: {r}");
                assert_eq!(zone.free_counters().0, 64 - 8 + (freed - want) as i64);
            }
        })
        .join()
        .unwrap();
    });
    assert_all_free(&zone, "after exit");
}

#[test]
fn pcp_refill_takes_a_batch() {
    let zone = tiny_zone(64, 8, 4);
    std::thread::scope(|s| {
        s.spawn(|| {
            let before = zone.free_counters().0;
            let p = zone.alloc_pages(Order(0), Migratetype::Movable).unwrap();
            assert_eq!(
                zone.free_counters().0,
                before - 4,
                "rmqueue_bulk takes batch pages"
            );
            let r = assert_clean(&zone, "after the first allocation");
            assert_eq!((r.pcp_pages, r.allocated_pages), (3, 1), "{r}");
            // The next three come from the pcp without touching the buddy lists.
            let more: Vec<_> = (0..3)
                .map(|_| zone.alloc_pages(Order(0), Migratetype::Movable).unwrap())
                .collect();
            assert_eq!(zone.free_counters().0, before - 4);
            assert_eq!(zone.audit().pcp_pages, 0);
            // The fifth refills again.
            let fifth = zone.alloc_pages(Order(0), Migratetype::Movable).unwrap();
            assert_eq!(zone.free_counters().0, before - 8);
            assert_eq!(zone.audit().pcp_pages, 3);
            drop((p, more, fifth));
        })
        .join()
        .unwrap();
    });
    assert_all_free(&zone, "after exit");
}

/// The same on the 3.17 x86-64 default geometry: a 512 MiB zone gets batch 31, high 186.
#[test]
fn pcp_refill_default_geometry() {
    let zone = Zone::new(ZoneConfig {
        size: 512 << 20,
        ..ZoneConfig::default()
    })
    .unwrap();
    let g = *zone.geometry();
    assert_eq!((g.pcp_batch, g.pcp_high), (31, 186));
    std::thread::scope(|s| {
        s.spawn(|| {
            let p = zone.alloc_pages(Order(0), Migratetype::Movable).unwrap();
            assert_eq!(zone.free_counters().0, g.nr_pages as i64 - 31);
            let r = assert_clean(&zone, "refilled");
            assert_eq!((r.pcp_pages, r.allocated_pages), (30, 1), "{r}");
            drop(p);
            assert_eq!(zone.audit().pcp_pages, 31);
        })
        .join()
        .unwrap();
    });
    assert_all_free(&zone, "after exit");
}

// ---- pages freed from thread-local destructors ----

/// Blocks held in a thread-local: dropped by the thread's TLS destructors, before or after
/// the library's own pcp destructor depending on which thread-local was touched first.
struct Held {
    zone: &'static Zone,
    blocks: Vec<Pages<'static>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Free what we hold, then allocate and free once more during thread teardown.
        self.blocks.clear();
        let p = self
            .zone
            .alloc_pages(Order(0), Migratetype::Movable)
            .unwrap();
        drop(p);
        let p = self
            .zone
            .alloc_pages(Order(1), Migratetype::Movable)
            .unwrap();
        drop(p);
    }
}

thread_local! {
    static HELD: std::cell::RefCell<Option<Held>> = const { std::cell::RefCell::new(None) };
}

fn tls_teardown(held_first: bool) {
    // Leaked so that thread-locals can hold `Pages<'static>` (a small heap zone).
    let zone: &'static Zone = Box::leak(Box::new(tiny_zone(64, 32, 8)));
    std::thread::scope(|s| {
        s.spawn(move || {
            if held_first {
                // Register HELD's destructor before the library's pcp destructor.
                HELD.with(|h| h.borrow_mut().take());
            }
            let blocks = [0, 0, 1, 0, 2]
                .into_iter()
                .map(|o| zone.alloc_pages(Order(o), Migratetype::Movable).unwrap())
                .collect();
            HELD.with(|h| *h.borrow_mut() = Some(Held { zone, blocks }));
            let r = assert_clean(zone, "held");
            assert_eq!(r.allocated_pages, 1 + 1 + 2 + 1 + 4, "{r}");
        })
        .join()
        .unwrap();
    });
    // No drain_all_pages: whichever destructor ran last, nothing may be left behind.
    assert_all_free(zone, "after the thread-local destructors");
}

#[test]
fn pages_freed_by_tls_destructor_registered_first() {
    tls_teardown(true);
}

#[test]
fn pages_freed_by_tls_destructor_registered_last() {
    tls_teardown(false);
}
