//! The 2014 free-page accounting races of pageblock isolation, on real threads.
//!
//! For each requested fix set (default `none`, then `all`), on a fresh zone with a CMA area at
//! its top and the seed's aggressive CMA policy (Movable allocations alternate between the
//! normal and the CMA free lists):
//!
//! - `--threads` workers allocate and free Movable blocks: order 0 through their pcp, orders
//!   1–4 straight from the buddy lists. Each keeps a working set that grows and shrinks
//!   (sometimes to empty, so whole ranges come free), and hands a quarter of its frees to the
//!   next worker (a free on another thread, into that thread's pcp).
//! - one more thread loops `start_isolate_page_range` → `test_pages_isolated` →
//!   `undo_isolate_page_range` over random ranges of one to four pageblocks whose pageblocks
//!   all have the same type (four in five in the CMA area, restoring `CMA`; the others in the
//!   normal area, restoring `Movable`). By default (`--align contig`) it isolates the range
//!   widened to whole top-order blocks and tests the pageblocks asked for, as
//!   `alloc_contig_range` does. Now and then it takes a random top-order block of the normal
//!   area offline (`offline_pages` fails cleanly while a page of it is busy) or brings one
//!   back online.
//! - a [`SpinHook`] installed as the zone's race hook widens the racy windows so the races
//!   fire on two cores (`--race-window`, 0 = no hook).
//!
//! At the end of a run the workers stop and free everything, the isolating thread brings its
//! offline ranges back, `drain_all_pages()` runs (with `--cpus` the only drain: per-CPU pcps
//! are not drained at thread exit), any pageblock still `Isolate` is given back its type, and
//! the zone is audited. That final audit is what the table reports. Runs with `none` (Linux
//! 3.17) are expected to drift; a run whose fix set contains every fix must end with no drift,
//! no misplaced block and a clean audit, or the exit status is 1.
//!
//! `--cpus N` models N CPUs ([`PcpMode::PerCpu`](pagealloc::PcpMode::PerCpu): one pcp and one
//! set of vmstat diffs per CPU): worker `i` binds itself to CPU `i` (mod N), the isolating
//! thread to CPU `--threads` (mod N). Without it each thread has its own pcp.
//!
//! A timer thread folds the per-CPU vmstat diffs once a second while a run lasts (3.17's
//! `vmstat_update`, [`Zone::vmstat_update`]); each run's line gives the final drift exactly and
//! as `zone_page_state` showed it (the folded counters a 3.17 reader sees).
//!
//! `--plot DIR` writes SVG pictures of the runs (`examples/common/plot.rs`): the drift over
//! time, sampled every 100 ms by [`Zone::drift_sample`] (exactly and as `zone_page_state`
//! showed it), the ledger by race, and each run's pageblock map ([`Zone::pageblock_map`]) at
//! its worst drift. On a terminal each run shows a progress bar with the drift so far
//! (`examples/common/progress.rs`); nothing is drawn with `--json` or when stdout or stderr is
//! redirected, and `--long` then logs a line every 10 s on stderr instead.
//!
//! # What 3.18 and the 2016 fix do not cover (reference §3.4, "R3c")
//! Isolation works one pageblock at a time, and a free top-order block spans two pageblocks
//! (Pa, the lower one with its head, and Pb). Two paths count Pb's half twice (+512, and +512
//! CMA in the CMA area) with [`Fixes::V4_6`] (3.18 + the 2016 fix):
//! - `--align pageblock` isolating Pb alone moves nothing (the head is in Pa); an allocation
//!   splits the block, leaving Pb's half counted on an allocatable list inside isolated Pb;
//!   the un-isolation (3.18's re-free, or `test_pages_isolated`'s repair) counts it again.
//! - with the default, kernel-ordered undo of a whole top-order block that was free when it
//!   was isolated: un-isolating Pa re-frees the whole block (covering Pb, still isolated) onto
//!   an allocatable list; if an allocation splits it before Pb is un-isolated, the re-free of
//!   Pb's half counts it again. It takes an allocation inside the window between two
//!   pageblocks of the undo, so it shows in some runs, not all. `--undo descending`
//!   un-isolates Pb first, which closes it.
//!
//! Measured (4 s runs, seeds 2–11): `v4.6` drifted by +512 or +1024 in 4 of 10 runs with
//! `--align pageblock` and in 3 of 6 with the default. [`Fixes::ALL`] adds the 2024 freelist
//! hygiene ([`Fixes::ISOLATE_HYGIENE`]: an isolation change splits the straddling block, and
//! blocks are counted by the list they leave), which closes both paths: clean in 10 of 10
//! runs with `--align pageblock`, and a run with every fix must end clean in either mode.
//!
//! ```text
//! cargo run --release --example isolate_race                     # none, then all, 5 s each
//! cargo run --release --example isolate_race -- --fixes 'none;seed;v3.18;all' --json
//! cargo run --release --example isolate_race -- --fixes 'recheck-free-one-page,recheck-pcp-bulk;all'
//! cargo run --release --example isolate_race -- --fixes all --long   # the 10-minute run
//! cargo run --release --example isolate_race -- --cpus 2 --fixes 'none;seed;v3.18;v4.6;all'
//! cargo run --release --example isolate_race -- --plot /tmp/plots   # SVG pictures of the runs
//! ```

