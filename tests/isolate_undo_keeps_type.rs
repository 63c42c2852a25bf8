//! A failed isolation undoes the pageblocks it already isolated with the caller's type: 3.17
//! through 2024 turn a CMA pageblock Movable that way (memory offline passes Movable); then a
//! CMA block can merge with it onto the CMA list and `NR_FREE_CMA_PAGES` drifts unless 2022's
//! merge rule stops it. 2025 keeps the type across isolation (`ISOLATE_KEEPS_TYPE`).
mod common;
use common::*;
use pagealloc::*;

/// Top block {12..16} of the CMA area: isolate its upper pageblock {14, 15}, then try to
/// offline the whole top block (isolating {12, 13} works, {14, 15} is already isolated: the
/// offline fails and undoes {12, 13} as Movable), then un-isolate {14, 15} as CMA.
/// The audit is the one-hold `audit()`; `run_chunked` checks that `audit_chunked` finds the
/// same.
fn run(fixes: Fixes) -> (Migratetype, AuditReport) {
    let (retyped, full, chunked) = run_both(fixes);
    assert_eq!(full.is_ok(), chunked.is_ok(), "{fixes}: {full} / {chunked}");
    assert_eq!(full.to_string(), chunked.to_string(), "{fixes}");
    (retyped, full)
}

fn run_both(fixes: Fixes) -> (Migratetype, AuditReport, AuditReport) {
    let zone = tiny_cma(fixes, None);
    zone.set_migratetype_isolate(Pfn(14)).unwrap();
    assert_eq!(
        zone.offline_pages(Pfn(12), Pfn(16)),
        Err(IsolateError::AlreadyIsolated(Pfn(14)))
    );
    let retyped = zone.pageblock_migratetype(Pfn(12)).unwrap();
    zone.unset_migratetype_isolate(Pfn(14), Migratetype::Cma)
        .unwrap();
    zone.drain_all_pages();
    let chunk = std::num::NonZeroU64::new(4).unwrap();
    (retyped, zone.audit(), zone.audit_chunked(chunk))
}

#[test]
fn undo_with_the_callers_type_loses_cma_and_merges_across_types() {
    for fixes in [Fixes::V3_18, Fixes::V4_6] {
        let (retyped, r) = run(fixes);
        assert_eq!(retyped, Migratetype::Movable, "{fixes}");
        assert!(!r.is_ok(), "{fixes}: {r}");
    }
}

#[test]
fn fixed_by_keeping_the_type_or_by_the_2022_merge_rule() {
    let (retyped, r) = run(Fixes::ALL);
    assert_eq!(retyped, Migratetype::Cma);
    r.assert_ok();
    // The 2022 merge rule alone keeps the accounting exact even though the type is lost.
    let (retyped, r) = run(Fixes::ALL.without(Fixes::ISOLATE_KEEPS_TYPE));
    assert_eq!(retyped, Migratetype::Movable);
    r.assert_ok();
}
