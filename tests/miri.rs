//! A Miri-sized test set: every way the crate hands out page bytes (`Pages`, `MovablePages`
//! pins, `CmaPages`, raw pfns) on both backends, handles moved to and dropped on other threads,
//! concurrent allocation, remote drains and page migration (by CMA and by compaction), on
//! 16-page zones with a few operations each. `.ci/run` runs it under Miri with Stacked and
//! Tree Borrows:
//!
//! ```sh
//! cargo +nightly miri test --test miri --test soundness_config
//! MIRIFLAGS=-Zmiri-tree-borrows cargo +nightly miri test --test miri --test soundness_config
//! ```
//!
//! It runs (in milliseconds) under the normal `cargo test` as well. Every test ends with a
//! drain, a clean audit and every page free.
#![allow(clippy::disallowed_types)] // tests are outside the loom shim rule

use pagealloc::*;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};

/// 16 pages on the heap: the tiny geometry (top-order blocks of 4 pages, pageblocks of 2),
/// the top 8 pages CMA.
fn heap_zone() -> Zone {
    Zone::new(ZoneConfig {
        cma_size: 8 * PAGE_SIZE,
        fixes: Fixes::ALL,
        ..ZoneConfig::tiny(16)
    })
    .unwrap()
}

/// 16 pages in an anonymous mapping: two top-order blocks of 8 pages (`max_order` 4),
/// pageblocks of 4 pages, the top block CMA.
fn mmap_zone() -> Zone {
    Zone::new(ZoneConfig {
        max_order: 4,
        pageblock_order: 2,
        cma_size: 8 * PAGE_SIZE,
        fixes: Fixes::ALL,
        backend: Backend::Mmap,
        ..ZoneConfig::tiny(16)
    })
    .unwrap()
}

/// Run `f` on a zone of each backend.
fn each_backend(f: impl Fn(&Zone)) {
    for (name, zone) in [("heap", heap_zone()), ("mmap", mmap_zone())] {
        eprintln!("backend {name}");
        f(&zone);
        all_free(&zone, name);
    }
}

/// The end state of every test: drained, a clean audit, every page free.
#[track_caller]
fn all_free(zone: &Zone, what: &str) {
    zone.drain_all_pages();
    let r = zone.audit();
    assert!(r.is_ok(), "{what}: audit not clean: {r}");
    assert!(r.conservation_ok(), "{what}: conservation broken: {r}");
    assert_eq!(r.pcp_pages, 0, "{what}: pages left in pcps: {r}");
    assert_eq!(r.allocated_pages, 0, "{what}: pages left allocated: {r}");
    assert_eq!(r.true_free_pages, r.managed_pages, "{what}: {r}");
    assert_eq!(zone.nr_movable(), 0, "{what}: movable handles left");
}

/// The bytes `fill` writes for `tag`: a 256-byte run that depends on the tag, repeated, with
/// each run's first byte set to its index, so a block moved, swapped or shifted by a run
/// shows. Built, copied and compared with whole-slice operations (memcpy/memcmp are single
/// steps for Miri, a byte loop is thousands), yet every byte of every block is written and
/// checked.
fn pattern(tag: u8, len: usize) -> Vec<u8> {
    let run: Vec<u8> = (0..=255u8).map(|i| i ^ tag.wrapping_mul(31)).collect();
    let mut v = vec![0u8; len];
    for (k, chunk) in v.chunks_mut(256).enumerate() {
        chunk.copy_from_slice(&run[..chunk.len()]);
        chunk[0] = tag ^ k as u8;
    }
    v
}

fn fill(bytes: &mut [u8], tag: u8) {
    bytes.copy_from_slice(&pattern(tag, bytes.len()));
}

#[track_caller]
fn check(bytes: &[u8], tag: u8) {
    assert!(
        bytes == pattern(tag, bytes.len()).as_slice(),
        "tag {tag}: bytes changed"
    );
}

fn pin_fill(m: &mut MovablePages<'_>, tag: u8) {
    fill(m.pin().as_mut_slice(), tag);
}

