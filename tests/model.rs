//! Model-based property test: random sequences of allocator operations on a tiny geometry,
//! checked after every step against a reference model of which pages are allocated, isolated
//! and offline, and against a clean audit (all fixes on). Every sequence also runs under each
//! other preset, where only the structure is checked per step (those presets drift and
//! misplace blocks by design); under every preset, once everything is freed, the zone must
//! coalesce fully (the coalescing audit), except for `SEED`'s documented merge limit. Each
//! sequence runs once more with high-order pcps (`ZoneConfig::pcp_high_order`) under all fixes,
//! checked as strictly as the first.
//!
//! `PROPTEST_CASES` sets the number of sequences (CI default 48; e.g. `PROPTEST_CASES=100000`
//! for a long run). Failures shrink to a minimal sequence; keep found cases in
//! `regressions` below.

use pagealloc::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

const PAGES: u64 = 64;
const PB: u64 = 4; // pageblock_order 2
const TOP: u64 = 8; // max_order 4
const CMA_PAGES: u64 = 16;

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        order: u32,
        mt: u8,
    },
    AllocMovable {
        order: u32,
    },
    Free {
        idx: usize,
        other_thread: bool,
    },
    Drain,
    /// `n` units from unit `at`, a unit being a top-order block (as the kernel's callers,
    /// alloc_contig_range and memory offline, isolate) or a single pageblock (which needs the
    /// 2024 hygiene in `Fixes::ALL` to stay exact: R3c, tests/race_r3c_straddling_block.rs).
    Isolate {
        at: u64,
        n: u64,
        top_aligned: bool,
    },
    Undo {
        idx: usize,
    },
    Test {
        idx: usize,
    },
    Offline {
        top: u64,
    },
    Online {
        idx: usize,
    },
    Contig {
        block: u64,
    },
    CmaAlloc {
        count: u64,
        align: u32,
    },
    CmaRelease {
        idx: usize,
    },
    BadFree {
        pfn: u64,
        order: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u32..4, 0u8..3).prop_map(|(order, mt)| Op::Alloc { order, mt }),
        4 => (0u32..3).prop_map(|order| Op::AllocMovable { order }),
        6 => (any::<usize>(), any::<bool>()).prop_map(|(idx, other_thread)| Op::Free { idx, other_thread }),
        1 => Just(Op::Drain),
        2 => (0..PAGES / PB, 1u64..3, any::<bool>()).prop_map(|(at, n, top_aligned)| Op::Isolate { at, n, top_aligned }),
        2 => any::<usize>().prop_map(|idx| Op::Undo { idx }),
        1 => any::<usize>().prop_map(|idx| Op::Test { idx }),
        1 => (0..PAGES / TOP).prop_map(|top| Op::Offline { top }),
        1 => any::<usize>().prop_map(|idx| Op::Online { idx }),
        1 => (0..PAGES / PB).prop_map(|block| Op::Contig { block }),
        1 => (1u64..9, 0u32..3).prop_map(|(count, align)| Op::CmaAlloc { count, align }),
        1 => any::<usize>().prop_map(|idx| Op::CmaRelease { idx }),
        1 => (0..PAGES + 4, 0u32..5).prop_map(|(pfn, order)| Op::BadFree { pfn, order }),
    ]
}

enum Held<'z> {
    Raw(Pfn, Order),
    Movable(MovablePages<'z>),
}

impl Held<'_> {
    fn range(&self) -> (u64, u64) {
        match self {
            Held::Raw(p, o) => (p.0, p.0 + o.nr_pages()),
            Held::Movable(m) => (m.pfn().0, m.pfn().0 + m.order().nr_pages()),
        }
    }
}

struct Model<'z> {
    held: Vec<Held<'z>>,
    cma: Vec<CmaPages<'z>>,
    contig: Vec<(Pfn, u64)>,
    isolated: Vec<(Pfn, Pfn, Migratetype)>,
    offline: Vec<(Pfn, Pfn)>,
}

impl Model<'_> {
    fn allocated(&self) -> BTreeSet<u64> {
        let mut s = BTreeSet::new();
        let mut add = |a: u64, b: u64| {
            for p in a..b {
                assert!(s.insert(p), "pfn {p} handed out twice");
            }
        };
        for h in &self.held {
            let (a, b) = h.range();
            add(a, b);
        }
        for c in &self.cma {
            add(c.pfn().0, c.pfn().0 + c.count());
        }
        for &(p, n) in &self.contig {
            add(p.0, p.0 + n);
        }
        s
    }

    fn overlaps_isolated(&self, a: Pfn, b: Pfn) -> bool {
        self.isolated.iter().any(|&(s, e, _)| a < e && s < b)
    }

    fn overlaps_offline(&self, a: Pfn, b: Pfn) -> bool {
        self.offline.iter().any(|&(s, e)| a < e && s < b)
    }
}

