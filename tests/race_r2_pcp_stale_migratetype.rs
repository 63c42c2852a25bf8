//! R2: a page sits on a thread's pcp with cached type CMA; its pageblock is isolated and
//! `drain_all_pages` frees it with the cached type: onto the CMA list inside the isolated
//! pageblock, merged with Isolate-list buddies, and uncounted.
mod common;
use common::*;
use pagealloc::*;
use std::sync::mpsc;

/// Pageblock {8, 9} (CMA): 9 free, 8 freed by a worker thread into its own pcp (cached CMA).
/// The worker stays alive, parked on a channel, while this thread isolates the pageblock,
/// which drains the worker's pcp from here.
fn run(fixes: Fixes) -> AuditReport {
    let zone = tiny_cma(fixes, None);
    fill(&zone, Order(0));
    free_now(&zone, 9, 0);
    let (freed_tx, freed_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let zone = &zone;
        s.spawn(move || {
            zone.free_pfn(Pfn(8), Order(0)).unwrap();
            freed_tx.send(()).unwrap();
            done_rx.recv().unwrap();
        });
        freed_rx.recv().unwrap();
        assert_eq!(zone.audit().pcp_pages, 1);
        zone.set_migratetype_isolate(Pfn(8)).unwrap();
        done_tx.send(()).unwrap();
    });
    zone.audit()
}

#[test]
fn r2_3_17_drains_into_the_cma_list_of_an_isolated_block() {
    let r = run(Fixes::NONE);
    assert_r2_misplacement(&r);
}

#[test]
fn r2_fixed_by_patch_2() {
    for fixes in [
        Fixes::RECHECK_PCP_BULK,
        Fixes::SEED,
        Fixes::V3_18,
        Fixes::ALL,
    ] {
        run(fixes).assert_ok();
    }
}

/// The variant where the page enters the pcp after the drain: the free read CMA before the
/// isolation, parks, and adds the page to its pcp once the isolation (and its drain) is over;
/// the next drain (the freeing thread's exit per-thread, a `drain_all_pages` per-CPU) frees it
/// with the stale type.
fn run_after_drain(fixes: Fixes) -> AuditReport {
    let gate = Gate::new(RaceWindow::FreeBeforePcpAdd, 8);
    let zone = tiny_cma(fixes, gate.hook());
    fill(&zone, Order(0));
    free_now(&zone, 9, 0);
    race(
        &gate,
        || zone.free_pfn(Pfn(8), Order(0)).unwrap(),
        || zone.set_migratetype_isolate(Pfn(8)).unwrap(),
    );
    // The next drain frees the page by its stale type: per-thread, the freeing thread's exit
    // already drained its pcp (this drain finds it empty); per-CPU, the page waits on its
    // CPU's pcp for a drain "IPI".
    zone.drain_all_pages();
    zone.audit()
}

#[test]
fn r2_page_added_after_the_drain() {
    let r = run_after_drain(Fixes::NONE);
    assert_eq!((r.drift_free, r.drift_cma), (-2, -2), "{r}");
    assert_eq!(r.misplaced_blocks.len(), 1, "{r}");
    run_after_drain(Fixes::V3_18).assert_ok();
}