#[track_caller]
fn pin_check(m: &mut MovablePages<'_>, tag: u8) {
    check(m.pin().as_slice(), tag);
}

#[test]
fn bytes_through_every_handle() {
    each_backend(|zone| {
        let mut a = zone.alloc_pages(Order(1), Migratetype::Unmovable).unwrap();
        assert_eq!(a.len(), 2 * PAGE_SIZE);
        fill(a.as_mut_slice(), 1);
        let mut b = zone.alloc_pages(Order(0), Migratetype::Movable).unwrap();
        fill(b.as_mut_slice(), 2);
        check(a.as_slice(), 1);
        check(b.as_slice(), 2);

        let mut m = zone.alloc_movable(Order(0)).unwrap();
        pin_fill(&mut m, 3);
        pin_check(&mut m, 3);

        let cma = zone.cma().unwrap();
        let mut c = cma.alloc(2, Order(1)).unwrap();
        assert!(c.pfn() >= cma.area().base_pfn());
        fill(c.as_mut_slice(), 4);
        check(c.as_slice(), 4);

        // Nothing overlapped.
        check(a.as_slice(), 1);
        check(b.as_slice(), 2);
        pin_check(&mut m, 3);
        cma.release(c);
        assert_eq!(cma.area().used(), 0);
        drop((a, b, m));
    });
}

#[test]
fn pfn_api_and_bad_frees() {
    each_backend(|zone| {
        let n = zone.geometry().nr_pages;
        let max_order = zone.geometry().max_order;
        let p = zone.alloc_pfn(Order(1), Migratetype::Movable).unwrap();
        let ptr = zone.pfn_to_ptr(p).unwrap();
        // SAFETY: `alloc_pfn` handed this thread the block of 2 pages at `p`; nobody else
        // touches it until it is freed below.
        let bytes = unsafe { core::slice::from_raw_parts_mut(ptr, 2 * PAGE_SIZE) };
        fill(bytes, 5);
        check(bytes, 5);
        assert_eq!(zone.pfn_to_ptr(Pfn(n)), None);

        assert_eq!(
            zone.free_pfn(Pfn(n), Order(0)),
            Err(FreeError::Foreign(Pfn(n)))
        );
        assert_eq!(
            zone.free_pfn(Pfn(u64::MAX), Order(0)),
            Err(FreeError::Foreign(Pfn(u64::MAX)))
        );
        assert_eq!(
            zone.free_pfn(p, Order(max_order)),
            Err(FreeError::BadOrder(Order(max_order)))
        );
        assert_eq!(
            zone.free_pfn(p.add(1), Order(1)),
            Err(FreeError::Unaligned {
                pfn: p.add(1),
                order: Order(1)
            })
        );
        assert_eq!(
            zone.free_pfn(p, Order(0)),
            Err(FreeError::WrongOrder {
                pfn: p,
                order: Order(0),
                allocated: Order(1)
            })
        );
        assert_eq!(
            zone.free_pfn(p.add(1), Order(0)),
            Err(FreeError::NotAllocated(p.add(1)))
        );
        check(bytes, 5);
        zone.free_pfn(p, Order(1)).unwrap();
        assert_eq!(zone.free_pfn(p, Order(1)), Err(FreeError::DoubleFree(p)));

        // A handle given up as a pfn, written through its slice first, freed by pfn.
        let mut h = zone
            .alloc_pages(Order(0), Migratetype::Reclaimable)
            .unwrap();
        fill(h.as_mut_slice(), 6);
        let q = h.into_pfn();
        assert_eq!(
            zone.page_state(q),
            Some(PageState::Allocated {
                head: q,
                order: Order(0)
            })
        );
        zone.free_pfn(q, Order(0)).unwrap();
        assert_eq!(zone.free_pfn(q, Order(0)), Err(FreeError::DoubleFree(q)));
    });
}

