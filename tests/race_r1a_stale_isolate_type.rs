//! R1a: a free reads its pageblock's type as Isolate without the zone lock; the block is
//! un-isolated before the free takes the lock; the page (and the buddies it merges with, taken
//! off the CMA lists uncounted) lands on the Isolate list of a CMA pageblock.
//!
//! The `SEED` expectations follow the v3 postings (26 Aug 2014). Patches 1/4 and 3/4 decide the
//! count inside the recheck branch only:
//!
//! ```text
//! if (unlikely(has_isolate_pageblock(zone))) {
//!         migratetype = get_pfnblock_migratetype(page, pfn);
//!         if (is_migrate_isolate(migratetype))
//!                 goto skip_counting;
//! }
//! __mod_zone_freepage_state(zone, 1 << order, migratetype);
//! ```
//!
//! and 4/4 sets `max_order = pageblock_order + 1` inside the same `is_migrate_isolate` branch.
//! So once the un-isolation has brought `nr_isolate_pageblock` back to 0, a stale `Isolate`
//! free is counted (`NR_FREE_PAGES` only: the type is not CMA), goes to the Isolate list, and
//! merges up to `MAX_ORDER - 1`.
mod common;
use common::*;
use pagealloc::*;

/// What else the zone holds when the race runs.
#[derive(Clone, Copy)]
enum Setup {
    /// Nothing else: pageblock {10, 11} is allocated.
    Plain,
    /// Pageblock {14, 15} is isolated throughout (14 free on its Isolate list), so
    /// `nr_isolate_pageblock` stays above 0 after {8, 9} is un-isolated.
    OtherIsolated,
    /// Pageblock {10, 11} (CMA) is one free order-1 block on the CMA list: the buddy of
    /// {8, 9} at `pageblock_order`.
    NeighbourFree,
}

/// Pageblock {8, 9} (CMA) is isolated; 8 is allocated, 9 free on the Isolate list. Thread A
/// frees 8 and parks after its lockless type read (Isolate); the block is un-isolated; A goes
/// on.
fn run(fixes: Fixes, setup: Setup) -> (AuditReport, Zone) {
    let gate = Gate::new(RaceWindow::FreeBeforeZoneLock, 8);
    let zone = tiny_cma(fixes, gate.hook());
    fill(&zone, Order(0));
    free_now(&zone, 9, 0);
    match setup {
        Setup::Plain => {}
        Setup::OtherIsolated => {
            free_now(&zone, 14, 0);
            zone.set_migratetype_isolate(Pfn(14)).unwrap();
        }
        Setup::NeighbourFree => {
            free_now(&zone, 10, 0);
            free_now(&zone, 11, 0);
        }
    }
    zone.set_migratetype_isolate(Pfn(8)).unwrap();
    zone.audit().assert_ok();
    race(
        &gate,
        || zone.free_pfn(Pfn(8), Order(0)).unwrap(),
        || {
            zone.unset_migratetype_isolate(Pfn(8), Migratetype::Cma)
                .unwrap()
        },
    );
    (zone.audit(), zone)
}

/// Isolate pageblock {8, 9} again and undo it: `move_freepages_block` counts the stranded
/// block out and back in by the pageblock's type (CMA), as though it had been counted.
fn isolation_cycle(zone: &Zone) -> AuditReport {
    zone.set_migratetype_isolate(Pfn(8)).unwrap();
    zone.unset_migratetype_isolate(Pfn(8), Migratetype::Cma)
        .unwrap();
    zone.audit()
}

/// The one misplaced block: `(pfn, order)` on the Isolate list of CMA pageblocks.
fn assert_stranded(r: &AuditReport, pfn: u64, order: u32) {
    assert_eq!(r.misplaced_blocks.len(), 1, "{r}");
    let m = r.misplaced_blocks[0];
    assert_eq!(
        (m.pfn, m.order, m.list, m.pageblock),
        (
            Pfn(pfn),
            Order(order),
            Migratetype::Isolate,
            Migratetype::Cma
        ),
        "{r}"
    );
}

#[test]
fn r1a_3_17_strands_the_block_on_the_isolate_list() {
    let (r, zone) = run(Fixes::NONE, Setup::Plain);
    // 9 (counted on the CMA list after un-isolation) was merged into the Isolate list; 8 was
    // not counted (3.17 skips an Isolate-typed free).
    assert_eq!((r.drift_free, r.drift_cma), (1, 1), "{r}");
    assert_stranded(&r, 8, 1);
    // The next isolation takes both pages out of both counters: 8 was never in them.
    let r = isolation_cycle(&zone);
    assert_eq!((r.drift_free, r.drift_cma), (-1, -1), "{r}");
    assert!(r.misplaced_blocks.is_empty(), "{r}");
}

#[test]
fn r1a_seed_v3_counts_the_stale_isolate_free_once_no_block_is_isolated() {
    // v3's recheck runs only while nr_isolate_pageblock > 0, and the un-isolation made it 0:
    // the free keeps its stale Isolate type, and v3 counts it anyway
    // (`__mod_zone_freepage_state(zone, 1, MIGRATE_ISOLATE)`: NR_FREE_PAGES += 1, CMA not).
    // 8 (+1/0) and the merged 9 (+1/+1) are counted while on the Isolate list. Patch 1 as
    // posted does this by itself: the gate is its code; patch 3 only moves it.
    for fixes in [Fixes::SEED, Fixes::RECHECK_FREE_ONE_PAGE] {
        let (r, zone) = run(fixes, Setup::Plain);
        assert_eq!((r.drift_free, r.drift_cma), (2, 1), "{fixes:?}: {r}");
        assert_stranded(&r, 8, 1);
        // After the next isolation cycle NR_FREE_PAGES is exact again, but 8 was counted as
        // Isolate, not CMA, and is taken out of NR_FREE_CMA_PAGES: -1 there for good (3.17:
        // -1/-1).
        let r = isolation_cycle(&zone);
        assert_eq!((r.drift_free, r.drift_cma), (0, -1), "{fixes:?}: {r}");
        assert!(r.misplaced_blocks.is_empty(), "{r}");
    }
}

#[test]
fn r1a_seed_v3_merges_past_pageblock_order_once_no_block_is_isolated() {
    // v3 4/4 caps the merge only inside the recheck branch, so the stale Isolate free merges
    // 8+9 and then the neighbour pageblock's {10, 11} into one order-2 block on the Isolate
    // list. 3.17: 9, 10, 11 counted while on the Isolate list (+3/+3); v3 also counts 8 (+1/0).
    let (r, _) = run(Fixes::NONE, Setup::NeighbourFree);
    assert_eq!((r.drift_free, r.drift_cma), (3, 3), "{r}");
    assert_stranded(&r, 8, 2);
    let (r, _) = run(Fixes::SEED, Setup::NeighbourFree);
    assert_eq!((r.drift_free, r.drift_cma), (4, 3), "{r}");
    assert_stranded(&r, 8, 2);
}

#[test]
fn r1a_seed_v3_catches_it_while_another_block_is_isolated() {
    run(Fixes::SEED, Setup::OtherIsolated).0.assert_ok();
}

#[test]
fn r1a_fixed_by_the_merged_patch_1() {
    for setup in [Setup::Plain, Setup::NeighbourFree] {
        for fixes in [
            Fixes::V3_18,
            Fixes::RECHECK_FREE_ONE_PAGE | Fixes::RECHECK_ISOLATE_MT,
            Fixes::ALL,
        ] {
            let (r, zone) = run(fixes, setup);
            r.assert_ok();
            isolation_cycle(&zone).assert_ok();
        }
    }
}
