//! Print one of the kernel's `/proc` files for a zone, as Linux 3.17 would print it.
//!
//! ```text
//! cargo run --example procfs -- buddyinfo|pagetypeinfo|zoneinfo|vmstat
//! ```
//!
//! The zone is the seed experiment's: 1 GiB with a 256 MiB CMA area at the top, under the
//! aggressive CMA policy (so movable allocations use the CMA area and its rows are not all
//! zero). Before printing, the main thread alone runs a small fixed workload: four rounds of
//! allocations of several orders and types, every second block freed, all pcps drained, then
//! a few order-0 Movable pages allocated so this thread's pcp holds some. Nothing depends on
//! timing or on other threads, so every run prints the same text, with one pageset (`cpu: 0`).

use pagealloc::{AllocError, CmaPolicy, Migratetype, Order, Pages, Zone, ZoneConfig};
use std::process::ExitCode;

/// Print a Linux 3.17 /proc file for a 1 GiB zone (256 MiB CMA) after a small fixed workload.
#[derive(clap::Parser, Debug)]
#[command(name = "procfs")]
struct Args {
    /// Which file:
    /// buddyinfo     /proc/buddyinfo: free blocks per order
    /// pagetypeinfo  /proc/pagetypeinfo: free blocks per order and migratetype,
    ///               pageblocks per type
    /// zoneinfo      /proc/zoneinfo: counters, watermarks and pagesets of the zone
    /// vmstat        /proc/vmstat: 3.17's counters (+ cma_alloc_success/fail)
    #[arg(value_enum, hide_possible_values = true, verbatim_doc_comment)]
    file: File,
}

/// `FILE` (no doc comments on the variants: clap would print them as a second, long help).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum File {
    Buddyinfo,
    Pagetypeinfo,
    Zoneinfo,
    Vmstat,
}

/// The allocations of one round of the workload.
const ROUND: [(u32, Migratetype); 7] = [
    (0, Migratetype::Unmovable),
    (3, Migratetype::Movable),
    (9, Migratetype::Movable),
    (1, Migratetype::Reclaimable),
    (5, Migratetype::Movable),
    (10, Migratetype::Movable),
    (2, Migratetype::Unmovable),
];

/// Run the workload; returns the blocks it keeps allocated.
fn workload(zone: &Zone) -> Result<Vec<Pages<'_>>, AllocError> {
    let mut held = Vec::new();
    for _ in 0..4 {
        for (order, mt) in ROUND {
            held.push(zone.alloc_pages(Order(order), mt)?);
        }
    }
    // Free every second block (dropping a handle frees it).
    let mut kept: Vec<Pages<'_>> = held
        .into_iter()
        .enumerate()
        .filter_map(|(i, block)| (i % 2 == 0).then_some(block))
        .collect();
    zone.drain_all_pages();
    for _ in 0..8 {
        kept.push(zone.alloc_pages(Order(0), Migratetype::Movable)?);
    }
    Ok(kept)
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();

    let zone = match Zone::new(ZoneConfig {
        cma_size: 256 << 20,
        cma_policy: CmaPolicy::Aggressive,
        ..ZoneConfig::default()
    }) {
        Ok(z) => z,
        Err(e) => {
            eprintln!("procfs: cannot set up the zone: {e}");
            return ExitCode::FAILURE;
        }
    };
    let held = match workload(&zone) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("procfs: workload allocation failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = match args.file {
        File::Buddyinfo => zone.buddyinfo(),
        File::Pagetypeinfo => zone.pagetypeinfo(),
        File::Zoneinfo => zone.zoneinfo(),
        File::Vmstat => zone.vmstat(),
    };
    print!("{text}");
    drop(held);
    ExitCode::SUCCESS
}