#[test]
fn handles_move_to_other_threads_and_drop_there() {
    each_backend(|zone| {
        let mut a = zone.alloc_pages(Order(1), Migratetype::Movable).unwrap();
        fill(a.as_mut_slice(), 7);
        let mut m = zone.alloc_movable(Order(0)).unwrap();
        pin_fill(&mut m, 8);
        let mut c = zone.cma().unwrap().alloc(1, Order(0)).unwrap();
        fill(c.as_mut_slice(), 9);
        std::thread::scope(|s| {
            s.spawn(move || {
                check(a.as_slice(), 7);
                fill(a.as_mut_slice(), 10);
                check(a.as_slice(), 10);
                pin_check(&mut m, 8);
                pin_fill(&mut m, 11);
                check(c.as_slice(), 9);
                drop((a, m, c)); // freed on this thread (order 0 onto its pcp)
            })
            .join()
            .unwrap();
        });
        // A shared handle read from two threads at once.
        let mut b = zone.alloc_pages(Order(0), Migratetype::Unmovable).unwrap();
        fill(b.as_mut_slice(), 12);
        let b = &b;
        std::thread::scope(|s| {
            let t = s.spawn(move || check(b.as_slice(), 12));
            check(b.as_slice(), 12);
            t.join().unwrap();
        });
    });
}

#[test]
fn two_threads_allocate_and_free_at_once() {
    each_backend(|zone| {
        let start = Barrier::new(2);
        std::thread::scope(|s| {
            let threads: Vec<_> = [20u8, 40]
                .into_iter()
                .map(|tag0| {
                    let start = &start;
                    s.spawn(move || {
                        start.wait();
                        for i in 0..4u8 {
                            let tag = tag0 + i;
                            let mut p = zone
                                .alloc_pages(Order(u32::from(i % 2)), Migratetype::Movable)
                                .unwrap();
                            let mut q = zone.alloc_pages(Order(0), Migratetype::Movable).unwrap();
                            fill(p.as_mut_slice(), tag);
                            fill(q.as_mut_slice(), tag + 100);
                            check(p.as_slice(), tag);
                            check(q.as_slice(), tag + 100);
                        }
                    })
                })
                .collect();
            // Explicit joins: they wait for the threads' pcp exit drains too.
            for t in threads {
                t.join().unwrap();
            }
        });
    });
}

#[test]
fn remote_drain_while_the_owner_works() {
    each_backend(|zone| {
        let start = Barrier::new(2);
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let owner = s.spawn(|| {
                start.wait();
                for i in 0..6u8 {
                    // Order 0 through this thread's pcp, which the other thread drains.
                    let mut p = zone.alloc_pages(Order(0), Migratetype::Movable).unwrap();
                    fill(p.as_mut_slice(), 50 + i);
                    check(p.as_slice(), 50 + i);
                }
                done.store(true, Ordering::Release);
            });
            let drainer = s.spawn(|| {
                start.wait();
                let mut drains = 0;
                while !done.load(Ordering::Acquire) || drains < 2 {
                    zone.drain_all_pages();
                    drains += 1;
                }
            });
            owner.join().unwrap();
            drainer.join().unwrap();
        });
    });
}

/// High-order pcps (`ZoneConfig::pcp_high_order`): order-1 and order-2 blocks (the orders up
/// to `pageblock_order` 2 of the mmap zone) go through the owner's pcp, by its leaf paths and
/// its full ones, while another thread drains; every block's bytes are written and checked.
#[test]
fn high_order_pcps_with_a_remote_drain() {
    let zone = Zone::new(ZoneConfig {
        max_order: 4,
        pageblock_order: 2,
        fixes: Fixes::ALL,
        pcp_high_order: true,
        backend: Backend::Mmap,
        ..ZoneConfig::tiny(16)
    })
    .unwrap();
    let start = Barrier::new(2);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            for i in 0..6u8 {
                let order = Order(1 + u32::from(i % 2));
                let mut p = zone.alloc_pages(order, Migratetype::Movable).unwrap();
                fill(p.as_mut_slice(), 70 + i);
                check(p.as_slice(), 70 + i);
            }
            done.store(true, Ordering::Release);
        });
        s.spawn(|| {
            start.wait();
            let mut drains = 0;
            while !done.load(Ordering::Acquire) || drains < 2 {
                zone.drain_all_pages();
                drains += 1;
            }
        });
    });
    all_free(&zone, "high-order pcps");
}

