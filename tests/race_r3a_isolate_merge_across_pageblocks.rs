//! R3a: freeing into an isolated pageblock merges, at the top order, with the free block of
//! the non-isolated neighbour pageblock: the neighbour's counted pages vanish onto the Isolate
//! list (+2 here, +512 on x86-64), permanently after un-isolation.
mod common;
use common::*;
use pagealloc::*;

/// Top block {8..12} = pageblocks Pa {8, 9} and Pb {10, 11}, both CMA. Pb is free as one
/// order-1 block; Pa is isolated, then 8 and 9 are freed into it.
fn run(fixes: Fixes) -> (AuditReport, Zone) {
    let zone = tiny_cma(fixes, None);
    fill(&zone, Order(0));
    free_now(&zone, 10, 0);
    free_now(&zone, 11, 0);
    zone.set_migratetype_isolate(Pfn(8)).unwrap();
    free_now(&zone, 8, 0);
    free_now(&zone, 9, 0);
    (zone.audit(), zone)
}

#[test]
fn r3a_3_17_merges_the_neighbour_onto_the_isolate_list() {
    let (r, zone) = run(Fixes::NONE);
    assert_eq!((r.drift_free, r.drift_cma), (2, 2), "{r}");
    let m = r.misplaced_blocks[0];
    assert_eq!(
        (m.pfn, m.order, m.list, m.pageblock),
        (Pfn(8), Order(2), Migratetype::Isolate, Migratetype::Cma)
    );
    zone.undo_isolate_page_range(Pfn(8), Pfn(10), Migratetype::Cma)
        .unwrap();
    let r = zone.audit();
    // The drift survives the un-isolation.
    assert_eq!((r.drift_free, r.drift_cma), (2, 2), "{r}");
    assert!(r.misplaced_blocks.is_empty(), "{r}");
}

#[test]
fn r3a_fixed_by_patch_4_merge_limit() {
    let (r, zone) = run(Fixes::SEED);
    r.assert_ok();
    zone.undo_isolate_page_range(Pfn(8), Pfn(10), Migratetype::Cma)
        .unwrap();
    let r = zone.audit();
    r.assert_ok();
    // v3 leaves the two order-1 buddies unmerged after un-isolation.
    assert_eq!(r.free_blocks[1][Migratetype::Cma.idx()], 2, "{r}");
}

#[test]
fn r3a_v3_18_re_frees_on_unisolation_so_buddies_merge() {
    for fixes in [Fixes::V3_18, Fixes::ALL] {
        let (r, zone) = run(fixes);
        r.assert_ok();
        zone.undo_isolate_page_range(Pfn(8), Pfn(10), Migratetype::Cma)
            .unwrap();
        let r = zone.audit();
        r.assert_ok();
        assert_eq!(r.free_blocks[1][Migratetype::Cma.idx()], 0, "{r}");
        assert_eq!(r.free_blocks[2][Migratetype::Cma.idx()], 1, "{r}");
    }
}
