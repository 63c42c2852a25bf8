//! The seed's experiment, on real threads: CMA allocations on a busy machine.
//!
//! Joonsoo Kim's test (v3 cover letter, 26 Aug 2014): a VM with 4 CPUs, 1024 MB of memory and
//! a 256 MB CMA reservation, a kernel build (`make -j16`) in the background, 30 CMA
//! allocations of 8 MB (8 MB × 30 = 240 MB) at 5 s intervals, with his "aggressively allocate
//! the pages on cma reserved memory" patchset applied. Result: "more than 5000 freepage count
//! are missed" without the fixes, none with them.
//!
//! Here, for each fix set (default `none`, then `all`), on a fresh zone:
//!
//! - a 1 GiB arena with a 256 MiB CMA area at its top and the aggressive CMA policy
//!   ([`CmaPolicy::Aggressive`]: Movable allocations alternate between the normal and the CMA
//!   free lists, so CMA pages really flow through the pcps);
//! - `--threads` (16) workers play `make -j16`. Warm-up: together they allocate until the zone
//!   is full, then each keeps a random `--working-set`·3/5 share of its blocks as its
//!   long-lived set (the page cache) and frees the rest, so what is in use and the holes
//!   between are spread over the whole arena, CMA area included. Then each runs jobs (compiler
//!   processes): a job allocates up to a random size (up to `--working-set`·4/5 of the
//!   worker's share), works on its memory for a while and exits, freeing everything at once;
//!   between job steps the long-lived set churns (one block freed, one allocated). Nine in ten
//!   allocations are [`Zone::alloc_movable`] blocks of order 0–3, one in ten a plain
//!   Unmovable or Reclaimable [`Zone::alloc_pages`] block of order 0–1. Every block carries a
//!   pattern (two words per page) written at allocation; touching a block pins it
//!   ([`MovablePages::pin`]) just long enough to check the pattern and write a new one, so the
//!   allocator can migrate any movable block whenever it needs to. A quarter of the frees are
//!   handed to the next worker and done there (into that thread's pcp);
//! - the main thread does `--allocs` (30) [`Cma::alloc`](pagealloc::Cma::alloc)s of
//!   `--alloc-mib` (8 MiB = 2048 pages, aligned to `Order(8)` like `CONFIG_CMA_ALIGNMENT`),
//!   one every `--interval-ms`, and writes and checks every page of each. By default (`--hold`)
//!   it keeps them until the end of the run, as the seed's 8 MB × 30 = 240 MB suggests: they
//!   sweep through the 256 MiB area, and every allocation has to migrate the workers' pages
//!   out of a fresh range. `--release-each` releases each one at once instead (then they all
//!   land on the same range at the bottom of the area). One line per allocation: ok or busy,
//!   where in the area, how long it took, the pages migrated so far, and the drift of a live
//!   [`Zone::audit`] at that moment.
//!
//! At the end of a run the CMA allocations are checked and released, the workers stop, verify
//! every block they hold and free everything, `drain_all_pages()` runs, and the final audit
//! gives the numbers of the table:
//!
//! - **free pages missed** = |`drift_free`|, where `drift_free` = `NR_FREE_PAGES` − the pages
//!   really on the non-`Isolate` free lists (the seed's definition of a free page); the signed
//!   drift is printed too (negative: the counter lost pages);
//! - **CMA free pages missed** = |`drift_cma`| (`NR_FREE_CMA_PAGES` − pages on the CMA lists);
//! - CMA allocations succeeded / busy (failed for good); CMA attempts busy: every failed
//!   `alloc_contig_range` inside them, retried or not; **pages migrated** (`pgmigrate_success` from
//!   `vmstat()`); misplaced blocks (free blocks on a list that disagrees with their
//!   pageblock's type); the audit verdict; pattern errors (pages whose bytes changed under
//!   their owner, e.g. a migration that lost them).
//!
//! With `none` (Linux 3.17) the races make the counters drift: without injection mostly race
//! R2 here (pages a pcp cached as CMA are drained into a pageblock that was just isolated,
//! land on the CMA list uncounted, and are allocated again before `test_pages_isolated` would
//! move them); with `--race-window park`, race R1b (below).
//! With `all` the drift must be exactly 0, no block misplaced, and every allocation must
//! succeed. The exit status is 1 if a run with all the fixes is not clean (drift, misplaced
//! block, failed audit, fewer successful allocations than attempts) or if any run found a
//! pattern error.
//!
//! Two knobs make the races fire more often. `--race-window` injects delays at the racy points
//! of the 3.17 paths (through the zone's [`RaceHook`]):
//!
//! - `park` (or `park:MS`) installs a `ParkHook` aimed at the CMA allocations. From MS (20)
//!   ms before each `Cma::alloc`, a worker's free of a block of order > 0 in a pageblock the
//!   allocation is about to isolate, which has read the pageblock's type (CMA) without the
//!   zone lock, is held before it takes the lock (its CPU preempted in the window, as a vCPU
//!   of the seed's VM can be) until the pageblock is isolated and the allocation's migration
//!   has passed the block. The 3.17 code then frees it by the stale type onto the CMA list
//!   inside the isolated pageblock and counts it (race R1b): each such free leaves
//!   `NR_FREE_PAGES` 2^order (2–8) pages too high for good. About 16 such frees per
//!   allocation (one per worker) miss over a thousand free pages per run; with the fixes, 0.
//! - `spin:N` (or a bare `N`) installs a [`SpinHook`] spinning N iterations at every racy point,
//!   on every thread and pfn (a few hundred pages missed with `--pcp-fraction 8`).
//!
//! `--pcp-fraction F` sets the pcp sizes as 3.17's `vm.percpu_pagelist_fraction` sysctl does
//! (`high` = managed/F, `batch` = high/4 capped at 96), so the pcps hold many more CMA pages
//! when a pageblock is isolated (race R2).
//!
//! `--cpus N` models N CPUs ([`PcpMode::PerCpu`](pagealloc::PcpMode::PerCpu): one pcp and one
//! set of vmstat diffs per CPU, nothing drained at thread exit): worker `i` binds itself to CPU
//! `i` (mod N), the thread making the CMA allocations to CPU `--threads` (mod N). `--cpus 4`
//! with the default 16 workers is the seed's VM: 4 CPUs, `make -j16`. Without it each thread
//! has its own pcp (the library's default).
//!
//! A timer thread folds the per-CPU vmstat diffs once a second while a run lasts (3.17's
//! `vmstat_update`, [`Zone::vmstat_update`]); each run's last lines give the final drift
//! exactly and as `zone_page_state` showed it (the folded counters: what `/proc/zoneinfo` and
//! the watermark checks of a 3.17 kernel read).
//!
//! `--page-cache` fills the memory the workers leave free with page cache, as the seed's VM
//! was full of it during the kernel build (`examples/common/page_cache.rs`): once the workers
//! are ready, a reader thread (CPU `--threads` + 1 with `--cpus`) reads movable order-0 pages
//! (`GFP_HIGHUSER_MOVABLE`) until reclaim starts, then reads on at `--read-mib-s` (default: a
//! build's estimated 2 MiB/s times this run's time compression, 5000 ms / `--interval-ms`:
//! 66.7 MiB/s at 150 ms); kswapd and direct reclaim free the oldest pages. The workers'
//! blocks are then allocated through the watermarks ([`Zone::alloc_movable_gfp`] with
//! `GFP_HIGHUSER_MOVABLE` for the movable ones, which stay migratable;
//! [`Zone::alloc_pages_gfp`] with `GFP_KERNEL`, `GFP_KERNEL | __GFP_RECLAIMABLE` for the
//! others; an `OutOfMemory` is a failed allocation, as `NoMemory`). The CMA allocations drop the page
//! cache in the pageblocks they isolate, as 3.17's `alloc_contig_range` reclaims clean page
//! cache (`reclaim_clean_pages_from_list`) rather than migrating it (page-cache pages are pfn
//! allocations here, which the library cannot migrate either). The run reports watermark
//! breaches (audits every 100 ms finding fewer free pages than `min`), premature failures
//! (`OutOfMemory` although the exact free lists passed the slow path's watermark check) and
//! the reclaim and compaction counters.
//!
//! `--plot DIR` writes SVG pictures of the runs (`examples/common/plot.rs`): the drift over
//! time, sampled every 100 ms by [`Zone::drift_sample`] (exactly and as `zone_page_state`
//! showed it), the ledger by race, and each run's pageblock map ([`Zone::pageblock_map`]) at
//! its worst drift. On a terminal each run shows a progress bar (CMA allocations made) with the
//! drift so far, and `--soak` a status line (`examples/common/progress.rs`); nothing is drawn
//! with `--json` or when stdout or stderr is redirected.
//!
//! `--seed-shape` is the seed's experiment as one preset: 4 CPUs, 1 GiB with 256 MiB of CMA
//! used aggressively, page cache filling free memory, 30 allocations of 8 MiB at 5 s intervals
//! (1 s with `--quick`), and instead of the synthetic workers above a kernel build
//! (`examples/common/kbuild.rs`: 16 job slots running compile jobs that exec, read their
//! source and the shared headers, fault in anonymous memory, write their object and exit); the
//! CMA allocations start once every job slot has finished a job. The jobs' transparent huge
//! pages follow `--thp` (`always`, 3.17's default: THP faults where cc1's memory layout
//! allows them; `never`; `ggc-aligned`, a diagnostic with every 2 MiB of a job a THP fault):
//! a THP in a CMA range makes that `alloc_contig_range` busy, and `cma_alloc` retries at the
//! next aligned position ("CMA attempts busy (retried)"). It refuses the flags it sets.
//! `scripts/seed_experiment.sh` measures it per preset and writes
//! `docs/seed-experiment.md`'s tables.
//!
//! ```text
//! cargo run --release --example cma_stress                        # none, then all
//! cargo run --release --example cma_stress -- --race-window park  # R1b's window, aimed
//! cargo run --release --example cma_stress -- --race-window 100   # every window widened
//! cargo run --release --example cma_stress -- --pcp-fraction 8    # bigger pcps
//! cargo run --release --example cma_stress -- --fixes 'none;seed;v3.18;all' --json
//! cargo run --release --example cma_stress -- --soak               # `all` until Ctrl-C
//! cargo run --release --example cma_stress -- --cpus 4             # the seed's 4-CPU VM
//! cargo run --release --example cma_stress -- --page-cache --allocs 10 --interval-ms 50
//! cargo run --release --example cma_stress -- --plot /tmp/plots   # SVG pictures of the runs
//! cargo run --release --example cma_stress -- --seed-shape         # the seed's shape, 2 x 150 s
//! cargo run --release --example cma_stress -- --seed-shape --quick # the same, 2 x 30 s
//! ```