// The stop flag and the progress counters are plain std atomics: this example is outside the
// crate's loom shim rule, which only concerns the library's own concurrency (src/sync.rs).
#![allow(clippy::disallowed_types)]

use pagealloc::{
    AllocError, AuditReport, CmaPolicy, Fixes, IsolateError, Migratetype, Order, PAGE_SIZE, Pages,
    Pfn, RaceHook, RaceWindow, SpinHook, Zone, ZoneConfig,
};
mod common;

use common::plot::{PlotOpts, Recorder, RunPlot};
use common::progress::{self, Live};
use common::{
    CpuOpts, LedgerJson, Rng, RunOpts, TraceOpts, at_least_one, drift_line, ledger_json,
    ledger_lines, multiple_of_4, parse_seed, positive_multiple_of_4, splitmix64, usage_error,
    vmstat_drift, vmstat_timer,
};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

// ---- arguments ----

/// How the isolating thread turns a random pageblock range into the range it isolates.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Align {
    // (No doc comments on the variants: clap would print them as a second, long help.)
    // As `alloc_contig_range` (and memory offline): isolate the range widened to whole
    // top-order blocks, test the pageblocks asked for, undo the widened range.
    Contig,
    // Isolate, test and undo exactly the pageblocks asked for.
    Pageblock,
}

impl Align {
    fn name(self) -> &'static str {
        match self {
            Align::Contig => "contig",
            Align::Pageblock => "pageblock",
        }
    }
}

/// In which order the isolating thread gives an isolated range back.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Undo {
    // `undo_isolate_page_range`: lowest pageblock first, as the kernel.
    Ascending,
    // `unset_migratetype_isolate` per pageblock, highest first: never re-frees a top-order
    // block while its upper pageblock is still isolated (diagnostic, not the kernel's order).
    Descending,
}

impl Undo {
    fn name(self) -> &'static str {
        match self {
            Undo::Ascending => "ascending",
            Undo::Descending => "descending",
        }
    }
}

/// What the isolating thread does.
#[derive(clap::Args, Clone, Copy, Debug)]
struct IsoOpts {
    /// contig: a random range of 1-4 pageblocks is widened to whole
    /// top-order blocks for isolation, as alloc_contig_range does, and the
    /// asked pageblocks are tested; pageblock: isolate exactly the asked
    /// pageblocks (v4.6 drifts by 512 there, R3c; all stays exact: see the
    /// module docs) [default: contig]
    #[arg(
        long,
        value_name = "A",
        value_enum,
        default_value_t = Align::Contig,
        hide_default_value = true,
        hide_possible_values = true,
        verbatim_doc_comment
    )]
    align: Align,
    /// ascending: undo_isolate_page_range, lowest pageblock first, as the
    /// kernel; descending: unset_migratetype_isolate per pageblock, highest
    /// first, which never re-frees a top-order block while its upper
    /// pageblock is still isolated (a diagnostic: see the module docs)
    /// [default: ascending]
    #[arg(
        long,
        value_name = "U",
        value_enum,
        default_value_t = Undo::Ascending,
        hide_default_value = true,
        hide_possible_values = true,
        verbatim_doc_comment
    )]
    undo: Undo,
    /// Longest time a range stays isolated around its test, in µs, at
    /// most 1000000
    #[arg(
        long,
        value_name = "N",
        default_value_t = 200,
        value_parser = hold_us,
        verbatim_doc_comment
    )]
    hold_us: u64,
}

/// Reproduce the free-page accounting races of pageblock isolation (Linux 3.17) on real
/// threads: workers allocate and free Movable blocks (order 0 through the pcp, orders 1-4
/// directly, CMA pageblocks used aggressively) while another thread isolates, tests and
/// un-isolates random pageblock ranges and takes memory offline and online. One fresh zone per
/// fix set; the final audit of each run is reported.
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "isolate_race", verbatim_doc_comment, after_help = AFTER_HELP)]
struct Args {
    /// Worker threads, plus one isolating thread
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = at_least_one::<usize>)]
    threads: usize,
    /// Run time per fix set, 0 < S <= 19, so a run with its clean-up stays
    /// within 20 s
    #[arg(
        long,
        value_name = "S",
        default_value_t = 5.0,
        value_parser = run_seconds,
        allow_negative_numbers = true,
        verbatim_doc_comment
    )]
    seconds: f64,
    /// The explicit 10-minute run: 600 s for every fix set that contains all
    /// the fixes (others keep --seconds); off a terminal, a progress line
    /// every 10 s on stderr
    #[arg(long, verbatim_doc_comment)]
    long: bool,
    /// Spin iterations of the SpinHook at every race window (0 = no
    /// hook)
    #[arg(long, value_name = "N", default_value_t = 200, verbatim_doc_comment)]
    race_window: u32,
    /// Zone size in MiB, a multiple of 4
    #[arg(long, value_name = "M", default_value_t = 256, value_parser = positive_multiple_of_4)]
    size_mib: usize,
    /// CMA area at the top of the zone in MiB, a multiple of 4, at most
    /// --size-mib
    #[arg(
        long,
        value_name = "M",
        default_value_t = 64,
        value_parser = multiple_of_4,
        verbatim_doc_comment
    )]
    cma_mib: usize,
    #[command(flatten)]
    iso: IsoOpts,
    /// Print every run's audit report (runs that must be clean and are not
    /// are always printed)
    #[arg(long, short, verbatim_doc_comment)]
    verbose: bool,
    #[command(flatten)]
    cpus: CpuOpts,
    #[command(flatten)]
    trace: TraceOpts,
    #[command(flatten)]
    plot: PlotOpts,
    #[command(flatten)]
    run: RunOpts,
}

