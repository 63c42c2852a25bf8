//! Watermarks make drift matter (issue 14): `NR_FREE_PAGES` decides whether a `Gfp`
//! allocation may take pages, so a counter that is too high lets the zone fall below its true
//! `min`, and one that is too low fails allocations while pages are free (the seed's patch 1:
//! "un-availability of freepage"). Each drift here comes from a real 3.17 path, run
//! sequentially (no race window needed): R3a (an `Isolate` free merging past
//! `pageblock_order` with its counted normal neighbour) and R3b (a normal free merging with its
//! isolated neighbour's uncounted block). `Fixes::ALL` closes both, and the same allocations
//! then decide by the truth.
#![allow(clippy::disallowed_types)] // tests are outside the loom shim rule

use pagealloc::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// 8 MiB: 2048 pages, four pageblocks of 512, two top-order (1024-page) blocks. Watermarks
/// (3.17's formula): min 90, low 112, high 135.
fn zone(fixes: Fixes) -> Zone {
    Zone::new(ZoneConfig {
        size: 8 << 20,
        fixes,
        // No Reserve pageblock in any preset, so the four pageblocks are alike.
        reserve_pageblocks: Some(0),
        ..ZoneConfig::default()
    })
    .unwrap()
}

/// Every page allocated (plain API, no watermarks) as the four pageblock-sized blocks.
fn fill(z: &Zone) -> Vec<Pfn> {
    let blocks: Vec<Pfn> = (0..4)
        .map(|_| z.alloc_pfn(Order(9), Migratetype::Movable).unwrap())
        .collect();
    let mut sorted = blocks.clone();
    sorted.sort();
    assert_eq!(sorted, [Pfn(0), Pfn(512), Pfn(1024), Pfn(1536)]);
    sorted
}

/// Take order-0 pages (plain API) until `left` pages are truly free on allocatable lists.
fn take_until_free(z: &Zone, left: u64) {
    while z.audit().true_free_pages > left {
        z.alloc_pfn(Order(0), Migratetype::Unmovable).unwrap();
        z.drain_all_pages();
    }
}

/// R3a with `fixes`: pageblock 0 free (counted), pageblock 1 isolated then freed, so 3.17
/// merges the two onto the `Isolate` list; the isolation is undone (the merged block's head
/// is outside pageblock 1, so nothing moves back). Then pageblock 2 is freed and order-0 pages
/// taken until 60 pages (below `min`) are truly free.
fn positive_drift(fixes: Fixes) -> Zone {
    let z = zone(fixes);
    fill(&z);
    z.free_pfn(Pfn(0), Order(9)).unwrap();
    z.set_migratetype_isolate(Pfn(512)).unwrap();
    z.free_pfn(Pfn(512), Order(9)).unwrap();
    z.unset_migratetype_isolate(Pfn(512), Migratetype::Movable)
        .unwrap();
    z.free_pfn(Pfn(1024), Order(9)).unwrap();
    take_until_free(&z, 60); // kept allocated for the zone's life
    z
}

#[test]
fn positive_drift_lets_an_allocation_through_below_the_true_min() {
    let z = positive_drift(Fixes::NONE);
    let r = z.audit();
    assert!(r.drift_free >= 512, "3.17 should overcount: {r}");
    assert!(r.true_free_pages < z.geometry().wmark.min, "{r}");
    // NR_FREE_PAGES says there is plenty: GFP_KERNEL takes a page below the true min.
    z.vmstat_update();
    z.alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL)
        .expect("3.17's counter lets this through");

    let z = positive_drift(Fixes::ALL);
    let r = z.audit();
    r.assert_ok();
    assert!(r.true_free_pages < z.geometry().wmark.min, "{r}");
    z.vmstat_update();
    let e = z.alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL).unwrap_err();
    assert!(matches!(e, AllocError::OutOfMemory { .. }), "{e}");
    // The plain API ignores the watermarks: the pages are there.
    z.alloc_pfn(Order(0), Migratetype::Unmovable).unwrap();
}