/// `PcpMode::PerCpu(2)`: two threads share CPU 0's pcp (one moves to CPU 1 halfway) while a
/// third drains every CPU; each thread writes and checks its pages' bytes.
#[test]
fn per_cpu_pcps_shared_by_threads_and_drained() {
    let zone = Zone::new(ZoneConfig {
        cma_size: 8 * PAGE_SIZE,
        fixes: Fixes::ALL,
        pcp_mode: PcpMode::PerCpu(2),
        ..ZoneConfig::tiny(16)
    })
    .unwrap();
    let zone = &zone;
    let start = Barrier::new(3);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let workers: Vec<_> = [60u8, 80]
            .into_iter()
            .map(|tag0| {
                let start = &start;
                s.spawn(move || {
                    set_thread_cpu(Some(0));
                    start.wait();
                    for i in 0..4u8 {
                        if i == 2 && tag0 == 80 {
                            set_thread_cpu(Some(1));
                        }
                        let mut p = zone.alloc_pages(Order(0), Migratetype::Movable).unwrap();
                        fill(p.as_mut_slice(), tag0 + i);
                        check(p.as_slice(), tag0 + i);
                    }
                })
            })
            .collect();
        let drainer = s.spawn(|| {
            start.wait();
            let mut drains = 0;
            while !done.load(Ordering::Acquire) || drains < 2 {
                zone.drain_all_pages();
                drains += 1;
            }
        });
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
        drainer.join().unwrap();
    });
    all_free(zone, "per-CPU");
}

#[test]
fn alloc_contig_range_migrates_a_movable_block_out_of_the_way() {
    each_backend(|zone| {
        let g = *zone.geometry();
        let mut m = zone.alloc_movable(Order(0)).unwrap();
        pin_fill(&mut m, 60);
        let old = m.pfn();
        assert!(
            old < g.cma_start,
            "movable pages come from the normal area first"
        );
        // The pageblock holding the block (alloc_contig_range isolates its top-order block).
        let start = Pfn(old.0 & !(g.pageblock_nr_pages - 1));
        let end = start.add(g.pageblock_nr_pages);
        let migrated = zone
            .alloc_contig_range(start, end, Migratetype::Movable)
            .unwrap();
        assert_eq!(migrated, 1);
        assert!(m.pfn() < start || m.pfn() >= end, "moved out of the range");
        pin_check(&mut m, 60);
        // The range is ours now, as order-0 pages: write it, then free it page by page.
        for p in start.0..end.0 {
            let ptr = zone.pfn_to_ptr(Pfn(p)).unwrap();
            // SAFETY: `alloc_contig_range` allocated every page of the range to this thread.
            let page = unsafe { core::slice::from_raw_parts_mut(ptr, PAGE_SIZE) };
            fill(page, p as u8);
        }
        for p in start.0..end.0 {
            zone.free_pfn(Pfn(p), Order(0)).unwrap();
        }
        pin_check(&mut m, 60);
    });
}

/// A movable order-0 block inside the CMA area: allocate until one falls back into it, then
/// free the others (room outside the area for a migration).
fn movable_in_cma(zone: &Zone) -> MovablePages<'_> {
    let base = zone.cma().unwrap().area().base_pfn();
    let mut normal = Vec::new();
    loop {
        let m = zone.alloc_movable(Order(0)).unwrap();
        if m.pfn() >= base {
            return m;
        }
        normal.push(m);
    }
}

#[test]
fn cma_alloc_migrates_a_movable_block_out_of_the_area() {
    each_backend(|zone| {
        let cma = zone.cma().unwrap();
        let base = cma.area().base_pfn();
        let mut m = movable_in_cma(zone);
        pin_fill(&mut m, 70);
        let mut all = cma.alloc(cma.area().count(), Order(0)).unwrap();
        assert!(m.pfn() < base, "the movable block left the CMA area");
        pin_check(&mut m, 70);
        fill(all.as_mut_slice(), 71);
        check(all.as_slice(), 71);
        drop(all);
        pin_check(&mut m, 70);
    });
}