const AFTER_HELP: &str = "\
Run i uses seed --seed + i. --json prints
{\"runs\":[{\"fixes\":...,\"drift_free\":...},...],...}.

exit status: 0 when every run whose fix set contains all the fixes ended clean (drift 0, no
misplaced block, clean audit; drift with fewer fixes is expected), 1 otherwise, 2 on a usage
error.";

impl Args {
    /// The arguments, or exit with clap's message (status 2; 0 for `--help`).
    fn parse_checked() -> Args {
        let a = <Args as clap::Parser>::parse();
        if a.cma_mib > a.size_mib {
            usage_error::<Args>("--cma-mib must be at most --size-mib");
        }
        a
    }
}

fn run_seconds(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 19.0 => Ok(s),
        _ => Err("expected 0 < S <= 19 (use --long for the 10-minute run)".into()),
    }
}

/// `--hold-us`: decimal or 0x-hex, at most one second.
fn hold_us(v: &str) -> Result<u64, String> {
    match parse_seed(v)? {
        n if n <= 1_000_000 => Ok(n),
        _ => Err("expected at most 1000000".into()),
    }
}

// ---- workers ----

/// Counters shared with the main thread (progress lines only).
#[derive(Default)]
struct Progress {
    ops: AtomicU64,
    live_pages: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default)]
struct WorkerStats {
    allocs: u64,
    frees: u64,
    cross_frees: u64,
    alloc_failures: u64,
}

impl WorkerStats {
    fn ops(&self) -> u64 {
        self.allocs + self.frees + self.alloc_failures
    }

    fn add(&mut self, o: &WorkerStats) {
        self.allocs += o.allocs;
        self.frees += o.frees;
        self.cross_frees += o.cross_frees;
        self.alloc_failures += o.alloc_failures;
    }
}

/// Order 0 three times in five (through the pcp), orders 1–4 otherwise (buddy lists).
const ORDERS: [u32; 10] = [0, 0, 0, 0, 0, 0, 1, 2, 3, 4];

/// Average pages per block of [`ORDERS`], times 10.
const AVG_PAGES_X10: u64 = 36;

/// One worker: a working set of Movable blocks whose target size moves between empty and
/// `max_blocks`; a quarter of the frees go to the next worker through `tx`.
#[allow(clippy::too_many_arguments)]
fn worker<'z>(
    zone: &'z Zone,
    id: usize,
    seed: u64,
    max_blocks: usize,
    stop: &AtomicBool,
    tx: mpsc::Sender<Pages<'z>>,
    rx: mpsc::Receiver<Pages<'z>>,
    progress: &Progress,
) -> WorkerStats {
    let mut rng = Rng::new(seed ^ splitmix64(0x1000 + id as u64));
    let mut st = WorkerStats::default();
    let mut live: Vec<Pages<'z>> = Vec::with_capacity(max_blocks);
    let mut live_pages = 0u64;
    let mut target = rng.below(max_blocks as u64 + 1) as usize;
    let mut iter = 0u64;
    while !stop.load(Ordering::Relaxed) {
        iter += 1;
        if iter % 64 == 0 {
            // Blocks another worker allocated, freed here (into this thread's pcp).
            while let Ok(p) = rx.try_recv() {
                drop(p);
                st.frees += 1;
                st.cross_frees += 1;
            }
            progress.ops.store(st.ops(), Ordering::Relaxed);
            progress.live_pages.store(live_pages, Ordering::Relaxed);
        }
        if iter % 2048 == 0 {
            // A new phase: a fifth of them empty the working set, so whole pageblocks and
            // top-order blocks come free (and isolation tests and offlines can succeed).
            target = if rng.pct(20) {
                0
            } else {
                rng.below(max_blocks as u64 + 1) as usize
            };
        }
        let grow = if live.len() < target { 85 } else { 15 };
        if live.is_empty() || rng.pct(grow) {
            let order = Order(ORDERS[rng.below(ORDERS.len() as u64) as usize]);
            match zone.alloc_pages(order, Migratetype::Movable) {
                Ok(mut p) => {
                    p.as_mut_slice()[0] = id as u8;
                    live_pages += order.nr_pages();
                    live.push(p);
                    st.allocs += 1;
                }
                Err(AllocError::NoMemory { .. }) => {
                    st.alloc_failures += 1;
                    target = live.len() / 2;
                }
                Err(e) => panic!("isolate_race: worker {id}: unexpected allocation error: {e}"),
            }
        } else {
            let i = rng.below(live.len() as u64) as usize;
            let p = live.swap_remove(i);
            live_pages -= p.order().nr_pages();
            if rng.pct(25) {
                // Freed on the next worker; if it is gone, here.
                if let Err(mpsc::SendError(p)) = tx.send(p) {
                    drop(p);
                    st.frees += 1;
                }
            } else {
                drop(p);
                st.frees += 1;
            }
        }
    }
    // Stop: free the working set, then whatever the previous worker still sends until it
    // has stopped too (each worker drops its sender here, so the ring winds down).
    st.frees += live.len() as u64;
    drop(live);
    drop(tx);
    for p in rx {
        drop(p);
        st.frees += 1;
        st.cross_frees += 1;
    }
    progress.ops.store(st.ops(), Ordering::Relaxed);
    progress.live_pages.store(0, Ordering::Relaxed);
    st
}