/// R3b with `fixes`: pageblock 1 freed then isolated (its block moves to the `Isolate` list,
/// uncounted), then pageblock 0 freed: 3.17 merges it with the isolated buddy onto a counted
/// list but counts only its own 512 pages; undoing the isolation moves nothing back (the
/// merged head is in pageblock 0). Then order-0 pages are taken until 600 pages are truly free.
fn negative_drift(fixes: Fixes) -> Zone {
    let z = zone(fixes);
    fill(&z);
    z.free_pfn(Pfn(512), Order(9)).unwrap();
    z.set_migratetype_isolate(Pfn(512)).unwrap();
    z.free_pfn(Pfn(0), Order(9)).unwrap();
    z.unset_migratetype_isolate(Pfn(512), Migratetype::Movable)
        .unwrap();
    take_until_free(&z, 600); // kept allocated for the zone's life
    z
}

#[test]
fn negative_drift_fails_an_allocation_while_pages_are_free() {
    let z = negative_drift(Fixes::NONE);
    let r = z.audit();
    assert!(r.drift_free <= -512, "3.17 should undercount: {r}");
    assert!(r.true_free_pages > z.geometry().wmark.high, "{r}");
    z.vmstat_update();
    // 600 pages free, NR_FREE_PAGES below min: GFP_KERNEL fails ("un-availability").
    let e = z.alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL).unwrap_err();
    assert!(matches!(e, AllocError::OutOfMemory { .. }), "{e}");

    let z = negative_drift(Fixes::ALL);
    z.audit().assert_ok();
    z.vmstat_update();
    z.alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL)
        .expect("600 pages are free and counted");
}

/// A page cache the allocator can reclaim: `pages` it holds, given back on `scan` (it holds
/// its zone weakly: the zone holds the shrinker).
struct Cache {
    zone: std::sync::Weak<Zone>,
    pages: std::sync::Mutex<Vec<Pfn>>,
    scanned: AtomicU64,
}

impl Shrinker for Cache {
    fn count(&self) -> u64 {
        self.pages.lock().unwrap().len() as u64
    }
    fn scan(&self, nr: u64) -> u64 {
        self.scanned.fetch_add(nr, Ordering::Relaxed);
        let mut p = self.pages.lock().unwrap();
        let n = (nr as usize).min(p.len());
        let zone = self.zone.upgrade().expect("the zone calls its shrinkers");
        for pfn in p.drain(..n) {
            zone.free_pfn(pfn, Order(0)).unwrap();
        }
        n as u64
    }
}

/// Direct reclaim: with the zone at its min watermark, GFP_KERNEL reclaims from the shrinker
/// and succeeds; GFP_ATOMIC does not reclaim.
#[test]
fn direct_reclaim_frees_cache_pages_for_a_waiting_allocation() {
    let zs = Arc::new(zone(Fixes::ALL));
    let cache = Arc::new(Cache {
        zone: Arc::downgrade(&zs),
        pages: std::sync::Mutex::new(Vec::new()),
        scanned: AtomicU64::new(0),
    });
    // Fill the zone with cache pages until only 80 (below min) are free.
    while zs.audit().true_free_pages > 80 {
        let p = zs.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
        cache.pages.lock().unwrap().push(p);
        zs.drain_all_pages();
    }
    zs.vmstat_update();
    let before = cache.count();
    let shrinker: Arc<dyn Shrinker> = cache.clone();
    zs.register_shrinker(shrinker.clone());
    // Atomic: half and a quarter below min (34 pages here): served without reclaim.
    let a = zs
        .alloc_pfn_gfp(Order(0), Gfp::GFP_ATOMIC)
        .expect("atomic may dip below min");
    assert!(zs.vmstat().contains("\nallocstall 0\n"));
    assert_eq!(cache.count(), before);
    // GFP_KERNEL: below min, so it reclaims, then succeeds.
    let p = zs
        .alloc_pfn_gfp(Order(0), Gfp::GFP_KERNEL)
        .expect("reclaim makes room");
    assert!(cache.count() < before, "the shrinker gave pages back");
    let vm = zs.vmstat();
    assert!(vm.contains("\nallocstall 1\n"), "{vm}");
    assert!(!vm.contains("\npgsteal_direct_normal 0\n"), "{vm}");
    zs.free_pfn(p, Order(0)).unwrap();
    zs.free_pfn(a, Order(0)).unwrap();
    assert!(zs.unregister_shrinker(&shrinker));
}

