//! R1a: a free reads its pageblock's type as Isolate without the zone lock; the block is
//! un-isolated before the free takes the lock; the page (and the buddies it merges with, taken
//! off the CMA lists uncounted) lands on the Isolate list of a CMA pageblock.
mod common;
use common::*;
use pagealloc::*;

/// Pageblock {8, 9} (CMA) is isolated; 8 is allocated, 9 free on the Isolate list. Thread A
/// frees 8 and parks after its lockless type read (Isolate); the block is un-isolated; A goes
/// on. `other_isolated` keeps an unrelated pageblock isolated meanwhile.
fn run(fixes: Fixes, other_isolated: bool) -> AuditReport {
    let gate = Gate::new(RaceWindow::FreeBeforeZoneLock, 8);
    let zone = tiny_cma(fixes, gate.hook());
    fill(&zone, Order(0));
    free_now(&zone, 9, 0);
    if other_isolated {
        free_now(&zone, 14, 0);
        zone.set_migratetype_isolate(Pfn(14)).unwrap();
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
    zone.audit()
}

#[test]
fn r1a_3_17_strands_the_block_on_the_isolate_list() {
    let r = run(Fixes::NONE, false);
    // 9 (counted on the CMA list after un-isolation) was merged into the Isolate list.
    assert_eq!((r.drift_free, r.drift_cma), (1, 1), "{r}");
    assert_eq!(r.misplaced_blocks.len(), 1, "{r}");
    let m = r.misplaced_blocks[0];
    assert_eq!(
        (m.pfn, m.order, m.list, m.pageblock),
        (Pfn(8), Order(1), Migratetype::Isolate, Migratetype::Cma)
    );
}

#[test]
fn r1a_seed_v3_misses_it_once_no_block_is_isolated() {
    // v3's recheck only runs while nr_isolate_pageblock > 0; the un-isolation made it 0.
    let r = run(Fixes::SEED, false);
    assert_eq!((r.drift_free, r.drift_cma), (1, 1), "{r}");
}

#[test]
fn r1a_seed_v3_catches_it_while_another_block_is_isolated() {
    run(Fixes::SEED, true).assert_ok();
}

#[test]
fn r1a_fixed_by_the_merged_patch_1() {
    run(Fixes::V3_18, false).assert_ok();
    run(
        Fixes::RECHECK_FREE_ONE_PAGE | Fixes::RECHECK_ISOLATE_MT,
        false,
    )
    .assert_ok();
    run(Fixes::ALL, false).assert_ok();
}
