//! Hostile input: every public entry point fed bad arguments gets a typed error, and the zone
//! stays intact (clean audit, every page allocatable again). Ends with a fuzz-style run of
//! 10^5 random raw calls mixed with valid traffic.

use pagealloc::*;

fn zone() -> Zone {
    Zone::new(ZoneConfig {
        size: 16 << 20,
        cma_size: 4 << 20,
        fixes: Fixes::ALL,
        ..ZoneConfig::default()
    })
    .unwrap()
}

fn assert_intact(z: &Zone) {
    z.drain_all_pages();
    let r = z.audit();
    assert!(r.is_ok() && r.conservation_ok(), "{r}");
    assert_eq!(z.nr_isolate_pageblock(), 0);
    assert_eq!(
        r.true_free_pages + r.allocated_pages + r.offline_pages,
        r.managed_pages
    );
}

#[test]
fn isolation_unaligned_range() {
    let z = zone();
    for (a, b) in [(1, 512), (0, 513), (511, 1024)] {
        assert!(matches!(
            z.start_isolate_page_range(Pfn(a), Pfn(b), Migratetype::Movable),
            Err(IsolateError::Unaligned { .. })
        ));
        assert!(matches!(
            z.undo_isolate_page_range(Pfn(a), Pfn(b), Migratetype::Movable),
            Err(IsolateError::Unaligned { .. })
        ));
    }
    assert_intact(&z);
}

#[test]
fn isolation_out_of_zone_or_empty_range() {
    let z = zone();
    let n = z.geometry().nr_pages;
    for (a, b) in [
        (0, 0),
        (512, 0),
        (n, n + 512),
        (0, n + 512),
        (u64::MAX - 511, u64::MAX),
    ] {
        assert!(matches!(
            z.start_isolate_page_range(Pfn(a), Pfn(b), Migratetype::Movable),
            Err(IsolateError::OutOfZone { .. })
        ));
        assert!(matches!(
            z.test_pages_isolated(Pfn(a), Pfn(b)),
            Err(IsolateError::OutOfZone { .. })
        ));
    }
    assert!(z.set_migratetype_isolate(Pfn(n)).is_err());
    assert!(
        z.unset_migratetype_isolate(Pfn(n), Migratetype::Movable)
            .is_err()
    );
    assert_intact(&z);
}

#[test]
fn isolation_overlapping_ranges() {
    let z = zone();
    z.start_isolate_page_range(Pfn(0), Pfn(1024), Migratetype::Movable)
        .unwrap();
    assert_eq!(
        z.start_isolate_page_range(Pfn(512), Pfn(2048), Migratetype::Movable),
        Err(IsolateError::AlreadyIsolated(Pfn(512)))
    );
    // The failed request undid its own (none) and left the first range alone.
    assert_eq!(z.nr_isolate_pageblock(), 2);
    z.undo_isolate_page_range(Pfn(0), Pfn(1024), Migratetype::Movable)
        .unwrap();
    assert_intact(&z);
}

#[test]
fn isolation_bad_restore_type() {
    let z = zone();
    assert_eq!(
        z.start_isolate_page_range(Pfn(0), Pfn(512), Migratetype::Isolate),
        Err(IsolateError::BadMigratetype(Migratetype::Isolate))
    );
    assert!(
        z.unset_migratetype_isolate(Pfn(0), Migratetype::Isolate)
            .is_err()
    );
    assert_intact(&z);
}

#[test]
fn test_pages_isolated_on_a_live_range() {
    let z = zone();
    assert!(matches!(
        z.test_pages_isolated(Pfn(0), Pfn(512)),
        Err(IsolateError::NotIsolated(_))
    ));
    assert_intact(&z);
}

#[test]
fn offline_unaligned_busy_and_double() {
    let z = zone();
    assert!(matches!(
        z.offline_pages(Pfn(0), Pfn(512)),
        Err(IsolateError::Unaligned { .. })
    ));
    let p = z.alloc_pages(Order(0), Migratetype::Unmovable).unwrap();
    let top = z.geometry().max_order_nr_pages();
    let start = Pfn(p.pfn().0 & !(top - 1));
    assert!(z.offline_pages(start, start.add(top)).is_err());
    drop(p);
    assert_intact(&z);
    // A free range offlines; twice is an error; online of a live range is an error.
    let free = Pfn(top * 2);
    z.offline_pages(free, free.add(top)).unwrap();
    assert_eq!(
        z.offline_pages(free, free.add(top)),
        Err(IsolateError::AlreadyOffline(free))
    );
    assert_eq!(
        z.online_pages(Pfn(0), Pfn(top)),
        Err(IsolateError::NotOffline(Pfn(0)))
    );
    assert_eq!(z.free_pfn(free, Order(0)), Err(FreeError::Offline(free)));
    assert_intact(&z);
    z.online_pages(free, free.add(top)).unwrap();
    assert_intact(&z);
    assert_eq!(z.audit().offline_pages, 0);
}

#[test]
fn cma_requests_larger_than_the_area_or_badly_aligned() {
    let z = zone();
    let cma = z.cma().unwrap();
    let n = cma.area().count();
    assert!(matches!(
        cma.alloc(n + 1, Order(0)),
        Err(CmaError::TooLarge { .. })
    ));
    assert!(matches!(
        cma.alloc(u64::MAX, Order(0)),
        Err(CmaError::TooLarge { .. })
    ));
    assert_eq!(
        cma.alloc(1, Order(40)).unwrap_err(),
        CmaError::BadAlign(Order(40))
    );
    assert_eq!(cma.alloc(0, Order(0)).unwrap_err(), CmaError::ZeroCount);
    assert!(cma.release_pfn(Pfn(u64::MAX), 1).is_err());
    assert_intact(&z);
}

