//! Compaction (issue 14, item 3): 3.17's direct compaction and `compact_memory` on fragmented
//! zones, the movable owners' bytes across migration, what blocks compaction, deferral, the
//! free scanner's recheck under the zone lock, `split_free_page`'s count by pageblock type
//! turning a misplaced block into drift under `Fixes::NONE`, and compaction racing isolation,
//! CMA allocations and frees with a clean audit under `Fixes::ALL`.
#![allow(clippy::disallowed_types)] // tests are outside the loom shim rule

mod common;
use common::*;
use pagealloc::*;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A 64 MiB zone: 16384 pages, 32 pageblocks (the first Reserve by 3.17's sizing unless the
/// fixes remove it), watermarks min 256 / low 320 / high 384.
fn zone64(fixes: Fixes) -> Zone {
    Zone::new(ZoneConfig {
        size: 64 << 20,
        fixes,
        pcp_mode: pcp_mode(),
        ..ZoneConfig::default()
    })
    .unwrap()
}

/// The byte at `i` of the block tagged `tag`.
fn pattern(tag: u64, i: usize) -> u8 {
    (tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u8 ^ (i as u8)
}

fn fill_pattern<Z: Deref<Target = Zone>>(p: &mut MovablePagesIn<Z>, tag: u64) {
    let mut g = p.pin();
    for (i, b) in g.as_mut_slice().iter_mut().enumerate() {
        *b = pattern(tag, i);
    }
}

fn pattern_ok<Z: Deref<Target = Zone>>(p: &mut MovablePagesIn<Z>, tag: u64) -> bool {
    let g = p.pin();
    g.as_slice()
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern(tag, i))
}

/// A `/proc/vmstat` counter.
fn vmstat(z: &Zone, name: &str) -> u64 {
    let text = z.vmstat();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/vmstat"))
}

/// Every page of `z` taken as an order-0 `MovablePages` with a pattern (plain API: no
/// watermarks), with its tag and pfn.
fn hold_every_page(z: &Zone) -> Vec<(MovablePages<'_>, u64, Pfn)> {
    let mut held = Vec::new();
    while let Ok(mut p) = z.alloc_movable(Order(0)) {
        let tag = held.len() as u64;
        fill_pattern(&mut p, tag);
        let pfn = p.pfn();
        held.push((p, tag, pfn));
    }
    assert_eq!(held.len() as u64, z.geometry().nr_pages);
    held
}

/// [`hold_every_page`], then every odd pfn freed: half the zone free, all of it in order-0
/// blocks. Returns the held blocks with their tags and original pfns.
fn fragment(z: &Zone) -> Vec<(MovablePages<'_>, u64, Pfn)> {
    let mut held = hold_every_page(z);
    held.retain(|(p, _, _)| p.pfn().0 % 2 == 0);
    z.drain_all_pages();
    let r = z.audit();
    r.assert_ok();
    assert_eq!(r.true_free_pages, z.geometry().nr_pages / 2, "{r}");
    assert!(r.nr_free[1..].iter().all(|&n| n == 0), "{r:?}");
    held
}

/// Every held block still has its bytes; how many moved.
fn check_patterns(held: &mut [(MovablePages<'_>, u64, Pfn)]) -> usize {
    let mut moved = 0;
    for (p, tag, pfn) in held.iter_mut() {
        assert!(pattern_ok(p, *tag), "block {tag} lost its bytes");
        moved += usize::from(p.pfn() != *pfn);
    }
    moved
}

/// The fragmented 64 MiB zone: an order-9 request that may not compact fails; the same
/// request with `GFP_HIGHUSER_MOVABLE` succeeds because direct compaction (async) ran, and
/// every movable owner keeps its bytes.
#[test]
fn order_9_is_served_by_direct_compaction() {
    for fixes in [Fixes::NONE, Fixes::ALL] {
        let z = zone64(fixes);
        let mut held = fragment(&z);
        // No compaction for a request that cannot wait.
        let e = z
            .alloc_pages_gfp(Order(9), Gfp::GFP_NOWAIT | Gfp::MOVABLE | Gfp::NOWARN)
            .unwrap_err();
        assert!(matches!(e, AllocError::OutOfMemory { .. }), "{e}");
        assert_eq!(vmstat(&z, "compact_stall"), 0);
        assert_eq!(vmstat(&z, "compact_success"), 0);

        let block = z
            .alloc_pages_gfp(Order(9), Gfp::GFP_HIGHUSER_MOVABLE)
            .expect("direct compaction makes an order-9 block");
        assert!(block.pfn().is_aligned(Order(9)));
        assert_eq!(vmstat(&z, "compact_stall"), 1);
        assert_eq!(vmstat(&z, "compact_success"), 1);
        assert_eq!(vmstat(&z, "compact_fail"), 0);
        assert!(vmstat(&z, "compact_migrate_scanned") > 0);
        assert!(vmstat(&z, "compact_free_scanned") > 0);
        assert!(vmstat(&z, "compact_isolated") > 0);
        let migrated = vmstat(&z, "pgmigrate_success");
        assert!(migrated >= 256, "{migrated} pages migrated");
        // Only part of the zone was compacted: async compaction stops at the first free
        // order-9 block.
        assert!(migrated < 4096, "{migrated} pages migrated");
        let moved = check_patterns(&mut held);
        assert_eq!(
            moved as u64, migrated,
            "every migration moved one held block"
        );
        z.drain_all_pages();
        z.audit().assert_ok();
        drop(block);
        drop(held);
        all_free(&z);
    }
}

/// Unmovable memory a shrinker can give back (so direct reclaim makes progress without
/// making any high-order block): pfn allocations it frees on request.
struct Cache {
    zone: Arc<Zone>,
    pages: Mutex<Vec<Pfn>>,
}

impl Shrinker for Cache {
    fn count(&self) -> u64 {
        self.pages.lock().unwrap().len() as u64
    }
    fn scan(&self, nr: u64) -> u64 {
        let mut p = self.pages.lock().unwrap();
        let n = (nr as usize).min(p.len());
        for pfn in p.drain(..n) {
            self.zone.free_pfn(pfn, Order(0)).unwrap();
        }
        n as u64
    }
}

/// Unmovable pages every other pfn: neither async nor sync compaction can move anything, so
/// both passes of the slow path fail (`compact_fail` twice), the sync failure defers
/// compaction for order 9, and the next attempt at that order is skipped.
#[test]
fn unmovable_pages_block_compaction_and_defer_it() {
    let z = Arc::new(zone64(Fixes::ALL));
    let mut pfns = Vec::new();
    while let Ok(p) = z.alloc_pfn(Order(0), Migratetype::Unmovable) {
        pfns.push(p);
    }
    pfns.sort();
    let (odd, even): (Vec<Pfn>, Vec<Pfn>) = pfns.into_iter().partition(|p| p.0 % 2 == 1);
    for p in odd {
        z.free_pfn(p, Order(0)).unwrap();
    }
    // The cache: every 64th held page (freeing one makes an order-1 block, nothing larger).
    let cache = Arc::new(Cache {
        zone: z.clone(),
        pages: Mutex::new(even.iter().copied().step_by(32).collect()),
    });
    z.drain_all_pages();
    z.vmstat_update();
    let shrinker: Arc<dyn Shrinker> = cache.clone();
    z.register_shrinker(shrinker.clone());

    let e = z
        .alloc_pfn_gfp(Order(9), Gfp::GFP_KERNEL | Gfp::NOWARN)
        .unwrap_err();
    assert!(matches!(e, AllocError::OutOfMemory { .. }), "{e}");
    // Async compaction (before reclaim) and sync compaction (after it) both ran and failed.
    assert_eq!(vmstat(&z, "compact_stall"), 2);
    assert_eq!(vmstat(&z, "compact_fail"), 2);
    assert_eq!(vmstat(&z, "compact_success"), 0);
    assert_eq!(vmstat(&z, "pgmigrate_success"), 0);
    assert_eq!(vmstat(&z, "compact_isolated"), 0);
    assert_eq!(vmstat(&z, "allocstall"), 1);
    // The sync failure deferred order 9: the next attempt is skipped (1 << 1 = 2: one skip),
    // the one after runs again.
    assert_eq!(z.compact_zone(Order(9)), Ok(CompactResult::Deferred));
    assert_eq!(z.compact_zone(Order(9)), Ok(CompactResult::Complete));
    // Orders below the failed one were never deferred.
    assert_ne!(z.compact_zone(Order(8)), Ok(CompactResult::Deferred));
    assert_eq!(
        vmstat(&z, "compact_stall"),
        2,
        "compact_zone is not a stall"
    );
    z.drain_all_pages();
    z.audit().assert_ok();
    assert!(z.unregister_shrinker(&shrinker));
}

/// `compact_memory` (order -1, sync) on the fragmented zone: the movable pages are packed at
/// the top and about half the zone is whole free pageblocks again.
#[test]
fn compact_memory_makes_free_pageblocks() {
    for fixes in [Fixes::NONE, Fixes::ALL] {
        let z = zone64(fixes);
        let mut held = fragment(&z);
        assert_eq!(z.compact_memory(), CompactResult::Complete);
        z.drain_all_pages();
        let r = z.audit();
        r.assert_ok();
        let pb = z.geometry().pageblock_order as usize;
        let whole: u64 = r.nr_free[pb..]
            .iter()
            .enumerate()
            .map(|(i, n)| n << i)
            .sum();
        // 8192 movable pages fill the 16 upper pageblocks' holes; the lower 16 empty. The
        // pageblock where the scanners met may stay partly used.
        assert!(whole >= 15, "{whole} free pageblocks: {r:?}");
        assert_eq!(vmstat(&z, "compact_stall"), 0, "not a direct compaction");
        assert!(vmstat(&z, "pgmigrate_success") >= 15 * 256);
        check_patterns(&mut held);
        drop(held);
        all_free(&z);
    }
}

/// Bad input is a typed error and changes nothing.
#[test]
fn compact_zone_refuses_an_order_past_max_order() {
    let z = Zone::new(ZoneConfig {
        size: 16 << 20,
        ..ZoneConfig::default()
    })
    .unwrap();
    for order in [11, 12, u32::MAX] {
        assert_eq!(
            z.compact_zone(Order(order)),
            Err(CompactError::BadOrder {
                order: Order(order),
                max_order: 11
            })
        );
    }
    let e = z.compact_zone(Order(11)).unwrap_err();
    assert!(e.to_string().contains("max_order 11"), "{e}");
    // A fresh zone's free blocks are all top-order: nothing to compact for any order.
    assert_eq!(z.compact_zone(Order(10)), Ok(CompactResult::Partial));
    assert_eq!(vmstat(&z, "compact_migrate_scanned"), 0);
    z.audit().assert_ok();
}

/// 32 pages, `max_order` 4, pageblocks of 4 pages, the top 16 pages CMA, no watermarks (the
/// free scanner obeys the low watermark, which 3.17's floor would put above the zone).
fn small_cma_no_wmark(fixes: Fixes, hook: Option<Arc<dyn RaceHook>>) -> Zone {
    Zone::new(ZoneConfig {
        min_free_kbytes: Some(0),
        ..small_cma_config(fixes, hook)
    })
    .unwrap()
}

/// `split_free_page` counts the block it takes by its pageblock's type. Under 3.17, R1a
/// leaves page 16 on the `Isolate` list of its CMA pageblock, uncounted (misplaced, but no
/// drift yet); compaction's free scanner then takes it as a migration target and counts it
/// out of `NR_FREE_PAGES` and `NR_FREE_CMA_PAGES`, which never had it: -1 / -1 for good. With
/// every fix, R1a cannot strand the page and the split counts it out of the list it is on.
#[test]
fn split_free_page_turns_a_stranded_block_into_drift_on_3_17() {
    for fixes in [Fixes::NONE, Fixes::ALL] {
        let gate = Gate::new(RaceWindow::FreeBeforeZoneLock, 16);
        let z = small_cma_no_wmark(fixes, gate.hook());
        fill(&z, Order(0));
        // A movable block at 0 for the migrate scanner; 8 and 9 free (counted, normal) so the
        // split passes its watermark check.
        free_now(&z, 0, 0);
        let mut m = z.alloc_movable(Order(0)).unwrap();
        assert_eq!(m.pfn(), Pfn(0));
        fill_pattern(&mut m, 7);
        free_now(&z, 8, 0);
        free_now(&z, 9, 0);
        // R1a on page 16 (its buddy 17 stays allocated): the free reads Isolate, the
        // pageblock is un-isolated, the free goes on.
        z.set_migratetype_isolate(Pfn(16)).unwrap();
        race(
            &gate,
            || z.free_pfn(Pfn(16), Order(0)).unwrap(),
            || {
                z.unset_migratetype_isolate(Pfn(16), Migratetype::Cma)
                    .unwrap()
            },
        );
        z.drain_all_pages();
        let r = z.audit();
        if fixes == Fixes::NONE {
            assert_eq!((r.drift_free, r.drift_cma), (0, 0), "{r}");
            assert_eq!(r.misplaced_blocks.len(), 1, "{r}");
            assert_eq!(r.misplaced_blocks[0].pfn, Pfn(16), "{r}");
        } else {
            r.assert_ok();
        }
        // The free scanner starts at the top: 28, 24 and 20 hold nothing free, 16 does.
        z.vmstat_update();
        assert_eq!(z.compact_memory(), CompactResult::Complete);
        assert_eq!(m.pfn(), Pfn(16), "the movable block went to the free page");
        assert!(pattern_ok(&mut m, 7));
        z.drain_all_pages();
        let r = z.audit();
        if fixes == Fixes::NONE {
            // The misplacement is gone, and drift has taken its place.
            assert!(r.misplaced_blocks.is_empty(), "{r}");
            assert_eq!((r.drift_free, r.drift_cma), (-1, -1), "{r}");
        } else {
            r.assert_ok();
        }
    }
}

/// 8 MiB, four pageblocks of 512, every page held as an order-0 `MovablePages`, then the odd
/// pages of the top pageblock (1536..2048) freed. No watermarks, no Reserve pageblock.
fn top_holes(fixes: Fixes, hook: Option<Arc<dyn RaceHook>>) -> Zone {
    Zone::new(ZoneConfig {
        size: 8 << 20,
        fixes,
        race_hook: hook,
        pcp_mode: pcp_mode(),
        reserve_pageblocks: Some(0),
        min_free_kbytes: Some(0),
        ..ZoneConfig::default()
    })
    .unwrap()
}

fn hold_all_free_top_odd(z: &Zone) -> Vec<(MovablePages<'_>, u64, Pfn)> {
    let mut held = hold_every_page(z);
    held.retain(|(p, _, _)| p.pfn().0 < 1536 || p.pfn().0 % 2 == 0);
    z.drain_all_pages();
    z.audit().assert_ok();
    held
}

/// The free scanner reads the pageblock's type without the zone lock, then rechecks it under
/// the lock (3.17's `suitable_migration_target` at the first free page). The top pageblock
/// is isolated in between: the recheck refuses it, its free pages stay on the `Isolate`
/// list, nothing can be migrated (every other pageblock is full), and the audit is clean.
/// Un-isolated, the same compaction fills its holes.
#[test]
fn free_scanner_rechecks_an_isolated_pageblock_under_the_zone_lock() {
    for fixes in [Fixes::NONE, Fixes::ALL] {
        let gate = Gate::new(RaceWindow::FreeScannerBeforeZoneLock, 1536);
        let z = top_holes(fixes, gate.hook());
        let mut held = hold_all_free_top_odd(&z);
        let result = Mutex::new(None);
        race(
            &gate,
            || *result.lock().unwrap() = Some(z.compact_memory()),
            || z.set_migratetype_isolate(Pfn(1536)).unwrap(),
        );
        assert_eq!(*result.lock().unwrap(), Some(CompactResult::Complete));
        assert_eq!(vmstat(&z, "pgmigrate_success"), 0);
        assert_eq!(check_patterns(&mut held), 0, "nothing moved");
        z.drain_all_pages();
        let r = z.audit();
        r.assert_ok();
        assert_eq!(
            r.free_pages_by_type[Migratetype::Isolate as usize],
            256,
            "{r}"
        );
        z.unset_migratetype_isolate(Pfn(1536), Migratetype::Movable)
            .unwrap();
        assert_eq!(z.compact_memory(), CompactResult::Complete);
        assert_eq!(vmstat(&z, "pgmigrate_success"), 256);
        assert_eq!(check_patterns(&mut held), 256);
        z.drain_all_pages();
        z.audit().assert_ok();
    }
}

/// The same window with a free instead: the rest of the top pageblock is freed while the
/// scanner is parked, so it is one free order-9 block when the scanner takes the lock. 3.17
/// does not break a whole free pageblock up for migration targets: the recheck refuses it,
/// and it stays whole.
#[test]
fn free_scanner_leaves_a_pageblock_freed_meanwhile_whole() {
    for fixes in [Fixes::NONE, Fixes::ALL] {
        let gate = Gate::new(RaceWindow::FreeScannerBeforeZoneLock, 1536);
        let z = top_holes(fixes, gate.hook());
        let held = Mutex::new(hold_all_free_top_odd(&z));
        race(
            &gate,
            || assert_eq!(z.compact_memory(), CompactResult::Complete),
            || {
                held.lock().unwrap().retain(|(p, _, _)| p.pfn().0 < 1536);
                z.drain_all_pages();
            },
        );
        let mut held = held.into_inner().unwrap();
        assert_eq!(vmstat(&z, "pgmigrate_success"), 0);
        assert_eq!(check_patterns(&mut held), 0);
        z.drain_all_pages();
        let r = z.audit();
        r.assert_ok();
        assert_eq!(r.nr_free[9], 1, "{r:?}");
        assert_eq!(
            z.page_state(Pfn(1536)),
            Some(PageState::Free {
                head: Pfn(1536),
                order: Order(9),
                list: Migratetype::Movable
            })
        );
    }
}

/// xorshift64*: a fixed, seedable sequence for the stress test's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Compaction (`compact_memory`, `compact_zone`, direct compaction through order-9
/// `GFP_HIGHUSER_MOVABLE` requests) on one thread while, on others, an owner frees, allocates,
/// pins and checks its movable blocks, pageblocks are isolated and un-isolated, and CMA
/// allocations migrate pages out of the CMA area. Bounded iterations on every thread, no
/// sleeps. No owner's bytes change, no page is lost or owned twice, and the audit is clean
/// under `Fixes::ALL`; then again with every race window widened by a spin.
#[test]
fn compaction_races_isolation_cma_and_frees() {
    stress(None);
    stress(Some(Arc::new(SpinHook { spins: 256 })));
}

fn stress(hook: Option<Arc<dyn RaceHook>>) {
    let z = Arc::new(
        Zone::new(ZoneConfig {
            size: 64 << 20,
            cma_size: 16 << 20,
            fixes: Fixes::ALL,
            pcp_mode: pcp_mode(),
            race_hook: hook,
            ..ZoneConfig::default()
        })
        .unwrap(),
    );
    let nr_pages = z.geometry().nr_pages;
    let pb = z.geometry().pageblock_nr_pages;
    let cma_start = z.geometry().cma_start.0;
    // Fragment: every page held, then every odd one freed.
    let mut held = Vec::new();
    let mut next_tag = 0u64;
    while let Ok(mut p) = z.alloc_movable_owned(Order(0)) {
        fill_pattern(&mut p, next_tag);
        held.push((p, next_tag));
        next_tag += 1;
    }
    held.retain(|(p, _)| p.pfn().0 % 2 == 0);
    z.drain_all_pages();
    z.audit().assert_ok();

    let done = AtomicBool::new(false);
    let cma_served = AtomicU64::new(0);
    let order9_served = AtomicU64::new(0);
    // Every other thread runs at least `min` rounds and until the compactor is done.
    let go_on = |round: u64, min: u64| {
        assert!(round < 1_000_000, "the compactor never finished");
        round < min || !done.load(Ordering::Acquire)
    };
    std::thread::scope(|s| {
        // The compactor: order-9 blocks it keeps (up to 12, then gives back), so the zone's
        // free high-order blocks run out and later requests must compact again.
        let zc = &z;
        let (o9, done) = (&order9_served, &done);
        let compactor = s.spawn(move || {
            let mut blocks = Vec::new();
            for i in 1..=96 {
                match i % 8 {
                    0 if i % 24 == 0 => {
                        zc.compact_memory();
                    }
                    4 => {
                        zc.compact_zone(Order(9)).unwrap();
                    }
                    _ => {
                        let gfp = Gfp::GFP_HIGHUSER_MOVABLE | Gfp::NOWARN;
                        if let Ok(b) = zc.alloc_pages_gfp(Order(9), gfp) {
                            o9.fetch_add(1, Ordering::Relaxed);
                            blocks.push(b);
                        }
                        if blocks.len() == 12 {
                            blocks.clear();
                        }
                    }
                }
            }
            done.store(true, Ordering::Release);
        });
        // The isolator: pageblocks below the CMA area, isolated and given back.
        let zi = &z;
        s.spawn(move || {
            let mut rng = Rng(0x1234_5678);
            let mut round = 0;
            while go_on(round, 200) {
                round += 1;
                let block = Pfn(rng.below(cma_start / pb) * pb);
                if zi.set_migratetype_isolate(block).is_ok() {
                    zi.unset_migratetype_isolate(block, Migratetype::Movable)
                        .unwrap();
                }
            }
        });
        // CMA allocations, checked and released.
        let zm = &z;
        let served = &cma_served;
        s.spawn(move || {
            let cma = zm.cma().unwrap();
            let mut rng = Rng(0x9abc_def0);
            let mut round = 0;
            while go_on(round, 20) {
                round += 1;
                let count = 1 + rng.below(512);
                if let Ok(mut a) = cma.alloc(count, Order(rng.below(6) as u32)) {
                    let byte = round as u8;
                    a.fill(byte);
                    assert!(a.iter().all(|&b| b == byte));
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        // The owner, on this thread: frees (which fragment the compactor's freed blocks
        // again), new blocks, pins and checks.
        let mut rng = Rng(0x0bad_cafe);
        let mut round = 0;
        while go_on(round, 2000) {
            round += 1;
            let i = rng.below(held.len() as u64) as usize;
            // As many frees as allocations: the zone stays about half free.
            match rng.below(3) {
                0 => {
                    let (mut p, tag) = held.swap_remove(i);
                    assert!(pattern_ok(&mut p, tag), "block {tag} lost its bytes");
                }
                1 => {
                    if let Ok(mut p) = z.alloc_movable_owned(Order(0)) {
                        fill_pattern(&mut p, next_tag);
                        held.push((p, next_tag));
                        next_tag += 1;
                    }
                }
                _ => {
                    let (p, tag) = &mut held[i];
                    assert!(pattern_ok(p, *tag), "block {tag} lost its bytes");
                }
            }
        }
        compactor.join().unwrap();
    });
    for (p, tag) in held.iter_mut() {
        assert!(pattern_ok(p, *tag), "block {tag} lost its bytes");
    }
    z.drain_all_pages();
    let r = z.audit();
    r.assert_ok();
    assert_eq!(r.nr_isolate_pageblock, 0);
    assert!(vmstat(&z, "pgmigrate_success") > 0);
    eprintln!(
        "compaction stress: {} order-9 served, {} CMA allocations served, {} pages migrated, \
         compact_stall {} success {} fail {}",
        order9_served.load(Ordering::Relaxed),
        cma_served.load(Ordering::Relaxed),
        vmstat(&z, "pgmigrate_success"),
        vmstat(&z, "compact_stall"),
        vmstat(&z, "compact_success"),
        vmstat(&z, "compact_fail"),
    );
    drop(held);
    z.drain_all_pages();
    let r = z.audit();
    r.assert_ok();
    assert_eq!(r.true_free_pages, nr_pages, "{r}");
}

/// The zone of [`unmovable_pages_block_compaction_and_defer_it`]: unmovable pages every other
/// pfn, every 64th held page in a shrinker's cache (registered when `shrink`).
fn unmovable_every_other_page(shrink: bool) -> (Arc<Zone>, Option<Arc<dyn Shrinker>>) {
    let z = Arc::new(zone64(Fixes::ALL));
    let mut pfns = Vec::new();
    while let Ok(p) = z.alloc_pfn(Order(0), Migratetype::Unmovable) {
        pfns.push(p);
    }
    pfns.sort();
    let (odd, even): (Vec<Pfn>, Vec<Pfn>) = pfns.into_iter().partition(|p| p.0 % 2 == 1);
    for p in odd {
        z.free_pfn(p, Order(0)).unwrap();
    }
    z.drain_all_pages();
    z.vmstat_update();
    let shrinker = shrink.then(|| {
        let s: Arc<dyn Shrinker> = Arc::new(Cache {
            zone: z.clone(),
            pages: Mutex::new(even.iter().copied().step_by(32).collect()),
        });
        z.register_shrinker(s.clone());
        s
    });
    (z, shrinker)
}

/// A THP fault (`GFP_TRANSHUGE`: `__GFP_NORETRY | __GFP_NO_KSWAPD`, 3.17) on that zone: async
/// compaction, one round of reclaim, then its last compaction, which 3.17 keeps asynchronous
/// for THP faults: two stalls, two failures, and no deferral (only a sync failure defers), so
/// the next compaction at order 9 runs. The same request without `__GFP_COMP |
/// __GFP_NOMEMALLOC` (not a THP fault) gets a sync last pass, which defers order 9.
#[test]
fn thp_fault_compacts_asynchronously_and_never_defers() {
    for (gfp, deferred) in [
        (Gfp::GFP_TRANSHUGE, false),
        (
            Gfp::GFP_HIGHUSER_MOVABLE | Gfp::NORETRY | Gfp::NOWARN | Gfp::NO_KSWAPD,
            true,
        ),
    ] {
        let (z, shrinker) = unmovable_every_other_page(true);
        let e = z.alloc_movable_gfp(Order(9), gfp).unwrap_err();
        assert!(
            matches!(e, AllocError::OutOfMemory { quiet: true, .. }),
            "{e}"
        );
        assert_eq!(vmstat(&z, "compact_stall"), 2, "{gfp}");
        assert_eq!(vmstat(&z, "compact_fail"), 2, "{gfp}");
        assert_eq!(
            vmstat(&z, "allocstall"),
            1,
            "{gfp}: __GFP_NORETRY reclaims once"
        );
        assert_eq!(
            z.compact_zone(Order(9)) == Ok(CompactResult::Deferred),
            deferred,
            "{gfp}"
        );
        z.drain_all_pages();
        z.audit().assert_ok();
        assert!(z.unregister_shrinker(&shrinker.unwrap()));
    }
}

/// Reclaim that makes no progress: 3.17 takes the OOM path only for `oom_gfp_allowed`
/// requests (`__GFP_FS` and not `__GFP_NORETRY`). A THP fault goes on to `should_alloc_retry`
/// instead, which stops it (`__GFP_NORETRY`) after its last (async) compaction: two stalls.
/// A `GFP_KERNEL` request of the same order takes the OOM path, which has no last compaction.
#[test]
fn thp_fault_without_reclaim_progress_skips_the_oom_path() {
    for (gfp, stalls) in [
        (Gfp::GFP_TRANSHUGE, 2),
        (Gfp::GFP_HIGHUSER_MOVABLE | Gfp::NOWARN, 1),
    ] {
        let (z, _) = unmovable_every_other_page(false);
        let e = z.alloc_movable_gfp(Order(9), gfp).unwrap_err();
        assert!(matches!(e, AllocError::OutOfMemory { .. }), "{e}");
        assert_eq!(vmstat(&z, "compact_stall"), stalls, "{gfp}");
        assert_ne!(
            z.compact_zone(Order(9)),
            Ok(CompactResult::Deferred),
            "{gfp}"
        );
        z.drain_all_pages();
        z.audit().assert_ok();
    }
}

/// `/proc/vmstat`'s `thp_fault_alloc` / `thp_fault_fallback` (3.17 counts them in
/// `do_huge_pmd_anonymous_page` on `alloc_hugepage_vma`'s outcome): a THP fault served on a
/// fresh zone counts one `thp_fault_alloc`; on the zone with an unmovable page in every
/// pageblock it fails and counts one `thp_fault_fallback`. Order-9 requests with other masks
/// (khugepaged's, a plain movable one) count neither.
#[test]
fn thp_fault_events_in_vmstat() {
    let z = zone64(Fixes::ALL);
    let lines = |z: &Zone| {
        (
            vmstat(z, "thp_fault_alloc"),
            vmstat(z, "thp_fault_fallback"),
        )
    };
    assert_eq!(lines(&z), (0, 0));
    let other = z
        .alloc_movable_gfp(Order(9), Gfp::GFP_HIGHUSER_MOVABLE)
        .unwrap();
    assert_eq!(lines(&z), (0, 0), "not a THP fault");
    let thp = z.alloc_movable_gfp(Order(9), Gfp::GFP_TRANSHUGE).unwrap();
    assert_eq!(lines(&z), (1, 0));
    let nodefrag = z
        .alloc_movable_gfp(Order(9), Gfp::GFP_TRANSHUGE.without(Gfp::WAIT))
        .unwrap();
    assert_eq!(lines(&z), (2, 0), "defrag off is still a THP fault");
    drop((other, thp, nodefrag));

    let (z, _) = unmovable_every_other_page(false);
    z.alloc_movable_gfp(Order(9), Gfp::GFP_TRANSHUGE)
        .unwrap_err();
    assert_eq!(lines(&z), (0, 1));
    z.alloc_movable_gfp(Order(9), Gfp::GFP_HIGHUSER_MOVABLE | Gfp::NOWARN)
        .unwrap_err();
    assert_eq!(lines(&z), (0, 1), "not a THP fault");
    z.drain_all_pages();
    z.audit().assert_ok();
}
