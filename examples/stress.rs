//! Multi-threaded stress run of the page allocator.
//!
//! N worker threads allocate blocks of random order (0–4) and migratetype (Unmovable,
//! Reclaimable, Movable), fill every page with a pattern derived from its pfn and a
//! per-allocation tag, keep them in a working set that grows and shrinks, and free them either
//! locally or by handing them to the next worker through a channel (a cross-thread free). Every
//! freed block is checked against its pattern first. The main thread prints a progress line
//! per second and, every few seconds, runs `drain_all_pages()` + `audit()` while the workers
//! keep going (the audit takes every lock, so it sees a consistent state).
//!
//! A timer thread folds the per-CPU vmstat diffs once a second while the run lasts (3.17's
//! `vmstat_update`, [`Zone::vmstat_update`]).
//!
//! At the end everything is freed, the threads are joined (with per-thread pcps, each drains
//! its pcp at thread exit; with `--cpus` nothing drains at thread exit),
//! `drain_all_pages()` runs once more and the final audit must be clean: no drift, every page
//! free, nothing left on any pcp. The exit code is non-zero if any audit failed or any pattern
//! check failed. The last lines give the drift exactly and as `zone_page_state` showed it (the
//! folded counters, which lag by the per-CPU diffs not folded yet).
//!
//! `--cpus N` models N CPUs ([`PcpMode::PerCpu`](pagealloc::PcpMode::PerCpu)): worker `i`
//! binds itself to CPU `i` (mod N), so 64 threads on `--cpus 4` share 4 pcps, 16 to a CPU.
//!
//! `--page-cache` adds a page cache (`examples/common/page_cache.rs`): a reader thread (CPU
//! index `--threads` with `--cpus`) fills free memory with movable page-cache pages and keeps
//! reading at `--read-mib-s` (default 66.7: a kernel build's estimated 2 MiB/s of new page
//! cache, times the 33.3 time compression `cma_stress` applies to the seed's 5 s between CMA
//! allocations), kswapd and direct reclaim free the oldest, and the workers allocate through
//! the watermarks ([`Zone::alloc_pages_gfp`]: `GFP_KERNEL` for Unmovable,
//! `GFP_KERNEL | __GFP_RECLAIMABLE` for Reclaimable, `GFP_HIGHUSER_MOVABLE` for Movable), so
//! kswapd and direct reclaim decide; an `OutOfMemory` makes a worker back off as `NoMemory`
//! does. The run reports watermark breaches (audits every 100 ms finding fewer free pages
//! than `min`), premature failures (`OutOfMemory` with more than `min` usable pages free) and
//! the reclaim counters. The page cache is released before the final audit.
//!
//! ```text
//! cargo run --release --example stress -- --seconds 5 --threads 4 --json
//! cargo run --release --example stress -- --soak            # until Ctrl-C, one line per audit
//! cargo run --release --example stress -- --cpus 4 --threads 64 --seconds 5 --json
//! cargo run --release --example stress -- --page-cache --fixes none --seconds 5
//! ```

// The stop flag (also set from a SIGINT handler) and the per-thread progress counters are
// plain std atomics: this example is outside the crate's loom shim rule, which only concerns
// the library's own concurrency (src/sync.rs).
#![allow(clippy::disallowed_types)]

use pagealloc::{
    AllocError, AuditReport, Fixes, Gfp, Migratetype, Order, PAGE_SIZE, Pages, Zone, ZoneConfig,
};
mod common;

