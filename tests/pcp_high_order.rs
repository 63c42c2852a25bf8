//! High-order pcps (`ZoneConfig::pcp_high_order`, 5.14's 44042b449872): blocks of orders 1–3
//! and `pageblock_order` stay on the pcp like order-0 pages; off (3.17) they go straight to
//! the buddy lists. The audit counts them, drains free them, and the R2-like window they add
//! (a cached block drained into a pageblock isolated meanwhile) is closed by patch 2's recheck.
mod common;
use common::*;
use pagealloc::*;
use std::sync::mpsc;

/// A 64 MiB zone with the pcp sizes of a 1 GiB one (`high` 186, `batch` 31).
fn zone(high_order: bool, fixes: Fixes) -> Zone {
    Zone::new(ZoneConfig {
        size: 64 << 20,
        pcp: Some(PcpConfig {
            high: 186,
            batch: 31,
        }),
        fixes,
        pcp_high_order: high_order,
        pcp_mode: pcp_mode(),
        ..ZoneConfig::default()
    })
    .unwrap()
}

/// An order-3 block freed with high-order pcps stays on the pcp (8 pages), comes back hot to
/// the next order-3 allocation, and is freed to the buddy lists by a drain.
#[test]
fn an_order_3_block_is_cached_and_reused() {
    let z = zone(true, Fixes::ALL);
    let a = z.alloc_pfn(Order(3), Migratetype::Movable).unwrap();
    // The refill took max(batch >> 3, 2) = 3 blocks; one was handed out.
    assert_eq!(z.audit().pcp_pages, 2 * 8);
    z.free_pfn(a, Order(3)).unwrap();
    let r = z.audit();
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.pcp_pages, 3 * 8, "{r}");
    // Hot: the block freed last is the list head.
    assert_eq!(z.alloc_pfn(Order(3), Migratetype::Movable).unwrap(), a);
    z.free_pfn(a, Order(3)).unwrap();
    z.drain_all_pages();
    let r = z.audit();
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.pcp_pages, 0);
    assert_eq!(r.true_free_pages, z.geometry().nr_pages);
}

/// Without high-order pcps (3.17), an order-3 allocation and free never touch the pcp.
#[test]
fn without_high_order_pcps_order_3_bypasses_the_pcp() {
    let z = zone(false, Fixes::NONE);
    let a = z.alloc_pfn(Order(3), Migratetype::Movable).unwrap();
    assert_eq!(z.audit().pcp_pages, 0);
    z.free_pfn(a, Order(3)).unwrap();
    let r = z.audit();
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.pcp_pages, 0);
    assert_eq!(r.true_free_pages, z.geometry().nr_pages);
}

/// A THP-sized block (`pageblock_order`, 512 pages) is more than `high` (186): freeing it to
/// a pcp that holds one already takes `count` to 1024, and the batch free of `batch` (31)
/// pages, finding that list the only one with pages, frees one whole block (5.14 counts a
/// block's pages against the batch, so one block is enough); the other stays, over `high`,
/// until the next free or a drain.
#[test]
fn a_pageblock_order_block_goes_through_the_pcp_and_out_again() {
    let z = zone(true, Fixes::ALL);
    let pb = Order(z.geometry().pageblock_order);
    let a = z.alloc_pfn(pb, Migratetype::Movable).unwrap();
    // The refill took 2 blocks (max(31 >> 9, 2)): one on the pcp.
    assert_eq!(z.audit().pcp_pages, 512);
    z.free_pfn(a, pb).unwrap();
    let r = z.audit();
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.pcp_pages, 512, "{r}");
    z.drain_all_pages();
    let r = z.audit();
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.true_free_pages, z.geometry().nr_pages);
}

/// Orders the pcp does not take (4–8, 10) still go to the buddy lists directly.
#[test]
fn other_orders_bypass_the_pcp() {
    let z = zone(true, Fixes::ALL);
    for o in [4, 8, 10] {
        let a = z.alloc_pfn(Order(o), Migratetype::Unmovable).unwrap();
        z.free_pfn(a, Order(o)).unwrap();
        let r = z.audit();
        assert!(r.is_ok(), "{r}");
        assert_eq!(r.pcp_pages, 0, "order {o}");
    }
}