// The stop flags and the readiness counter are plain std atomics: this example is outside the
// crate's loom shim rule, which only concerns the library's own concurrency (src/sync.rs).
#![allow(clippy::disallowed_types)]

use pagealloc::{
    AllocError, AuditReport, CmaError, CmaPages, CmaPolicy, Fixes, Gfp, Migratetype, MovablePages,
    Order, PAGE_SIZE, Pages, PcpConfig, Pfn, RaceHook, RaceWindow, SpinHook, Zone, ZoneConfig,
};
mod common;
// The kernel-build workload of --seed-shape (its own file, beside the other shared modules).
#[path = "common/kbuild.rs"]
mod kbuild;

use common::page_cache::{PageCache, PageCacheOpts, PageCacheReport, Pressure, Reader};
use common::plot::{PlotOpts, Recorder, RunPlot};
use common::progress::{self, Live};
use common::{
    CpuOpts, LedgerJson, Rng, RunOpts, TraceOpts, at_least_one, drift_line,
    install_signal_handlers, ledger_json, ledger_lines, positive_multiple_of_4, splitmix64,
    stopped, usage_error, vmstat_drift, vmstat_timer,
};
use kbuild::{Kbuild, KbuildStats, SeedShapeOpts, Thp};
use std::cell::Cell;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

// ---- arguments ----

/// The seed's experiment: worker threads play `make -j16` (movable and some unmovable
/// allocations, jobs that come and go, a long-lived set) on a zone whose CMA area is used
/// aggressively, while one thread does 30 CMA allocations of 8 MiB. Each fix set runs on a
/// fresh zone; the final audit reports the free pages missed.
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "cma_stress", verbatim_doc_comment, after_help = AFTER_HELP)]
struct Args {
    /// Worker threads
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = at_least_one::<usize>)]
    threads: usize,
    /// Arena size in MiB, a multiple of 4
    #[arg(long, value_name = "M", default_value_t = 1024, value_parser = positive_multiple_of_4)]
    arena_mib: usize,
    /// CMA area at the top of the arena in MiB, a multiple of 4, below
    /// --arena-mib
    #[arg(
        long,
        value_name = "M",
        default_value_t = 256,
        value_parser = positive_multiple_of_4,
        verbatim_doc_comment
    )]
    cma_mib: usize,
    /// CMA allocations per run
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = at_least_one::<u32>)]
    allocs: u32,
    /// Size of each CMA allocation in MiB, at most --cma-mib
    #[arg(long, value_name = "M", default_value_t = 8, value_parser = at_least_one::<usize>)]
    alloc_mib: usize,
    /// Time between CMA allocations (ms)
    #[arg(long, value_name = "T", default_value_t = 150)]
    interval_ms: u64,
    /// aggressive: the seed's patchset [3]; fallback: 3.17, CMA is only a
    /// fallback of Movable allocations, so the races cannot show
    /// [default: aggressive]
    #[arg(
        long,
        value_name = "P",
        value_enum,
        ignore_case = true,
        default_value_t = Policy::Aggressive,
        hide_default_value = true,
        hide_possible_values = true,
        verbatim_doc_comment
    )]
    policy: Policy,
    /// Keep every CMA allocation until the end of the run: they sweep the
    /// area (30 x 8 MiB = 240 MiB of 256, as in the seed) [default]
    #[arg(long, overrides_with = "release_each", verbatim_doc_comment)]
    hold: bool,
    /// Release each CMA allocation right after writing it
    #[arg(long, overrides_with = "hold")]
    release_each: bool,
    /// Percent of the arena the workers use in steady state, 1 to 80: 3/5
    /// long-lived, up to 4/5 more in jobs
    #[arg(
        long,
        value_name = "P",
        default_value_t = 40,
        value_parser = clap::value_parser!(u64).range(1..=80),
        verbatim_doc_comment
    )]
    working_set: u64,
    /// Race-window injection [default: off]:
    /// park, park:MS  hold workers' frees (order > 0) into the range the
    ///   next CMA allocation will isolate between their lockless
    ///   pageblock-type read and the zone lock, from MS ms (default 20)
    ///   before the allocation until its migration has passed them (R1b)
    /// spin:N, N  a SpinHook spinning N iterations at every race window
    #[arg(
        long,
        value_name = "W",
        default_value = "off",
        hide_default_value = true,
        value_parser = Injection::parse,
        verbatim_doc_comment
    )]
    race_window: Injection,
    /// pcp sizes as vm.percpu_pagelist_fraction=F (high = pages/F, batch =
    /// high/4 at most 96; F >= 8) [default: 3.17's zone_batchsize (186/31)]
    #[arg(
        long,
        value_name = "F",
        value_parser = pcp_fraction,
        verbatim_doc_comment
    )]
    pcp_fraction: Option<u64>,
    /// With --seed-shape: transparent huge pages for the build's jobs:
    /// always (3.17's default: THP faults where cc1's memory layout allows,
    /// examples/common/kbuild.rs), never (every fault order 0), or
    /// ggc-aligned (diagnostic, not the seed's machine: gcc patched to map
    /// its GC heap in 2 MiB-aligned chunks, every 2 MiB a THP fault)
    #[arg(
        long,
        value_enum,
        default_value_t = Thp::Always,
        requires = "seed_shape",
        verbatim_doc_comment
    )]
    thp: Thp,
    /// Run the `all` fix set again and again until Ctrl-C, one line per round
    #[arg(long)]
    soak: bool,
    #[command(flatten)]
    plot: PlotOpts,
    #[command(flatten)]
    cpus: CpuOpts,
    #[command(flatten)]
    page_cache: PageCacheOpts,
    #[command(flatten)]
    trace: TraceOpts,
    #[command(flatten)]
    shape: SeedShapeOpts,
    #[command(flatten)]
    run: RunOpts,
}

const AFTER_HELP: &str = "\
--json prints {\"runs\":[{\"fixes\":\"none\",...},...]}.

exit status: 0 when every run with all the fixes ended clean (drift 0, no misplaced block,
clean audit, every CMA allocation succeeded) and no pattern check failed in any run; 1
otherwise; 2 on a usage error. With --seed-shape and THP faults (--thp always or ggc-aligned)
a CMA allocation that failed busy at every position does not fail the run: 3.17's
alloc_contig_range cannot migrate a transparent huge page (THP migration came in 4.14), so
cma_alloc returns NULL then, as in the kernel.";

/// `--policy`: how Movable allocations use the CMA area.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    // CmaPolicy::Aggressive
    Aggressive,
    // CmaPolicy::Fallback
    Fallback,
}

impl Policy {
    fn cma_policy(self) -> CmaPolicy {
        match self {
            Policy::Aggressive => CmaPolicy::Aggressive,
            Policy::Fallback => CmaPolicy::Fallback,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Policy::Aggressive => "aggressive",
            Policy::Fallback => "fallback",
        }
    }
}

impl Args {
    /// The arguments, or exit with clap's message (status 2; 0 for `--help`).
    fn parse_checked() -> Args {
        let mut a = <Args as clap::Parser>::parse();
        // --seed-shape sets the shape's flags (clap refuses them beside it).
        if let Some(s) = a.shape.shape() {
            a.cpus.cpus = Some(s.cpus);
            a.arena_mib = s.arena_mib;
            a.cma_mib = s.cma_mib;
            a.threads = s.jobs;
            a.allocs = s.allocs;
            a.alloc_mib = s.alloc_mib;
            a.interval_ms = s.interval_ms;
            a.policy = Policy::Aggressive;
            a.page_cache.page_cache = true;
        }
        if a.cma_mib >= a.arena_mib {
            usage_error::<Args>("--cma-mib must be below --arena-mib");
        }
        if a.alloc_mib > a.cma_mib {
            usage_error::<Args>("--alloc-mib must be at most --cma-mib");
        }
        if a.soak && a.plot.plot.is_some() {
            usage_error::<Args>("--plot draws finished runs; --soak runs until Ctrl-C");
        }
        a
    }

    /// Whether the run's workload faults in transparent huge pages (the seed shape's build
    /// with `--thp always` or `ggc-aligned`), which may leave a CMA allocation `-EBUSY`.
    fn thp_in_cma(&self) -> bool {
        self.shape.seed_shape && self.thp != Thp::Never
    }

    /// `--hold` (the default) or `--release-each`, the later one winning.
    fn hold(&self) -> bool {
        self.hold || !self.release_each
    }

    /// The page cache's read rate: `--read-mib-s`, else a build's rate scaled by this run's
    /// time compression (the seed's 5 s between CMA allocations, run every `--interval-ms`).
    fn read_mib_s(&self) -> f64 {
        if self.shape.seed_shape {
            // The build's jobs read and write their own page cache; the reader only fills
            // free memory first (what the VM had cached before the build).
            return self.page_cache.read_mib_s.unwrap_or(0.0);
        }
        self.page_cache
            .read_mib_s(5000.0 / self.interval_ms.max(1) as f64)
    }
}

