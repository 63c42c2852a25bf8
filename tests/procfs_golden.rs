//! Golden-text tests for the `/proc` renderers (`buddyinfo`, `pagetypeinfo`, `zoneinfo`,
//! `vmstat`): one fixed single-threaded workload, its text compared byte for byte with
//! `tests/golden/*.txt`.
//!
//! The golden files were written by the renderers (`UPDATE_GOLDEN=1`) and then checked
//! independently: the numbers recounted by `Zone::audit()` and the workload's own page counts
//! were fed to a renderer built from the C format strings of 3.17's `mm/vmstat.c` (Python
//! `%`-formatting, which prints these formats as `printf` does), and the outputs compared
//! byte for byte. See `tests/golden/README.md`.
//!
//! A missing or different golden file fails the test. `UPDATE_GOLDEN=1 cargo test --test
//! procfs_golden` rewrites the files instead; check the diff by hand before keeping it.
//!
//! Every test makes its own zone and touches it from its own thread only: `zoneinfo` prints
//! one pageset per thread that ever used the zone, so this keeps it to exactly `cpu: 0`.

use pagealloc::{CmaPolicy, Migratetype, Order, Pfn, Zone, ZoneConfig};
use std::fs;
use std::path::PathBuf;

use Migratetype::{Movable, Reclaimable, Unmovable};

/// The allocations of the workload, in order.
const STEPS: [(u32, Migratetype); 15] = [
    (10, Movable),
    (9, Movable),
    (3, Movable), // the aggressive CMA policy's first CMA run
    (0, Unmovable),
    (2, Reclaimable),
    (0, Movable),
    (5, Unmovable),
    (1, Movable),
    (4, Reclaimable),
    (0, Reclaimable),
    (7, Movable),
    (3, Unmovable),
    (0, Movable),
    (6, Movable),
    (1, Unmovable),
];

/// Order-0 Movable allocations after the drain, left partly cached on the pcp.
const AFTER_DRAIN: usize = 2;

/// A 64 MiB zone with a 16 MiB CMA area under the aggressive CMA policy, after the workload:
/// the `STEPS` allocations, every third one (from the second) freed, every pcp drained, then
/// `AFTER_DRAIN` order-0 Movable allocations. Returns the zone and the pages still allocated.
fn workload() -> (Zone, u64) {
    let zone = Zone::new(ZoneConfig {
        size: 64 << 20,
        cma_size: 16 << 20,
        cma_policy: CmaPolicy::Aggressive,
        // One CPU, so the text (`cpu: 0`, `vm stats threshold`, the per-CPU counter diffs
        // not yet folded) does not depend on the machine or the scheduler.
        pcp_mode: pagealloc::PcpMode::PerCpu(1),
        ..ZoneConfig::default()
    })
    .expect("zone");
    let mut allocated: u64 = 0;
    {
        let mut held = Vec::new();
        for (order, mt) in STEPS {
            held.push(
                zone.alloc_pages(Order(order), mt)
                    .expect("workload allocation"),
            );
            allocated += 1 << order;
        }
        for (i, block) in held.into_iter().enumerate() {
            if i % 3 == 1 {
                allocated -= block.order().nr_pages();
                drop(block); // freed: order 0 to this thread's pcp, larger orders to the zone
            } else {
                block.into_pfn(); // kept allocated for the rest of the zone's life
            }
        }
        zone.drain_all_pages();
        for _ in 0..AFTER_DRAIN {
            zone.alloc_pages(Order(0), Movable)
                .expect("order-0 allocation")
                .into_pfn();
            allocated += 1;
        }
    }
    zone.audit().assert_ok();
    (zone, allocated)
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(name)
}

/// Compare `actual` with `tests/golden/<name>` byte for byte; with `UPDATE_GOLDEN=1`, write
/// it instead of failing.
fn check_golden(name: &str, actual: &str) {
    let path = golden_path(name);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let expected = fs::read_to_string(&path);
    if expected.as_deref().ok() == Some(actual) {
        return;
    }
    if update {
        fs::create_dir_all(path.parent().expect("golden dir")).expect("create tests/golden");
        fs::write(&path, actual).expect("write golden file");
        eprintln!("UPDATE_GOLDEN=1: wrote {}", path.display());
        return;
    }
    let expected = match expected {
        Ok(e) => e,
        Err(e) => panic!(
            "golden file {} is missing or unreadable ({e}); create it with UPDATE_GOLDEN=1 \
             and check it against the kernel format by hand",
            path.display()
        ),
    };
    let (e_lines, a_lines): (Vec<_>, Vec<_>) = (
        expected.split_inclusive('\n').collect(),
        actual.split_inclusive('\n').collect(),
    );
    let line = e_lines
        .iter()
        .zip(&a_lines)
        .position(|(e, a)| e != a)
        .unwrap_or(e_lines.len().min(a_lines.len()));
    panic!(
        "{name} differs from {} at line {}:\n  golden: {:?}\n  actual: {:?}\n\
         (golden {} lines, actual {} lines; UPDATE_GOLDEN=1 rewrites the file)",
        path.display(),
        line + 1,
        e_lines.get(line),
        a_lines.get(line),
        e_lines.len(),
        a_lines.len()
    );
}

#[test]
fn buddyinfo_golden() {
    let (zone, _) = workload();
    check_golden("buddyinfo.txt", &zone.buddyinfo());
}