#[test]
fn migration_races_the_owner_pinning_on_another_thread() {
    each_backend(|zone| {
        let cma = zone.cma().unwrap();
        let base = cma.area().base_pfn();
        let mut m = movable_in_cma(zone);
        pin_fill(&mut m, 80);
        let owner_done = AtomicBool::new(false);
        let start = Barrier::new(2);
        let got = std::thread::scope(|s| {
            let owner = s.spawn(|| {
                start.wait();
                for i in 0..3u8 {
                    pin_check(&mut m, 80 + i);
                    pin_fill(&mut m, 81 + i);
                }
                owner_done.store(true, Ordering::Release);
                m
            });
            let migrator = s.spawn(|| {
                start.wait();
                // A pinned block is busy; once the owner stops pinning the allocation must
                // succeed.
                loop {
                    let finished = owner_done.load(Ordering::Acquire);
                    match cma.alloc(cma.area().count(), Order(0)) {
                        Ok(c) => return c,
                        Err(e) => assert!(!finished, "failed with the owner idle: {e}"),
                    }
                    #[allow(clippy::disallowed_methods)] // the library shim is private
                    std::thread::yield_now();
                }
            });
            let m = owner.join().unwrap();
            (m, migrator.join().unwrap())
        });
        let (mut m, mut c) = got;
        assert!(m.pfn() < base);
        pin_check(&mut m, 83);
        fill(c.as_mut_slice(), 90);
        check(c.as_slice(), 90);
    });
}

/// Compaction migrates a movable block into a page its free scanner took off the free lists
/// (`split_free_page`, then `compaction_alloc`): the block's bytes go with it. Each backend's
/// zone, without watermarks (the free scanner obeys the low one), with every page taken, the
/// movable block at 0, and free pages where the free scanner looks: `frees` (two of them
/// outside the CMA area, for the watermark check, which does not count free CMA pages);
/// the block lands on `dst`.
fn compaction_moves(zone: &Zone, frees: &[u64], dst: u64) {
    let mut pfns = Vec::new();
    while let Ok(p) = zone.alloc_pfn(Order(0), Migratetype::Movable) {
        pfns.push(p);
    }
    zone.free_pfn(Pfn(0), Order(0)).unwrap();
    zone.drain_all_pages();
    let mut m = zone.alloc_movable(Order(0)).unwrap();
    assert_eq!(m.pfn(), Pfn(0));
    pin_fill(&mut m, 100);
    for &p in frees {
        zone.free_pfn(Pfn(p), Order(0)).unwrap();
    }
    zone.drain_all_pages();
    zone.vmstat_update();
    assert_eq!(zone.compact_memory(), CompactResult::Complete);
    assert_eq!(m.pfn(), Pfn(dst));
    pin_check(&mut m, 100);
    drop(m);
    for p in pfns {
        if p.0 != 0 && !frees.contains(&p.0) {
            zone.free_pfn(p, Order(0)).unwrap();
        }
    }
}

#[test]
fn compaction_moves_a_movable_block_into_a_free_page() {
    let no_wmark = |cfg: ZoneConfig| {
        Zone::new(ZoneConfig {
            min_free_kbytes: Some(0),
            ..cfg
        })
        .unwrap()
    };
    // Heap: pageblocks of 2; the free scanner comes down from 14 and takes 6 (4 is the
    // second normal free page).
    let zone = no_wmark(ZoneConfig {
        cma_size: 8 * PAGE_SIZE,
        fixes: Fixes::ALL,
        ..ZoneConfig::tiny(16)
    });
    compaction_moves(&zone, &[4, 6], 6);
    all_free(&zone, "heap");
    // Mmap: pageblocks of 4, the top 8 pages CMA; the scanner may not use {4..7}, the
    // pageblock after the migrate scanner's, so it takes the CMA page 12.
    let zone = no_wmark(ZoneConfig {
        max_order: 4,
        pageblock_order: 2,
        cma_size: 8 * PAGE_SIZE,
        fixes: Fixes::ALL,
        backend: Backend::Mmap,
        ..ZoneConfig::tiny(16)
    });
    compaction_moves(&zone, &[4, 5, 12], 12);
    all_free(&zone, "mmap");
}