// ---- the isolating thread ----

#[derive(Clone, Copy, Debug, Default)]
struct IsoStats {
    /// Successful `start_isolate_page_range`s (each undone).
    isolations: u64,
    /// `start_isolate_page_range` refused (busy or already isolated).
    isolate_failures: u64,
    /// Candidate ranges skipped because their pageblocks had mixed types.
    skipped: u64,
    /// `test_pages_isolated` passes.
    tests_passed: u64,
    /// Successful `offline_pages`.
    offlines: u64,
    /// `offline_pages` that failed cleanly (pages busy).
    offline_failures: u64,
    /// `online_pages`.
    onlines: u64,
}

/// Where the isolating thread works, in pageblocks.
#[derive(Clone, Copy, Debug)]
struct Layout {
    pb_pages: u64,
    /// Pageblocks per top-order block.
    pb_per_top: u64,
    /// First CMA pageblock (== `nr_pb` without a CMA area).
    cma_first: u64,
    nr_pb: u64,
}

impl Layout {
    fn of(zone: &Zone) -> Layout {
        let g = zone.geometry();
        Layout {
            pb_pages: g.pageblock_nr_pages,
            pb_per_top: (g.max_order_nr_pages() / g.pageblock_nr_pages).max(1),
            cma_first: g.cma_start.0 / g.pageblock_nr_pages,
            nr_pb: g.nr_pageblocks,
        }
    }

    fn pfn(&self, pb: u64) -> Pfn {
        Pfn(pb * self.pb_pages)
    }

    /// The type a pageblock must have when nothing holds it isolated.
    fn home_type(&self, pb: u64) -> Migratetype {
        if pb >= self.cma_first {
            Migratetype::Cma
        } else {
            Migratetype::Movable
        }
    }
}

/// Whether every pageblock of `[first, end)` has type `mt` now (lockless reads).
fn all_typed(zone: &Zone, l: &Layout, first: u64, end: u64, mt: Migratetype) -> bool {
    (first..end).all(|b| zone.pageblock_migratetype(l.pfn(b)) == Some(mt))
}

fn overlaps(ranges: &[(u64, u64)], first: u64, end: u64) -> bool {
    ranges.iter().any(|&(a, b)| first < b && a < end)
}

/// Spin (yielding) for up to `max_us` microseconds.
fn hold(rng: &mut Rng, max_us: u64) {
    if max_us == 0 {
        return;
    }
    let until = Instant::now() + Duration::from_micros(rng.below(max_us + 1));
    while Instant::now() < until {
        #[allow(clippy::disallowed_methods)] // the library shim is private
        std::thread::yield_now();
    }
}