use common::page_cache::{PageCache, PageCacheOpts, PageCacheReport, Pressure, Reader};
use common::{
    CpuOpts, LedgerJson, Rng, RunOpts, STOP, TraceOpts, at_least_one, drift_line,
    install_signal_handlers, ledger_json, ledger_lines, splitmix64, usage_error, vmstat_drift,
    vmstat_timer,
};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Hammer a pagealloc zone from several threads: random orders 0-4 and migratetypes, pages
/// pattern-filled at allocation and checked at free, blocks freed on other threads, periodic
/// drain_all_pages() + audit(), and a final audit that must find every page free.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "stress",
    verbatim_doc_comment,
    mut_arg("fixes", |a| a.default_value("all").value_name("F").help(STRESS_FIXES_HELP)),
    after_help = "exit status: 0 when every audit was clean and no pattern check failed, 1 \
                  otherwise, 2 on a\nusage error."
)]
struct Args {
    /// Run time in seconds [default: 10; with --soak: no limit]
    #[arg(long, value_name = "S", value_parser = non_negative_secs, allow_negative_numbers = true)]
    seconds: Option<f64>,
    /// Worker threads
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = at_least_one::<usize>)]
    threads: usize,
    /// Zone size in MiB, a multiple of 4
    #[arg(long, value_name = "M", default_value_t = 1024)]
    size_mib: usize,
    /// Seconds between audits [default: 2; 10 with --soak]
    #[arg(long, value_name = "S", value_parser = positive_secs)]
    audit_secs: Option<f64>,
    /// Run until Ctrl-C (or --seconds), one line per audit, no per-second lines
    #[arg(long)]
    soak: bool,
    #[command(flatten)]
    cpus: CpuOpts,
    #[command(flatten)]
    page_cache: PageCacheOpts,
    #[command(flatten)]
    trace: TraceOpts,
    #[command(flatten)]
    run: RunOpts,
}

/// The time compression of `cma_stress`'s default (the seed's 5 s between CMA allocations, run
/// every 150 ms), applied to the page cache's read rate here too.
const TIME_COMPRESSION: f64 = 5000.0 / 150.0;

/// `--fixes` of this example: one set.
const STRESS_FIXES_HELP: &str = "\
The fix set (one: no ';'): a preset (none, seed, v3.18, v4.6,
all) or presets and flag names joined by ',' or '+' (their
union)";

impl Args {
    /// The arguments, or exit with clap's message (status 2; 0 for `--help`).
    fn parse_checked() -> Args {
        let args = <Args as clap::Parser>::parse();
        if args.run.fixes().len() != 1 {
            usage_error::<Args>("--fixes: stress runs one fix set (no ';', not repeated)");
        }
        args
    }

    /// The run time: `--seconds`, else 10 s, or no limit with `--soak`.
    fn seconds(&self) -> Option<f64> {
        self.seconds.or((!self.soak).then_some(10.0))
    }

    fn audit_secs(&self) -> f64 {
        self.audit_secs
            .unwrap_or(if self.soak { 10.0 } else { 2.0 })
    }

    fn fixes(&self) -> Fixes {
        self.run.fixes()[0]
    }
}

fn non_negative_secs(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err("expected a non-negative number of seconds".into()),
    }
}

fn positive_secs(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err("expected a positive number of seconds".into()),
    }
}

// ---- page pattern ----

/// The first word of page `pfn` in the allocation tagged `tag`; word `j` is this plus `j`.
fn page_seed(pfn: u64, tag: u64) -> u64 {
    splitmix64(pfn.wrapping_mul(0x1000_0000_01b3) ^ tag)
}

fn fill(p: &mut Pages<'_>, tag: u64) {
    let pfn0 = p.pfn().0;
    for (i, page) in p.as_mut_slice().chunks_exact_mut(PAGE_SIZE).enumerate() {
        let base = page_seed(pfn0 + i as u64, tag);
        for (j, w) in page.chunks_exact_mut(8).enumerate() {
            w.copy_from_slice(&base.wrapping_add(j as u64).to_ne_bytes());
        }
    }
}

/// Pages of the block whose pattern is wrong.
fn verify(p: &Pages<'_>, tag: u64) -> u64 {
    let pfn0 = p.pfn().0;
    let mut bad = 0;
    for (i, page) in p.as_slice().chunks_exact(PAGE_SIZE).enumerate() {
        let base = page_seed(pfn0 + i as u64, tag);
        let ok = page
            .chunks_exact(8)
            .enumerate()
            .all(|(j, w)| u64::from_ne_bytes(w.try_into().unwrap()) == base.wrapping_add(j as u64));
        if !ok {
            bad += 1;
        }
    }
    bad
}