// ---- frees by pfn of blocks that live handles own ----
//
// `free_pfn` and `Cma::release_pfn` are safe: before the ownership model they accepted a block
// that a live `Pages`, `MovablePages` or `CmaPages` owns, the next allocation handed the same
// bytes to a second handle, and safe code held two `&mut [u8]` to one page (Miri: Stacked
// Borrows "tag does not exist in the borrow stack", Tree Borrows "write access ... is
// forbidden"). Now the free is refused and both handles keep their own bytes.

/// Two handles that must not share bytes: write both through slices alive at once.
#[track_caller]
fn assert_disjoint(a: &mut [u8], b: &mut [u8]) {
    let (sa, sb) = (a, b);
    fill(sa, 1);
    fill(sb, 2);
    check(sa, 1);
    check(sb, 2);
}

#[test]
fn free_pfn_refuses_a_block_a_pages_handle_owns() {
    each_backend(|zone| {
        let mut a = zone.alloc_pages(Order(1), Migratetype::Movable).unwrap();
        let r = zone.free_pfn(a.pfn(), Order(1));
        let mut b = zone.alloc_pages(Order(1), Migratetype::Movable).unwrap();
        assert_disjoint(a.as_mut_slice(), b.as_mut_slice());
        assert_eq!(r, Err(FreeError::HandleOwned(a.pfn())));
        drop((a, b));
    });
}

#[test]
fn free_pfn_refuses_a_block_a_movable_handle_owns() {
    each_backend(|zone| {
        let mut m = zone.alloc_movable(Order(0)).unwrap();
        let r = zone.free_pfn(m.pfn(), Order(0));
        let mut b = zone.alloc_pages(Order(0), Migratetype::Movable).unwrap();
        assert_disjoint(m.pin().as_mut_slice(), b.as_mut_slice());
        assert!(matches!(r, Err(FreeError::HandleOwned(_))), "{r:?}");
        drop((m, b));
    });
}

#[test]
fn release_pfn_refuses_pages_a_cma_handle_owns() {
    each_backend(|zone| {
        let cma = zone.cma().unwrap();
        let mut c = cma.alloc(cma.area().count(), Order(0)).unwrap();
        let r = cma.release_pfn(c.pfn(), c.count());
        // The area is full unless the release went through.
        if let Ok(mut d) = cma.alloc(1, Order(0)) {
            let page = PAGE_SIZE * (d.pfn().0 - c.pfn().0) as usize;
            assert_disjoint(
                &mut c.as_mut_slice()[page..page + PAGE_SIZE],
                d.as_mut_slice(),
            );
        }
        assert!(matches!(r, Err(CmaError::NotAllocated { .. })), "{r:?}");
        drop(c);
    });
}

// ---- the rest of the ownership model and the hooks, under Miri ----

/// A CMA allocation handed to the pfn API and released by two threads at once: one wins,
/// the other gets an error, nothing is freed twice.
#[test]
fn cma_into_pfn_and_racing_releases() {
    each_backend(|zone| {
        let cma = zone.cma().unwrap();
        let mut c = cma.alloc(4, Order(2)).unwrap();
        fill(c.as_mut_slice(), 9);
        let p = c.into_pfn();
        assert_eq!(
            zone.free_contig_range(p, 4),
            Err(FreeError::CmaAllocation(p))
        );
        let wins = std::sync::atomic::AtomicU32::new(0);
        let b = Barrier::new(2);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    b.wait();
                    if cma.release_pfn(p, 4).is_ok() {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::SeqCst), 1);
    });
}

