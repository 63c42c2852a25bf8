//! R3c: a free top-order block straddles the two pageblocks of a top-order pair and only one
//! of them changes isolation state. `move_freepages_block` sees only heads inside its
//! pageblock, so the straddling block stays on a counted list although half of it is isolated
//! (or moves to the Isolate list although half of it is not): a misplacement. It becomes a
//! double count when that half is later taken off the lists by `__isolate_free_page`, which
//! (3.18) skips the accounting because the pageblock says Isolate. 3.18 + 2016 (`V4_6`) still
//! has it; the 2024 hygiene (`ISOLATE_HYGIENE`: split straddling blocks on isolation changes,
//! account by the list) closes it.
mod common;
use common::*;
use pagealloc::*;

/// One top block of 4 pages: Pa = {0, 1}, Pb = {2, 3}, both CMA.
fn one_top_block(fixes: Fixes, hook: Option<std::sync::Arc<dyn RaceHook>>) -> Zone {
    Zone::new(ZoneConfig {
        cma_size: 4 * PAGE_SIZE,
        fixes,
        race_hook: hook,
        ..ZoneConfig::tiny(4)
    })
    .unwrap()
}

#[test]
fn r3c_isolating_one_half_misplaces_the_straddling_block() {
    for fixes in [Fixes::NONE, Fixes::V4_6] {
        let zone = tiny_cma(fixes, None);
        // Isolate the upper half {10, 11} of the free top block {8..12}: it stays on the CMA
        // list (counted, allocatable).
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
        // Isolate the lower half {8, 9}: the whole block moves to the Isolate list.
        zone.set_migratetype_isolate(Pfn(8)).unwrap();
        let m = zone.audit().misplaced_blocks[0];
        assert_eq!(
            (m.pfn, m.order, m.list, m.pageblock),
            (Pfn(8), Order(2), Migratetype::Isolate, Migratetype::Cma)
        );
        zone.unset_migratetype_isolate(Pfn(8), Migratetype::Cma)
            .unwrap();
        zone.audit().assert_ok();
    }
    // 2024: the block is split at the pageblock boundary.
    let zone = tiny_cma(Fixes::ALL, None);
    zone.set_migratetype_isolate(Pfn(10)).unwrap();
    zone.audit().assert_ok();
    zone.unset_migratetype_isolate(Pfn(10), Migratetype::Cma)
        .unwrap();
    let r = zone.audit();
    r.assert_ok();
    assert_eq!(
        r.free_blocks[2][Migratetype::Cma.idx()],
        2,
        "the halves merged back: {r}"
    );
}

/// Isolate Pb alone; an allocation splits the straddling block, leaving Pb's half counted on
/// the CMA list inside isolated Pb; un-isolating Pb takes that half off uncounted and frees it
/// again, counted: +2 (+512 on x86-64).
fn isolate_upper_half_then_allocate(fixes: Fixes) -> AuditReport {
    let zone = one_top_block(fixes, None);
    zone.start_isolate_page_range(Pfn(2), Pfn(4), Migratetype::Cma)
        .unwrap();
    let a = zone.alloc_pfn(Order(1), Migratetype::Movable).unwrap();
    assert_eq!(a, Pfn(0));
    zone.undo_isolate_page_range(Pfn(2), Pfn(4), Migratetype::Cma)
        .unwrap();
    zone.free_pfn(a, Order(1)).unwrap();
    zone.drain_all_pages();
    zone.audit()
}

#[test]
fn r3c_double_count_survives_v3_18_and_2016() {
    for fixes in [Fixes::V3_18, Fixes::V4_6] {
        let r = isolate_upper_half_then_allocate(fixes);
        assert_eq!((r.drift_free, r.drift_cma), (2, 2), "{fixes}: {r}");
    }
    isolate_upper_half_then_allocate(Fixes::ALL).assert_ok();
}

/// The whole top block isolated, then undone pageblock by pageblock (the kernel's order); an
/// allocation between the two steps splits the block the first step freed over both halves.
fn undo_with_an_allocation_in_between(fixes: Fixes) -> AuditReport {
    let gate = Gate::new(RaceWindow::IsolateBetweenPageblocks, 2);
    let zone = one_top_block(fixes, gate.hook());
    // Isolate both pageblocks (one at a time, without passing the gated window).
    zone.set_migratetype_isolate(Pfn(0)).unwrap();
    zone.set_migratetype_isolate(Pfn(2)).unwrap();
    let mut a = None;
    race(
        &gate,
        || {
            zone.undo_isolate_page_range(Pfn(0), Pfn(4), Migratetype::Cma)
                .unwrap()
        },
        || a = Some(zone.alloc_pfn(Order(1), Migratetype::Movable).unwrap()),
    );
    zone.free_pfn(a.unwrap(), Order(1)).unwrap();
    zone.drain_all_pages();
    zone.audit()
}

#[test]
fn r3c_double_count_on_undo_in_kernel_order() {
    for fixes in [Fixes::NONE, Fixes::V3_18, Fixes::V4_6] {
        let r = undo_with_an_allocation_in_between(fixes);
        assert_eq!((r.drift_free, r.drift_cma), (2, 2), "{fixes}: {r}");
    }
    undo_with_an_allocation_in_between(Fixes::ALL).assert_ok();
}

#[test]
fn r3c_top_aligned_isolation_without_interference_is_clean() {
    for fixes in [Fixes::NONE, Fixes::V4_6, Fixes::ALL] {
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
