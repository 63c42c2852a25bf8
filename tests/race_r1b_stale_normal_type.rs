//! R1b: a free reads its pageblock's type as CMA without the zone lock; the block is isolated
//! before the free takes the lock; the freed block merges with Isolate-list buddies and lands
//! on the CMA list inside an isolated pageblock, counted only for itself.
mod common;
use common::*;
use pagealloc::*;

/// Pageblock {16..20} (CMA): 16 and 18 are order-1 blocks; 18 is free. Thread A frees 16 and
/// parks after its lockless type read (CMA); the pageblock is isolated (18 moves to the
/// Isolate list, uncounted); A goes on.
fn run(fixes: Fixes) -> (AuditReport, Zone) {
    let gate = Gate::new(RaceWindow::FreeBeforeZoneLock, 16);
    let zone = small_cma(fixes, gate.hook());
    fill(&zone, Order(1));
    free_now(&zone, 18, 1);
    race(
        &gate,
        || zone.free_pfn(Pfn(16), Order(1)).unwrap(),
        || zone.set_migratetype_isolate(Pfn(16)).unwrap(),
    );
    (zone.audit(), zone)
}

#[test]
fn r1b_3_17_puts_an_allocatable_block_in_an_isolated_pageblock() {
    let (r, zone) = run(Fixes::NONE);
    // The order-2 result is on the CMA list (4 pages counted by F*) but only 16's 2 pages
    // were added to the counters.
    assert_eq!((r.drift_free, r.drift_cma), (-2, -2), "{r}");
    assert_eq!(r.misplaced_blocks.len(), 1, "{r}");
    let m = r.misplaced_blocks[0];
    assert_eq!(
        (m.pfn, m.order, m.list, m.pageblock),
        (Pfn(16), Order(2), Migratetype::Cma, Migratetype::Isolate)
    );
    // 3.17's un-isolation then adds the already-counted block again.
    zone.unset_migratetype_isolate(Pfn(16), Migratetype::Cma)
        .unwrap();
    let r = zone.audit();
    assert_eq!((r.drift_free, r.drift_cma), (2, 2), "{r}");
}

#[test]
fn r1b_fixed_by_patch_1() {
    for fixes in [
        Fixes::SEED,
        Fixes::V3_18,
        Fixes::ALL,
        Fixes::RECHECK_FREE_ONE_PAGE,
    ] {
        let (r, zone) = run(fixes);
        r.assert_ok();
        zone.unset_migratetype_isolate(Pfn(16), Migratetype::Cma)
            .unwrap();
        zone.audit().assert_ok();
    }
}