fn isolator(
    zone: &Zone,
    seed: u64,
    opts: IsoOpts,
    hook: Option<&dyn RaceHook>,
    stop: &AtomicBool,
) -> IsoStats {
    let l = Layout::of(zone);
    let mut rng = Rng::new(seed ^ splitmix64(0x150));
    let mut st = IsoStats::default();
    // Offline ranges, in pageblocks [first, end).
    let mut offline: Vec<(u64, u64)> = Vec::new();
    let normal_tops = l.cma_first / l.pb_per_top;
    let cma_pbs = l.nr_pb - l.cma_first;
    while !stop.load(Ordering::Relaxed) {
        if normal_tops > 0 && rng.pct(10) {
            // Memory offline / online of one top-order block of the normal area.
            if !offline.is_empty() && (offline.len() >= 2 || rng.pct(50)) {
                let (first, end) = offline.swap_remove(rng.below(offline.len() as u64) as usize);
                zone.online_pages(l.pfn(first), l.pfn(end))
                    .unwrap_or_else(|e| panic!("isolate_race: online_pages failed: {e}"));
                st.onlines += 1;
            } else {
                let first = rng.below(normal_tops) * l.pb_per_top;
                let end = first + l.pb_per_top;
                if overlaps(&offline, first, end)
                    || !all_typed(zone, &l, first, end, Migratetype::Movable)
                {
                    st.skipped += 1;
                    continue;
                }
                match zone.offline_pages(l.pfn(first), l.pfn(end)) {
                    Ok(()) => {
                        st.offlines += 1;
                        offline.push((first, end));
                    }
                    Err(IsolateError::Busy(_) | IsolateError::NotIsolated(_)) => {
                        st.offline_failures += 1;
                    }
                    Err(e) => panic!("isolate_race: offline_pages: unexpected error: {e}"),
                }
            }
            continue;
        }

        // Isolate → test → undo: four times in five in the CMA area.
        let in_cma = cma_pbs > 0 && (l.cma_first == 0 || rng.pct(80));
        let (lo, hi) = if in_cma {
            (l.cma_first, l.nr_pb)
        } else {
            (0, l.cma_first)
        };
        // The pageblocks asked for: one to four, pageblock-aligned.
        let len = 1 + rng.below((hi - lo).min(4));
        let first = lo + rng.below(hi - lo - len + 1);
        let end = first + len;
        // The pageblocks isolated: as asked, or widened to whole top-order blocks as
        // alloc_contig_range's pfn_max_align_down/up do (the CMA area starts on a top-order
        // boundary, so the widened range stays inside its area).
        let (iso_first, iso_end) = match opts.align {
            Align::Pageblock => (first, end),
            Align::Contig => (
                first / l.pb_per_top * l.pb_per_top,
                end.div_ceil(l.pb_per_top) * l.pb_per_top,
            ),
        };
        let mt = l.home_type(first);
        if overlaps(&offline, iso_first, iso_end) || !all_typed(zone, &l, iso_first, iso_end, mt) {
            st.skipped += 1;
            continue;
        }
        let (iso_start, iso_stop) = (l.pfn(iso_first), l.pfn(iso_end));
        match zone.start_isolate_page_range(iso_start, iso_stop, mt) {
            Ok(()) => {
                st.isolations += 1;
                hold(&mut rng, opts.hold_us / 2);
                if zone.test_pages_isolated(l.pfn(first), l.pfn(end)).is_ok() {
                    st.tests_passed += 1;
                }
                hold(&mut rng, opts.hold_us / 2);
                match opts.undo {
                    Undo::Ascending => zone
                        .undo_isolate_page_range(iso_start, iso_stop, mt)
                        .unwrap_or_else(|e| panic!("isolate_race: undo_isolate_page_range: {e}")),
                    Undo::Descending => {
                        for b in (iso_first..iso_end).rev() {
                            if b + 1 < iso_end
                                && let Some(h) = hook
                            {
                                // The window undo_isolate_page_range has between pageblocks.
                                h.window(RaceWindow::IsolateBetweenPageblocks, l.pfn(b));
                            }
                            zone.unset_migratetype_isolate(l.pfn(b), mt)
                                .unwrap_or_else(|e| {
                                    panic!("isolate_race: unset_migratetype_isolate: {e}")
                                });
                        }
                    }
                }
            }
            Err(IsolateError::Busy(_) | IsolateError::AlreadyIsolated(_)) => {
                st.isolate_failures += 1;
            }
            Err(e) => panic!("isolate_race: start_isolate_page_range: unexpected error: {e}"),
        }
    }
    for (first, end) in offline {
        zone.online_pages(l.pfn(first), l.pfn(end))
            .unwrap_or_else(|e| panic!("isolate_race: online_pages failed: {e}"));
        st.onlines += 1;
    }
    st
}

// ---- one run ----

struct RunResult {
    fixes: Fixes,
    seed: u64,
    seconds: f64,
    report: AuditReport,
    workers: WorkerStats,
    iso: IsoStats,
    /// Isolated pageblocks found (and given back their type) after the threads stopped.
    left_isolated: u64,
    mid_audits: u64,
    mid_max_abs_drift_free: i64,
    elapsed: Duration,
    /// `--plot`: the run's drift samples, worst-moment pageblock map and ledger.
    plot: Option<RunPlot>,
}

impl RunResult {
    fn clean(&self) -> bool {
        self.report.is_ok()
            && self.report.drift_free == 0
            && self.report.drift_cma == 0
            && self.report.misplaced_blocks.is_empty()
    }

    /// A run that must end clean: every fix on.
    fn must_be_clean(&self) -> bool {
        self.fixes.contains(Fixes::ALL)
    }
}

