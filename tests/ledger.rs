//! The drift ledger (issue 15): every decision that moves a counter away from the lists,
//! with its race and path; its sums equal the audit's drift. Deterministic scenarios for the
//! races that do not need a race window (R3a, R3b, R2 with a parked page), then real threads.
#![allow(clippy::disallowed_types)] // tests are outside the loom shim rule

mod common;
use common::*;
use pagealloc::*;

fn sums(l: &[LedgerEntry]) -> (i64, i64) {
    l.iter().fold((0, 0), |(f, c), e| (f + e.free, c + e.cma))
}

/// Σ ledger == drift, for both counters; returns the ledger.
fn check(z: &Zone) -> Vec<LedgerEntry> {
    z.drain_all_pages();
    let r = z.audit();
    let l = z.ledger().expect("ledger on");
    assert_eq!(sums(&l), (r.drift_free, r.drift_cma), "ledger {l:?} vs {r}");
    l
}

/// 8 MiB, the four pageblocks allocated as order-9 blocks (as in tests/watermarks.rs).
fn filled(fixes: Fixes) -> Zone {
    let z = Zone::new(ZoneConfig {
        size: 8 << 20,
        fixes,
        reserve_pageblocks: Some(0),
        ledger: true,
        ..ZoneConfig::default()
    })
    .unwrap();
    for _ in 0..4 {
        z.alloc_pfn(Order(9), Migratetype::Movable).unwrap();
    }
    z
}

#[test]
fn off_by_default() {
    let z = Zone::new(ZoneConfig::tiny(16)).unwrap();
    assert!(z.ledger().is_none());
}

#[test]
fn r3a_and_r3b_are_recorded_where_3_17_decides_them() {
    // R3a: pageblock 0 free and counted; pageblock 1 isolated, then freed: the Isolate free
    // merges past pageblock_order with the counted block.
    let z = filled(Fixes::NONE);
    z.free_pfn(Pfn(0), Order(9)).unwrap();
    z.set_migratetype_isolate(Pfn(512)).unwrap();
    z.free_pfn(Pfn(512), Order(9)).unwrap();
    let l = check(&z);
    assert_eq!(
        l,
        [LedgerEntry {
            race: Race::R3a,
            path: LedgerPath::FreeOnePage,
            events: 1,
            free: 512,
            cma: 0
        }]
    );
    // R3b: pageblock 1 freed and isolated, then pageblock 0 freed into a normal pageblock.
    let z = filled(Fixes::NONE);
    z.free_pfn(Pfn(512), Order(9)).unwrap();
    z.set_migratetype_isolate(Pfn(512)).unwrap();
    z.free_pfn(Pfn(0), Order(9)).unwrap();
    let l = check(&z);
    assert_eq!(
        l,
        [LedgerEntry {
            race: Race::R3b,
            path: LedgerPath::FreeOnePage,
            events: 1,
            free: -512,
            cma: 0
        }]
    );
    // Fixed: nothing recorded.
    for fixes in [Fixes::V4_6, Fixes::ALL] {
        let z = filled(fixes);
        z.free_pfn(Pfn(512), Order(9)).unwrap();
        z.set_migratetype_isolate(Pfn(512)).unwrap();
        z.free_pfn(Pfn(0), Order(9)).unwrap();
        assert_eq!(check(&z), []);
    }
}

