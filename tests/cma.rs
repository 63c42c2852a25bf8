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