/// `--pcp-fraction`: at least 8, as the sysctl.
fn pcp_fraction(v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(f) if f >= 8 => Ok(f),
        _ => Err("expected a whole number, at least 8 (the kernel's minimum)".into()),
    }
}

/// 3.17's `pageset_set_high` for `vm.percpu_pagelist_fraction = f`: `high` = managed pages /
/// f, `batch` = high / 4, at most `PAGE_SHIFT * 8` (96).
fn pcp_for_fraction(arena_mib: usize, f: u64) -> PcpConfig {
    let managed = (arena_mib << 20) as u64 / PAGE_SIZE as u64;
    let high = (managed / f).min(u64::from(u32::MAX)) as u32;
    PcpConfig {
        high,
        batch: (high / 4).clamp(1, 96),
    }
}

// ---- page pattern ----

/// Write the pattern of `tag`: the first and the last word of every page. The pattern does not
/// depend on where the block is, so it survives migration.
fn stamp(bytes: &mut [u8], tag: u64) {
    for (i, page) in bytes.chunks_exact_mut(PAGE_SIZE).enumerate() {
        let v = tag.wrapping_add(i as u64);
        page[..8].copy_from_slice(&v.to_ne_bytes());
        page[PAGE_SIZE - 8..].copy_from_slice(&(!v).to_ne_bytes());
    }
}

/// The first page of a block whose pattern is not `tag`'s, for error messages.
fn describe_bad(kind: &str, bytes: &[u8], pfn: u64, tag: u64) -> String {
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("8 bytes"));
    let pages = bytes.len() / PAGE_SIZE;
    let first = bytes
        .chunks_exact(PAGE_SIZE)
        .enumerate()
        .find_map(|(i, page)| {
            let v = tag.wrapping_add(i as u64);
            let (w0, w1) = (word(&page[..8]), word(&page[PAGE_SIZE - 8..]));
            (w0 != v || w1 != !v).then_some((i, v, w0, w1))
        });
    match first {
        Some((i, v, w0, w1)) => format!(
            "{kind} {pages}-page block at pfn {pfn:#x}: page {i} holds {w0:#018x}/{w1:#018x}, \
             expected {v:#018x}/{:#018x}",
            !v
        ),
        None => format!("{kind} {pages}-page block at pfn {pfn:#x}"),
    }
}

/// Pages whose pattern is not `tag`'s.
fn check(bytes: &[u8], tag: u64) -> u64 {
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("8 bytes"));
    bytes
        .chunks_exact(PAGE_SIZE)
        .enumerate()
        .filter(|(i, page)| {
            let v = tag.wrapping_add(*i as u64);
            word(&page[..8]) != v || word(&page[PAGE_SIZE - 8..]) != !v
        })
        .count() as u64
}

// ---- workers ----

enum Held<'z> {
    /// Movable: may be migrated whenever it is not pinned.
    Movable(MovablePages<'z>),
    /// Unmovable or Reclaimable: stays where it is.
    Plain(Pages<'z>),
}

/// A live allocation and the tag of the pattern in its pages.
struct Block<'z> {
    held: Held<'z>,
    tag: u64,
}

impl Block<'_> {
    fn pages(&self) -> u64 {
        match &self.held {
            Held::Movable(m) => m.order().nr_pages(),
            Held::Plain(p) => p.order().nr_pages(),
        }
    }

    /// Check the pattern; with `Some(new)`, write `new`'s pattern and keep it. The pin is held
    /// only for the check and the write. Returns the pages whose pattern was wrong and, if
    /// any, a description of the first.
    fn touch(&mut self, new: Option<u64>) -> (u64, Option<String>) {
        let tag = self.tag;
        let inspect = |kind: &str, bytes: &[u8], pfn: u64| {
            let bad = check(bytes, tag);
            (bad, (bad > 0).then(|| describe_bad(kind, bytes, pfn, tag)))
        };
        let r = match &mut self.held {
            Held::Movable(m) => {
                let mut g = m.pin();
                let pfn = g.pfn().0;
                let r = inspect("movable", g.as_slice(), pfn);
                if let Some(t) = new {
                    stamp(g.as_mut_slice(), t);
                }
                r
            }
            Held::Plain(p) => {
                let r = inspect("unmovable", p.as_slice(), p.pfn().0);
                if let Some(t) = new {
                    stamp(p.as_mut_slice(), t);
                }
                r
            }
        };
        if let Some(t) = new {
            self.tag = t;
        }
        r
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct WorkerStats {
    allocs: u64,
    frees: u64,
    cross_frees: u64,
    touches: u64,
    jobs: u64,
    alloc_failures: u64,
    verify_errors: u64,
}

impl WorkerStats {
    /// A kernel build's job slot as a worker: its allocations, processes, failures, errors.
    fn from_kbuild(k: &KbuildStats) -> WorkerStats {
        // Its page cache is freed by reclaim (or at the end of the run), not by the jobs.
        WorkerStats {
            allocs: k.anon_faults + k.kernel_allocs + k.page_cache_pages,
            frees: k.anon_faults + k.kernel_allocs,
            jobs: k.processes,
            alloc_failures: k.alloc_failures,
            verify_errors: k.verify_errors,
            ..WorkerStats::default()
        }
    }

    fn add(&mut self, o: &WorkerStats) {
        self.allocs += o.allocs;
        self.frees += o.frees;
        self.cross_frees += o.cross_frees;
        self.touches += o.touches;
        self.jobs += o.jobs;
        self.alloc_failures += o.alloc_failures;
        self.verify_errors += o.verify_errors;
    }
}

/// How much a worker holds (pages).
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// The churning long-lived set (the page cache of the build) is kept around this size.
    cache: u64,
    /// The largest job (a compiler process): each job draws its size from `1..=job_max`.
    job_max: u64,
}

/// Orders of movable allocations (0–3, mostly 0).
const MOVABLE_ORDERS: [u32; 8] = [0, 0, 0, 0, 1, 1, 2, 3];

/// A set of live blocks and their total pages.
#[derive(Default)]
struct Set<'z> {
    blocks: Vec<Block<'z>>,
    pages: u64,
}

impl<'z> Set<'z> {
    fn push(&mut self, b: Block<'z>) {
        self.pages += b.pages();
        self.blocks.push(b);
    }

    fn take_random(&mut self, rng: &mut Rng) -> Option<Block<'z>> {
        if self.blocks.is_empty() {
            return None;
        }
        let i = rng.below(self.blocks.len() as u64) as usize;
        let b = self.blocks.swap_remove(i);
        self.pages -= b.pages();
        Some(b)
    }
}

/// Where the current job is in its life.
#[derive(Clone, Copy, Debug)]
enum Job {
    /// Allocating until it holds this many pages.
    Growing(u64),
    /// Working on its memory for this many more steps, then exiting.
    Running(u64),
}

struct Worker<'z> {
    id: usize,
    zone: &'z Zone,
    /// With `--page-cache`: every block through the watermarks, failures recorded here.
    pressure: Option<&'z Pressure>,
    rng: Rng,
    tx: Option<mpsc::Sender<Block<'z>>>,
    cache: Set<'z>,
    job: Set<'z>,
    next_tag: u64,
    stats: WorkerStats,
}

impl<'z> Worker<'z> {
    fn new_tag(&mut self) -> u64 {
        self.next_tag += 1;
        splitmix64(((self.id as u64) << 48) ^ self.next_tag)
    }

    fn count_bad(&mut self, (bad, msg): (u64, Option<String>), what: &str) {
        if bad > 0 {
            if self.stats.verify_errors < 5 {
                eprintln!(
                    "cma_stress: worker {}: pattern mismatch in {bad} page(s) {what}: {}",
                    self.id,
                    msg.unwrap_or_default()
                );
            }
            self.stats.verify_errors += bad;
        }
    }