// ---- workers ----

/// A live allocation and the tag its pages were filled with.
struct Block<'z> {
    pages: Pages<'z>,
    tag: u64,
}

/// A worker's counters, written by the worker only, read by the main thread for progress.
#[derive(Default)]
struct Progress {
    ops: AtomicU64,
    live_pages: AtomicU64,
    alloc_failures: AtomicU64,
    verify_errors: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default)]
struct WorkerStats {
    allocs: u64,
    frees: u64,
    cross_frees: u64,
    alloc_failures: u64,
    verify_errors: u64,
}

impl WorkerStats {
    /// Operations: successful allocations and frees (each free counted once, on the freeing
    /// thread). Failed allocations are counted apart.
    fn ops(&self) -> u64 {
        self.allocs + self.frees
    }
}

struct Worker<'z> {
    id: usize,
    zone: &'z Zone,
    /// With `--page-cache`: allocate through the watermarks, and record failures here.
    pressure: Option<&'z Pressure>,
    rng: Rng,
    live: Vec<Block<'z>>,
    live_pages: u64,
    next_tag: u64,
    stats: WorkerStats,
}

const ORDERS: [u32; 8] = [0, 0, 0, 1, 1, 2, 3, 4];
const TYPES: [Migratetype; 3] = [
    Migratetype::Unmovable,
    Migratetype::Reclaimable,
    Migratetype::Movable,
];

impl<'z> Worker<'z> {
    /// Check the pattern and free the block on this thread.
    fn free_block(&mut self, b: Block<'z>) {
        let bad = verify(&b.pages, b.tag);
        if bad > 0 {
            if self.stats.verify_errors < 5 {
                eprintln!(
                    "stress: thread {}: pattern mismatch in {bad} page(s) of the {} block at {} (tag {:#x})",
                    self.id,
                    b.pages.order(),
                    b.pages.pfn(),
                    b.tag
                );
            }
            self.stats.verify_errors += bad;
        }
        drop(b.pages);
        self.stats.frees += 1;
    }

    fn take_random(&mut self) -> Option<Block<'z>> {
        if self.live.is_empty() {
            return None;
        }
        let i = self.rng.below(self.live.len() as u64) as usize;
        let b = self.live.swap_remove(i);
        self.live_pages -= b.pages.order().nr_pages();
        Some(b)
    }

    /// Returns false on `NoMemory`.
    fn alloc_one(&mut self) -> bool {
        let order = Order(ORDERS[self.rng.below(ORDERS.len() as u64) as usize]);
        let mt = TYPES[self.rng.below(3) as usize];
        let res = match self.pressure {
            Some(_) => self.zone.alloc_pages_gfp(order, gfp_of(mt)),
            None => self.zone.alloc_pages(order, mt),
        };
        match res {
            Ok(mut pages) => {
                self.next_tag += 1;
                let tag = splitmix64(((self.id as u64) << 48) ^ self.next_tag);
                fill(&mut pages, tag);
                self.live_pages += order.nr_pages();
                self.live.push(Block { pages, tag });
                self.stats.allocs += 1;
                true
            }
            Err(AllocError::NoMemory { .. }) => {
                self.stats.alloc_failures += 1;
                false
            }
            Err(AllocError::OutOfMemory { order, gfp, .. }) => {
                self.stats.alloc_failures += 1;
                if let Some(p) = self.pressure {
                    p.allocation_failed(self.zone, order, gfp);
                }
                false
            }
            Err(e) => panic!(
                "stress: thread {}: unexpected allocation error: {e}",
                self.id
            ),
        }
    }
}

/// The gfp mask a kernel caller of each migratetype would use.
fn gfp_of(mt: Migratetype) -> Gfp {
    match mt {
        Migratetype::Movable => Gfp::GFP_HIGHUSER_MOVABLE,
        Migratetype::Reclaimable => Gfp::GFP_KERNEL_RECLAIMABLE,
        _ => Gfp::GFP_KERNEL,
    }
}

