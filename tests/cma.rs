//! CMA, alloc_contig_range and page migration.
#![allow(clippy::disallowed_types)] // tests are outside the loom shim rule

use pagealloc::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn zone(fixes: Fixes) -> Zone {
    Zone::new(ZoneConfig {
        size: 64 << 20,
        cma_size: 16 << 20,
        cma_policy: CmaPolicy::Aggressive,
        fixes,
        ..ZoneConfig::default()
    })
    .unwrap()
}

fn pattern(tag: u64, i: usize) -> u8 {
    (tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u8 ^ (i as u8)
}

fn fill(p: &mut MovablePages<'_>, tag: u64) {
    let mut g = p.pin();
    for (i, b) in g.as_mut_slice().iter_mut().enumerate() {
        *b = pattern(tag, i);
    }
}

fn check(p: &mut MovablePages<'_>, tag: u64) -> bool {
    let g = p.pin();
    g.as_slice()
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern(tag, i))
}

fn clean(z: &Zone) -> AuditReport {
    z.drain_all_pages();
    let r = z.audit();
    assert!(r.is_ok(), "{r}");
    r
}

#[test]
fn cma_alloc_on_an_idle_area() {
    let z = zone(Fixes::ALL);
    let cma = z.cma().unwrap();
    assert_eq!(cma.area().count(), 4096);
    let mut a = cma.alloc(2048, Order(0)).unwrap();
    assert_eq!(a.count(), 2048);
    assert!(a.pfn() >= cma.area().base_pfn());
    a.as_mut_slice().fill(0x77);
    assert_eq!(cma.area().used(), 2048);
    let r = clean(&z);
    assert_eq!(r.allocated_pages, 2048);
    let b = cma.alloc(2048, Order(9)).unwrap();
    assert!(b.pfn().is_aligned(Order(9)));
    assert!(cma.alloc(1, Order(0)).is_err(), "the area is full");
    drop(a);
    cma.release(b);
    assert_eq!(cma.area().used(), 0);
    let r = clean(&z);
    assert_eq!(r.true_free_pages, z.geometry().nr_pages);
    assert!(z.vmstat().contains("cma_alloc_success 2\n"));
    assert!(z.vmstat().contains("cma_alloc_fail 1\n"));
}