    /// Allocate one block (nine in ten movable) and write its pattern. `None` on `NoMemory`.
    fn alloc_block(&mut self) -> Option<Block<'z>> {
        let r = self.rng.next();
        let res = if r % 10 != 0 {
            let order = Order(MOVABLE_ORDERS[((r >> 8) % 8) as usize]);
            match self.pressure {
                Some(_) => self
                    .zone
                    .alloc_movable_gfp(order, Gfp::GFP_HIGHUSER_MOVABLE),
                None => self.zone.alloc_movable(order),
            }
            .map(Held::Movable)
        } else {
            let mt = if (r >> 8) & 1 == 0 {
                Migratetype::Unmovable
            } else {
                Migratetype::Reclaimable
            };
            let order = Order(((r >> 9) & 1) as u32);
            match self.pressure {
                Some(_) => {
                    let gfp = if mt == Migratetype::Unmovable {
                        Gfp::GFP_KERNEL
                    } else {
                        Gfp::GFP_KERNEL_RECLAIMABLE
                    };
                    self.zone.alloc_pages_gfp(order, gfp)
                }
                None => self.zone.alloc_pages(order, mt),
            }
            .map(Held::Plain)
        };
        match res {
            Ok(held) => {
                let tag = self.new_tag();
                let mut b = Block { held, tag };
                match &mut b.held {
                    Held::Movable(m) => stamp(m.pin().as_mut_slice(), tag),
                    Held::Plain(p) => stamp(p.as_mut_slice(), tag),
                }
                self.stats.allocs += 1;
                Some(b)
            }
            Err(AllocError::NoMemory { .. }) => {
                self.stats.alloc_failures += 1;
                None
            }
            Err(AllocError::OutOfMemory { order, gfp, .. }) => {
                self.stats.alloc_failures += 1;
                if let Some(p) = self.pressure {
                    p.allocation_failed(self.zone, order, gfp);
                }
                None
            }
            Err(e) => panic!(
                "cma_stress: worker {}: unexpected allocation error: {e}",
                self.id
            ),
        }
    }

    /// Check the pattern and free the block on this thread.
    fn free_block(&mut self, mut b: Block<'z>) {
        let r = b.touch(None);
        self.count_bad(r, "at free");
        drop(b);
        self.stats.frees += 1;
    }

    /// Free a block here, or (one in four) hand it to the next worker to free.
    fn release(&mut self, b: Block<'z>) {
        if let Some(tx) = &self.tx
            && self.rng.below(4) == 0
        {
            if let Err(mpsc::SendError(b)) = tx.send(b) {
                self.free_block(b);
            }
            return;
        }
        self.free_block(b);
    }

    /// Pin a random block of `job` (or of the cache), check its pattern, write a new one.
    fn touch_random(&mut self, job: bool) {
        let set = if job && !self.job.blocks.is_empty() {
            &self.job
        } else {
            &self.cache
        };
        if set.blocks.is_empty() {
            return;
        }
        let i = self.rng.below(set.blocks.len() as u64) as usize;
        let new = self.new_tag();
        let set = if job && !self.job.blocks.is_empty() {
            &mut self.job
        } else {
            &mut self.cache
        };
        let r = set.blocks[i].touch(Some(new));
        self.count_bad(r, "at touch");
        self.stats.touches += 1;
    }

    /// One step of page-cache churn around `target` pages.
    fn cache_step(&mut self, target: u64) {
        if self.cache.pages < target {
            if let Some(b) = self.alloc_block() {
                self.cache.push(b);
            }
        } else if let Some(b) = self.cache.take_random(&mut self.rng) {
            self.release(b);
        }
    }

    /// The job exits: all its memory is freed at once, in allocation order.
    fn exit_job(&mut self) {
        let blocks = std::mem::take(&mut self.job.blocks);
        self.job.pages = 0;
        for b in blocks {
            self.release(b);
        }
        self.stats.jobs += 1;
    }

    /// One step of the worker's life: take in the blocks another worker handed over, then
    /// advance the current job (allocate, touch, or exit) or churn the long-lived set.
    fn step(&mut self, job: Job, plan: &Plan, rx: &mpsc::Receiver<Block<'z>>) -> Job {
        // Blocks another worker allocated, freed here.
        while let Ok(b) = rx.try_recv() {
            self.free_block(b);
            self.stats.cross_frees += 1;
        }
        let r = self.rng.below(100);
        match job {
            Job::Growing(size) if self.job.pages >= size => Job::Running(size / 2 + 1),
            Job::Growing(size) => {
                if r < 70 {
                    match self.alloc_block() {
                        Some(b) => {
                            self.job.push(b);
                            Job::Growing(size)
                        }
                        // Out of memory: the job dies early (the OOM killer's role).
                        None => {
                            self.exit_job();
                            self.new_job(plan.job_max)
                        }
                    }
                } else {
                    if r < 85 {
                        self.touch_random(true);
                    } else {
                        self.cache_step(plan.cache);
                    }
                    Job::Growing(size)
                }
            }
            Job::Running(0) => {
                self.exit_job();
                self.new_job(plan.job_max)
            }
            Job::Running(left) => {
                if r < 60 {
                    self.touch_random(true);
                } else {
                    self.cache_step(plan.cache);
                }
                Job::Running(left - 1)
            }
        }
    }

    fn new_job(&mut self, job_max: u64) -> Job {
        Job::Growing(1 + self.rng.below(job_max.max(1)))
    }
}

/// One worker, playing part of `make -j16`.
///
/// Warm-up: allocate until the zone is full (with the other workers), then keep the blocks
/// that landed in the CMA area as the resident set (with `plan.resident_from`), keep a random
/// `plan.cache` pages of the rest as the churning long-lived set, and free the others; report
/// ready. Then run jobs until `stop`: a job allocates up to its size (touching its blocks as
/// it goes), works on its memory for a while, and exits, freeing everything at once; between
/// job steps the long-lived set churns. At the end every block is verified and freed.
fn worker<'z>(
    zone: &'z Zone,
    id: usize,
    seed: u64,
    plan: Plan,
    tx: Option<mpsc::Sender<Block<'z>>>,
    rx: mpsc::Receiver<Block<'z>>,
    ctl: &'z Control,
) -> WorkerStats {
    let mut w = Worker {
        id,
        zone,
        pressure: ctl.page_cache.then_some(&ctl.pressure),
        rng: Rng::new(seed ^ splitmix64(id as u64 + 1)),
        tx,
        cache: Set::default(),
        job: Set::default(),
        next_tag: 0,
        stats: WorkerStats::default(),
    };
    // Warm-up: a machine that has been busy for a while has used all of its memory.
    let mut pool = Set::default();
    while !ctl.stop.load(Ordering::Relaxed) {
        match w.alloc_block() {
            Some(b) => pool.push(b),
            None => break,
        }
    }
    while let Some(b) = pool.take_random(&mut w.rng) {
        if w.cache.pages < plan.cache {
            w.cache.push(b);
        } else {
            w.free_block(b);
        }
    }
    ctl.ready.fetch_add(1, Ordering::SeqCst);

    let mut job = w.new_job(plan.job_max);
    while !ctl.stop.load(Ordering::Relaxed) {
        for _ in 0..64 {
            job = w.step(job, &plan, &rx);
        }
    }
    // Teardown: stop sending (so the next worker's inbox disconnects once we are done),
    // verify and free our blocks, then whatever the previous worker still sends us.
    w.tx = None;
    for b in std::mem::take(&mut w.job.blocks)
        .into_iter()
        .chain(std::mem::take(&mut w.cache.blocks))
    {
        w.free_block(b);
    }
    while let Ok(b) = rx.recv() {
        w.free_block(b);
        w.stats.cross_frees += 1;
    }
    w.stats
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Disarms the race hook, if any, when dropped.
struct DisarmOnDrop<'a>(Option<&'a ParkHook>);

impl Drop for DisarmOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            p.disarm();
        }
    }
}

/// What the main thread shares with the workers.
struct Control {
    /// Set at the end of the run.
    stop: AtomicBool,
    /// Workers done warming up.
    ready: AtomicU64,
    /// `--page-cache`: every block through the watermarks.
    page_cache: bool,
    /// `--page-cache`: watermark breaches and premature failures.
    pressure: Pressure,
}

// ---- --page-cache: the CMA allocations drop the page cache of what they isolate ----

thread_local! {
    /// Set while this thread drops page cache from a race hook (so a `ParkHook` does not take
    /// those frees for the CMA allocation's migration).
    static DROPPING_PAGE_CACHE: Cell<bool> = const { Cell::new(false) };
}

/// 3.17's `alloc_contig_range` reclaims the clean page-cache pages of the range it has
/// isolated (`reclaim_clean_pages_from_list`) instead of migrating them. The library cannot
/// migrate pfn allocations and has no such step, so this hook does it: when a pageblock has
/// just been isolated ([`RaceWindow::IsolateBeforeDrain`], where any call is allowed), the page
/// cache's pages in it are freed, onto the `Isolate` lists. Only CMA allocations isolate
/// pageblocks in this example. Isolation works on whole top-order blocks, so this may drop up
/// to a top-order block more on each side of the allocation than 3.17 would.
struct ReclaimCleanHook {
    cache: OnceLock<Arc<PageCache>>,
    pageblock_nr_pages: u64,
}

impl RaceHook for ReclaimCleanHook {
    fn window(&self, window: RaceWindow, pfn: Pfn) {
        if window == RaceWindow::IsolateBeforeDrain
            && let Some(cache) = self.cache.get()
        {
            DROPPING_PAGE_CACHE.with(|d| d.set(true));
            cache.drop_range(pfn, Pfn(pfn.0 + self.pageblock_nr_pages));
            DROPPING_PAGE_CACHE.with(|d| d.set(false));
        }
    }
}

/// Several hooks, called in order.
struct Hooks(Vec<Arc<dyn RaceHook>>);

impl RaceHook for Hooks {
    fn window(&self, window: RaceWindow, pfn: Pfn) {
        for h in &self.0 {
            h.window(window, pfn);
        }
    }
}

// ---- race-window injection ----

/// What `--race-window` installs in the zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Injection {
    /// No hook (the default).
    Off,
    /// A [`SpinHook`] spinning this many iterations at every racy point of the 3.17 paths.
    Spin(u32),
    /// A [`ParkHook`] whose window opens this many milliseconds before each CMA allocation.
    Park(u64),
}

impl Injection {
    /// `park` (20 ms lead), `park:MS`, `spin:N`, or a bare `N` (= `spin:N`; 0 = off).
    fn parse(v: &str) -> Result<Injection, String> {
        let bad = || "expected off, park, park:MS, spin:N or N".to_string();
        let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
        let lower = v.to_ascii_lowercase();
        let inj = match lower.split_once(':') {
            None if lower == "park" => Injection::Park(ParkHook::DEFAULT_LEAD_MS),
            None if lower == "off" => Injection::Off,
            None => Injection::Spin(u32::try_from(num(&lower)?).map_err(|_| bad())?),
            Some(("park", ms)) => Injection::Park(num(ms)?),
            Some(("spin", n)) => Injection::Spin(u32::try_from(num(n)?).map_err(|_| bad())?),
            Some(_) => return Err(bad()),
        };
        Ok(match inj {
            Injection::Spin(0) => Injection::Off,
            Injection::Park(ms) if !(1..=1000).contains(&ms) => {
                return Err("park:MS needs 1 <= MS <= 1000".into());
            }
            inj => inj,
        })
    }

    fn name(self) -> String {
        match self {
            Injection::Off => "off".into(),
            Injection::Spin(n) => format!("spin:{n}"),
            Injection::Park(ms) => format!("park:{ms}"),
        }
    }
}