/// v3.18: a free reads its pageblock's type as Isolate before the zone lock, and the block is
/// un-isolated meanwhile. Another pageblock is still isolated, so patch 1's recheck corrects
/// the type: no R1a. But the freed block then merges past `pageblock_order` with the free
/// block of that isolated neighbour, which nothing forbids until 4.6: the ledger names R3b
/// (the block's pages leave the Isolate list for a counted one, uncounted), not R1a.
#[test]
fn a_rechecked_stale_isolate_free_that_merges_across_isolation_is_r3b() {
    for (fixes, want) in [
        (Fixes::V3_18, vec![(Race::R3b, -2, -2)]),
        (Fixes::V4_6, vec![]),
    ] {
        // 16 pages, pageblocks of 2, the top 8 CMA (tests/common's tiny_cma), ledger on.
        let gate = Gate::new(RaceWindow::FreeBeforeZoneLock, 8);
        let z = Zone::new(ZoneConfig {
            cma_size: 8 * PAGE_SIZE,
            fixes,
            race_hook: gate.hook(),
            ledger: true,
            ..ZoneConfig::tiny(16)
        })
        .unwrap();
        fill(&z, Order(0));
        for pfn in [9, 10, 11] {
            free_now(&z, pfn, 0);
        }
        // {10, 11}: one free order-1 block, isolated. {8, 9}: isolated, 9 free.
        z.set_migratetype_isolate(Pfn(10)).unwrap();
        z.set_migratetype_isolate(Pfn(8)).unwrap();
        race(
            &gate,
            || z.free_pfn(Pfn(8), Order(0)).unwrap(),
            || {
                z.unset_migratetype_isolate(Pfn(8), Migratetype::Cma)
                    .unwrap()
            },
        );
        let got: Vec<_> = check(&z)
            .iter()
            .map(|e| {
                assert_eq!(e.path, LedgerPath::FreeOnePage, "{fixes:?}: {e:?}");
                (e.race, e.free, e.cma)
            })
            .collect();
        assert_eq!(got, want, "{fixes:?}");
    }
}

/// A 16-page per-CPU (2 CPUs) zone with 8 CMA pages, 3.17's code and the ledger on, every page
/// allocated.
fn full_cma_zone() -> Zone {
    let z = Zone::new(ZoneConfig {
        cma_size: 8 * PAGE_SIZE,
        fixes: Fixes::NONE,
        pcp_mode: PcpMode::PerCpu(2),
        ledger: true,
        ..ZoneConfig::tiny(16)
    })
    .unwrap();
    while z.alloc_pfn(Order(0), Migratetype::Movable).is_ok() {}
    z
}

/// R2: a CMA page cached on a pcp (per-CPU mode: it stays there after its thread exits) is
/// drained into its pageblock after that was isolated.
#[test]
fn r2_is_recorded_on_the_bulk_free() {
    let z = full_cma_zone();
    z.free_pfn(Pfn(9), Order(0)).unwrap();
    z.drain_all_pages();
    std::thread::scope(|s| {
        s.spawn(|| {
            set_thread_cpu(Some(1));
            z.free_pfn(Pfn(8), Order(0)).unwrap();
        });
    });
    z.set_migratetype_isolate(Pfn(8)).unwrap();
    let l = check(&z);
    assert_eq!(
        l,
        [LedgerEntry {
            race: Race::R2,
            path: LedgerPath::FreePcppagesBulk,
            events: 1,
            free: -2,
            cma: -2
        }]
    );
}

/// The mirror of R1a's stranded buddy: R2 leaves a page on the CMA list of an isolated
/// pageblock, uncounted; freeing its buddy into that pageblock (type `Isolate`, so through
/// `free_one_page`) merges it onto the `Isolate` list, which takes it off the counted lists
/// and undoes R2's drift. The ledger names that merge `Stranded`, not `Unclassified`.
#[test]
fn a_merge_that_absorbs_a_stranded_page_is_recorded_as_stranded() {
    let z = full_cma_zone();
    std::thread::scope(|s| {
        s.spawn(|| {
            set_thread_cpu(Some(1));
            z.free_pfn(Pfn(8), Order(0)).unwrap();
        });
    });
    z.set_migratetype_isolate(Pfn(8)).unwrap();
    z.drain_all_pages(); // R2: page 8 onto the CMA list of the isolated pageblock, uncounted
    z.free_pfn(Pfn(9), Order(0)).unwrap(); // merges 8 onto the Isolate list
    let l = check(&z);
    assert_eq!(
        l,
        [
            LedgerEntry {
                race: Race::R2,
                path: LedgerPath::FreePcppagesBulk,
                events: 1,
                free: -1,
                cma: -1
            },
            LedgerEntry {
                race: Race::Stranded,
                path: LedgerPath::FreeOnePage,
                events: 1,
                free: 1,
                cma: 1
            }
        ]
    );
    assert!(z.audit().is_ok(), "the drift was undone");
}