/// Errors are the same with the block on a pcp: a double free of a cached order-2 block, a
/// free with the wrong order.
#[test]
fn a_cached_block_cannot_be_freed_twice() {
    let z = zone(true, Fixes::ALL);
    let a = z.alloc_pfn(Order(2), Migratetype::Unmovable).unwrap();
    assert_eq!(
        z.free_pfn(a, Order(1)),
        Err(FreeError::WrongOrder {
            pfn: a,
            order: Order(1),
            allocated: Order(2)
        })
    );
    z.free_pfn(a, Order(2)).unwrap();
    assert_eq!(z.free_pfn(a, Order(2)), Err(FreeError::DoubleFree(a)));
    assert!(z.audit().is_ok());
}

/// A random mix of orders 0–3 and 9, allocated and freed on one thread, with exact counters
/// and a clean audit after every round (the lists' room checks included: many blocks of one
/// order freed in a row).
#[test]
fn a_mixed_workload_keeps_the_counts_exact() {
    let z = zone(true, Fixes::ALL);
    let mut held: Vec<(Pfn, Order)> = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for round in 0..200 {
        for _ in 0..50 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let order = Order([0, 1, 2, 3, 9][(x % 5) as usize]);
            if x % 3 == 0 && !held.is_empty() {
                let (p, o) = held.swap_remove((x >> 8) as usize % held.len());
                z.free_pfn(p, o).unwrap();
            } else if let Ok(p) = z.alloc_pfn(order, Migratetype::Movable) {
                held.push((p, order));
            }
        }
        if round % 20 == 0 {
            // Free a run of one order, so its list fills past what it usually holds.
            held.sort_by_key(|&(_, o)| o.0);
            for (p, o) in held.drain(..) {
                z.free_pfn(p, o).unwrap();
            }
        }
        let r = z.audit();
        assert!(r.is_ok(), "round {round}: {r}");
    }
    for (p, o) in held {
        z.free_pfn(p, o).unwrap();
    }
    all_free(&z);
}

/// Two threads allocating and freeing order-3 blocks through their own pcps, then every
/// page back after the threads exit.
#[test]
fn threads_share_nothing_but_the_zone() {
    let z = zone(true, Fixes::ALL);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..10_000 {
                    let a = z.alloc_pfn(Order(3), Migratetype::Movable).unwrap();
                    let b = z.alloc_pfn(Order(1), Migratetype::Unmovable).unwrap();
                    z.free_pfn(a, Order(3)).unwrap();
                    z.free_pfn(b, Order(1)).unwrap();
                }
            });
        }
    });
    all_free(&z);
}

/// The R2-like window high-order pcps add (small_cma: pageblocks of 4 pages, CMA from 16):
/// an order-1 block sits on a worker's pcp with cached type CMA while its pageblock is
/// isolated; the isolation's drain frees it by the cached type. 3.17's `free_pcppages_bulk`
/// puts it on the CMA list, merged with its buddy on the Isolate list, uncounted; patch 2's
/// recheck (in every preset from `seed` on) sends it to the Isolate list.
fn r2_high_order(fixes: Fixes) -> AuditReport {
    let z = Zone::new(ZoneConfig {
        pcp_high_order: true,
        ..small_cma_config(fixes, None)
    })
    .unwrap();
    fill(&z, Order(1));
    free_now(&z, 18, 1);
    let (freed_tx, freed_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let z = &z;
        s.spawn(move || {
            z.free_pfn(Pfn(16), Order(1)).unwrap();
            freed_tx.send(()).unwrap();
            done_rx.recv().unwrap();
        });
        freed_rx.recv().unwrap();
        assert_eq!(z.audit().pcp_pages, 2);
        z.set_migratetype_isolate(Pfn(16)).unwrap();
        done_tx.send(()).unwrap();
    });
    z.audit()
}