/// Where the CMA allocation in flight is, as far as a [`ParkHook`] has seen (behind its
/// mutex).
#[derive(Debug, Default)]
struct Aim {
    /// Bumped when the hook is armed or disarmed and when a new isolation attempt starts: frees
    /// parked for an older aim go on at once.
    generation: u64,
    /// The pfns being isolated, or about to be: `[lo, hi)`.
    lo: u64,
    hi: u64,
    /// The pageblocks below this pfn have been isolated (`start_isolate_page_range` goes up one
    /// pageblock at a time; each isolation is reported at `IsolateBeforeDrain`).
    isolated_to: u64,
    /// First pfn of the allocation's last pageblock. Frees are held only below it: a held free
    /// goes once the migration has passed it, and the workers' blocks in the last pageblock
    /// leave migration to pass it (and time for it to finish before `test_pages_isolated`).
    last_block: u64,
    /// The thread making the CMA allocation (the one that armed the hook).
    cma_thread: Option<ThreadId>,
    /// One past the highest pfn of `[lo, hi)` the CMA thread has freed: the front of its
    /// migration (`migrate_range` moves the blocks in ascending order and frees each old one).
    migrated_to: u64,
    /// The drain after the migration has started: every parked free goes.
    final_drain: bool,
    /// Pfns of the frees parked now.
    parked: Vec<u64>,
}

/// Race-window injection aimed at the CMA allocations (`--race-window park`): it widens race
/// R1b's window for the frees that can hit it.
///
/// 3.17's `__free_pages_ok` (every free of order > 0) reads the pageblock type without the
/// zone lock and frees under the lock with that type; [`RaceWindow::FreeBeforeZoneLock`] is
/// between the two. The main thread arms the hook with the range its next `Cma::alloc` will
/// isolate, a lead time before calling it (it knows where the allocation will land: the
/// lowest free aligned range of the area, as `cma_alloc`'s bitmap search finds it). From then
/// on, a worker's free of a block in a pageblock of that range that is not isolated yet (so
/// it read `CMA`) is held in that window — the freeing CPU preempted between the read and the
/// lock — while the allocation isolates the range pageblock by pageblock and migrates the
/// workers' pages out. It goes on as soon as the migration, which goes up the range, has
/// passed it (so it is freed while the migration is still busy above it, before
/// `test_pages_isolated` looks), or at the drain after the migration at the latest. Frees into
/// the allocation's last pageblock are not held: nothing might be left to migrate above them.
///
/// With the 3.17 code the held block then lands on the CMA list inside an isolated pageblock,
/// counted (+2^order) although its pageblock is isolated, merged with the free, isolated
/// pages below it. The migration's next frees merge that block into the Isolate list, or the
/// CMA allocation takes it off the lists, uncounted; either way NR_FREE_PAGES stays 2^order
/// too high for good (minus any page a worker allocates from the misplaced block meanwhile).
/// With patch 1 the free re-reads the type under the lock and the block goes to the Isolate
/// list, uncounted.
///
/// The main thread also pauses [`ParkHook::STAGE`] between the pageblocks of the isolation
/// (`IsolateBetweenPageblocks`), so more frees land in the pageblocks still to be isolated.
///
/// The hook never calls into the zone. Only frees of order > 0 and frees of `Isolate` pages
/// reach `FreeBeforeZoneLock` (no pcp is held there), and the latter are never held; the CMA
/// thread waits (bounded) only for released frees to leave the hook. A worker has at most one
/// free held at a time, so about 16 frees are held per CMA allocation.
struct ParkHook {
    /// Log2 of the pageblock size.
    pb_shift: u32,
    /// The largest isolation a retried `Cma::alloc` attempt can make (the allocation rounded
    /// up to top-order blocks, plus one for an unaligned retry).
    span: u64,
    /// How long before each CMA allocation the window opens.
    lead: Duration,
    /// Fast path: is a CMA allocation aimed at? And its range.
    armed: AtomicBool,
    lo: AtomicU64,
    hi: AtomicU64,
    aim: std::sync::Mutex<Aim>,
    cv: std::sync::Condvar,
    /// Frees held at the window so far.
    parked: AtomicU64,
}

impl ParkHook {
    const DEFAULT_LEAD_MS: u64 = 20;
    /// The isolating thread's pause between two pageblocks.
    const STAGE: Duration = Duration::from_millis(5);
    /// The longest a free stays parked, whatever happens.
    const MAX_PARK: Duration = Duration::from_millis(500);
    /// The longest the CMA thread waits for released frees to leave the hook.
    const MAX_WAIT: Duration = Duration::from_millis(20);

    fn new(geo: &pagealloc::Geometry, count: u64, lead_ms: u64) -> ParkHook {
        let top = geo.max_order_nr_pages().max(geo.pageblock_nr_pages);
        ParkHook {
            pb_shift: geo.pageblock_order,
            span: count.div_ceil(top) * top + top,
            lead: Duration::from_millis(lead_ms),
            armed: AtomicBool::new(false),
            lo: AtomicU64::new(0),
            hi: AtomicU64::new(0),
            aim: std::sync::Mutex::new(Aim::default()),
            cv: std::sync::Condvar::new(),
            parked: AtomicU64::new(0),
        }
    }

    fn aim(&self) -> std::sync::MutexGuard<'_, Aim> {
        self.aim.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, a: &Aim, armed: bool) {
        self.lo.store(a.lo, Ordering::SeqCst);
        self.hi.store(a.hi, Ordering::SeqCst);
        self.armed.store(armed, Ordering::SeqCst);
    }

    /// The calling thread is about to isolate `[lo, hi)` for an allocation ending at `end`.
    fn arm(&self, lo: u64, hi: u64, end: u64) {
        let mut a = self.aim();
        *a = Aim {
            generation: a.generation + 1,
            lo,
            hi,
            isolated_to: lo,
            last_block: ((end - 1) >> self.pb_shift) << self.pb_shift,
            cma_thread: Some(std::thread::current().id()),
            parked: std::mem::take(&mut a.parked),
            ..Aim::default()
        };
        self.publish(&a, true);
    }

    /// The allocation is over: every parked free goes.
    fn disarm(&self) {
        let mut a = self.aim();
        a.generation += 1;
        self.publish(&a, false);
        drop(a);
        self.cv.notify_all();
    }

    fn in_range(&self, pfn: u64) -> bool {
        self.armed.load(Ordering::Relaxed)
            && pfn >= self.lo.load(Ordering::Relaxed)
            && pfn < self.hi.load(Ordering::Relaxed)
    }

    fn is_cma_thread(a: &Aim) -> bool {
        a.cma_thread == Some(std::thread::current().id())
    }

    /// Whether a free parked at `pfn` may go on: its pageblock is isolated and the migration
    /// has passed it (or the drain after the migration has begun).
    fn may_go(a: &Aim, pfn: u64) -> bool {
        a.final_drain || (pfn < a.isolated_to && a.migrated_to > pfn)
    }

    /// The CMA thread: wait (bounded) until every parked free that may go has left the hook,
    /// so it runs while the migration is still busy elsewhere.
    fn wait_released<'a>(
        &self,
        a: std::sync::MutexGuard<'a, Aim>,
    ) -> std::sync::MutexGuard<'a, Aim> {
        self.cv.notify_all();
        self.cv
            .wait_timeout_while(a, Self::MAX_WAIT, |a| {
                a.parked.iter().any(|&p| Self::may_go(a, p))
            })
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    /// A worker's free of the block at `pfn` (not isolated when it read the type): hold it.
    fn park<'a>(&self, mut a: std::sync::MutexGuard<'a, Aim>, pfn: u64) {
        let generation = a.generation;
        self.parked.fetch_add(1, Ordering::Relaxed);
        a.parked.push(pfn);
        let mut a = self
            .cv
            .wait_timeout_while(a, Self::MAX_PARK, |a| {
                a.generation == generation && !Self::may_go(a, pfn)
            })
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if let Some(i) = a.parked.iter().position(|&p| p == pfn) {
            a.parked.swap_remove(i);
        }
        drop(a);
        self.cv.notify_all();
    }
}

impl RaceHook for ParkHook {
    fn window(&self, window: RaceWindow, pfn: Pfn) {
        let pfn = pfn.0;
        if !self.armed.load(Ordering::Relaxed) {
            return;
        }
        match window {
            // The page-cache drop of a just-isolated pageblock: not the migration.
            RaceWindow::FreeBeforeZoneLock if DROPPING_PAGE_CACHE.with(Cell::get) => {}
            RaceWindow::FreeBeforeZoneLock if self.in_range(pfn) => {
                let mut a = self.aim();
                if pfn < a.lo || pfn >= a.hi {
                    return;
                }
                if Self::is_cma_thread(&a) {
                    // The CMA thread frees in the range when its migration frees a moved
                    // block's old pages.
                    if pfn + 1 > a.migrated_to {
                        a.migrated_to = pfn + 1;
                        drop(self.wait_released(a));
                    }
                } else if pfn >= a.isolated_to && pfn < a.last_block {
                    self.park(a, pfn);
                }
            }
            RaceWindow::PcpBulkBeforeZoneLock => {
                let mut a = self.aim();
                if Self::is_cma_thread(&a) && a.migrated_to > 0 && !a.final_drain {
                    // The CMA thread drains every pcp after its migration: last call.
                    a.final_drain = true;
                    drop(self.wait_released(a));
                }
            }
            RaceWindow::IsolateBeforeDrain => {
                let mut a = self.aim();
                if !Self::is_cma_thread(&a) {
                    return;
                }
                if pfn != a.isolated_to || a.migrated_to > 0 || pfn >= a.hi {
                    // Another attempt (Cma::alloc retries at the next aligned position after
                    // -EBUSY): the hook cannot tell where this allocation ends, so it holds no
                    // more frees for it; the ones held for the failed attempt go now.
                    a.generation += 1;
                    a.lo = pfn;
                    a.hi = pfn + self.span;
                    a.last_block = pfn;
                    a.migrated_to = 0;
                    a.final_drain = false;
                    self.publish(&a, true);
                }
                a.isolated_to = pfn + (1 << self.pb_shift);
                drop(a);
                self.cv.notify_all();
            }
            RaceWindow::IsolateBetweenPageblocks if self.in_range(pfn) => {
                let a = self.aim();
                // Going up (start_isolate_page_range), not down the range (undo).
                let next = Self::is_cma_thread(&a) && pfn == a.isolated_to && a.migrated_to == 0;
                drop(a);
                if next {
                    std::thread::sleep(Self::STAGE);
                }
            }
            _ => {}
        }
    }
}