const PRESETS: [Fixes; 5] = [
    Fixes::ALL,
    Fixes::NONE,
    Fixes::SEED,
    Fixes::V3_18,
    Fixes::V4_6,
];

fn zone(fixes: Fixes, pcp_high_order: bool) -> Zone {
    Zone::new(ZoneConfig {
        pcp_high_order,
        max_order: 4,
        pageblock_order: 2,
        cma_size: (CMA_PAGES as usize) * PAGE_SIZE,
        cma_policy: CmaPolicy::Aggressive,
        fixes,
        // One Reserve pageblock beside a Movable one where the preset has a reserve (3.17's
        // small-zone sizing), so merges across it are exercised.
        reserve_pageblocks: Some(u64::from(!fixes.contains(Fixes::NO_RESERVE))),
        ..ZoneConfig::tiny(PAGES as usize)
    })
    .unwrap()
}

/// Every page's state agrees with the model; the audit is clean (under `Fixes::ALL`; under
/// the other presets, free of structural errors: drift and misplaced blocks are theirs).
fn check(z: &Zone, m: &Model<'_>) -> Result<(), TestCaseError> {
    let r = z.audit();
    let exact = z.fixes() == Fixes::ALL;
    if exact {
        prop_assert!(r.is_ok(), "audit: {}", r);
    } else {
        prop_assert!(
            r.errors
                .iter()
                .all(|e| e.starts_with("nr_isolate_pageblock")),
            "{:?} audit: {}",
            z.fixes(),
            r
        );
    }
    let allocated = m.allocated();
    prop_assert_eq!(r.allocated_pages, allocated.len() as u64, "{}", r);
    let offline: u64 = m.offline.iter().map(|(a, b)| b.0 - a.0).sum();
    prop_assert_eq!(r.offline_pages, offline);
    let isolated_blocks: u64 = m.isolated.iter().map(|(a, b, _)| (b.0 - a.0) / PB).sum();
    prop_assert!(!exact || z.nr_isolate_pageblock() == isolated_blocks);
    for p in 0..PAGES {
        let pfn = Pfn(p);
        let st = z.page_state(pfn).unwrap();
        let iso = m.overlaps_isolated(pfn, pfn.add(1));
        let off = m.overlaps_offline(pfn, pfn.add(1));
        match st {
            PageState::Allocated { .. } => {
                prop_assert!(allocated.contains(&p), "{p} allocated, model says not")
            }
            PageState::Offline => prop_assert!(off, "{p} offline, model says not"),
            PageState::Free { list, .. } => {
                prop_assert!(!allocated.contains(&p) && !off, "{p} free, model says not");
                prop_assert!(
                    !exact || list.is_isolate() == iso,
                    "{} free on {} list, isolated in model: {}",
                    p,
                    list,
                    iso
                );
            }
            PageState::Pcp => prop_assert!(!allocated.contains(&p) && !off && (!exact || !iso)),
            PageState::InFlight => prop_assert!(false, "{p} in flight with nothing running"),
        }
        // Before the 2024 hygiene a block left on a counted list inside an isolated
        // pageblock can be stolen by a fallback, which retypes the pageblock: exact presets
        // only.
        prop_assert!(!exact || z.pageblock_migratetype(pfn).unwrap().is_isolate() == iso);
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    for fixes in PRESETS {
        run_with(ops.clone(), fixes, false)?;
    }
    // And with high-order pcps (orders 1 and 2 cached too: `pageblock_order` is 2 here, and
    // no cached block spans pageblocks), all fixes on.
    run_with(ops, Fixes::ALL, true)
}

fn run_with(ops: Vec<Op>, fixes: Fixes, pcp_high_order: bool) -> Result<(), TestCaseError> {
    let z = zone(fixes, pcp_high_order);
    // Under the earlier presets a single-threaded sequence can already hit 3.17's R2 (pcp
    // pages drained onto their cached lists after an isolation) and then retype an isolated
    // pageblock through a fallback steal: what isolation calls return is checked against the
    // model only under ALL.
    let exact = fixes == Fixes::ALL;
    let mut m = Model {
        held: Vec::new(),
        cma: Vec::new(),
        contig: Vec::new(),
        isolated: Vec::new(),
        offline: Vec::new(),
    };
    let mts = [
        Migratetype::Unmovable,
        Migratetype::Reclaimable,
        Migratetype::Movable,
    ];
    for op in ops {
        match op {
            Op::Alloc { order, mt } => {
                if let Ok(p) = z.alloc_pfn(Order(order), mts[mt as usize]) {
                    m.held.push(Held::Raw(p, Order(order)));
                }
            }
            Op::AllocMovable { order } => {
                if let Ok(h) = z.alloc_movable(Order(order)) {
                    m.held.push(Held::Movable(h));
                }
            }
            Op::Free { idx, other_thread } => {
                if !m.held.is_empty() {
                    let h = m.held.swap_remove(idx % m.held.len());
                    let free = |h: Held<'_>| match h {
                        Held::Raw(p, o) => z.free_pfn(p, o).unwrap(),
                        Held::Movable(mv) => drop(mv),
                    };
                    if other_thread {
                        // Joined explicitly: unlike the end of the scope, `join` waits for the
                        // thread's thread-local destructors, where its pcp is drained, so that
                        // drain cannot land between two later audits.
                        std::thread::scope(|s| s.spawn(|| free(h)).join().unwrap());
                    } else {
                        free(h);
                    }
                }
            }
            Op::Drain => z.drain_all_pages(),
            Op::Isolate { at, n, top_aligned } => {
                // Single pageblocks only under ALL: before the 2024 hygiene a free block that
                // straddles an isolated and a non-isolated pageblock is misplaced and can even
                // retype the isolated one (R3c); the kernel's callers isolate top-order
                // aligned ranges for that reason.
                let unit = if top_aligned || fixes != Fixes::ALL {
                    TOP
                } else {
                    PB
                };
                let at = at % (PAGES / unit);
                let a = Pfn(at * unit);
                let b = Pfn(((at + n) * unit).min(PAGES));
                let types: BTreeSet<_> = (a.0..b.0)
                    .step_by(PB as usize)
                    .map(|p| z.pageblock_migratetype(Pfn(p)).unwrap())
                    .collect();
                // Like the kernel's callers, restore the type the range had; skip mixed ranges.
                if types.len() == 1 {
                    let mt = *types.iter().next().unwrap();
                    let res = z.start_isolate_page_range(a, b, mt);
                    if exact && m.overlaps_isolated(a, b) {
                        prop_assert!(res.is_err());
                    }
                    if res.is_ok() {
                        m.isolated.push((a, b, mt));
                    }
                }
            }
            Op::Undo { idx } => {
                if !m.isolated.is_empty() {
                    let (a, b, mt) = m.isolated.swap_remove(idx % m.isolated.len());
                    z.undo_isolate_page_range(a, b, mt).unwrap();
                }
            }
            Op::Test { idx } => {
                if !m.isolated.is_empty() {
                    let (a, b, _) = m.isolated[idx % m.isolated.len()];
                    let busy =
                        m.allocated().range(a.0..b.0).next().is_some() || m.overlaps_offline(a, b);
                    // As in the kernel, a range that starts inside a larger free block fails
                    // the scan (alloc_contig_range starts it from outer_start for that reason).
                    let starts_in_tail =
                        matches!(z.page_state(a), Some(PageState::Free { head, .. }) if head < a);
                    let res = z.test_pages_isolated(a, b);
                    if busy || starts_in_tail {
                        prop_assert!(res.is_err());
                    } else if exact {
                        prop_assert!(res.is_ok(), "{:?}", res);
                    }
                }
            }
            Op::Offline { top } => {
                let (a, b) = (Pfn(top * TOP), Pfn(top * TOP + TOP));
                let raw_inside = m.held.iter().any(|h| {
                    matches!(h, Held::Raw(..)) && {
                        let (s, e) = h.range();
                        s < b.0 && a.0 < e
                    }
                }) || m
                    .cma
                    .iter()
                    .any(|c| c.pfn() < b && a < c.pfn().add(c.count()))
                    || m.contig.iter().any(|&(p, n)| p < b && a < p.add(n));
                let res = z.offline_pages(a, b);
                if raw_inside || (exact && m.overlaps_isolated(a, b)) || m.overlaps_offline(a, b) {
                    prop_assert!(res.is_err(), "offline of a busy range succeeded");
                }
                if res.is_ok() {
                    m.offline.push((a, b));
                }
            }
            Op::Online { idx } => {
                if !m.offline.is_empty() {
                    let (a, b) = m.offline.swap_remove(idx % m.offline.len());
                    z.online_pages(a, b).unwrap();
                }
            }
            Op::Contig { block } => {
                let (a, b) = (Pfn(block * PB), Pfn(block * PB + PB));
                let aligned = (Pfn(a.0 / TOP * TOP), Pfn(a.0 / TOP * TOP + TOP));
                let mt = z.pageblock_migratetype(aligned.0).unwrap();
                let mt = if mt.is_isolate() {
                    Migratetype::Movable
                } else {
                    mt
                };
                let res = z.alloc_contig_range(a, b, mt);
                if (exact && m.overlaps_isolated(aligned.0, aligned.1)) || m.overlaps_offline(a, b)
                {
                    prop_assert!(res.is_err());
                }
                if res.is_ok() {
                    m.contig.push((a, PB));
                }
            }
            Op::CmaAlloc { count, align } => {
                if let Ok(c) = z.cma().unwrap().alloc(count, Order(align)) {
                    prop_assert!(c.pfn().is_aligned(Order(align)));
                    m.cma.push(c);
                }
            }
            Op::CmaRelease { idx } => {
                if !m.cma.is_empty() {
                    m.cma.swap_remove(idx % m.cma.len());
                } else if !m.contig.is_empty() {
                    let (p, n) = m.contig.swap_remove(idx % m.contig.len());
                    z.free_contig_range(p, n).unwrap();
                }
            }
            Op::BadFree { pfn, order } => {
                let allocated_head = m
                    .held
                    .iter()
                    .any(|h| matches!(h, Held::Raw(p, o) if p.0 == pfn && o.0 == order));
                if !allocated_head {
                    let before = z.audit();
                    // Not an allocation the model owns as a raw block of that order: must be
                    // refused (a contig/CMA page freed as order 0 is legal, so skip those).
                    let owned_elsewhere = m.allocated().contains(&pfn);
                    if !owned_elsewhere {
                        prop_assert!(z.free_pfn(Pfn(pfn), Order(order)).is_err());
                        let after = z.audit();
                        prop_assert_eq!(before.true_free_pages, after.true_free_pages);
                    }
                }
            }
        }
        check(&z, &m)?;
    }
    // Tear down: everything back, all free.
    for (a, b, mt) in std::mem::take(&mut m.isolated) {
        z.undo_isolate_page_range(a, b, mt).unwrap();
    }
    for (a, b) in std::mem::take(&mut m.offline) {
        z.online_pages(a, b).unwrap();
    }
    for (p, n) in std::mem::take(&mut m.contig) {
        z.free_contig_range(p, n).unwrap();
    }
    m.cma.clear();
    for h in m.held.drain(..) {
        if let Held::Raw(p, o) = h {
            z.free_pfn(p, o).unwrap();
        }
    }
    z.drain_all_pages();
    let r = z.audit_coalescing();
    // 3.17's own inconsistency (a fallback retyping an isolated pageblock, see `check`) may
    // leave nr_isolate_pageblock behind under the earlier presets; nothing else.
    prop_assert!(
        r.errors
            .iter()
            .all(|e| fixes != Fixes::ALL && e.starts_with("nr_isolate_pageblock")),
        "{:?}: {}",
        fixes,
        r
    );
    prop_assert_eq!(
        r.true_free_pages + r.isolated_free_pages,
        PAGES,
        "{:?}: {}",
        fixes,
        r
    );
    if fixes == Fixes::ALL {
        prop_assert!(r.is_ok(), "{}", r);
    }
    for u in &r.unmerged_blocks {
        // The one exception: v3 as posted caps an isolated free at pageblock_order and never
        // re-frees it (tests/coalescing.rs).
        prop_assert!(
            fixes == Fixes::SEED && u.reason.contains("ISOLATE_MERGE_LIMIT"),
            "{:?}: {} ({:?})",
            fixes,
            r,
            u
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn allocator_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}

/// Sequences found by the property test, kept as regressions.
#[test]
fn regressions() {
    run(vec![
        Op::Alloc { order: 0, mt: 2 },
        Op::Free {
            idx: 0,
            other_thread: true,
        },
        Op::Drain,
    ])
    .unwrap();
}
