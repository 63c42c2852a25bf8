//! `Zone::audit_chunked` while the zone changes between its chunks: a gate parks the audit
//! at `RaceWindow::AuditBetweenChunks` (every lock dropped) and the test changes the zone
//! there, so the interleaving is pinned, not hoped for.
mod common;
use common::*;
use pagealloc::*;
use std::num::NonZeroU64;

/// One top-order block (4 pages) per chunk of the 16-page test zone.
const CHUNK: NonZeroU64 = NonZeroU64::new(4).unwrap();

/// An allocation between the first and the second chunk: the chunks still check out and
/// conservation holds, but the counters are not compared with sums gathered before and after
/// the change (they would disagree by the pages the allocation took from the audited chunk).
#[test]
fn allocation_between_chunks_is_no_false_drift() {
    let gate = Gate::new(RaceWindow::AuditBetweenChunks, 4);
    let zone = tiny_cma(Fixes::ALL, gate.hook());
    // Take everything but the first chunk's block, so the allocation below comes from the
    // chunk already audited.
    let rest: Vec<Pfn> = fill(&zone, Order(2))
        .into_iter()
        .filter(|p| p.0 != 0)
        .collect();
    zone.free_pfn(Pfn(0), Order(2)).unwrap();
    let mut report = None;
    let mut taken = None;
    race(
        &gate,
        || report = Some(zone.audit_chunked(CHUNK)),
        || taken = Some(zone.alloc_pfn(Order(2), Migratetype::Movable).unwrap()),
    );
    let r = report.unwrap();
    assert_eq!(taken, Some(Pfn(0)));
    let c = r.chunked.unwrap();
    assert_eq!(c.chunks, 4);
    assert!(
        !c.whole_zone_checked,
        "the zone changed between chunks: {r}"
    );
    assert!(r.is_ok() && r.conservation_ok(), "{r}");
    // The sums say block 0 is free (it was when its chunk was checked); the counter, read
    // in the last chunk, says it is not: comparing them would be a false drift of 4.
    assert_eq!(r.true_free_pages, 4);
    assert_eq!(r.nr_free_pages, 0);
    // Once nothing moves, the chunked audit compares everything again.
    for p in rest.into_iter().chain(taken) {
        zone.free_pfn(p, Order(2)).unwrap();
    }
    let after = zone.audit_chunked(CHUNK);
    assert!(after.chunked.unwrap().whole_zone_checked);
    after.assert_ok();
    assert_eq!(after.true_free_pages, 16);
}

/// On a quiescent zone the chunked audit reports what the one-hold audit does.
#[test]
fn quiescent_chunked_audit_equals_the_full_one() {
    let zone = tiny_cma(Fixes::ALL, None);
    let full = zone.audit();
    let chunked = zone.audit_chunked(CHUNK);
    full.assert_ok();
    chunked.assert_ok();
    assert_eq!(full.to_string(), chunked.to_string());
    assert_eq!(full.free_blocks, chunked.free_blocks);
}