/// Where `Cma::alloc(count, 2^align_order)` will look first: the lowest aligned offset in the
/// area whose `count` pages are not in `held` (`(offset, pages)` pairs), as the bitmap search
/// of `cma_alloc`.
fn next_cma_offset(held: impl Iterator<Item = (u64, u64)> + Clone, count: u64, align: u64) -> u64 {
    let mut idx = 0;
    while let Some(end) = held
        .clone()
        .find_map(|(s, n)| (idx < s + n && s < idx + count).then_some(s + n))
    {
        idx = end.div_ceil(align) * align;
    }
    idx
}

// ---- one run ----

#[derive(Clone, Debug)]
struct RunResult {
    fixes: Fixes,
    attempts: u32,
    ok: u32,
    /// CMA allocations that failed: every aligned position busy (3.17's `-EBUSY`) or none left.
    busy: u32,
    /// Of `busy`, those that failed some other way than `-EBUSY` at every position tried (no
    /// free position at all, or another error).
    failed_not_busy: u32,
    /// Which allocations (1-based) failed.
    failed_attempts: Vec<u32>,
    /// `alloc_contig_range` calls that failed inside the CMA allocations (each retried at
    /// the next aligned position, or ending the allocation).
    busy_attempts: u64,
    migrated: u64,
    report: AuditReport,
    verify_errors: u64,
    workers: WorkerStats,
    cma_ms_max: f64,
    cma_ms_sum: f64,
    elapsed: Duration,
    interrupted: bool,
    /// Frees a `ParkHook` held in their race window.
    parked_frees: u64,
    /// `--page-cache` results.
    page_cache: Option<PageCacheReport>,
    /// `--plot`: the run's drift samples, worst-moment pageblock map and ledger.
    plot: Option<RunPlot>,
    /// `--seed-shape`: what the kernel build did.
    kbuild: Option<KbuildStats>,
}

impl RunResult {
    fn must_be_clean(&self) -> bool {
        self.fixes == Fixes::ALL
    }

    /// Why this run fails the exit criteria (empty when it passes). `thp_in_cma`: the run's
    /// workload faults in transparent huge pages, which 3.17's `alloc_contig_range` cannot
    /// migrate (it skips `PageTransHuge` pages; THP migration arrived in 4.14), so a CMA
    /// allocation may fail with `-EBUSY` at every position `cma_alloc` tries, as in the
    /// kernel; any other failure, or a busy one without THPs, fails the run.
    fn problems(&self, allocs: u32, thp_in_cma: bool) -> Vec<String> {
        let mut p = Vec::new();
        if self.verify_errors > 0 {
            p.push(format!("{} pattern errors", self.verify_errors));
        }
        if self.must_be_clean() {
            let r = &self.report;
            if r.drift_free != 0 || r.drift_cma != 0 {
                p.push(format!(
                    "drift free {:+} cma {:+}",
                    r.drift_free, r.drift_cma
                ));
            }
            if !r.misplaced_blocks.is_empty() {
                p.push(format!("{} misplaced blocks", r.misplaced_blocks.len()));
            }
            if !r.is_ok() || !r.conservation_ok() {
                p.push(format!("audit failed: {r}"));
            }
            let excused = if thp_in_cma {
                self.busy - self.failed_not_busy
            } else {
                0
            };
            if self.ok + excused < self.attempts || (!self.interrupted && self.attempts < allocs) {
                p.push(format!(
                    "{} of {} CMA allocations succeeded ({} failed busy at every position, {} otherwise)",
                    self.ok,
                    allocs,
                    self.busy - self.failed_not_busy,
                    self.failed_not_busy
                ));
            }
        }
        p
    }

    fn audit_ok(&self) -> bool {
        self.report.is_ok() && self.report.conservation_ok()
    }
}

fn vmstat_value(zone: &Zone, name: &str) -> u64 {
    zone.vmstat()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0)
}

fn err_name(e: &CmaError) -> String {
    match e {
        CmaError::NoSpace { last: Some(_) } => "busy".into(),
        CmaError::NoSpace { last: None } => "full".into(),
        e => format!("error ({e})"),
    }
}