#[allow(clippy::too_many_arguments)]
fn worker<'z>(
    zone: &'z Zone,
    id: usize,
    seed: u64,
    cap_pages: u64,
    tx: Option<mpsc::Sender<Block<'z>>>,
    rx: mpsc::Receiver<Block<'z>>,
    progress: &Progress,
    pressure: Option<&'z Pressure>,
) -> WorkerStats {
    let mut w = Worker {
        id,
        zone,
        pressure,
        rng: Rng::new(seed ^ splitmix64(id as u64 + 1)),
        live: Vec::new(),
        live_pages: 0,
        next_tag: 0,
        stats: WorkerStats::default(),
    };
    let lo = cap_pages / 8;
    let mut growing = true;
    let mut iter = 0u64;
    loop {
        iter += 1;
        if iter % 256 == 0 {
            progress.ops.store(w.stats.ops(), Ordering::Relaxed);
            progress.live_pages.store(w.live_pages, Ordering::Relaxed);
            progress
                .alloc_failures
                .store(w.stats.alloc_failures, Ordering::Relaxed);
            progress
                .verify_errors
                .store(w.stats.verify_errors, Ordering::Relaxed);
            if STOP.load(Ordering::Relaxed) {
                break;
            }
        }
        // Blocks freed here that another thread allocated.
        while let Ok(b) = rx.try_recv() {
            w.free_block(b);
            w.stats.cross_frees += 1;
        }
        if iter % 4096 == 0 {
            // Race a local drain against the other threads' frees and drains.
            zone.drain_local_pages();
        }
        let p_alloc = if growing { 70 } else { 30 };
        if w.live.is_empty() || w.rng.below(100) < p_alloc {
            if !w.alloc_one() {
                // Under pressure: give some back and start shrinking; with nothing to give
                // back, let the threads that hold the memory run.
                growing = false;
                if w.live.is_empty() {
                    #[allow(clippy::disallowed_methods)] // the library shim is private
                    std::thread::yield_now();
                }
                for _ in 0..8 {
                    match w.take_random() {
                        Some(b) => w.free_block(b),
                        None => break,
                    }
                }
            } else if w.live_pages >= cap_pages {
                growing = false;
            }
        } else if let Some(b) = w.take_random() {
            match &tx {
                // A quarter of the frees happen on the next thread.
                Some(tx) if w.rng.below(4) == 0 => {
                    if let Err(mpsc::SendError(b)) = tx.send(b) {
                        w.free_block(b);
                    }
                }
                _ => w.free_block(b),
            }
            if w.live_pages <= lo {
                growing = true;
            }
        }
    }
    // Teardown: stop sending (so the next thread's inbox disconnects once we are done), free
    // our working set, then free whatever the previous thread still sends us.
    drop(tx);
    while let Some(b) = w.take_random() {
        w.free_block(b);
    }
    while let Ok(b) = rx.recv() {
        w.free_block(b);
        w.stats.cross_frees += 1;
    }
    progress.ops.store(w.stats.ops(), Ordering::Relaxed);
    progress.live_pages.store(0, Ordering::Relaxed);
    progress
        .alloc_failures
        .store(w.stats.alloc_failures, Ordering::Relaxed);
    progress
        .verify_errors
        .store(w.stats.verify_errors, Ordering::Relaxed);
    w.stats
}

// ---- main ----

/// The `--json` line: one object, its schema this type.
#[derive(serde::Serialize)]
struct Summary {
    ops: u64,
    threads: usize,
    seconds: f64,
    seed: u64,
    size_mib: usize,
    fixes: String,
    audit_ok: bool,
    drift_free: i64,
    drift_cma: i64,
    max_abs_drift: i64,
    verify_errors: u64,
    audits: u64,
    audit_failures: u64,
    alloc_failures: u64,
    allocs: u64,
    frees: u64,
    cross_thread_frees: u64,
    true_free_pages: u64,
    managed_pages: u64,
    unmerged_blocks: usize,
    ok: bool,
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
}

