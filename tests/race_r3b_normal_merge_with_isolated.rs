//! R3b: freeing into a normal pageblock merges, at the top order, with the free block of the
//! isolated neighbour: the isolated pages land on the CMA list, allocatable and uncounted
//! (−2 here, −512 on x86-64). The seed's patches do not fix it; the 2016 fix (d9dddbf55667)
//! does.
mod common;
use common::*;
use pagealloc::*;

/// Top block {8..12} = Pa {8, 9} (CMA) and Pb {10, 11} (CMA, then isolated with its order-1
/// block free). The order-1 block at 8 is freed into Pa.
fn run(fixes: Fixes) -> AuditReport {
    let zone = tiny_cma(fixes, None);
    fill(&zone, Order(1));
    free_now(&zone, 10, 1);
    zone.set_migratetype_isolate(Pfn(10)).unwrap();
    free_now(&zone, 8, 1);
    zone.audit()
}

#[test]
fn r3b_3_17_and_the_seed_patches_merge_isolated_pages_onto_the_cma_list() {
    for fixes in [Fixes::NONE, Fixes::SEED, Fixes::V3_18] {
        let r = run(fixes);
        assert_eq!((r.drift_free, r.drift_cma), (-2, -2), "{fixes}: {r}");
        let m = r.misplaced_blocks[0];
        assert_eq!(
            (m.pfn, m.order, m.list, m.pageblock),
            (Pfn(8), Order(2), Migratetype::Cma, Migratetype::Isolate)
        );
    }
}

#[test]
fn r3b_fixed_by_the_2016_merge_check() {
    run(Fixes::ALL).assert_ok();
    run(Fixes::V3_18 | Fixes::NO_ISOLATE_MERGE).assert_ok();
    run(Fixes::NO_ISOLATE_MERGE).assert_ok();
}