fn wait_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline || stopped() {
            return;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

/// One run of the experiment with `fixes` on a fresh zone. `progress`: print a line per CMA
/// allocation (through `live`, which shows the allocations made and the drift so far on a
/// terminal).
fn run_one(
    args: &Args,
    fixes: Fixes,
    seed: u64,
    progress: bool,
    live: &Live,
) -> Result<RunResult, String> {
    let started = Instant::now();
    let recorder = args.plot.plot.as_ref().map(|_| Recorder::new());
    let count = (args.alloc_mib << 20) as u64 / PAGE_SIZE as u64;
    let mut cfg = ZoneConfig {
        // The drift ledger: every audit checks that it sums to the drift.
        ledger: true,
        size: args.arena_mib << 20,
        cma_size: args.cma_mib << 20,
        cma_policy: args.policy.cma_policy(),
        fixes,
        pcp: args
            .pcp_fraction
            .map(|f| pcp_for_fraction(args.arena_mib, f)),
        pcp_mode: args.cpus.pcp_mode(),
        trace: args.trace.trace()?,
        ..ZoneConfig::default()
    };
    let geo = cfg
        .geometry()
        .map_err(|e| format!("cannot create the zone: {e}"))?;
    let page_cache = args.page_cache.page_cache;
    let reclaim_clean = page_cache.then(|| {
        Arc::new(ReclaimCleanHook {
            cache: OnceLock::new(),
            pageblock_nr_pages: geo.pageblock_nr_pages,
        })
    });
    let park = match args.race_window {
        Injection::Park(ms) => Some(Arc::new(ParkHook::new(&geo, count, ms))),
        _ => None,
    };
    let injected = match args.race_window {
        Injection::Off => None,
        Injection::Spin(spins) => Some(Arc::new(SpinHook { spins }) as Arc<dyn RaceHook>),
        Injection::Park(_) => park.clone().map(|p| p as Arc<dyn RaceHook>),
    };
    cfg.race_hook = match (injected, reclaim_clean.clone()) {
        (None, None) => None,
        (Some(h), None) => Some(h),
        (None, Some(r)) => Some(r as Arc<dyn RaceHook>),
        (Some(h), Some(r)) => Some(Arc::new(Hooks(vec![r as Arc<dyn RaceHook>, h])) as _),
    };
    let zone = Arc::new(Zone::new(cfg).map_err(|e| format!("cannot create the zone: {e}"))?);
    // --page-cache: the cache (the zone's shrinker, and dropped by the CMA allocations'
    // isolation), and kswapd for the run.
    let cache = page_cache.then(|| PageCache::register(&zone));
    if let (Some(h), Some(c)) = (&reclaim_clean, &cache) {
        let _ = h.cache.set(c.clone());
    }
    let kswapd = cache.as_ref().and_then(|_| zone.start_kswapd());
    let read_mib_s = args.read_mib_s();
    let cma = zone.cma().ok_or("the zone has no CMA area")?;
    let nr_pages = zone.geometry().nr_pages;
    // Cma::alloc's alignment (CONFIG_CMA_ALIGNMENT) and alloc_contig_range's isolation unit.
    let align = Order(8);
    let top = geo.max_order_nr_pages().max(geo.pageblock_nr_pages);
    // The working set: three fifths long-lived, two fifths in jobs (on average).
    let per_worker = nr_pages * args.working_set / 100 / args.threads as u64;
    let plan = Plan {
        cache: per_worker * 3 / 5,
        job_max: per_worker * 4 / 5,
    };
    let ctl = Control {
        stop: AtomicBool::new(false),
        ready: AtomicU64::new(0),
        page_cache,
        pressure: Pressure::default(),
    };
    let mut res = RunResult {
        fixes,
        attempts: 0,
        ok: 0,
        busy: 0,
        failed_not_busy: 0,
        failed_attempts: Vec::new(),
        busy_attempts: 0,
        migrated: 0,
        report: AuditReport::default(),
        verify_errors: 0,
        workers: WorkerStats::default(),
        cma_ms_max: 0.0,
        cma_ms_sum: 0.0,
        elapsed: Duration::ZERO,
        interrupted: false,
        parked_frees: 0,
        page_cache: None,
        plot: None,
        kbuild: None,
    };
    // This thread makes the CMA allocations: CPU index `threads` (with --cpus).
    args.cpus.bind(args.threads);

    let zone_ref: &Zone = &zone;
    // --seed-shape: a kernel build instead of the synthetic workers (`make`'s memory and the
    // headers first).
    let mut kbuild = args.shape.seed_shape.then(|| Kbuild::start(zone_ref));
    let kbuild_totals = std::sync::Mutex::new(KbuildStats::default());
    let joined: Vec<std::thread::Result<WorkerStats>> = std::thread::scope(|s| {
        let zone = zone_ref;
        let vmstat = vmstat_timer(s, zone);
        let plot_sampler = recorder.as_ref().map(|r| r.spawn(s, zone));
        let ticker = live.drift_ticker(s, zone, || None);
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..args.threads)
            .map(|_| mpsc::channel::<Block<'_>>())
            .unzip();
        // Worker i sends to worker i+1 (mod n).
        let mut txs: Vec<Option<mpsc::Sender<Block<'_>>>> = txs.into_iter().map(Some).collect();
        txs.rotate_left(1);
        let mut handles = Vec::new();
        for (id, (tx, rx)) in txs.into_iter().zip(rxs).enumerate() {
            let tx = if args.threads > 1 { tx } else { None };
            let (ctl, cpus) = (&ctl, args.cpus);
            let (kb, cache, totals) = (kbuild.as_ref(), cache.as_deref(), &kbuild_totals);
            let h = std::thread::Builder::new()
                .name(format!("make-{id}"))
                .spawn_scoped(s, move || {
                    cpus.bind(id);
                    match kb {
                        Some(kb) => {
                            let ncpus = cpus.cpus.unwrap_or(1);
                            let st = kb.job_slot(
                                id,
                                seed,
                                args.threads,
                                ncpus,
                                args.thp,
                                cache,
                                &ctl.pressure,
                                &ctl.stop,
                                &ctl.ready,
                            );
                            totals.lock().unwrap_or_else(|e| e.into_inner()).add(&st);
                            WorkerStats::from_kbuild(&st)
                        }
                        None => worker(zone, id, seed, plan, tx, rx, ctl),
                    }
                })
                .expect("spawn worker");
            handles.push(h);
        }
        // Stop the workers however this closure ends (a panic here, e.g. printing to a closed
        // pipe, would otherwise wait forever for them at the end of the scope).
        let _stop = StopOnDrop(&ctl.stop);
        // Dropped first: no free stays held once the allocations are over, however they end.
        let _disarm = DisarmOnDrop(park.as_deref());
        while ctl.ready.load(Ordering::SeqCst) < args.threads as u64 && !stopped() {
            std::thread::sleep(Duration::from_millis(5));
        }
        if progress {
            let (f, c) = zone.free_counters();
            live.println(format!(
                "  workers ready after {:.1} s: NR_FREE_PAGES {f}, NR_FREE_CMA_PAGES {c} of {}",
                started.elapsed().as_secs_f64(),
                cma.area().count()
            ));
        }
        // --page-cache: fill what the workers left free, then read on; sample the watermarks.
        let reader = cache.as_deref().map(|c| {
            let r = Reader::spawn(
                s,
                zone,
                c,
                &ctl.pressure,
                read_mib_s,
                args.cpus,
                args.threads + 1,
            );
            r.wait_filled(stopped);
            if progress {
                let (f, _) = zone.free_counters();
                live.println(format!(
                    "  page cache filled after {:.1} s: {} pages, NR_FREE_PAGES {f} (min {}, low {}, high {}); reading on at {read_mib_s:.1} MiB/s",
                    started.elapsed().as_secs_f64(),
                    c.len(),
                    zone.watermarks().min,
                    zone.watermarks().low,
                    zone.watermarks().high,
                ));
            }
            r
        });
        let sampler = cache.as_ref().map(|_| ctl.pressure.sampler(s, zone));

        let mut held = Vec::new();
        let t0 = Instant::now();
        let interval = Duration::from_millis(args.interval_ms);
        for n in 1..=args.allocs {
            let at = t0 + interval * n;
            if let Some(p) = &park {
                // Open the window `lead` before the allocation, aimed at the range it will
                // isolate.
                wait_until(at.checked_sub(p.lead).unwrap_or(t0).max(t0));
                let base = cma.area().base_pfn().0;
                let held_at = held
                    .iter()
                    .map(|(_, h, _): &(u32, CmaPages<'_>, u64)| (h.pfn().0 - base, h.count()));
                let start = base + next_cma_offset(held_at, count, align.nr_pages());
                let end = start + count;
                p.arm(start / top * top, end.div_ceil(top) * top, end);
            }
            wait_until(at);
            if stopped() {
                res.interrupted = true;
                break;
            }
            let t = Instant::now();
            let r = cma.alloc(count, align);
            if let Some(p) = &park {
                p.disarm();
            }
            let ms = t.elapsed().as_secs_f64() * 1e3;
            res.attempts += 1;
            res.cma_ms_sum += ms;
            res.cma_ms_max = res.cma_ms_max.max(ms);
            let what = match r {
                Ok(mut p) => {
                    res.ok += 1;
                    let tag = splitmix64(u64::from(n) ^ seed);
                    let at = p.pfn().0 - cma.area().base_pfn().0;
                    p.as_mut_slice().fill(n as u8);
                    stamp(p.as_mut_slice(), tag);
                    let bad = check(p.as_slice(), tag);
                    if bad > 0 {
                        eprintln!("cma_stress: CMA allocation {n}: {bad} page(s) lost the pattern");
                        res.verify_errors += bad;
                    }
                    if args.hold() {
                        held.push((n, p, tag));
                    } else {
                        cma.release(p);
                    }
                    format!("ok   at +{at:<6}")
                }
                Err(e) => {
                    res.busy += 1;
                    res.failed_attempts.push(n);
                    if !matches!(e, CmaError::NoSpace { last: Some(_) }) {
                        res.failed_not_busy += 1;
                    }
                    format!("{:<14}", err_name(&e))
                }
            };
            live.set_position(u64::from(n));
            if progress {
                let a = zone.audit();
                live.println(format!(
                    "  [{n:>2}/{}] {what} {ms:>8.1} ms  migrated {:>7}  drift now: free {:>+6} cma {:>+6}",
                    args.allocs,
                    vmstat_value(zone, "pgmigrate_success"),
                    a.drift_free,
                    a.drift_cma
                ));
            }
        }
        for (n, p, tag) in held {
            let bad = check(p.as_slice(), tag);
            if bad > 0 {
                eprintln!(
                    "cma_stress: CMA allocation {n}: pattern mismatch in {bad} page(s) at release: {}",
                    describe_bad("CMA", p.as_slice(), p.pfn().0, tag)
                );
                res.verify_errors += bad;
            }
            cma.release(p);
        }
        if let Some(r) = reader {
            r.stop();
        }
        if let Some(t) = sampler {
            t.stop();
        }
        ctl.stop.store(true, Ordering::SeqCst);
        let joined = handles.into_iter().map(|h| h.join()).collect();
        vmstat.stop();
        if let Some(t) = plot_sampler {
            t.stop();
        }
        if let Some(t) = ticker {
            t.stop();
        }
        joined
    });
    for j in joined {
        match j {
            Ok(st) => res.workers.add(&st),
            Err(_) => return Err("a worker thread panicked".into()),
        }
    }
    if let Some(kb) = kbuild.as_mut() {
        res.verify_errors += kb.verify_all();
        res.kbuild = Some(
            kbuild_totals
                .into_inner()
                .unwrap_or_else(|e| e.into_inner()),
        );
    }
    drop(kbuild);
    res.busy_attempts = cma.area().busy_attempts();
    res.verify_errors += res.workers.verify_errors;
    res.parked_frees = park.map_or(0, |p| p.parked.load(Ordering::Relaxed));
    // --page-cache: stop kswapd, report, give the cache back before the final audit.
    drop(kswapd);
    if let Some(c) = &cache {
        res.page_cache = Some(PageCacheReport::collect(
            &zone,
            c,
            &ctl.pressure,
            read_mib_s,
        ));
        c.release_all(&zone);
    }
    // Per-CPU pcps keep their pages after their threads exit: drain every pcp before counting.
    zone.drain_all_pages();
    // The final audit also checks full coalescing: every top-order block merged again.
    res.report = zone.audit_coalescing();
    res.migrated = vmstat_value(&zone, "pgmigrate_success");
    res.elapsed = started.elapsed();
    res.plot = recorder.map(|r| {
        // The last point: the final, quiescent drift (the ledger's sums).
        r.sample(&zone);
        r.finish(fixes.to_string(), res.report.ledger.as_deref())
    });
    if zone.nr_movable() != 0 {
        return Err(format!(
            "{} movable blocks still registered after every handle was dropped",
            zone.nr_movable()
        ));
    }
    Ok(res)
}

// ---- output ----

/// One run in the `--json` line; the schema is this type.
#[derive(serde::Serialize)]
struct RunJson {
    fixes: String,
    cma_attempts: u32,
    cma_ok: u32,
    cma_busy: u32,
    /// Failed `alloc_contig_range` calls inside the CMA allocations (retries included).
    cma_busy_attempts: u64,
    /// Which CMA allocations (1-based) failed.
    cma_failed: Vec<u32>,
    migrated_pages: u64,
    drift_free: i64,
    drift_cma: i64,
    misplaced_blocks: usize,
    unmerged_blocks: usize,
    audit_ok: bool,
    elapsed_ms: u128,
    free_pages_missed: u64,
    cma_free_pages_missed: u64,
    verify_errors: u64,
    cma_ms_max: f64,
    /// Mean time of a CMA allocation attempt, ms.
    cma_ms_mean: f64,
    worker_allocs: u64,
    worker_frees: u64,
    alloc_failures: u64,
    interrupted: bool,
    policy: &'static str,
    threads: usize,
    race_window: String,
    parked_frees: u64,
    hold: bool,
    pcp_fraction: u64,
    seed: u64,
    /// `--cpus`, 0 for per-thread pcps.
    cpus: u32,
    /// The final audit's drift as `zone_page_state` showed it (folded counter − truth).
    vmstat_drift_free: i64,
    vmstat_drift_cma: i64,
    /// The drift ledger: race × path × events × pages; sums to `drift_free`/`drift_cma`.
    ledger: Vec<LedgerJson>,
    /// `--page-cache` results (absent without it).
    #[serde(flatten)]
    page_cache: Option<PageCacheReport>,
    /// `--seed-shape`: the kernel build's counts (absent without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    kbuild: Option<KbuildStats>,
}

/// The `--json` line.
#[derive(serde::Serialize)]
struct Json {
    runs: Vec<RunJson>,
}

fn json_run(r: &RunResult, args: &Args) -> RunJson {
    let rep = &r.report;
    RunJson {
        fixes: r.fixes.name(),
        cma_attempts: r.attempts,
        cma_ok: r.ok,
        cma_busy: r.busy,
        cma_busy_attempts: r.busy_attempts,
        cma_failed: r.failed_attempts.clone(),
        migrated_pages: r.migrated,
        drift_free: rep.drift_free,
        drift_cma: rep.drift_cma,
        misplaced_blocks: rep.misplaced_blocks.len(),
        unmerged_blocks: rep.unmerged_blocks.len(),
        audit_ok: r.audit_ok(),
        elapsed_ms: r.elapsed.as_millis(),
        free_pages_missed: rep.drift_free.unsigned_abs(),
        cma_free_pages_missed: rep.drift_cma.unsigned_abs(),
        verify_errors: r.verify_errors,
        cma_ms_max: r.cma_ms_max,
        cma_ms_mean: r.cma_ms_sum / f64::from(r.attempts.max(1)),
        worker_allocs: r.workers.allocs,
        worker_frees: r.workers.frees,
        alloc_failures: r.workers.alloc_failures,
        interrupted: r.interrupted,
        policy: args.policy.name(),
        threads: args.threads,
        race_window: args.race_window.name().to_string(),
        parked_frees: r.parked_frees,
        hold: args.hold(),
        pcp_fraction: args.pcp_fraction.unwrap_or(0),
        seed: args.run.seed,
        cpus: args.cpus.json(),
        vmstat_drift_free: vmstat_drift(rep).0,
        vmstat_drift_cma: vmstat_drift(rep).1,
        ledger: ledger_json(rep),
        page_cache: r.page_cache.clone(),
        kbuild: r.kbuild,
    }
}

fn print_table(runs: &[RunResult]) {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&RunResult) -> String| {
        rows.push((name.to_string(), runs.iter().map(f).collect()));
    };
    row("fixes", &|r| r.fixes.name());
    row("CMA allocations succeeded", &|r| {
        format!("{}/{}", r.ok, r.attempts)
    });
    row("CMA allocations busy", &|r| r.busy.to_string());
    row("CMA attempts busy (retried)", &|r| {
        r.busy_attempts.to_string()
    });
    row("free pages missed", &|r| {
        r.report.drift_free.unsigned_abs().to_string()
    });
    row("  NR_FREE_PAGES drift", &|r| {
        format!("{:+}", r.report.drift_free)
    });
    row("CMA free pages missed", &|r| {
        r.report.drift_cma.unsigned_abs().to_string()
    });
    row("  NR_FREE_CMA_PAGES drift", &|r| {
        format!("{:+}", r.report.drift_cma)
    });
    row("pages migrated", &|r| r.migrated.to_string());
    row("misplaced blocks", &|r| {
        r.report.misplaced_blocks.len().to_string()
    });
    row("pattern errors", &|r| r.verify_errors.to_string());
    if runs.iter().any(|r| r.parked_frees > 0) {
        row("frees parked in a race window", &|r| {
            r.parked_frees.to_string()
        });
    }
    row("audit", &|r| {
        if r.audit_ok() { "ok" } else { "FAILED" }.to_string()
    });
    row("slowest CMA allocation", &|r| {
        format!("{:.1} ms", r.cma_ms_max)
    });
    row("mean CMA allocation", &|r| {
        format!("{:.1} ms", r.cma_ms_sum / f64::from(r.attempts.max(1)))
    });
    row("elapsed", &|r| format!("{:.1} s", r.elapsed.as_secs_f64()));
    let w0 = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let wc = rows
        .iter()
        .flat_map(|(_, c)| c.iter().map(String::len))
        .max()
        .unwrap_or(0)
        .max(6);
    for (name, cells) in rows {
        let mut line = format!("{name:<w0$}");
        for c in cells {
            line.push_str(&format!("  {c:>wc$}"));
        }
        println!("{line}");
    }
}

fn header(args: &Args) {
    println!(
        "cma_stress: {} MiB arena, {} MiB CMA ({} policy), {} workers on {}, {} x {} MiB CMA allocations every {} ms ({}), working set {}%, pcp {}, race window {}, {}seed {:#x}",
        args.arena_mib,
        args.cma_mib,
        args.policy.name(),
        args.threads,
        args.cpus.describe(),
        args.allocs,
        args.alloc_mib,
        args.interval_ms,
        if args.hold() {
            "held until the end"
        } else {
            "each released at once"
        },
        args.working_set,
        match args.pcp_fraction {
            Some(f) => {
                let p = pcp_for_fraction(args.arena_mib, f);
                format!("high {} batch {} (fraction {f})", p.high, p.batch)
            }
            None => "3.17 default".to_string(),
        },
        match args.race_window {
            Injection::Off => "off".to_string(),
            Injection::Spin(n) => format!("{n} spins at every window"),
            Injection::Park(ms) => {
                format!("frees parked across the isolation, opened {ms} ms ahead")
            }
        },
        if args.page_cache.page_cache {
            format!("page cache read at {:.1} MiB/s, ", args.read_mib_s())
        } else {
            String::new()
        },
        args.run.seed
    );
    println!("{LEGEND}");
}

/// What the per-allocation lines and the table mean (printed once, human output only).
const LEGEND: &str = "\
legend: 'at +N' is where the allocation landed, in pages from the CMA area's base;
        'migrated' is the pages migrated so far in this run (a running total);
        drift = counter minus the pages really on the free lists (NR_FREE_PAGES minus the
        pages on non-Isolate lists, NR_FREE_CMA_PAGES minus those on CMA lists): negative
        means free pages the counter lost ('free pages missed'), positive pages it counts
        twice; 'audit FAILED' is the expected end of a run without the fixes.
        The policy is the seed's aggressive CMA use ([3]) unless --policy fallback; the
        library's own default (ZoneConfig::default) is 3.17's fallback policy.";

fn soak(args: &Args) -> ExitCode {
    header(args);
    println!("soak: fix set all, until Ctrl-C");
    let mut failed = 0u64;
    let mut round = 0u64;
    let live = Live::spinner(progress::wanted(args.run.json), "soak".into());
    while !stopped() {
        round += 1;
        let seed = args.run.seed.wrapping_add(round);
        live.set_prefix(format!("soak: round {round}, {failed} failed so far;"));
        let r = match run_one(args, Fixes::ALL, seed, false, &live) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cma_stress: {e}");
                return ExitCode::from(1);
            }
        };
        let problems = r.problems(args.allocs, args.thp_in_cma());
        if !problems.is_empty() && !r.interrupted {
            failed += 1;
        }
        live.println(format!(
            "round {round}: {}/{} ok, migrated {}, drift free {:+} cma {:+}, misplaced {}, audit {}{} ({:.1} s)",
            r.ok,
            r.attempts,
            r.migrated,
            r.report.drift_free,
            r.report.drift_cma,
            r.report.misplaced_blocks.len(),
            if r.audit_ok() { "ok" } else { "FAILED" },
            if problems.is_empty() {
                String::new()
            } else {
                format!(": {}", problems.join("; "))
            },
            r.elapsed.as_secs_f64()
        ));
    }
    drop(live);
    println!("soak: {round} rounds, {failed} failed");
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    let args = Args::parse_checked();
    install_signal_handlers();
    if args.soak {
        let code = soak(&args);
        return if args.trace.finish("cma_stress") {
            code
        } else {
            ExitCode::from(1)
        };
    }
    header(&args);
    let mut runs = Vec::new();
    for (i, fixes) in args.run.fixes().into_iter().enumerate() {
        if stopped() {
            break;
        }
        println!("run {}: fixes {fixes}", i + 1);
        let live = Live::bar(
            progress::wanted(args.run.json),
            u64::from(args.allocs),
            format!("[{fixes}] CMA allocations"),
        );
        let r = run_one(&args, fixes, args.run.seed, true, &live);
        drop(live);
        match r {
            Ok(r) => {
                println!(
                    "  done: {}/{} CMA allocations, {} pages migrated, final drift free {:+} cma {:+}, audit {}",
                    r.ok,
                    r.attempts,
                    r.migrated,
                    r.report.drift_free,
                    r.report.drift_cma,
                    if r.audit_ok() { "ok" } else { "FAILED" }
                );
                println!("  {}", drift_line(&r.report));
                for l in ledger_lines(&r.report) {
                    println!("  {l}");
                }
                if let Some(pc) = &r.page_cache {
                    for l in pc.lines() {
                        println!("  {l}");
                    }
                }
                if let Some(k) = &r.kbuild {
                    println!("  {}", k.line());
                }
                runs.push(r);
            }
            Err(e) => {
                eprintln!("cma_stress: fixes {fixes}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    println!();
    print_table(&runs);
    let mut failed = false;
    for r in &runs {
        let p = r.problems(args.allocs, args.thp_in_cma());
        if !p.is_empty() {
            failed = true;
            eprintln!(
                "cma_stress: run with fixes {} FAILED: {}",
                r.fixes,
                p.join("; ")
            );
            if r.must_be_clean() && !r.audit_ok() {
                eprintln!("  final audit: {}", r.report);
            }
        }
    }
    if let Some(dir) = &args.plot.plot {
        let plots: Vec<RunPlot> = runs.iter().filter_map(|r| r.plot.clone()).collect();
        match common::plot::write_all(dir, "cma_stress", &plots) {
            Ok(files) => {
                for f in files {
                    println!("plot: {}", f.display());
                }
            }
            Err(e) => {
                eprintln!("cma_stress: {e}");
                failed = true;
            }
        }
    }
    if args.run.json {
        let json = Json {
            runs: runs.iter().map(|r| json_run(r, &args)).collect(),
        };
        println!("{}", serde_json::to_string(&json).expect("JSON"));
    }
    if !args.trace.finish("cma_stress") {
        failed = true;
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