/// One run of `seconds` with `fixes` on a fresh zone; `live` shows its time and drift on a
/// terminal.
fn run(
    args: &Args,
    fixes: Fixes,
    seed: u64,
    seconds: f64,
    live: &Live,
) -> Result<RunResult, String> {
    let t0 = Instant::now();
    let recorder = args.plot.plot.as_ref().map(|_| Recorder::new());
    let hook: Option<Arc<dyn RaceHook>> = (args.race_window > 0).then(|| {
        Arc::new(SpinHook {
            spins: args.race_window,
        }) as Arc<dyn RaceHook>
    });
    let zone = Zone::new(ZoneConfig {
        // The drift ledger: every audit checks that it sums to the drift.
        ledger: true,
        size: args.size_mib << 20,
        cma_size: args.cma_mib << 20,
        cma_policy: CmaPolicy::Aggressive,
        fixes,
        race_hook: hook.clone(),
        pcp_mode: args.cpus.pcp_mode(),
        trace: args.trace.trace()?,
        ..ZoneConfig::default()
    })
    .map_err(|e| format!("zone: {e}"))?;
    let nr_pages = zone.geometry().nr_pages;
    // At most about half the zone live at once across the workers.
    let max_blocks = ((nr_pages / 2 * 10 / AVG_PAGES_X10) / args.threads as u64).max(1) as usize;
    let stop = AtomicBool::new(false);
    let progress: Vec<Progress> = (0..args.threads).map(|_| Progress::default()).collect();
    let long = seconds > 20.0;
    let mut mid_audits = 0u64;
    let mut mid_max = 0i64;

    let (workers, iso) = std::thread::scope(|s| {
        let zone = &zone;
        let stop = &stop;
        let vmstat = vmstat_timer(s, zone);
        let sampler = recorder.as_ref().map(|r| r.spawn(s, zone));
        let ticker = live.drift_ticker(s, zone, || Some(t0.elapsed().as_millis() as u64));
        let cpus = args.cpus;
        let mut txs = Vec::new();
        let mut rxs = Vec::new();
        for _ in 0..args.threads {
            let (tx, rx) = mpsc::channel::<Pages<'_>>();
            txs.push(tx);
            rxs.push(rx);
        }
        // Worker i frees into worker i+1.
        txs.rotate_left(1);
        let handles: Vec<_> = txs
            .into_iter()
            .zip(rxs)
            .enumerate()
            .map(|(id, (tx, rx))| {
                let p = &progress[id];
                s.spawn(move || {
                    cpus.bind(id);
                    worker(zone, id, seed, max_blocks, stop, tx, rx, p)
                })
            })
            .collect();
        let opts = args.iso;
        let hook = hook.as_deref();
        let iso_cpu = args.threads;
        let iso = s.spawn(move || {
            cpus.bind(iso_cpu);
            isolator(zone, seed, opts, hook, stop)
        });

        let deadline = t0 + Duration::from_secs_f64(seconds);
        let mut next_audit = t0 + Duration::from_secs(1);
        let mut next_progress = t0 + Duration::from_secs(10);
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_audit {
                // A mid-run audit under every lock (informational only: transient states of
                // a running isolation are legal).
                let r = zone.audit();
                mid_audits += 1;
                mid_max = mid_max.max(r.drift_free.abs());
                next_audit = now + Duration::from_secs(1);
                // --long off a terminal: a log line every 10 s (on one, the bar shows it).
                if long && !live.is_on() && now >= next_progress {
                    let ops: u64 = progress.iter().map(|p| p.ops.load(Ordering::Relaxed)).sum();
                    let live: u64 = progress
                        .iter()
                        .map(|p| p.live_pages.load(Ordering::Relaxed))
                        .sum();
                    eprintln!(
                        "isolate_race: [{}] {:>4.0} s: {ops} ops, {live} live pages, drift_free {:+}, drift_cma {:+}, {} misplaced",
                        fixes,
                        now.duration_since(t0).as_secs_f64(),
                        r.drift_free,
                        r.drift_cma,
                        r.misplaced_blocks.len()
                    );
                    next_progress = now + Duration::from_secs(10);
                }
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
        }
        stop.store(true, Ordering::Relaxed);
        let mut ws = WorkerStats::default();
        for h in handles {
            ws.add(&h.join().expect("isolate_race: a worker panicked"));
        }
        let iso = iso
            .join()
            .expect("isolate_race: the isolating thread panicked");
        vmstat.stop();
        if let Some(t) = sampler {
            t.stop();
        }
        if let Some(t) = ticker {
            t.stop();
        }
        (ws, iso)
    });

    // Clean-up: every block is back (per-thread pcps drained at thread exit, per-CPU ones
    // did not); push out anything still cached, give back any pageblock left isolated, and
    // audit.
    zone.drain_all_pages();
    let l = Layout::of(&zone);
    let mut left_isolated = 0;
    for b in 0..l.nr_pb {
        if zone.pageblock_migratetype(l.pfn(b)) == Some(Migratetype::Isolate) {
            left_isolated += 1;
            zone.unset_migratetype_isolate(l.pfn(b), l.home_type(b))
                .map_err(|e| format!("unset_migratetype_isolate: {e}"))?;
        }
    }
    zone.drain_all_pages();
    // The final audit also checks full coalescing: every top-order block merged again.
    let report = zone.audit_coalescing();
    let plot = recorder.map(|r| {
        // The last point: the final, quiescent drift (the ledger's sums).
        r.sample(&zone);
        r.finish(fixes.to_string(), report.ledger.as_deref())
    });
    Ok(RunResult {
        fixes,
        seed,
        seconds,
        report,
        workers,
        iso,
        left_isolated,
        mid_audits,
        mid_max_abs_drift_free: mid_max,
        elapsed: t0.elapsed(),
        plot,
    })
}