/// Real threads: workers allocate and free at random while the main thread isolates and
/// un-isolates pageblocks, with every race window widened by a yield (`YieldHook`, the
/// crate's window hook); at the end the ledger's sums equal the drift, for every preset, and
/// `Fixes::ALL` records nothing.
#[test]
fn the_ledger_sums_to_the_drift_under_real_threads() {
    let mut all = Vec::new();
    for fixes in [Fixes::NONE, Fixes::SEED, Fixes::V3_18, Fixes::ALL] {
        let z = Zone::new(ZoneConfig {
            size: 16 << 20,
            cma_size: 4 << 20,
            cma_policy: CmaPolicy::Aggressive,
            fixes,
            ledger: true,
            race_hook: Some(std::sync::Arc::new(YieldHook)),
            ..ZoneConfig::default()
        })
        .unwrap();
        let nr_blocks = z.geometry().nr_pageblocks;
        let pb = z.geometry().pageblock_nr_pages;
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let (z, stop) = (&z, &stop);
                s.spawn(move || {
                    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                    let mut held = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if held.len() < 200 && x % 3 != 0 {
                            let order = Order((x >> 8) as u32 % 4);
                            if let Ok(p) = z.alloc_pfn(order, Migratetype::Movable) {
                                held.push((p, order));
                            }
                        } else if !held.is_empty() {
                            let (p, o) = held.swap_remove((x >> 16) as usize % held.len());
                            z.free_pfn(p, o).unwrap();
                        }
                    }
                    for (p, o) in held {
                        z.free_pfn(p, o).unwrap();
                    }
                });
            }
            for i in 0..3000u64 {
                let block = Pfn((i * 7 % nr_blocks) * pb);
                if z.set_migratetype_isolate(block).is_ok() {
                    z.unset_migratetype_isolate(block, Migratetype::Movable)
                        .unwrap();
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let l = check(&z);
        eprintln!("{fixes}: {l:?}");
        if fixes == Fixes::ALL {
            assert!(l.is_empty(), "{l:?}");
        }
        all.push((fixes, l));
    }
}

#[test]
fn drift_sample_is_the_drift_exactly_and_as_zone_page_state_shows_it() {
    assert!(
        Zone::new(ZoneConfig::tiny(16))
            .unwrap()
            .drift_sample()
            .is_none(),
        "the ledger is off by default"
    );
    // R3a as above: NR_FREE_PAGES 512 too high.
    let z = filled(Fixes::NONE);
    z.free_pfn(Pfn(0), Order(9)).unwrap();
    z.set_migratetype_isolate(Pfn(512)).unwrap();
    z.free_pfn(Pfn(512), Order(9)).unwrap();
    let l = check(&z);
    let d = z.drift_sample().unwrap();
    let r = z.audit();
    assert_eq!((d.free, d.cma), (r.drift_free, r.drift_cma));
    assert_eq!((d.free, d.cma), sums(&l));
    assert_eq!(d.free, 512);
    // The folded view lags by the per-CPU diffs not folded yet, and catches up at the fold.
    let unfolded = z.zone_page_state_snapshot(ZoneStatItem::NrFreePages)
        - z.zone_page_state(ZoneStatItem::NrFreePages) as i64;
    assert_eq!(d.vmstat_free, d.free - unfolded);
    assert_eq!(
        (d.vmstat_free, d.vmstat_cma),
        (
            r.vmstat_free_pages - r.true_free_pages as i64,
            r.vmstat_free_cma_pages - r.true_free_cma_pages as i64
        )
    );
    z.vmstat_update();
    let d = z.drift_sample().unwrap();
    assert_eq!((d.vmstat_free, d.vmstat_cma), (d.free, d.cma));
}