/// `free_contig_range` is all or nothing, and a handle-owned page in the range stops it.
#[test]
fn free_contig_range_refuses_a_range_with_a_handle_in_it() {
    let zone = heap_zone();
    let pfns: Vec<Pfn> = (0..3)
        .map(|_| zone.alloc_pfn(Order(0), Migratetype::Unmovable).unwrap())
        .collect();
    let mut h = zone.alloc_pages(Order(0), Migratetype::Unmovable).unwrap();
    fill(h.as_mut_slice(), 4);
    let mut all: Vec<Pfn> = pfns.iter().copied().chain([h.pfn()]).collect();
    all.sort();
    let contiguous = all.windows(2).all(|w| w[1].0 == w[0].0 + 1);
    if contiguous {
        let r = zone.free_contig_range(all[0], 4);
        assert_eq!(r, Err(FreeError::HandleOwned(h.pfn())));
    }
    check(h.as_slice(), 4);
    for p in pfns {
        zone.free_pfn(p, Order(0)).unwrap();
    }
    drop(h);
    all_free(&zone, "heap");
}

/// `OwnedPages` and `OwnedMovablePages` keep an `Arc<Zone>` alive on a thread spawned with
/// `std::thread::spawn`.
#[test]
fn owned_pages_on_a_spawned_thread() {
    let zone = std::sync::Arc::new(heap_zone());
    let z = zone.clone();
    let t = std::thread::spawn(move || {
        let mut p = z.alloc_pages_owned(Order(1), Migratetype::Movable).unwrap();
        p.fill(6);
        p
    });
    let p = t.join().unwrap();
    assert!(p.iter().all(|&b| b == 6));
    drop(p);
    // The movable form too: pinned and written on the spawned thread, checked here.
    let z = zone.clone();
    let t = std::thread::spawn(move || {
        let mut m = z.alloc_movable_owned(Order(0)).unwrap();
        m.pin().as_mut_slice().fill(8);
        m
    });
    let mut m = t.join().unwrap();
    assert!(m.pin().as_slice().iter().all(|&b| b == 8));
    drop(m);
    all_free(&zone, "heap");
}

/// A race hook that allocates and frees from inside the pcp bulk free of its own thread's
/// pcp (the owner's lists are in use below it). Before the re-entry checks this obtained a
/// second `&mut` to those lists (Miri: "not granting access ... strongly protected"); now the
/// hook's calls are served from the buddy lists.
#[test]
fn hook_allocating_inside_its_own_pcp_bulk_free() {
    struct AllocInBulk {
        zone: std::sync::OnceLock<std::sync::Weak<Zone>>,
        armed: AtomicBool,
    }
    impl RaceHook for AllocInBulk {
        fn window(&self, w: RaceWindow, _pfn: Pfn) {
            if w == RaceWindow::PcpBulkBeforeZoneLock && self.armed.swap(false, Ordering::SeqCst) {
                let z = self.zone.get().unwrap().upgrade().unwrap();
                let mut p = z.alloc_pages(Order(0), Migratetype::Movable).unwrap();
                fill(p.as_mut_slice(), 3);
                drop(p);
            }
        }
    }
    let hook = std::sync::Arc::new(AllocInBulk {
        zone: std::sync::OnceLock::new(),
        armed: AtomicBool::new(false),
    });
    let zone = std::sync::Arc::new(
        Zone::new(ZoneConfig {
            race_hook: Some(hook.clone()),
            fixes: Fixes::ALL,
            ..ZoneConfig::tiny(16)
        })
        .unwrap(),
    );
    hook.zone.set(std::sync::Arc::downgrade(&zone)).unwrap();
    let held: Vec<_> = (0..4)
        .map(|_| zone.alloc_pages(Order(0), Migratetype::Movable).unwrap())
        .collect();
    hook.armed.store(true, Ordering::SeqCst);
    drop(held); // the pcp reaches high (4): its bulk free calls the hook
    assert!(!hook.armed.load(Ordering::SeqCst), "the hook never fired");
    all_free(&zone, "heap");
}