// ---- output ----

/// One run in the `--json` line; the schema is this type.
#[derive(serde::Serialize)]
struct RunJson {
    fixes: String,
    fixes_bits: u16,
    seed: u64,
    seconds: f64,
    drift_free: i64,
    drift_cma: i64,
    misplaced_blocks: usize,
    unmerged_blocks: usize,
    audit_ok: bool,
    audit_errors: usize,
    clean: bool,
    must_be_clean: bool,
    isolations: u64,
    isolate_failures: u64,
    tests_passed: u64,
    skipped_ranges: u64,
    offlines: u64,
    offline_failures: u64,
    onlines: u64,
    ops: u64,
    allocs: u64,
    frees: u64,
    cross_frees: u64,
    alloc_failures: u64,
    left_isolated: u64,
    mid_audits: u64,
    mid_max_abs_drift_free: i64,
    nr_free_pages: i64,
    true_free_pages: u64,
    nr_free_cma_pages: i64,
    true_free_cma_pages: u64,
    managed_pages: u64,
    elapsed_ms: u128,
    report: String,
    /// The final audit's drift as `zone_page_state` showed it (folded counter − truth).
    vmstat_drift_free: i64,
    vmstat_drift_cma: i64,
    /// The drift ledger: race × path × events × pages; sums to `drift_free`/`drift_cma`.
    ledger: Vec<LedgerJson>,
}

/// The `--json` line: every run and the settings they shared.
#[derive(serde::Serialize)]
struct Json {
    runs: Vec<RunJson>,
    seed: u64,
    threads: u64,
    race_window: u64,
    size_mib: u64,
    cma_mib: u64,
    align: &'static str,
    undo: &'static str,
    hold_us: u64,
    ok: bool,
    /// `--cpus`, 0 for per-thread pcps.
    cpus: u32,
}

fn run_json(r: &RunResult) -> RunJson {
    let rep = &r.report;
    let w = &r.workers;
    let i = &r.iso;
    RunJson {
        fixes: r.fixes.name(),
        fixes_bits: r.fixes.bits(),
        seed: r.seed,
        seconds: r.seconds,
        drift_free: rep.drift_free,
        drift_cma: rep.drift_cma,
        misplaced_blocks: rep.misplaced_blocks.len(),
        unmerged_blocks: rep.unmerged_blocks.len(),
        audit_ok: rep.is_ok(),
        audit_errors: rep.errors.len(),
        clean: r.clean(),
        must_be_clean: r.must_be_clean(),
        isolations: i.isolations,
        isolate_failures: i.isolate_failures,
        tests_passed: i.tests_passed,
        skipped_ranges: i.skipped,
        offlines: i.offlines,
        offline_failures: i.offline_failures,
        onlines: i.onlines,
        ops: w.ops(),
        allocs: w.allocs,
        frees: w.frees,
        cross_frees: w.cross_frees,
        alloc_failures: w.alloc_failures,
        left_isolated: r.left_isolated,
        mid_audits: r.mid_audits,
        mid_max_abs_drift_free: r.mid_max_abs_drift_free,
        nr_free_pages: rep.nr_free_pages,
        true_free_pages: rep.true_free_pages,
        nr_free_cma_pages: rep.nr_free_cma_pages,
        true_free_cma_pages: rep.true_free_cma_pages,
        managed_pages: rep.managed_pages,
        elapsed_ms: r.elapsed.as_millis(),
        report: rep.to_string(),
        vmstat_drift_free: vmstat_drift(rep).0,
        vmstat_drift_cma: vmstat_drift(rep).1,
        ledger: ledger_json(rep),
    }
}

fn print_table(results: &[RunResult]) {
    let name_w = results
        .iter()
        .map(|r| r.fixes.name().len())
        .max()
        .unwrap_or(0)
        .max(5);
    println!(
        "{:<name_w$}  {:>10}  {:>9}  {:>16}  {:>8}  {:>10}  {:>8}  {:>10}  {:>10}",
        "fixes",
        "drift_free",
        "drift_cma",
        "misplaced_blocks",
        "audit_ok",
        "isolations",
        "offlines",
        "ops",
        "elapsed_ms"
    );
    for r in results {
        println!(
            "{:<name_w$}  {:>+10}  {:>+9}  {:>16}  {:>8}  {:>10}  {:>8}  {:>10}  {:>10}",
            r.fixes.name(),
            r.report.drift_free,
            r.report.drift_cma,
            r.report.misplaced_blocks.len(),
            r.report.is_ok(),
            r.iso.isolations,
            r.iso.offlines,
            r.workers.ops(),
            r.elapsed.as_millis()
        );
    }
}