#[test]
fn r2_with_a_high_order_block_under_3_17() {
    let r = r2_high_order(Fixes::NONE);
    assert_eq!((r.drift_free, r.drift_cma), (-4, -4), "{r}");
    assert_eq!(r.misplaced_blocks.len(), 1, "{r}");
    let m = r.misplaced_blocks[0];
    assert_eq!(
        (m.pfn, m.order, m.list, m.pageblock),
        (Pfn(16), Order(2), Migratetype::Cma, Migratetype::Isolate)
    );
}

#[test]
fn r2_with_a_high_order_block_is_fixed_by_patch_2() {
    for fixes in [
        Fixes::RECHECK_PCP_BULK,
        Fixes::SEED,
        Fixes::V3_18,
        Fixes::ALL,
    ] {
        r2_high_order(fixes).assert_ok();
    }
}

/// The pcp's lowest counts over a run of order-0 frees with no allocation between: each batch
/// free leaves the pcp at `high - n` for the `n` it freed.
fn batch_free_sizes(z: &Zone, pages: usize) -> Vec<u64> {
    // Per-CPU mode (PAGEALLOC_TEST_CPUS): stay on one CPU's pcp.
    set_thread_cpu(Some(0));
    let held: Vec<Pfn> = (0..pages)
        .map(|_| z.alloc_pfn(Order(0), Migratetype::Movable).unwrap())
        .collect();
    z.drain_all_pages();
    let mut last = 0;
    let mut freed_to = Vec::new();
    for p in held {
        z.free_pfn(p, Order(0)).unwrap();
        let now = z.audit().pcp_pages;
        if now < last {
            freed_to.push(now);
        }
        last = now;
    }
    freed_to
}

/// 3.17 frees one `batch` (31) each time a pcp reaches `high` (186). With high-order pcps,
/// 5.14's `nr_pcp_free` doubles the batch on each batch free without an allocation between,
/// up to `high - batch`: 31, 62, 124, then 155.
#[test]
fn batch_frees_grow_without_allocations_in_5_14_only() {
    let sizes = |high_order| -> Vec<u64> {
        let z = zone(high_order, Fixes::ALL);
        batch_free_sizes(&z, 1200)
            .into_iter()
            .map(|left| 186 - left)
            .collect()
    };
    let old = sizes(false);
    assert!(old.len() > 5 && old.iter().all(|&n| n == 31), "{old:?}");
    let new = sizes(true);
    assert_eq!(new[..4], [31, 62, 124, 155], "{new:?}");
    assert!(new[4..].iter().all(|&n| n == 155), "{new:?}");
}

/// An allocation between two batch frees halves the factor again (5.14 halves it in
/// `rmqueue_pcplist`): after 31, 62, one allocation brings the next batch back to 62.
#[test]
fn an_allocation_halves_the_batch_free_factor() {
    set_thread_cpu(Some(0));
    let z = zone(true, Fixes::ALL);
    let held: Vec<Pfn> = (0..600)
        .map(|_| z.alloc_pfn(Order(0), Migratetype::Movable).unwrap())
        .collect();
    z.drain_all_pages();
    let mut it = held.into_iter();
    let mut frees_left = |n: usize| {
        for p in it.by_ref().take(n) {
            z.free_pfn(p, Order(0)).unwrap();
        }
        z.audit().pcp_pages
    };
    // 186 frees: the first batch free (31) at high, leaving 155.
    assert_eq!(frees_left(186), 155);
    // 31 more: the second (62, factor 1 -> 2), leaving 124.
    assert_eq!(frees_left(31), 124);
    // One allocation from the pcp: factor 2 -> 1.
    let a = z.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
    assert_eq!(z.audit().pcp_pages, 123);
    // 63 frees reach high again: 31 << 1 = 62 freed, leaving 124.
    assert_eq!(frees_left(63), 124);
    z.free_pfn(a, Order(0)).unwrap();
    for p in it {
        z.free_pfn(p, Order(0)).unwrap();
    }
    all_free(&z);
}
