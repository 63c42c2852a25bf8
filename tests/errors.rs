//! Every bad-input error of the core API, each followed by a clean audit and a working
//! allocator.

use pagealloc::*;

fn zone() -> Zone {
    Zone::new(ZoneConfig {
        size: 16 << 20,
        ..ZoneConfig::default()
    })
    .unwrap()
}

/// The zone is intact: clean audit, and every page can still be allocated and freed.
fn assert_intact(z: &Zone) {
    z.drain_all_pages();
    let r = z.audit();
    assert!(r.is_ok(), "{r}");
    assert!(r.conservation_ok(), "{r}");
    let top = Order(z.geometry().max_order - 1);
    let mut all = Vec::new();
    while let Ok(p) = z.alloc_pfn(top, Migratetype::Movable) {
        all.push(p);
    }
    assert_eq!(all.len() as u64, (r.true_free_pages) >> top.0, "{r}");
    for p in all {
        z.free_pfn(p, top).unwrap();
    }
    z.drain_all_pages();
    z.audit().assert_ok();
}

#[test]
fn foreign_pfn() {
    let z = zone();
    let n = z.geometry().nr_pages;
    assert_eq!(
        z.free_pfn(Pfn(n), Order(0)),
        Err(FreeError::Foreign(Pfn(n)))
    );
    assert_eq!(
        z.free_pfn(Pfn(u64::MAX), Order(0)),
        Err(FreeError::Foreign(Pfn(u64::MAX)))
    );
    // A pfn of another zone is foreign to this one when it is out of range, and otherwise not
    // allocated here.
    let other = zone();
    let p = other.alloc_pfn(Order(2), Migratetype::Movable).unwrap();
    assert_eq!(z.free_pfn(p, Order(2)), Err(FreeError::NotAllocated(p)));
    other.free_pfn(p, Order(2)).unwrap();
    assert_intact(&z);
    assert_intact(&other);
}

#[test]
fn bad_order() {
    let z = zone();
    assert_eq!(
        z.free_pfn(Pfn(0), Order(11)),
        Err(FreeError::BadOrder(Order(11)))
    );
    assert!(matches!(
        z.alloc_pfn(Order(11), Migratetype::Movable),
        Err(AllocError::BadOrder { .. })
    ));
    assert!(matches!(
        z.alloc_pages(Order(99), Migratetype::Movable),
        Err(AllocError::BadOrder { .. })
    ));
    assert_intact(&z);
}

#[test]
fn unaligned_pfn() {
    let z = zone();
    let p = z.alloc_pfn(Order(3), Migratetype::Unmovable).unwrap();
    assert_eq!(
        z.free_pfn(p.add(1), Order(3)),
        Err(FreeError::Unaligned {
            pfn: p.add(1),
            order: Order(3)
        })
    );
    z.free_pfn(p, Order(3)).unwrap();
    assert_intact(&z);
}

#[test]
fn wrong_order() {
    let z = zone();
    let p = z.alloc_pfn(Order(2), Migratetype::Reclaimable).unwrap();
    assert_eq!(
        z.free_pfn(p, Order(1)),
        Err(FreeError::WrongOrder {
            pfn: p,
            order: Order(1),
            allocated: Order(2)
        })
    );
    assert_eq!(
        z.free_pfn(p, Order(3)).unwrap_err(),
        if p.is_aligned(Order(3)) {
            FreeError::WrongOrder {
                pfn: p,
                order: Order(3),
                allocated: Order(2),
            }
        } else {
            FreeError::Unaligned {
                pfn: p,
                order: Order(3),
            }
        }
    );
    z.free_pfn(p, Order(2)).unwrap();
    assert_intact(&z);
}

#[test]
fn double_free() {
    let z = zone();
    let p = z.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
    z.free_pfn(p, Order(0)).unwrap();
    // The page now sits on this thread's pcp.
    assert_eq!(z.free_pfn(p, Order(0)), Err(FreeError::DoubleFree(p)));
    let q = z.alloc_pfn(Order(4), Migratetype::Movable).unwrap();
    z.free_pfn(q, Order(4)).unwrap();
    // Now on the buddy lists.
    assert_eq!(z.free_pfn(q, Order(4)), Err(FreeError::DoubleFree(q)));
    // A handle turned into a pfn and freed twice.
    let h = z.alloc_pages(Order(1), Migratetype::Movable).unwrap();
    let r = h.into_pfn();
    z.free_pfn(r, Order(1)).unwrap();
    assert_eq!(z.free_pfn(r, Order(1)), Err(FreeError::DoubleFree(r)));
    assert_intact(&z);
}

#[test]
fn never_allocated() {
    let z = zone();
    assert_eq!(
        z.free_pfn(Pfn(0), Order(0)),
        Err(FreeError::NotAllocated(Pfn(0)))
    );
    assert_eq!(
        z.free_pfn(Pfn(1024), Order(10)),
        Err(FreeError::NotAllocated(Pfn(1024)))
    );
    // A tail page of a live allocation is not a head.
    let p = z.alloc_pfn(Order(2), Migratetype::Movable).unwrap();
    assert!(matches!(
        z.free_pfn(p.add(2), Order(1)),
        Err(FreeError::NotAllocated(_)) | Err(FreeError::DoubleFree(_))
    ));
    z.free_pfn(p, Order(2)).unwrap();
    assert_intact(&z);
}

#[test]
fn bad_migratetype() {
    let z = zone();
    for mt in [Migratetype::Reserve, Migratetype::Cma, Migratetype::Isolate] {
        assert_eq!(
            z.alloc_pfn(Order(0), mt),
            Err(AllocError::BadMigratetype(mt))
        );
    }
    assert_intact(&z);
}

#[test]
fn exhaustion_is_an_error_and_the_zone_recovers() {
    let z = zone();
    let mut held = Vec::new();
    loop {
        match z.alloc_pages(Order(0), Migratetype::Unmovable) {
            Ok(p) => held.push(p),
            Err(e) => {
                assert!(matches!(e, AllocError::NoMemory { .. }), "{e}");
                break;
            }
        }
    }
    assert_eq!(held.len() as u64, z.geometry().nr_pages);
    assert!(z.alloc_pfn(Order(3), Migratetype::Movable).is_err());
    drop(held);
    assert_intact(&z);
}

#[test]
fn config_errors_and_mmap_failure() {
    let bad = |c: ZoneConfig| Zone::new(c).unwrap_err();
    assert!(matches!(
        bad(ZoneConfig {
            size: 0,
            ..ZoneConfig::default()
        }),
        ConfigError::ZeroSize
    ));
    assert!(matches!(
        bad(ZoneConfig {
            size: (4 << 20) + 4096,
            ..ZoneConfig::default()
        }),
        ConfigError::SizeNotMultiple { .. }
    ));
    assert!(matches!(
        bad(ZoneConfig {
            size: 16 << 20,
            cma_size: 32 << 20,
            ..ZoneConfig::default()
        }),
        ConfigError::CmaTooLarge { .. }
    ));
    // 4 TiB: more than this machine can map (the kernel refuses the anonymous mapping).
    let e = bad(ZoneConfig {
        size: 4 << 40,
        ..ZoneConfig::default()
    });
    assert!(
        matches!(e, ConfigError::Mmap(_) | ConfigError::MetadataAlloc { .. }),
        "{e}"
    );
    assert!(!e.to_string().is_empty());
}