#[test]
fn pagetypeinfo_golden() {
    let (zone, _) = workload();
    check_golden("pagetypeinfo.txt", &zone.pagetypeinfo());
}

#[test]
fn zoneinfo_golden() {
    let (zone, _) = workload();
    check_golden("zoneinfo.txt", &zone.zoneinfo());
}

#[test]
fn vmstat_golden() {
    let (zone, _) = workload();
    check_golden("vmstat.txt", &zone.vmstat());
}

// ---- cross-checks against the audit, independent of the golden files ----

/// The counts on a line: every whitespace-separated number (`0,` after `Node` is not one).
fn numbers(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// A fresh default zone (1 GiB): 256 free order-10 blocks, the first of which holds the two
/// Reserve pageblocks and so sits on the Reserve list.
#[test]
fn fresh_default_zone_buddyinfo() {
    let zone = Zone::new(ZoneConfig::default()).expect("zone");
    let r = zone.audit();
    r.assert_ok();
    let mut nr_free = vec![0; 11];
    nr_free[10] = 256;
    assert_eq!(r.nr_free, nr_free);
    assert_eq!(r.free_blocks[10][Migratetype::Reserve as usize], 1);
    assert_eq!(r.free_blocks[10][Movable as usize], 255);
    assert_eq!(
        zone.buddyinfo(),
        "Node 0, zone   Normal      0      0      0      0      0      0      0      0      0      0    256 \n"
    );
    let text = zone.pagetypeinfo();
    assert!(text.contains(
        "\nNode    0, zone   Normal, type      Reserve      0      0      0      0      0      0      0      0      0      0      1 \n"
    ));
    assert!(text.contains(
        "\nNode    0, zone   Normal, type      Movable      0      0      0      0      0      0      0      0      0      0    255 \n"
    ));
    assert!(text.ends_with(
        "\nNode 0, zone   Normal            0            0          510            2            0            0 \n"
    ));
}

#[test]
fn buddyinfo_agrees_with_audit() {
    let (zone, _) = workload();
    let text = zone.buddyinfo();
    assert_eq!(text.lines().count(), 1);
    assert!(text.starts_with("Node 0, zone   Normal "));
    assert_eq!(numbers(&text), zone.audit().nr_free);
}

#[test]
fn pagetypeinfo_agrees_with_audit() {
    let (zone, _) = workload();
    let r = zone.audit();
    let text = zone.pagetypeinfo();
    let lines: Vec<&str> = text.lines().collect();
    // 3 header lines, the order header, 6 type rows, a blank line, 2 block-count lines.
    assert_eq!(lines.len(), 13, "{text}");
    for (row, mt) in lines[4..10].iter().zip(Migratetype::ALL) {
        assert!(row.contains(&format!("type {:>12} ", mt.name())), "{row}");
        let counts = numbers(row);
        for (order, per_type) in r.free_blocks.iter().enumerate() {
            assert_eq!(counts[order], per_type[mt as usize], "{mt} {order}");
        }
    }
    let mut blocks = [0u64; 6];
    let g = zone.geometry();
    for b in 0..g.nr_pageblocks {
        let mt = zone
            .pageblock_migratetype(Pfn(b * g.pageblock_nr_pages))
            .expect("in zone");
        blocks[mt as usize] += 1;
    }
    assert_eq!(numbers(lines[12]), blocks);
}

#[test]
fn zoneinfo_and_vmstat_agree_with_audit() {
    let (zone, allocated) = workload();
    let check = |zone: &Zone, folded: bool| {
        let r = zone.audit();
        // What the text shows: the folded vmstat values, equal to the exact counts once
        // vmstat_update has run.
        let (free, cma) = (r.vmstat_free_pages, r.vmstat_free_cma_pages);
        if folded {
            assert_eq!((free, cma), (r.nr_free_pages, r.nr_free_cma_pages));
        }
        let zi = zone.zoneinfo();
        assert!(zi.contains(&format!("\n  pages free     {free}\n")), "{zi}");
        assert!(zi.contains(&format!("\n    nr_free_pages {free}\n")));
        assert!(zi.contains(&format!("\n    nr_free_cma  {cma}\n")));
        assert!(zi.contains(&format!(
            "\n    cpu: 0\n              count: {}\n",
            r.pcp_pages
        )));
        assert!(!zi.contains("cpu: 1"), "{zi}");
        assert_eq!(r.allocated_pages, allocated);

        let vm = zone.vmstat();
        let value = |name: &str| -> u64 {
            vm.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no {name} line"))
        };
        assert_eq!(value("nr_free_pages"), free as u64);
        assert_eq!(value("nr_free_cma"), cma as u64);
        // Pages handed to callers minus pages they gave back = pages they still hold.
        assert_eq!(value("pgalloc_normal") - value("pgfree"), allocated);
        assert_eq!(value("pgalloc_dma32"), 0);
    };
    check(&zone, false);
    zone.vmstat_update();
    check(&zone, true);
}

#[test]
fn missing_golden_file_fails_without_update() {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        return;
    }
    let result = std::panic::catch_unwind(|| check_golden("no-such-file.txt", "x\n"));
    assert!(result.is_err(), "a missing golden file must fail the test");
    assert!(!golden_path("no-such-file.txt").exists());
}