#[test]
fn contig_free_of_pages_that_are_not_contig_pages() {
    let z = zone();
    assert_eq!(
        z.free_contig_range(Pfn(0), 4),
        Err(FreeError::NotAllocated(Pfn(0)))
    );
    assert_eq!(
        z.free_contig_range(Pfn(u64::MAX - 1), 1),
        Err(FreeError::Foreign(Pfn(u64::MAX - 1)))
    );
    assert_intact(&z);
}

#[test]
fn absurd_geometry() {
    for (max_order, pageblock_order) in [
        (0, 0),
        (21, 9),
        (u32::MAX, 0),
        (11, 11),
        (11, u32::MAX),
        (3, 5),
    ] {
        let e = Zone::new(ZoneConfig {
            max_order,
            pageblock_order,
            ..ZoneConfig::default()
        });
        assert!(e.is_err(), "({max_order}, {pageblock_order}) accepted");
    }
    assert!(
        Zone::new(ZoneConfig {
            size: usize::MAX & !((4 << 20) - 1),
            ..ZoneConfig::default()
        })
        .is_err()
    );
    assert!(
        Zone::new(ZoneConfig {
            cma_size: usize::MAX,
            ..ZoneConfig::default()
        })
        .is_err()
    );
    assert!(
        Zone::new(ZoneConfig {
            pcp: Some(PcpConfig { high: 0, batch: 0 }),
            ..ZoneConfig::default()
        })
        .is_err()
    );
    assert!(
        Zone::new(ZoneConfig {
            pcp: Some(PcpConfig { high: 2, batch: 3 }),
            ..ZoneConfig::default()
        })
        .is_err()
    );
    // The smallest legal zone works.
    let z = Zone::new(ZoneConfig {
        max_order: 1,
        pageblock_order: 0,
        ..ZoneConfig::tiny(1)
    })
    .unwrap();
    let p = z.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
    assert!(z.alloc_pfn(Order(0), Migratetype::Movable).is_err());
    z.free_pfn(p, Order(0)).unwrap();
    assert_intact(&z);
}

/// 10^5 random raw calls (in release; 10^4 in debug) at every entry point, most of them
/// invalid, mixed with valid allocations and frees; every call either succeeds legitimately
/// or returns an error, and the zone ends intact.
#[test]
fn fuzz_random_raw_calls() {
    let z = zone();
    let n = z.geometry().nr_pages;
    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut held: Vec<(Pfn, Order)> = Vec::new();
    let calls = if cfg!(debug_assertions) {
        10_000
    } else {
        100_000
    };
    let interesting = |r: u64| match r % 6 {
        0 => r % (n + 64),
        1 => u64::MAX - (r % 4),
        2 => (r % 64) * 512,
        3 => n.saturating_sub(r % 8),
        _ => r % n,
    };
    for i in 0..calls {
        let r = next();
        let pfn = Pfn(interesting(next()));
        let order = Order((next() % 14) as u32);
        match r % 12 {
            0 | 1 => {
                if let Ok(p) = z.alloc_pfn(Order(order.0 % 5), Migratetype::ALL[(r % 6) as usize]) {
                    held.push((p, Order(order.0 % 5)));
                }
            }
            2 | 3 if !held.is_empty() => {
                let (p, o) = held.swap_remove((r as usize / 16) % held.len());
                z.free_pfn(p, o).unwrap();
            }
            4 => {
                // A random free that is not one of ours must fail and change nothing.
                if !held.iter().any(|&(p, o)| p == pfn && o == order) {
                    assert!(z.free_pfn(pfn, order).is_err());
                }
            }
            5 => {
                let end = Pfn(interesting(next()));
                if z.start_isolate_page_range(pfn, end, Migratetype::Movable)
                    .is_ok()
                {
                    let _ = z.test_pages_isolated(pfn, end);
                    z.undo_isolate_page_range(pfn, end, Migratetype::Movable)
                        .unwrap();
                }
            }
            6 => {
                let _ = z.test_pages_isolated(pfn, Pfn(interesting(next())));
            }
            7 => {
                let end = Pfn(interesting(next()));
                if z.offline_pages(pfn, end).is_ok() {
                    z.online_pages(pfn, end).unwrap();
                }
            }
            8 => {
                if let Some(cma) = z.cma() {
                    let _ = cma.alloc(next() % 1500, Order((next() % 12) as u32));
                    let _ = cma.release_pfn(pfn, next() % 8);
                }
            }
            9 => {
                let _ = z.page_state(pfn);
                let _ = z.pageblock_migratetype(pfn);
                let _ = z.pfn_to_ptr(pfn);
            }
            10 => {
                // Kernel-style callers own what they free: never hand it pages we hold.
                let k = next() % 4;
                let ours = held
                    .iter()
                    .any(|&(p, o)| p.0 < pfn.0.saturating_add(k) && pfn.0 < p.0 + o.nr_pages());
                if !ours {
                    assert!(k == 0 || z.free_contig_range(pfn, k).is_err());
                }
            }
            _ => z.drain_local_pages(),
        }
        if i % 20_000 == 0 {
            let r = z.audit();
            assert!(r.is_ok(), "after {i} calls: {r}");
        }
    }
    for (p, o) in held {
        z.free_pfn(p, o).unwrap();
    }
    assert_intact(&z);
    assert_eq!(z.audit().true_free_pages, n);
}
