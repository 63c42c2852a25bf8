//! Full coalescing: once everything is freed and the pcps drained, a zone under any preset can
//! serve its whole size at the top order again — except under `Fixes::SEED` (v3 as posted),
//! whose isolation-time merge limit leaves a block split (tested as such below). Modelled on
//! the peers' test suites (llfree-rs, buddy_system_allocator: allocate everything, free
//! everything, allocate everything at the largest order).

use pagealloc::*;

const PRESETS: [Fixes; 5] = [
    Fixes::NONE,
    Fixes::SEED,
    Fixes::V3_18,
    Fixes::V4_6,
    Fixes::ALL,
];

fn zone(size: usize, fixes: Fixes) -> Zone {
    Zone::new(ZoneConfig {
        size,
        fixes,
        ..ZoneConfig::default()
    })
    .unwrap()
}

/// Drain, check the coalescing audit, then take every top-order block and give them back.
fn assert_coalesced(z: &Zone) {
    z.drain_all_pages();
    let r = z.audit_coalescing();
    assert!(r.unmerged_blocks.is_empty(), "{:?}: {r}", z.fixes());
    assert!(r.errors.is_empty(), "{:?}: {r}", z.fixes());
    let top = Order(z.geometry().max_order - 1);
    let mut blocks = Vec::new();
    while let Ok(p) = z.alloc_pfn(top, Migratetype::Movable) {
        blocks.push(p);
    }
    assert_eq!(
        blocks.len() as u64,
        z.geometry().nr_pages >> top.0,
        "{:?}: not every top-order block could be allocated",
        z.fixes()
    );
    for p in blocks {
        z.free_pfn(p, top).unwrap();
    }
}

/// The reproduction from the issue: one order-0 allocation splits the first top-order block
/// (a Reserve pageblock beside a Movable one under the 3.17 presets); after it is freed the
/// block must merge again, under every preset and zone size.
#[test]
fn one_split_and_free_coalesces_under_every_preset_and_size() {
    for mib in [4, 16, 64, 256, 1024] {
        for fixes in PRESETS {
            let z = zone(mib << 20, fixes);
            let p = z.alloc_pfn(Order(0), Migratetype::Movable).unwrap();
            z.free_pfn(p, Order(0)).unwrap();
            assert_coalesced(&z);
        }
    }
}

/// The later presets have no Reserve pageblocks, the 3.17 ones keep 3.17's sizing.
#[test]
fn reserve_pageblocks_per_preset() {
    for fixes in PRESETS {
        let z = zone(16 << 20, fixes);
        let reserve = z.geometry().reserve_pageblocks;
        let typed = (0..z.geometry().nr_pageblocks)
            .filter(|b| z.pageblock_migratetype(Pfn(b * 512)) == Some(Migratetype::Reserve))
            .count() as u64;
        assert_eq!(typed, reserve);
        if fixes.contains(Fixes::NO_RESERVE) {
            assert_eq!(reserve, 0, "{fixes:?}");
        } else {
            assert!(reserve > 0, "{fixes:?}");
        }
    }
    let e = Zone::new(ZoneConfig {
        size: 16 << 20,
        fixes: Fixes::ALL,
        reserve_pageblocks: Some(1),
        ..ZoneConfig::default()
    })
    .unwrap_err();
    assert!(
        matches!(e, ConfigError::ReserveRemoved { reserve: 1 }),
        "{e}"
    );
}

/// `alloc_contig_range` over the first top-order block (the Reserve pageblocks under the 3.17
/// presets, whose undo hands them back as the caller's type) and back.
#[test]
fn contig_range_over_the_first_top_block_coalesces() {
    for fixes in PRESETS {
        let z = zone(16 << 20, fixes);
        let top = z.geometry().max_order_nr_pages();
        z.alloc_contig_range(Pfn(0), Pfn(top), Migratetype::Movable)
            .unwrap();
        z.free_contig_range(Pfn(0), top).unwrap();
        assert_coalesced(&z);
    }
}

/// Exhaustion: every page allocated at order 0 (the Reserve list goes last under the 3.17
/// presets), every page freed. Before 4.4's removal of the reserve was modelled, `ALL` lost
/// one top-order block here on every zone below 512 MiB (one Reserve pageblock beside a
/// Movable one, kept apart by the 2022 merge rule).
#[test]
fn exhaustion_through_the_reserve_list_coalesces() {
    for (mib, fixes) in [4, 16, 64, 256, 1024]
        .into_iter()
        .flat_map(|mib| PRESETS.map(|f| (mib, f)))
    {
        let z = zone(mib << 20, fixes);
        let mut pages = Vec::new();
        for mt in [Migratetype::Movable, Migratetype::Unmovable] {
            while let Ok(p) = z.alloc_pfn(Order(0), mt) {
                pages.push(p);
            }
        }
        assert_eq!(pages.len() as u64, z.geometry().nr_pages, "{fixes:?}");
        for p in pages {
            z.free_pfn(p, Order(0)).unwrap();
        }
        assert_coalesced(&z);
    }
}

/// The exception: under `SEED`, a pageblock-sized free while its pageblock is isolated stops
/// at `pageblock_order` (v3 patch 4), and un-isolation (without v5's re-free) leaves the two
/// halves of the top-order block side by side, unmerged, for good. The coalescing audit names
/// the rule; 3.18's `UNSET_REFREE` (and every later preset) merges them.
#[test]
fn seed_leaves_a_block_split_after_an_isolated_free() {
    for fixes in PRESETS {
        let z = zone(16 << 20, fixes);
        let pb = Order(z.geometry().pageblock_order);
        // Two pageblock-sized halves of one top-order block.
        let a = z.alloc_pfn(pb, Migratetype::Movable).unwrap();
        let b = Pfn(a.0 ^ pb.nr_pages());
        let mut others = Vec::new();
        let b_got = loop {
            let p = z.alloc_pfn(pb, Migratetype::Movable).unwrap();
            if p == b {
                break p;
            }
            others.push(p);
        };
        z.free_pfn(b_got, pb).unwrap();
        z.set_migratetype_isolate(a).unwrap();
        z.free_pfn(a, pb).unwrap();
        z.unset_migratetype_isolate(a, Migratetype::Movable)
            .unwrap();
        for p in others {
            z.free_pfn(p, pb).unwrap();
        }
        z.drain_all_pages();
        let r = z.audit_coalescing();
        if fixes == Fixes::SEED {
            assert_eq!(r.unmerged_blocks.len(), 1, "{r}");
            let u = &r.unmerged_blocks[0];
            assert_eq!(u.pfn, Pfn(a.0.min(b.0)));
            assert_eq!(u.pieces.len(), 2);
            assert!(u.reason.contains("ISOLATE_MERGE_LIMIT"), "{}", u.reason);
        } else {
            assert_coalesced(&z);
        }
    }
}
