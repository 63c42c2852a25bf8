//! R3c: isolating one pageblock of a top-order pair while a free top-order block straddles
//! both. `move_freepages_block` sees only heads inside the pageblock, so the straddling block
//! either stays on its counted list although half of it is now isolated (head in the other
//! half) or moves entirely to the Isolate list although half of it is not isolated (head in
//! this half). Not a drift (the counters follow the lists) but a misplacement, in 3.17 and
//! still in 3.18 + 2016; the kernel's callers only isolate top-order aligned ranges, and the
//! 2024 `move_freepages_block_isolate` splits such blocks.
mod common;
use common::*;
use pagealloc::*;

#[test]
fn r3c_isolating_the_upper_half_leaves_the_block_allocatable() {
    for fixes in [Fixes::NONE, Fixes::ALL] {
        let zone = tiny_cma(fixes, None);
        // Every top block is free (order 2 = pageblocks {8,9} + {10,11}); isolate {10,11}.
        zone.set_migratetype_isolate(Pfn(10)).unwrap();
        let r = zone.audit();
        assert_eq!((r.drift_free, r.drift_cma), (0, 0), "{r}");
        let m = r.misplaced_blocks[0];
        assert_eq!(
            (m.pfn, m.order, m.list, m.pageblock),
            (Pfn(8), Order(2), Migratetype::Cma, Migratetype::Isolate)
        );
        zone.unset_migratetype_isolate(Pfn(10), Migratetype::Cma)
            .unwrap();
        zone.audit().assert_ok();
    }
}

#[test]
fn r3c_isolating_the_lower_half_takes_the_whole_block() {
    for fixes in [Fixes::NONE, Fixes::ALL] {
        let zone = tiny_cma(fixes, None);
        zone.set_migratetype_isolate(Pfn(8)).unwrap();
        let r = zone.audit();
        assert_eq!((r.drift_free, r.drift_cma), (0, 0), "{r}");
        let m = r.misplaced_blocks[0];
        assert_eq!(
            (m.pfn, m.order, m.list, m.pageblock),
            (Pfn(8), Order(2), Migratetype::Isolate, Migratetype::Cma)
        );
        zone.unset_migratetype_isolate(Pfn(8), Migratetype::Cma)
            .unwrap();
        zone.audit().assert_ok();
    }
}

#[test]
fn r3c_top_aligned_isolation_is_clean() {
    for fixes in [Fixes::NONE, Fixes::ALL] {
        let zone = tiny_cma(fixes, None);
        zone.start_isolate_page_range(Pfn(8), Pfn(12), Migratetype::Cma)
            .unwrap();
        zone.audit().assert_ok();
        zone.test_pages_isolated(Pfn(8), Pfn(12)).unwrap();
        zone.undo_isolate_page_range(Pfn(8), Pfn(12), Migratetype::Cma)
            .unwrap();
        zone.audit().assert_ok();
    }
}