/// `min_free_kbytes` sets the watermarks and, under 3.17's rules, the `Reserve` pageblocks
/// (`setup_zone_migrate_reserve`: `min(2, roundup(min, pageblock) / pageblock)`, taken from
/// Movable pageblocks at the bottom and given back when no longer needed); memory offline
/// recomputes both from the managed pages left.
#[test]
fn min_free_kbytes_moves_watermarks_and_reserve_pageblocks() {
    let z = Zone::new(ZoneConfig {
        size: 64 << 20,
        fixes: Fixes::NONE,
        ..ZoneConfig::default()
    })
    .unwrap();
    let reserve_blocks = |z: &Zone| {
        (0..z.geometry().nr_pageblocks)
            .filter(|b| {
                z.pageblock_migratetype(Pfn(b * z.geometry().pageblock_nr_pages))
                    == Some(Migratetype::Reserve)
            })
            .count() as u64
    };
    // 64 MiB: min_free_kbytes 1024 (256 pages): one Reserve pageblock.
    assert_eq!(z.min_free_kbytes(), 1024);
    assert_eq!((z.nr_migrate_reserve_block(), reserve_blocks(&z)), (1, 1));
    z.set_min_free_kbytes(8192); // 2048 pages: capped at two Reserve pageblocks
    assert_eq!(z.watermarks().min, 2048);
    assert_eq!(z.watermarks().low, 2560);
    assert_eq!((z.nr_migrate_reserve_block(), reserve_blocks(&z)), (2, 2));
    z.audit().assert_ok();
    z.set_min_free_kbytes(0); // no Reserve pageblock at all
    assert_eq!((z.nr_migrate_reserve_block(), reserve_blocks(&z)), (0, 0));
    z.audit().assert_ok();
    // Offline half the zone: init_per_zone_wmark_min recomputes from the managed pages left
    // (the user's 0 is smaller, so the formula wins).
    z.offline_pages(Pfn(8192), Pfn(16384)).unwrap();
    assert!(
        z.min_free_kbytes() >= 128 && z.min_free_kbytes() < 1024,
        "{}",
        z.min_free_kbytes()
    );
    assert_eq!((z.nr_migrate_reserve_block(), reserve_blocks(&z)), (1, 1));
    z.audit().assert_ok();
    // The presets from 4.4 on have no Reserve pageblocks, whatever the watermarks.
    let z = zone(Fixes::ALL);
    z.set_min_free_kbytes(8192);
    assert_eq!((z.nr_migrate_reserve_block(), reserve_blocks(&z)), (0, 0));
}

/// Movable memory through the watermarks: `alloc_movable_gfp` applies them (and refuses a
/// mask that is not movable), and its blocks stay migratable.
#[test]
fn movable_allocations_go_through_the_watermarks_and_stay_migratable() {
    let z = zone(Fixes::ALL);
    let e = z.alloc_movable_gfp(Order(0), Gfp::GFP_KERNEL).unwrap_err();
    assert_eq!(e, AllocError::BadMigratetype(Migratetype::Unmovable));
    let m = z
        .alloc_movable_gfp(Order(0), Gfp::GFP_HIGHUSER_MOVABLE)
        .unwrap();
    assert_eq!(z.nr_movable(), 1);
    drop(m);
    take_until_free(&z, 60); // below min
    z.vmstat_update();
    assert!(matches!(
        z.alloc_movable_gfp(Order(0), Gfp::GFP_HIGHUSER_MOVABLE),
        Err(AllocError::OutOfMemory { .. })
    ));
    z.alloc_movable(Order(0))
        .expect("the plain API ignores the watermarks");
}