#[test]
fn alloc_contig_range_migrates_movable_pages_and_they_keep_their_bytes() {
    let z = zone(Fixes::ALL);
    let cma = z.cma().unwrap();
    let base = cma.area().base_pfn();
    // Movable allocations of orders 0-3 until a good share of the CMA area is in use.
    let mut held = Vec::new();
    let mut tag = 0;
    let mut in_cma = 0u64;
    while in_cma < 2048 {
        let mut p = z.alloc_movable(Order((tag % 4) as u32)).unwrap();
        fill(&mut p, tag);
        if p.pfn() >= base {
            in_cma += 1 << p.order().0;
        }
        held.push((p, tag));
        tag += 1;
    }
    let a = cma
        .alloc(4096, Order(0))
        .expect("the whole CMA area, after migration");
    let moved: u64 = z
        .vmstat()
        .lines()
        .find_map(|l| l.strip_prefix("pgmigrate_success "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(moved >= in_cma, "moved {moved} < {in_cma}");
    for (p, tag) in held.iter_mut() {
        assert!(p.pfn() < base, "a movable block is still in the CMA area");
        assert!(check(p, *tag), "block {tag} lost its bytes in migration");
    }
    clean(&z);
    drop(a);
    drop(held);
    let r = clean(&z);
    assert_eq!(r.true_free_pages, z.geometry().nr_pages);
}

#[test]
fn unmovable_page_in_range_is_busy_and_changes_nothing() {
    let z = zone(Fixes::ALL);
    let cma = z.cma().unwrap();
    let base = cma.area().base_pfn();
    // A plain (pinned-for-life) Movable allocation that landed in the CMA area.
    let mut pinned = Vec::new();
    let victim = loop {
        let p = z.alloc_pages(Order(0), Migratetype::Movable).unwrap();
        if p.pfn() >= base {
            break p;
        }
        pinned.push(p);
    };
    let mut victim = victim;
    victim.as_mut_slice().fill(0xab);
    let before = clean(&z);
    let e = z.alloc_contig_range(victim.pfn(), victim.pfn().add(1), Migratetype::Cma);
    assert!(matches!(e, Err(IsolateError::Busy(_))), "{e:?}");
    let after = clean(&z);
    assert_eq!(z.nr_isolate_pageblock(), 0);
    assert_eq!(before.true_free_pages, after.true_free_pages);
    assert_eq!(before.allocated_pages, after.allocated_pages);
    assert!(victim.as_slice().iter().all(|b| *b == 0xab));
    // cma_alloc over the whole area fails (every candidate contains the pinned page), the
    // bitmap is left clear.
    assert!(matches!(
        cma.alloc(4096, Order(0)),
        Err(CmaError::NoSpace { .. })
    ));
    assert_eq!(cma.area().used(), 0);
    // An unmovable allocation in a normal pageblock refuses isolation outright.
    let u = z.alloc_pages(Order(0), Migratetype::Unmovable).unwrap();
    let pb = z.geometry().pageblock_nr_pages;
    let start = Pfn(u.pfn().0 & !(pb - 1));
    assert!(matches!(
        z.start_isolate_page_range(start, start.add(pb), Migratetype::Unmovable),
        Err(IsolateError::Busy(p)) if p == u.pfn()
    ));
    drop((u, victim, pinned));
    clean(&z);
}

#[test]
fn cma_bounds_and_alignment_errors() {
    let z = zone(Fixes::ALL);
    let cma = z.cma().unwrap();
    assert_eq!(cma.alloc(0, Order(0)).unwrap_err(), CmaError::ZeroCount);
    assert_eq!(
        cma.alloc(4097, Order(0)).unwrap_err(),
        CmaError::TooLarge {
            count: 4097,
            area: 4096
        }
    );
    assert_eq!(
        cma.alloc(1, Order(11)).unwrap_err(),
        CmaError::BadAlign(Order(11))
    );
    let base = cma.area().base_pfn();
    assert!(matches!(
        cma.release_pfn(base, 1),
        Err(CmaError::NotAllocated { .. })
    ));
    assert!(matches!(
        cma.release_pfn(Pfn(0), 1),
        Err(CmaError::NotAllocated { .. })
    ));
    assert!(matches!(
        cma.release_pfn(base.add(4095), 2),
        Err(CmaError::NotAllocated { .. })
    ));
    let a = cma.alloc(100, Order(0)).unwrap();
    // A handle's range cannot be released by pfn while the handle lives...
    let h = cma.alloc(10, Order(4)).unwrap();
    let (hp, hn) = (h.pfn(), h.count());
    assert!(matches!(
        cma.release_pfn(hp, hn),
        Err(CmaError::NotAllocated { .. })
    ));
    // ... but after handing it to the pfn API, kernel style.
    assert_eq!(h.into_pfn(), hp);
    cma.release_pfn(hp, hn).unwrap();
    assert!(matches!(
        cma.release_pfn(hp, hn),
        Err(CmaError::NotAllocated { .. })
    ));
    assert_eq!(cma.area().used(), 100);
    drop(a);
    assert_eq!(cma.area().used(), 0);
    let no_cma = Zone::new(ZoneConfig {
        size: 16 << 20,
        ..ZoneConfig::default()
    })
    .unwrap();
    assert!(no_cma.cma().is_none());
    // Bad ranges for alloc_contig_range.
    assert!(matches!(
        z.alloc_contig_range(Pfn(10), Pfn(5), Migratetype::Cma),
        Err(IsolateError::OutOfZone { .. })
    ));
    assert!(matches!(
        z.alloc_contig_range(Pfn(0), Pfn(1 << 40), Migratetype::Cma),
        Err(IsolateError::OutOfZone { .. })
    ));
}

#[test]
fn migration_races_with_pins_and_frees_on_real_threads() {
    let z = zone(Fixes::ALL);
    let cma = z.cma().unwrap();
    let stop = AtomicBool::new(false);
    let errors = AtomicU64::new(0);
    let cma_ok = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let (z, stop, errors) = (&z, &stop, &errors);
            s.spawn(move || {
                let mut rng = t.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
                let mut next = || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                let mut held: Vec<(MovablePages<'_>, u64)> = Vec::new();
                let mut tag = t << 40;
                while !stop.load(Ordering::Relaxed) {
                    let r = next();
                    if held.len() < 400 && r % 3 != 0 {
                        if let Ok(mut p) = z.alloc_movable(Order((r % 4) as u32)) {
                            tag += 1;
                            fill(&mut p, tag);
                            held.push((p, tag));
                        }
                    } else if !held.is_empty() {
                        let i = (r as usize / 7) % held.len();
                        let (mut p, tag) = held.swap_remove(i);
                        if !check(&mut p, tag) {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                for (mut p, tag) in held {
                    if !check(&mut p, tag) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let iterations = if cfg!(debug_assertions) { 10 } else { 40 };
        for _ in 0..iterations {
            if let Ok(mut a) = cma.alloc(1024, Order(0)) {
                a.as_mut_slice().fill(0x5a);
                cma_ok.fetch_add(1, Ordering::Relaxed);
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "pattern mismatches after migration"
    );
    assert!(cma_ok.load(Ordering::Relaxed) > 0);
    let r = clean(&z);
    assert_eq!(r.true_free_pages, z.geometry().nr_pages, "{r}");
    assert_eq!(z.nr_movable(), 0);
}

/// The owning form: an `OwnedCmaPages` keeps its zone alive across threads, and `into_pfn`
/// hands the range to the pfn API without keeping (or losing) a reference to the zone.
#[test]
fn owned_cma_pages_move_between_threads_and_into_pfns() {
    let zone = std::sync::Arc::new(
        Zone::new(ZoneConfig {
            size: 16 << 20,
            cma_size: 8 << 20,
            fixes: Fixes::ALL,
            ..ZoneConfig::default()
        })
        .unwrap(),
    );
    let z = zone.clone();
    let mut pages = std::thread::spawn(move || z.cma_alloc_owned(512, Order(9)).unwrap())
        .join()
        .unwrap();
    assert_eq!(
        std::sync::Arc::strong_count(&zone),
        2,
        "the handle holds the zone"
    );
    pages.fill(7);
    let (pfn, count) = (pages.pfn(), pages.count());
    assert_eq!(pages.into_pfn(), pfn);
    assert_eq!(
        std::sync::Arc::strong_count(&zone),
        1,
        "into_pfn drops the handle's Arc"
    );
    assert!(matches!(
        zone.free_contig_range(pfn, count),
        Err(FreeError::CmaAllocation(_))
    ));
    zone.cma().unwrap().release_pfn(pfn, count).unwrap();
    let no_area = std::sync::Arc::new(Zone::new(ZoneConfig::tiny(16)).unwrap());
    assert_eq!(
        no_area.cma_alloc_owned(1, Order(0)).unwrap_err(),
        CmaError::NoArea
    );
    zone.drain_all_pages();
    let r = zone.audit();
    r.assert_ok();
    assert_eq!(r.true_free_pages, zone.geometry().nr_pages);
}

/// A transparent huge page (`GFP_TRANSHUGE`: `__GFP_COMP`) in the CMA area, as 3.17's
/// `alloc_contig_range` sees it: `isolate_migratepages_range` skips it (`PageTransHuge`), the
/// rest of the range is migrated, and `test_pages_isolated` fails at its head (`-EBUSY`); the
/// THP stays where it was, bytes intact. An order-9 movable block without `__GFP_COMP` is
/// migrated like any movable block. `cma_alloc` then retries at the next aligned position,
/// even though the THP is in that range too (3.17 `mm/cma.c`: `start = bitmap_no + mask +
/// 1`): with 3584 pages asked at 512-page alignment the area has two candidates, `+0` and
/// `+512`, and every candidate holding the THP is tried and fails.
#[test]
fn transparent_huge_page_makes_the_range_busy_after_the_rest_is_migrated() {
    let z = zone(Fixes::ALL);
    let cma = z.cma().unwrap();
    let base = cma.area().base_pfn();
    let mut others = Vec::new();
    let mut thp = loop {
        let t = z.alloc_movable_gfp(Order(9), Gfp::GFP_TRANSHUGE).unwrap();
        if t.pfn() >= base {
            break t;
        }
        others.push(t);
    };
    assert!(thp.is_compound() && thp.order() == Order(9));
    fill(&mut thp, 9);
    let t = thp.pfn();
    // Order-0 movable pages in the other pageblocks of the CMA area.
    let mut small = Vec::new();
    let mut tag = 100;
    while small.len() < 64 {
        let mut p = z.alloc_movable(Order(0)).unwrap();
        fill(&mut p, tag);
        tag += 1;
        if p.pfn() >= base {
            small.push((p, tag - 1));
        } else {
            others.push(p);
        }
    }
    let area_end = base.add(cma.area().count());
    let migrated_before = z.vmstat();
    let e = z.alloc_contig_range(base, area_end, Migratetype::Cma);
    assert_eq!(e, Err(IsolateError::NotIsolated(t)), "{migrated_before}");
    // Every small page left the area (migrated before the test failed), bytes intact.
    for (p, tag) in &mut small {
        assert!(p.pfn() < base, "{:?} still in the area", p.pfn());
        assert!(check(p, *tag));
    }
    assert_eq!(thp.pfn(), t);
    assert!(check(&mut thp, 9));
    assert_eq!(z.nr_isolate_pageblock(), 0);
    clean(&z);

    // cma_alloc: two candidates; those holding the THP are busy.
    let off = t.0 - base.0;
    let expect_busy = match off {
        0 => 1,    // +0 holds it, +512 does not
        3584 => 0, // +0 does not hold it
        _ => 2,    // both hold it
    };
    let r = cma.alloc(3584, Order(9));
    assert_eq!(cma.area().busy_attempts(), expect_busy, "THP at +{off}");
    assert_eq!(r.is_ok(), expect_busy < 2, "THP at +{off}: {r:?}");
    drop(r);
    assert_eq!(cma.area().used(), 0);
    drop(thp);
    clean(&z);

    // The same order without __GFP_COMP is not compound: migrated.
    let mut block = loop {
        let b = z.alloc_movable(Order(9)).unwrap();
        if b.pfn() >= base {
            break b;
        }
        others.push(b);
    };
    assert!(!block.is_compound());
    fill(&mut block, 7);
    let b = block.pfn();
    assert!(
        z.alloc_contig_range(b, b.add(512), Migratetype::Cma)
            .is_ok()
    );
    assert!(block.pfn() < base || block.pfn() >= b.add(512));
    assert!(check(&mut block, 7));
    z.free_contig_range(b, 512).unwrap();
    drop((block, small, others));
    clean(&z);
}

/// 3.17's `__alloc_contig_migrate_range` isolates 32 blocks at a time, gives each batch 5
/// `migrate_pages` calls of up to 10 passes, and a batch still holding a block after that
/// fails the whole range (`-EBUSY`) with the rest of the range unscanned: here a block pinned
/// throughout (`migrate_page_move_mapping`'s count check fails on every pass) at the start of
/// a range of held order-0 pages. The other 31 blocks of its batch were migrated; the blocks
/// after the batch were not touched.
#[test]
fn a_block_busy_through_five_migrate_pages_calls_fails_the_range_at_its_batch() {
    let z = Zone::new(ZoneConfig {
        size: 64 << 20,
        fixes: Fixes::ALL,
        ..ZoneConfig::default()
    })
    .unwrap();
    let mut held: Vec<(MovablePages<'_>, u64)> = (0..4096u64)
        .map(|tag| {
            let mut p = z.alloc_movable(Order(0)).unwrap();
            fill(&mut p, tag);
            (p, tag)
        })
        .collect();
    held.sort_by_key(|(p, _)| p.pfn());
    // A max-order-aligned run of 1024 held pages.
    let mo = z.geometry().max_order_nr_pages();
    let i0 = (0..held.len() - 1024)
        .find(|&i| {
            let s = held[i].0.pfn();
            s.0 % mo == 0 && held[i + 1023].0.pfn() == s.add(1023)
        })
        .expect("a whole max-order block of held pages");
    let start = held[i0].0.pfn();
    let before: Vec<Pfn> = held[i0..i0 + 1024].iter().map(|(p, _)| p.pfn()).collect();
    {
        let _pin = held[i0].0.pin();
        let r = z.alloc_contig_range(start, start.add(mo), Migratetype::Movable);
        assert_eq!(r, Err(IsolateError::Busy(start)));
    }
    assert_eq!(held[i0].0.pfn(), start, "the pinned block stayed");
    let moved: Vec<bool> = held[i0..i0 + 1024]
        .iter()
        .zip(&before)
        .map(|((p, _), b)| p.pfn() != *b)
        .collect();
    assert!(
        moved[1..CONTIG_CLUSTER_MAX].iter().all(|&m| m),
        "its batch moved"
    );
    assert!(
        moved[CONTIG_CLUSTER_MAX..].iter().all(|&m| !m),
        "the rest was not scanned"
    );
    for (p, tag) in &mut held {
        assert!(check(p, *tag));
    }
    drop(held);
    clean(&z);
}