/// The final state must be: clean audit, nothing allocated or cached, every page free.
fn final_problems(r: &AuditReport, counters: (i64, i64)) -> Vec<String> {
    let mut p = Vec::new();
    if !r.is_ok() {
        p.push(format!("audit not clean: {r}"));
    }
    if !r.conservation_ok() {
        p.push("conservation broken".into());
    }
    if r.drift_free != 0 || r.drift_cma != 0 {
        p.push(format!(
            "drift free {:+} cma {:+}",
            r.drift_free, r.drift_cma
        ));
    }
    if r.true_free_pages != r.managed_pages {
        p.push(format!(
            "true free pages {} != managed pages {}",
            r.true_free_pages, r.managed_pages
        ));
    }
    if counters.0 != r.managed_pages as i64 {
        p.push(format!(
            "NR_FREE_PAGES {} != managed pages {}",
            counters.0, r.managed_pages
        ));
    }
    if r.pcp_pages != 0 || r.allocated_pages != 0 {
        p.push(format!(
            "{} pages still in pcps, {} still allocated",
            r.pcp_pages, r.allocated_pages
        ));
    }
    p
}

fn main() -> ExitCode {
    let args = Args::parse_checked();
    let (seconds, audit_secs, fixes, seed) = (
        args.seconds(),
        args.audit_secs(),
        args.fixes(),
        args.run.seed,
    );
    let zone = match Zone::new(ZoneConfig {
        // The drift ledger: the final audit checks that it sums to the drift.
        ledger: true,
        size: args.size_mib << 20,
        fixes,
        pcp_mode: args.cpus.pcp_mode(),
        trace: match args.trace.trace() {
            Ok(t) => t,
            Err(e) => {
                eprintln!("stress: {e}");
                return ExitCode::from(2);
            }
        },
        ..ZoneConfig::default()
    }) {
        Ok(z) => Arc::new(z),
        Err(e) => {
            eprintln!("stress: cannot create a {} MiB zone: {e}", args.size_mib);
            return ExitCode::from(2);
        }
    };
    install_signal_handlers();
    let geo = *zone.geometry();
    let nr_pages = geo.nr_pages;
    // Each working set swings between 1/8 of its cap and its cap; together the caps are 110%
    // of the zone, so when the threads grow at the same time allocations fail (NoMemory) and
    // the threads back off.
    let cap_pages = (nr_pages * 11 / 10 / args.threads as u64).max(16);
    let read_mib_s = args.page_cache.read_mib_s(TIME_COMPRESSION);
    eprintln!(
        "stress: {} threads, {} MiB zone ({} pages, pcp high {} batch {}, {}), fixes {}, seed {:#x}, {}, audit every {} s{}",
        args.threads,
        args.size_mib,
        nr_pages,
        geo.pcp_high,
        geo.pcp_batch,
        args.cpus.describe(),
        fixes,
        seed,
        match seconds {
            Some(s) => format!("{s} s"),
            None => "until Ctrl-C".into(),
        },
        audit_secs,
        if args.page_cache.page_cache {
            format!(", page cache read at {read_mib_s:.1} MiB/s")
        } else {
            String::new()
        }
    );
    // --page-cache: the cache (the zone's shrinker), kswapd, the consequences' counters.
    let cache = args
        .page_cache
        .page_cache
        .then(|| PageCache::register(&zone));
    let pressure = Pressure::default();
    let kswapd = cache.as_ref().and_then(|_| zone.start_kswapd());

    let progress: Vec<Progress> = (0..args.threads).map(|_| Progress::default()).collect();
    let start = Instant::now();
    let deadline = seconds.map(|s| start + Duration::from_secs_f64(s));
    let audit_every = Duration::from_secs_f64(audit_secs);
    let mut audits = 0u64;
    let mut audit_failures = 0u64;
    let mut max_abs_drift = 0i64;

    let zone_ref: &Zone = &zone;
    let joined: Vec<std::thread::Result<WorkerStats>> = std::thread::scope(|s| {
        let zone = zone_ref;
        let vmstat = vmstat_timer(s, zone);
        let pressure = cache.as_ref().map(|_| &pressure);
        let sampler = pressure.map(|p| p.sampler(s, zone));
        // Worker i sends to worker i+1 (mod n).
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..args.threads)
            .map(|_| mpsc::channel::<Block<'_>>())
            .unzip();
        let mut txs: Vec<Option<mpsc::Sender<Block<'_>>>> = txs.into_iter().map(Some).collect();
        txs.rotate_left(1);
        let mut handles = Vec::new();
        for (id, (tx, rx)) in txs.into_iter().zip(rxs).enumerate() {
            let tx = if args.threads > 1 { tx } else { None };
            let progress = &progress[id];
            let cpus = args.cpus;
            let h = std::thread::Builder::new()
                .name(format!("stress-{id}"))
                .spawn_scoped(s, move || {
                    cpus.bind(id);
                    worker(zone, id, seed, cap_pages, tx, rx, progress, pressure)
                })
                .expect("spawn worker");
            handles.push(h);
        }
        // The reader takes the CPU index after the workers'.
        let reader = cache
            .as_deref()
            .zip(pressure)
            .map(|(c, p)| Reader::spawn(s, zone, c, p, read_mib_s, args.cpus, args.threads));

        let mut next_audit = start + audit_every;
        let mut next_line = start + Duration::from_secs(1);
        let mut last_ops = 0u64;
        let mut last_line = start;
        loop {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                STOP.store(true, Ordering::SeqCst);
            }
            if STOP.load(Ordering::SeqCst) {
                break;
            }
            let sum = |f: fn(&Progress) -> &AtomicU64| {
                progress
                    .iter()
                    .map(|p| f(p).load(Ordering::Relaxed))
                    .sum::<u64>()
            };
            if now >= next_audit {
                next_audit += audit_every;
                let t0 = Instant::now();
                zone.drain_all_pages();
                let r = zone.audit();
                let took = t0.elapsed();
                audits += 1;
                max_abs_drift = max_abs_drift.max(r.drift_free.abs()).max(r.drift_cma.abs());
                let ok = r.is_ok() && r.conservation_ok();
                if !ok {
                    audit_failures += 1;
                    eprintln!(
                        "stress: AUDIT {audits} FAILED at {:.1}s: {r}",
                        start.elapsed().as_secs_f64()
                    );
                } else if args.soak {
                    eprintln!(
                        "stress: {:>8.1}s audit {audits} ok ({:.1} ms): ops {}, {} free, {} pcp, {} allocated, alloc_failures {}, verify_errors {}",
                        start.elapsed().as_secs_f64(),
                        took.as_secs_f64() * 1e3,
                        sum(|p| &p.ops),
                        r.true_free_pages,
                        r.pcp_pages,
                        r.allocated_pages,
                        sum(|p| &p.alloc_failures),
                        sum(|p| &p.verify_errors),
                    );
                }
            }
            if !args.soak && now >= next_line {
                next_line += Duration::from_secs(1);
                let ops = sum(|p| &p.ops);
                let dt = now.duration_since(last_line).as_secs_f64().max(1e-9);
                eprintln!(
                    "stress: {:>5.1}s ops {ops} ({:.0}/s) live {} pages, alloc_failures {}, verify_errors {}, audits {audits} ({audit_failures} failed)",
                    start.elapsed().as_secs_f64(),
                    (ops - last_ops) as f64 / dt,
                    sum(|p| &p.live_pages),
                    sum(|p| &p.alloc_failures),
                    sum(|p| &p.verify_errors),
                );
                last_ops = ops;
                last_line = now;
            }
            let mut wake = next_audit.min(if args.soak { next_audit } else { next_line });
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
            let nap = wake
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            std::thread::sleep(nap);
        }
        if let Some(r) = reader {
            r.stop();
        }
        // Explicit joins: a scoped thread's implicit join does not wait for its thread-local
        // destructors (the pcp drain at thread exit, per-thread pcps); `join()` does.
        let joined = handles.into_iter().map(|h| h.join()).collect();
        if let Some(t) = sampler {
            t.stop();
        }
        vmstat.stop();
        joined
    });
    let elapsed = start.elapsed().as_secs_f64();

    let mut total = WorkerStats::default();
    let mut panicked = 0;
    for r in &joined {
        match r {
            Ok(s) => {
                total.allocs += s.allocs;
                total.frees += s.frees;
                total.cross_frees += s.cross_frees;
                total.alloc_failures += s.alloc_failures;
                total.verify_errors += s.verify_errors;
            }
            Err(_) => panicked += 1,
        }
    }

    // --page-cache: stop kswapd, report, then give the cache back before the final audit.
    drop(kswapd);
    let pc_report = cache
        .as_deref()
        .map(|c| PageCacheReport::collect(&zone, c, &pressure, read_mib_s));
    if let Some(c) = &cache {
        c.release_all(&zone);
    }
    // Per-CPU pcps keep their pages after their threads exit: drain them (and any pcp of a
    // thread still alive) before counting.
    zone.drain_all_pages();
    // The final audit also checks full coalescing: every top-order block merged again.
    let r = zone.audit_coalescing();
    audits += 1;
    max_abs_drift = max_abs_drift.max(r.drift_free.abs()).max(r.drift_cma.abs());
    let mut problems = final_problems(&r, zone.free_counters());
    if panicked > 0 {
        problems.push(format!("{panicked} worker thread(s) panicked"));
    }
    if total.allocs != total.frees {
        problems.push(format!(
            "{} allocations but {} frees",
            total.allocs, total.frees
        ));
    }
    if !problems.is_empty() {
        audit_failures += 1;
    }
    let ok = problems.is_empty() && audit_failures == 0 && total.verify_errors == 0;

    eprintln!(
        "stress: done in {elapsed:.1}s: {} ops ({:.0}/s), {} allocs, {} cross-thread frees, {} alloc failures, {} verify errors, {audits} audits ({audit_failures} failed), final: {r}",
        total.ops(),
        total.ops() as f64 / elapsed.max(1e-9),
        total.allocs,
        total.cross_frees,
        total.alloc_failures,
        total.verify_errors,
    );
    eprintln!("stress: {}", drift_line(&r));
    for l in ledger_lines(&r) {
        eprintln!("stress: {l}");
    }
    if let Some(pc) = &pc_report {
        for l in pc.lines() {
            eprintln!("stress: {l}");
        }
    }
    for p in &problems {
        eprintln!("stress: FINAL CHECK FAILED: {p}");
    }
    eprintln!("stress: {}", if ok { "PASS" } else { "FAIL" });

    if args.run.json {
        let summary = Summary {
            ops: total.ops(),
            threads: args.threads,
            seconds: elapsed,
            seed,
            size_mib: args.size_mib,
            fixes: fixes.name(),
            audit_ok: problems.is_empty() && audit_failures == 0,
            drift_free: r.drift_free,
            drift_cma: r.drift_cma,
            max_abs_drift,
            verify_errors: total.verify_errors,
            audits,
            audit_failures,
            alloc_failures: total.alloc_failures,
            allocs: total.allocs,
            frees: total.frees,
            cross_thread_frees: total.cross_frees,
            true_free_pages: r.true_free_pages,
            managed_pages: r.managed_pages,
            unmerged_blocks: r.unmerged_blocks.len(),
            ok,
            cpus: args.cpus.json(),
            vmstat_drift_free: vmstat_drift(&r).0,
            vmstat_drift_cma: vmstat_drift(&r).1,
            ledger: ledger_json(&r),
            page_cache: pc_report,
        };
        println!("{}", serde_json::to_string(&summary).expect("JSON"));
    }
    if ok && args.trace.finish("stress") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