fn main() -> ExitCode {
    let args = Args::parse_checked();
    println!(
        "isolate_race: seed {:#x}, {} workers + 1 isolating thread on {}, zone {} MiB with {} MiB \
         CMA (aggressive), race window {}, {} isolation ranges, {} undo, hold up to {} us, {} B pages",
        args.run.seed,
        args.threads,
        args.cpus.describe(),
        args.size_mib,
        args.cma_mib,
        if args.race_window == 0 {
            "off".to_string()
        } else {
            format!("{} spins", args.race_window)
        },
        args.iso.align.name(),
        args.iso.undo.name(),
        args.iso.hold_us,
        PAGE_SIZE
    );
    let mut results = Vec::new();
    for (i, fixes) in args.run.fixes().into_iter().enumerate() {
        let seconds = if args.long && fixes.contains(Fixes::ALL) {
            600.0
        } else {
            args.seconds
        };
        let seed = args.run.seed.wrapping_add(i as u64);
        if seconds > 20.0 {
            eprintln!("isolate_race: [{fixes}] running for {seconds:.0} s (--long)");
        }
        let live = Live::timed(
            progress::wanted(args.run.json),
            Duration::from_secs_f64(seconds),
            format!("[{fixes}]"),
        );
        let r = run(&args, fixes, seed, seconds, &live);
        drop(live);
        match r {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("isolate_race: {e}");
                return ExitCode::from(2);
            }
        }
    }

    print_table(&results);
    let mut failed = false;
    for r in &results {
        let verdict = match (r.must_be_clean(), r.clean()) {
            (true, true) => "clean, as it must be",
            (true, false) => "NOT CLEAN with every fix on (a library bug; audit and command below)",
            (false, true) => "clean (the races did not leave drift this time)",
            (false, false) => "drift/misplacement left by the races (expected without every fix)",
        };
        println!(
            "[{}] seed {:#x}: {verdict}; {} isolation(s) refused, {} test(s) passed, {} \
             offline(s) refused, {} online(s), {} cross-thread frees, mid-run max |drift_free| {}",
            r.fixes,
            r.seed,
            r.iso.isolate_failures,
            r.iso.tests_passed,
            r.iso.offline_failures,
            r.iso.onlines,
            r.workers.cross_frees,
            r.mid_max_abs_drift_free
        );
        println!("[{}] {}", r.fixes, drift_line(&r.report));
        for l in ledger_lines(&r.report) {
            println!("[{}] {l}", r.fixes);
        }
        if r.must_be_clean() && !r.clean() {
            failed = true;
            println!("[{}] final audit: {}", r.fixes, r.report);
            println!(
                "[{}] rerun: cargo run --release --example isolate_race -- --fixes '{}' --seed {} \
                 --threads {} {} --race-window {} --size-mib {} --cma-mib {} --align {} --undo {} \
                 --hold-us {}{}",
                r.fixes,
                r.fixes,
                r.seed,
                args.threads,
                if r.seconds > 20.0 {
                    "--long".to_string()
                } else {
                    format!("--seconds {}", r.seconds)
                },
                args.race_window,
                args.size_mib,
                args.cma_mib,
                args.iso.align.name(),
                args.iso.undo.name(),
                args.iso.hold_us,
                args.cpus
                    .cpus
                    .map_or(String::new(), |n| format!(" --cpus {n}"))
            );
        } else if args.verbose {
            println!("[{}] final audit: {}", r.fixes, r.report);
        }
        if r.left_isolated > 0 {
            println!(
                "[{}] {} pageblock(s) were still isolated at the end and were given back their type",
                r.fixes, r.left_isolated
            );
        }
    }
    if let Some(dir) = &args.plot.plot {
        let plots: Vec<RunPlot> = results.iter().filter_map(|r| r.plot.clone()).collect();
        match common::plot::write_all(dir, "isolate_race", &plots) {
            Ok(files) => {
                for f in files {
                    println!("plot: {}", f.display());
                }
            }
            Err(e) => {
                eprintln!("isolate_race: {e}");
                failed = true;
            }
        }
    }
    if args.run.json {
        let json = Json {
            runs: results.iter().map(run_json).collect(),
            seed: args.run.seed,
            threads: args.threads as u64,
            race_window: args.race_window as u64,
            size_mib: args.size_mib as u64,
            cma_mib: args.cma_mib as u64,
            align: args.iso.align.name(),
            undo: args.iso.undo.name(),
            hold_us: args.iso.hold_us,
            ok: !failed,
            cpus: args.cpus.json(),
        };
        println!("{}", serde_json::to_string(&json).expect("JSON"));
    }
    if !args.trace.finish("isolate_race") {
        failed = true;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
