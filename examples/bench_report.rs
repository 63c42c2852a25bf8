//! The headline numbers in one run: pcp and zone round trips, the peer allocator on the same
//! loop, two-thread scaling, the cost of the fixes on the fast path, CMA allocation
//! latency, allocation latency under oversubscription (512 threads, a zone near full),
//! order-1/2/3 pairs cold and warm, order-3 threads and the cross-thread pattern against the
//! peer, and how long `audit` / `audit_chunked` / `pagetypeinfo` hold the zone lock on a
//! 16 GiB zone. Every figure is the median of several rounds measured in this process.
//!
//! ```text
//! cargo run --release --example bench_report -- [--quick] [--json]
//! ```
#![allow(clippy::disallowed_types)] // outside the loom shim rule: the peer needs its own mutex

mod common;

use buddy_system_allocator::FrameAllocator;
use pagealloc::*;
use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The headline performance figures (medians of several rounds in this process); with
/// --workload, one loop alone for counting instructions.
#[derive(clap::Parser, Debug)]
#[command(name = "bench_report", verbatim_doc_comment)]
struct Opts {
    /// Fewer rounds (well under 60 s)
    #[arg(long, conflicts_with = "workload")]
    quick: bool,
    /// End with one JSON line of the figures
    #[arg(long, conflicts_with = "workload")]
    json: bool,
    /// Run only workload W (pcp: order-0 pairs; mixed: the fixes-overhead
    /// workload) for N operations on a fresh 256 MiB zone and exit, for
    /// counting instructions (scripts/fastpath_instructions.sh); or
    /// oversub: the oversubscription latency test alone, N allocations per
    /// thread, printed
    #[arg(
        long,
        value_name = "W",
        value_enum,
        hide_possible_values = true,
        verbatim_doc_comment
    )]
    workload: Option<Workload>,
    /// Operations of --workload
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1_000_000,
        requires = "workload"
    )]
    ops: u64,
    /// The zone's fix set for --workload, one set as stress's --fixes
    #[arg(
        long,
        value_name = "F",
        default_value = "all",
        value_parser = common::parse_fix_set,
        requires = "workload"
    )]
    fixes: Fixes,
    /// With --workload: isolate the zone's last top-order block first
    #[arg(long, requires = "workload")]
    isolated: bool,
    /// With --workload: per-CPU pcps with N CPUs (PcpMode::PerCpu) instead of per-thread
    #[arg(long, value_name = "N", requires = "workload")]
    cpus: Option<u32>,
    /// With --workload: trace every event to /dev/null (ZoneConfig::trace)
    #[arg(long, requires = "workload")]
    traced: bool,
}

/// `--workload`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Workload {
    // Order-0 alloc+free pairs through the pcp.
    Pcp,
    // Order-3 alloc+free pairs through a high-order pcp (ZoneConfig::pcp_high_order).
    Order3Pcp,
    // The fixes-overhead workload (`mixed`).
    Mixed,
    // The oversubscription latency test alone (512 threads, a 64 MiB zone near full), its
    // figures printed; --ops is the allocations per thread, --cpus the pcp mode.
    Oversub,
}

/// `--workload`: one loop, nothing else, so that an instruction count of the whole process
/// (less a run with fewer `ops`) is the loop's.
fn workload(o: &Opts, w: Workload) {
    let mode = o.cpus.map_or(PcpMode::PerThread, PcpMode::PerCpu);
    if let Workload::Oversub = w {
        let load = loadavg().unwrap_or(f64::NAN);
        println!("oversub {mode:?}, {OVERSUB_THREADS} threads, load before {load:.2}");
        for (what, size, fill) in [
            ("64 MiB near full", 64 << 20, 90),
            ("64 MiB, 30 % held", 64 << 20, 30),
            ("1 GiB, same pages held", 1 << 30, 90),
        ] {
            let r = oversub(mode, OVERSUB_THREADS, o.ops, size, fill);
            println!("  {what}: {r}");
        }
        return;
    }
    let z = Zone::new(ZoneConfig {
        size: 256 << 20,
        fixes: o.fixes,
        pcp_mode: mode,
        trace: o
            .traced
            .then(|| Trace::create("/dev/null", TraceOptions::default()).expect("/dev/null")),
        pcp_high_order: matches!(w, Workload::Order3Pcp),
        ..ZoneConfig::default()
    })
    .expect("zone");
    // Bound to CPU 0: the count leaves out sched_getcpu, which valgrind (no rseq) turns into
    // a system call.
    set_thread_cpu(Some(0));
    if o.isolated {
        isolate_last_block(&z);
    }
    match w {
        Workload::Pcp => pcp_pairs(&z, o.ops),
        Workload::Order3Pcp => order_pairs(&z, Order(3), o.ops),
        Workload::Mixed => mixed(&z, o.ops),
        Workload::Oversub => unreachable!("handled above"),
    }
}

/// Threads of the oversubscription test.
const OVERSUB_THREADS: usize = 512;

/// The per-allocation latencies of one oversubscription run.
#[derive(Clone, Copy, Debug)]
struct Oversub {
    allocations: u64,
    /// Allocations that failed (`NoMemory`): each thread's demand stays below the zone's
    /// pages, so only pages held on other threads' pcps can make one fail.
    failed: u64,
    /// Allocations that took over 100 µs.
    over_100us: u64,
    p99_us: f64,
    p999_us: f64,
    worst_ms: f64,
    /// Wall time of the run.
    secs: f64,
    /// The process's voluntary context switches during the run (threads that blocked: on a
    /// lock, or waiting for a drain), and involuntary ones (preemption), from `getrusage`.
    voluntary_cs: u64,
    involuntary_cs: u64,
    /// The allocations during which the calling thread was not preempted (its involuntary
    /// context-switch count, `getrusage(RUSAGE_THREAD)`, the same before and after): how many,
    /// their p99.9 and their worst. Waits inside the allocator (a lock, a drain) stay in: they
    /// are voluntary switches; only the time the OS took the CPU away is left out.
    unpreempted: u64,
    unpreempted_p999_us: f64,
    unpreempted_worst_ms: f64,
}

/// The process's (voluntary, involuntary) context switches so far.
fn context_switches() -> (u64, u64) {
    // SAFETY: `ru` is a plain struct owned by this frame that getrusage fills in.
    unsafe {
        let mut ru: libc::rusage = core::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return (0, 0);
        }
        (ru.ru_nvcsw as u64, ru.ru_nivcsw as u64)
    }
}

impl std::fmt::Display for Oversub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} allocations in {:.2} s, {} failed, {} over 100 us, p99 {:.1} us, p99.9 {:.1} us, \
             worst {:.2} ms, context switches {} voluntary, {} involuntary; {} not preempted: \
             p99.9 {:.1} us, worst {:.2} ms",
            self.allocations,
            self.secs,
            self.failed,
            self.over_100us,
            self.p99_us,
            self.p999_us,
            self.worst_ms,
            self.voluntary_cs,
            self.involuntary_cs,
            self.unpreempted,
            self.unpreempted_p999_us,
            self.unpreempted_worst_ms
        )
    }
}

/// Oversubscription (issue 18): `threads` unpinned threads on a 64 MiB zone that their pages
/// keep near full. Each thread takes its share of 90 % of the 64 MiB zone's pages one order-0
/// allocation at a time (each one timed), then frees them all (to its pcp), `allocs / share`
/// times over: the pages the others' pcps hold make allocations find the buddy lists empty,
/// and the plain API's slow path drains every pcp and retries. With a zone of `size` bytes
/// larger than 64 MiB, the same loop never runs short: the control, whose tail is the
/// scheduler's alone (a thread preempted inside a timed allocation waits for its turn among
/// the others). Returns the latency distribution of every allocation.
fn oversub(mode: PcpMode, threads: usize, allocs: u64, size: usize, fill: u64) -> Oversub {
    let z = zone_in(size, Fixes::ALL, mode);
    let share = (((64 << 20) / PAGE_SIZE) as u64 * fill / 100 / threads as u64).max(1);
    let cycles = allocs.div_ceil(share);
    let start = Barrier::new(threads);
    let cs0 = context_switches();
    let t0 = Instant::now();
    let per_thread: Vec<(Vec<u32>, Vec<u32>, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let (z, start) = (&z, &start);
                s.spawn(move || {
                    let mut lat = Vec::with_capacity((cycles * share) as usize);
                    let mut unpreempted = Vec::with_capacity((cycles * share) as usize);
                    let mut held = Vec::with_capacity(share as usize);
                    let mut failed = 0;
                    start.wait();
                    for _ in 0..cycles {
                        for _ in 0..share {
                            let preempted = thread_involuntary_switches();
                            let t = Instant::now();
                            let r = z.alloc_pfn(Order(0), Migratetype::Movable);
                            let ns = t.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                            lat.push(ns);
                            if thread_involuntary_switches() == preempted {
                                unpreempted.push(ns);
                            }
                            match r {
                                Ok(p) => held.push(p),
                                Err(_) => failed += 1,
                            }
                        }
                        for p in held.drain(..) {
                            z.free_pfn(p, Order(0)).expect("free");
                        }
                    }
                    (lat, unpreempted, failed)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let secs = t0.elapsed().as_secs_f64();
    let cs1 = context_switches();
    z.drain_all_pages();
    let r = z.audit();
    assert!(
        r.is_ok() && r.true_free_pages == r.managed_pages,
        "pages stranded or lost after the oversubscription run: {r}"
    );
    let failed = per_thread.iter().map(|t| t.2).sum();
    let mut unpreempted: Vec<u32> = per_thread
        .iter()
        .flat_map(|t| t.1.iter().copied())
        .collect();
    unpreempted.sort_unstable();
    let mut lat: Vec<u32> = per_thread.into_iter().flat_map(|t| t.0).collect();
    lat.sort_unstable();
    let q = |f: f64| f64::from(lat[((lat.len() - 1) as f64 * f) as usize]) / 1e3;
    let uq = |f: f64| {
        unpreempted
            .get(((unpreempted.len().max(1) - 1) as f64 * f) as usize)
            .map_or(f64::NAN, |&l| f64::from(l) / 1e3)
    };
    Oversub {
        allocations: lat.len() as u64,
        failed,
        over_100us: lat.iter().filter(|&&l| l > 100_000).count() as u64,
        p99_us: q(0.99),
        p999_us: q(0.999),
        worst_ms: f64::from(*lat.last().unwrap()) / 1e6,
        secs,
        voluntary_cs: cs1.0 - cs0.0,
        involuntary_cs: cs1.1 - cs0.1,
        unpreempted: unpreempted.len() as u64,
        unpreempted_p999_us: uq(0.999),
        unpreempted_worst_ms: uq(1.0) / 1e3,
    }
}

/// The calling thread's involuntary context switches so far (`getrusage(RUSAGE_THREAD)`): a
/// change across a call means the OS preempted the thread inside it.
fn thread_involuntary_switches() -> i64 {
    // SAFETY: `ru` is a plain struct owned by this frame that getrusage fills in.
    unsafe {
        let mut ru: libc::rusage = core::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut ru) != 0 {
            return -1;
        }
        ru.ru_nivcsw
    }
}

fn isolate_last_block(z: &Zone) {
    let top = z.geometry().max_order_nr_pages();
    let last = Pfn(z.geometry().nr_pages - top);
    z.start_isolate_page_range(last, last.add(top), Migratetype::Movable)
        .expect("isolate the last block");
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The 1-minute load average (`/proc/loadavg`), if readable.
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Why this run's figures cannot be trusted, if they cannot: other load on the machine (every
/// figure), the machine's own 2-thread scaling outside what 2 idle cores give, or parallel
/// rounds that disagree (the 2-thread figures). An empty list means no reason was seen; the
/// report prints each reason instead of letting an impossible figure pass for a measurement.
fn untrusted_reasons(
    load: Option<f64>,
    cpus: usize,
    machine_speedup: f64,
    spread: f64,
) -> Vec<String> {
    let mut why = Vec::new();
    if let Some(l) = load
        && l > cpus as f64 - 1.0 + 0.5
    {
        why.push(format!(
            "load average {l:.2} before the run on {cpus} CPUs: the benchmark shares the machine \
             (every figure)"
        ));
    }
    if cpus < 2 {
        why.push(format!(
            "{cpus} CPU available: 2 threads cannot run in parallel"
        ));
    }
    if !(1.5..=2.2).contains(&machine_speedup) {
        why.push(format!(
            "a plain arithmetic loop scaled {machine_speedup:.2}x on 2 threads (2 idle cores give \
             about 2): other load or clock changes"
        ));
    }
    if spread > 1.25 {
        why.push(format!(
            "the rounds of the parallel runs differ by {spread:.2}x (slowest/fastest)"
        ));
    }
    why
}

/// Median over `rounds` of the ns per iteration of `f(iters)`.
fn ns_per_op(rounds: usize, iters: u64, mut f: impl FnMut(u64)) -> f64 {
    f(iters / 10); // warm up
    median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                f(iters);
                t.elapsed().as_nanos() as f64 / iters as f64
            })
            .collect(),
    )
}

fn zone(size: usize, fixes: Fixes) -> Zone {
    zone_in(size, fixes, PcpMode::PerThread)
}

/// A zone as an allocator user makes it: `ZoneConfig::allocator` (all fixes, high-order pcps).
fn allocator_zone(size: usize) -> Zone {
    Zone::new(ZoneConfig {
        size,
        ..ZoneConfig::allocator()
    })
    .expect("zone")
}

fn zone_in(size: usize, fixes: Fixes, pcp_mode: PcpMode) -> Zone {
    Zone::new(ZoneConfig {
        size,
        fixes,
        pcp_mode,
        ..ZoneConfig::default()
    })
    .expect("zone")
}

fn pcp_pairs(z: &Zone, n: u64) {
    for _ in 0..n {
        black_box(z.alloc_pages(Order(0), Migratetype::Movable).unwrap());
    }
}

fn odr3_pairs(z: &Zone, n: u64) {
    for _ in 0..n {
        black_box(z.alloc_pages(Order(3), Migratetype::Movable).unwrap());
    }
}

/// A mixed workload over every free path the fixes touch: batches of order-0 pages (so the
/// pcp fills past `high` and bulk-frees) and order-3 blocks (`free_one_page`).
fn mixed(z: &Zone, n: u64) {
    let mut held = Vec::with_capacity(256);
    for i in 0..n {
        held.push(
            z.alloc_pages(Order((i % 8 == 0) as u32 * 3), Migratetype::Movable)
                .unwrap(),
        );
        if held.len() == 256 {
            held.clear();
        }
    }
}

fn main() -> ExitCode {
    let o = <Opts as clap::Parser>::parse();
    if let Some(w) = o.workload {
        workload(&o, w);
        return ExitCode::SUCCESS;
    }
    let rounds = if o.quick { 5 } else { 11 };
    let scale = if o.quick { 1 } else { 4 };
    let size = 256 << 20;

    let z = zone(size, Fixes::ALL);
    let pcp_pair_ns = ns_per_op(rounds, 2_000_000 * scale, |n| pcp_pairs(&z, n));
    // The same pairs with the kernel's per-CPU pcps (2 CPUs; this thread on CPU 0).
    let zc = zone_in(size, Fixes::ALL, PcpMode::PerCpu(2));
    set_thread_cpu(Some(0));
    let percpu_pair_ns = ns_per_op(rounds, 2_000_000 * scale, |n| pcp_pairs(&zc, n));
    set_thread_cpu(None);
    drop(zc);
    let zone_odr3_pair_ns = ns_per_op(rounds, 500_000 * scale, |n| odr3_pairs(&z, n));
    // Tracing on: the same pairs on a zone writing every event to /dev/null. The cost per
    // event is the time over the untraced pair's divided by the lines a pair writes.
    let devnull = Trace::create("/dev/null", TraceOptions::default()).expect("/dev/null");
    let zt = Zone::new(ZoneConfig {
        size,
        fixes: Fixes::ALL,
        trace: Some(devnull.clone()),
        ..ZoneConfig::default()
    })
    .expect("zone");
    let traced_pair_ns = ns_per_op(rounds, 200_000 * scale, |n| pcp_pairs(&zt, n));
    let before = devnull.lines();
    pcp_pairs(&zt, 100_000);
    let traced_events_per_pair = (devnull.lines() - before) as f64 / 100_000.0;
    let traced_event_ns = (traced_pair_ns - pcp_pair_ns) / traced_events_per_pair;
    drop(zt);

    let frames = size / PAGE_SIZE;
    let peer = parking_lot::Mutex::new({
        let mut f = FrameAllocator::<32>::new();
        f.add_frame(0, frames);
        f
    });
    let peer_pair_ns = ns_per_op(rounds, 2_000_000 * scale, |n| {
        for _ in 0..n {
            let f = peer.lock().alloc(1).unwrap();
            peer.lock().dealloc(black_box(f), 1);
        }
    });
    let peer_odr3_pair_ns = ns_per_op(rounds, 500_000 * scale, |n| {
        for _ in 0..n {
            let f = peer.lock().alloc(8).unwrap();
            peer.lock().dealloc(black_box(f), 8);
        }
    });

    // page_bench03 style: each thread allocates and frees its own pages; start barrier; each
    // thread pinned to its own CPU where the OS allows. The same harness runs a plain
    // arithmetic loop: the machine's own scaling (clock boost drops when both cores run).
    let load_before = loadavg();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spread = std::cell::Cell::new(1.0f64);
    let par_in =
        |mode: PcpMode, threads: usize, n: u64, work: &(dyn Fn(&Zone, u64) + Sync)| -> f64 {
            let z = zone_in(size, Fixes::ALL, mode);
            let per_round: Vec<f64> = (0..rounds)
                .map(|_| {
                    let start = Barrier::new(threads);
                    let t = std::thread::scope(|s| {
                        let hs: Vec<_> = (0..threads)
                            .map(|t| {
                                let (z, start) = (&z, &start);
                                s.spawn(move || {
                                    common::pin_to_cpu(t);
                                    // Per-CPU mode: thread t runs on CPU t (mod the CPUs).
                                    set_thread_cpu(Some(t));
                                    work(z, n / 10);
                                    start.wait();
                                    let t = Instant::now();
                                    work(z, n);
                                    (t, Instant::now())
                                })
                            })
                            .collect();
                        // Wall time from the first thread's start to the last one's end
                        // (with more threads than CPUs, a thread's own elapsed time would
                        // hide its waits).
                        let spans: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
                        let first = spans.iter().map(|s| s.0).min().unwrap();
                        let last = spans.iter().map(|s| s.1).max().unwrap();
                        last - first
                    });
                    (threads as u64 * n) as f64 / t.as_secs_f64()
                })
                .collect();
            let (lo, hi) = per_round
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            spread.set(spread.get().max(hi / lo));
            z.drain_all_pages();
            let r = z.audit();
            assert!(
                r.is_ok() && r.true_free_pages == r.managed_pages,
                "pages stranded or lost after the parallel rounds: {r}"
            );
            median(per_round)
        };
    let par = |threads: usize, n: u64, work: &(dyn Fn(&Zone, u64) + Sync)| {
        par_in(PcpMode::PerThread, threads, n, work)
    };
    let ops1 = par(1, 2_000_000 * scale, &pcp_pairs);
    let ops2 = par(2, 2_000_000 * scale, &pcp_pairs);
    let parallel_speedup_2t = ops2 / ops1;
    // Per-CPU pcps on 2 CPUs: 1 and 2 threads, and 512 threads oversubscribing them (each
    // run ends with drain_all_pages and an audit that finds every page free: nothing stranded).
    let percpu = PcpMode::PerCpu(2);
    let pc1 = par_in(percpu, 1, 2_000_000 * scale, &pcp_pairs);
    let pc2 = par_in(percpu, 2, 2_000_000 * scale, &pcp_pairs);
    let pc512 = par_in(percpu, 512, 20_000 * scale, &pcp_pairs);
    let percpu_speedup_2t = pc2 / pc1;
    let percpu_512t_over_2t = pc512 / pc2;
    let spin = |_: &Zone, n: u64| {
        let mut x = 0u64;
        for i in 0..n * 16 {
            x = black_box(x.wrapping_add(i));
        }
    };
    let machine_speedup_2t = par(2, 2_000_000 * scale, &spin) / par(1, 2_000_000 * scale, &spin);
    let untrusted = untrusted_reasons(load_before, cpus, machine_speedup_2t, spread.get());

    // Fixes overhead on a workload with no isolation, and with one top-order block isolated
    // elsewhere in the zone (then the rechecks run). Two pageblocks, the smallest range
    // alloc_contig_range isolates: a lone pageblock would leave a free top-order block
    // straddling it, which 3.17 misplaces (race R3c), so the presets would not run the same
    // workload.
    // Each round times NONE and ALL back to back (alternating which goes first) and the
    // figure is the median of the per-round ratios, so a change in the machine's state between
    // rounds cancels out.
    let overhead = |isolate: bool| -> (f64, f64, f64) {
        let mut none = Vec::new();
        let mut all = Vec::new();
        let mut ratios = Vec::new();
        let zn = zone(size, Fixes::NONE);
        let za = zone(size, Fixes::ALL);
        if isolate {
            isolate_last_block(&zn);
            isolate_last_block(&za);
        }
        for round in 0..2 * rounds {
            let time = |z: &Zone| ns_per_op(1, 1_000_000 * scale, |n| mixed(z, n));
            let (n, a) = if round % 2 == 0 {
                let n = time(&zn);
                (n, time(&za))
            } else {
                let a = time(&za);
                (time(&zn), a)
            };
            none.push(n);
            all.push(a);
            ratios.push(a / n);
        }
        (median(none), median(all), median(ratios))
    };
    let (mixed_none_ns, mixed_all_ns, fixes_overhead_ratio) = overhead(false);
    let (iso_none_ns, iso_all_ns, fixes_overhead_ratio_isolated) = overhead(true);

    // CMA: 8 MiB (2048 pages, 1 MiB aligned) on an idle 1 GiB zone with 256 MiB CMA, and on
    // one whose CMA area is full of movable pages (refilled before each round; only the
    // allocation + release is timed).
    let cz = Zone::new(ZoneConfig {
        cma_size: 256 << 20,
        cma_policy: CmaPolicy::Aggressive,
        fixes: Fixes::ALL,
        ..ZoneConfig::default()
    })
    .unwrap();
    let cma = cz.cma().unwrap();
    let cma_rounds = if o.quick { 5 } else { 9 };
    let time_cma = || {
        let t = Instant::now();
        let a = cma.alloc(2048, Order(8)).expect("cma alloc");
        drop(black_box(a));
        t.elapsed()
    };
    let cma_8mib_idle_ms = median((0..cma_rounds).map(|_| ms(time_cma())).collect());
    let base = cma.area().base_pfn();
    let mut busy = Vec::new();
    for _ in 0..cma_rounds {
        // Fill the whole zone with movable pages, then free the ones outside the CMA area so
        // migration has somewhere to go.
        let mut held = Vec::new();
        while let Ok(p) = cz.alloc_movable(Order(0)) {
            held.push(p);
        }
        held.retain(|p| p.pfn() >= base);
        busy.push(ms(time_cma()));
        drop(held);
        cz.drain_all_pages();
    }
    let cma_8mib_busy_ms = median(busy);
    let audit = cz.audit();
    drop(cz);

    // Direct compaction: an order-9 GFP_HIGHUSER_MOVABLE request on a fresh 1 GiB zone whose
    // every other page is held by a movable handle (as benches/compaction.rs; the setup is
    // untimed, about a second per zone).
    let compact_rounds = if o.quick { 1 } else { 3 };
    let mut compact = Vec::new();
    let mut compact_migrated = 0;
    for _ in 0..compact_rounds {
        let zone = zone(1 << 30, Fixes::ALL);
        let mut held = Vec::with_capacity(zone.geometry().nr_pages as usize);
        while let Ok(mut p) = zone.alloc_movable(Order(0)) {
            p.pin().as_mut_slice()[0] = 1;
            held.push(p);
        }
        held.retain(|p| p.pfn().0 % 2 == 0);
        zone.drain_all_pages();
        let t = Instant::now();
        let block = zone
            .alloc_pages_gfp(Order(9), Gfp::GFP_HIGHUSER_MOVABLE)
            .expect("direct compaction serves the order-9 request");
        compact.push(ms(t.elapsed()));
        drop(block);
        compact_migrated = zone
            .vmstat()
            .lines()
            .find_map(|l| l.strip_prefix("pgmigrate_success ")?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    let compact_order9_1gib_ms = median(compact);

    // Oversubscription (issue 18): 512 unpinned threads on a 64 MiB zone kept near full, every
    // allocation timed; and the same loop on a 1 GiB zone that never runs short (the
    // scheduler's own tail). Medians over the rounds of each figure.
    let oversub_rounds = if o.quick { 1 } else { 3 };
    let oversub_allocs = 5_000 * scale;
    let oversub_in = |mode: PcpMode, size: usize| -> Oversub {
        let runs: Vec<Oversub> = (0..oversub_rounds)
            .map(|_| oversub(mode, OVERSUB_THREADS, oversub_allocs, size, 90))
            .collect();
        let med = |f: fn(&Oversub) -> f64| median(runs.iter().map(f).collect());
        Oversub {
            allocations: runs[0].allocations,
            failed: runs.iter().map(|r| r.failed).sum(),
            over_100us: med(|r| r.over_100us as f64) as u64,
            p99_us: med(|r| r.p99_us),
            p999_us: med(|r| r.p999_us),
            worst_ms: med(|r| r.worst_ms),
            secs: med(|r| r.secs),
            voluntary_cs: med(|r| r.voluntary_cs as f64) as u64,
            involuntary_cs: med(|r| r.involuntary_cs as f64) as u64,
            unpreempted: med(|r| r.unpreempted as f64) as u64,
            unpreempted_p999_us: med(|r| r.unpreempted_p999_us),
            unpreempted_worst_ms: med(|r| r.unpreempted_worst_ms),
        }
    };
    let oversub_thread = oversub_in(PcpMode::PerThread, 64 << 20);
    let oversub_thread_control = oversub_in(PcpMode::PerThread, 1 << 30);
    let oversub_cpu = oversub_in(PcpMode::PerCpu(2), 64 << 20);
    let high = high_order(rounds, scale, size);
    let holds = lock_holds();

    println!(
        "pagealloc bench_report ({} rounds, medians; membarrier: {})",
        rounds,
        pagealloc::asymmetric_barriers()
    );
    println!("{:<40} {:>12}", "figure", "value");
    let rows = [
        ("order-0 alloc+free via pcp (ns)", pcp_pair_ns),
        ("  peer FrameAllocator+Mutex (ns)", peer_pair_ns),
        ("  ratio peer/ours", peer_pair_ns / pcp_pair_ns),
        ("order-0 pair, traced to /dev/null (ns)", traced_pair_ns),
        ("  trace lines per pair", traced_events_per_pair),
        ("  ns per traced event", traced_event_ns),
        ("order-3 alloc+free via zone lock (ns)", zone_odr3_pair_ns),
        ("  peer order-3 (ns)", peer_odr3_pair_ns),
        ("  ratio peer/ours", peer_odr3_pair_ns / zone_odr3_pair_ns),
        ("pcp pairs/s, 1 thread (M)", ops1 / 1e6),
        ("pcp pairs/s, 2 threads (M)", ops2 / 1e6),
        ("  2-thread speedup", parallel_speedup_2t),
        ("order-0 pair, per-CPU pcps (ns)", percpu_pair_ns),
        ("  per-CPU / per-thread", percpu_pair_ns / pcp_pair_ns),
        ("per-CPU pairs/s, 2 threads on 2 CPUs (M)", pc2 / 1e6),
        ("  2-thread speedup", percpu_speedup_2t),
        ("per-CPU pairs/s, 512 threads (M)", pc512 / 1e6),
        ("  512 threads / 2 threads", percpu_512t_over_2t),
        ("  same for a plain arithmetic loop", machine_speedup_2t),
        ("mixed workload NONE (ns/op)", mixed_none_ns),
        ("mixed workload ALL (ns/op)", mixed_all_ns),
        ("  fixes overhead ALL/NONE", fixes_overhead_ratio),
        ("mixed, one block isolated, NONE (ns/op)", iso_none_ns),
        ("mixed, one block isolated, ALL (ns/op)", iso_all_ns),
        ("  fixes overhead ALL/NONE", fixes_overhead_ratio_isolated),
        ("CMA 8 MiB alloc+release idle (ms)", cma_8mib_idle_ms),
        ("CMA 8 MiB alloc+release busy (ms)", cma_8mib_busy_ms),
        (
            "order-9 by direct compaction, 1 GiB (ms)",
            compact_order9_1gib_ms,
        ),
        ("  pages migrated for it", compact_migrated as f64),
        (
            "oversub, 512 threads near full: p99 (us)",
            oversub_thread.p99_us,
        ),
        ("  p99.9 (us)", oversub_thread.p999_us),
        ("  worst (ms)", oversub_thread.worst_ms),
        (
            "  allocations over 100 us",
            oversub_thread.over_100us as f64,
        ),
        ("  failed allocations", oversub_thread.failed as f64),
        (
            "  not preempted: p99.9 (us)",
            oversub_thread.unpreempted_p999_us,
        ),
        (
            "  not preempted: worst (ms)",
            oversub_thread.unpreempted_worst_ms,
        ),
        (
            "  never short (1 GiB): p99.9 (us)",
            oversub_thread_control.p999_us,
        ),
        (
            "  never short (1 GiB): worst (ms)",
            oversub_thread_control.worst_ms,
        ),
        ("oversub per-CPU pcps: p99.9 (us)", oversub_cpu.p999_us),
        ("  worst (ms)", oversub_cpu.worst_ms),
        ("  failed allocations", oversub_cpu.failed as f64),
    ];
    for (k, v) in rows {
        println!("{k:<40} {v:>12.3}");
    }
    print_high_order(&high);
    print_lock_holds(&holds);
    for why in &untrusted {
        println!("NOT TRUSTWORTHY: {why}");
    }
    if !audit.is_ok() {
        eprintln!("bench_report: audit after the CMA rounds failed: {audit}");
        return ExitCode::from(1);
    }
    if o.json {
        let json = Json {
            pcp_pair_ns,
            peer_pair_ns,
            zone_odr3_pair_ns,
            peer_odr3_pair_ns,
            parallel_speedup_2t,
            machine_speedup_2t,
            fixes_overhead_ratio,
            fixes_overhead_ratio_isolated,
            cma_8mib_idle_ms,
            cma_8mib_busy_ms,
            pcp_pairs_per_s_1t: ops1,
            pcp_pairs_per_s_2t: ops2,
            mixed_none_ns,
            mixed_all_ns,
            mixed_isolated_none_ns: iso_none_ns,
            mixed_isolated_all_ns: iso_all_ns,
            percpu_pair_ns,
            percpu_speedup_2t,
            percpu_pairs_per_s_2t: pc2,
            percpu_pairs_per_s_512t: pc512,
            percpu_512t_over_2t,
            compact_order9_1gib_ms,
            oversub_allocations: oversub_thread.allocations,
            oversub_p99_us: oversub_thread.p99_us,
            oversub_p999_us: oversub_thread.p999_us,
            oversub_worst_ms: oversub_thread.worst_ms,
            oversub_over_100us: oversub_thread.over_100us,
            oversub_failed: oversub_thread.failed,
            oversub_unpreempted: oversub_thread.unpreempted,
            oversub_unpreempted_p999_us: oversub_thread.unpreempted_p999_us,
            oversub_unpreempted_worst_ms: oversub_thread.unpreempted_worst_ms,
            oversub_control_unpreempted_worst_ms: oversub_thread_control.unpreempted_worst_ms,
            oversub_control_p999_us: oversub_thread_control.p999_us,
            oversub_control_worst_ms: oversub_thread_control.worst_ms,
            oversub_percpu_p999_us: oversub_cpu.p999_us,
            oversub_percpu_worst_ms: oversub_cpu.worst_ms,
            oversub_percpu_failed: oversub_cpu.failed,
            traced_pair_ns,
            traced_events_per_pair,
            traced_event_ns,
            rounds,
            membarrier: pagealloc::asymmetric_barriers(),
            trustworthy: untrusted.is_empty(),
            untrusted_reasons: untrusted.clone(),
            high_order: high,
            lock_holds: holds,
        };
        println!("{}", serde_json::to_string(&json).expect("JSON"));
    }
    ExitCode::SUCCESS
}

/// The `--json` line; the schema is this type.
#[derive(serde::Serialize)]
struct Json {
    pcp_pair_ns: f64,
    peer_pair_ns: f64,
    zone_odr3_pair_ns: f64,
    peer_odr3_pair_ns: f64,
    parallel_speedup_2t: f64,
    machine_speedup_2t: f64,
    fixes_overhead_ratio: f64,
    fixes_overhead_ratio_isolated: f64,
    cma_8mib_idle_ms: f64,
    cma_8mib_busy_ms: f64,
    // Added after the first ten (which keep their names): the rest of the printed table, for
    // scripts/readme_perf.sh.
    /// pcp alloc+free pairs per second, 1 and 2 pinned threads (page_bench03 style).
    pcp_pairs_per_s_1t: f64,
    pcp_pairs_per_s_2t: f64,
    /// The fixes-overhead workload, ns per operation, without and with an isolated block.
    mixed_none_ns: f64,
    mixed_all_ns: f64,
    mixed_isolated_none_ns: f64,
    mixed_isolated_all_ns: f64,
    /// `PcpMode::PerCpu(2)`: the order-0 pair, the 2-thread speedup, pairs/s with 2 and 512
    /// threads and their ratio.
    percpu_pair_ns: f64,
    percpu_speedup_2t: f64,
    percpu_pairs_per_s_2t: f64,
    percpu_pairs_per_s_512t: f64,
    percpu_512t_over_2t: f64,
    /// Direct compaction serving an order-9 request on a fragmented 1 GiB zone (median of 3,
    /// 1 with --quick).
    compact_order9_1gib_ms: f64,
    /// Oversubscription (512 unpinned threads on a 64 MiB zone kept near full, per-thread
    /// pcps; medians of 3 runs, 1 with --quick): allocations per run, the latency percentiles
    /// and worst, allocations over 100 us, failed allocations (summed over the runs); the same
    /// loop on a 1 GiB zone that never runs short (the scheduler's own tail); and per-CPU pcps
    /// (2 CPUs) on the near-full zone.
    oversub_allocations: u64,
    oversub_p99_us: f64,
    oversub_p999_us: f64,
    oversub_worst_ms: f64,
    oversub_over_100us: u64,
    oversub_failed: u64,
    /// The near-full run's allocations during which their thread was not preempted (see
    /// `Oversub::unpreempted`): how many, p99.9, worst; and the never-short run's worst.
    oversub_unpreempted: u64,
    oversub_unpreempted_p999_us: f64,
    oversub_unpreempted_worst_ms: f64,
    oversub_control_unpreempted_worst_ms: f64,
    oversub_control_p999_us: f64,
    oversub_control_worst_ms: f64,
    oversub_percpu_p999_us: f64,
    oversub_percpu_worst_ms: f64,
    oversub_percpu_failed: u64,
    /// The order-0 pair on a zone tracing every event to /dev/null, the trace lines one pair
    /// writes, and the time per line over the untraced pair's.
    traced_pair_ns: f64,
    traced_events_per_pair: f64,
    traced_event_ns: f64,
    /// Rounds per figure (11; 5 with --quick).
    rounds: usize,
    membarrier: bool,
    trustworthy: bool,
    untrusted_reasons: Vec<String>,
    /// Issue 18: the order-1/2/3 pairs, order-3 threads and the cross-thread pattern, with
    /// the peer; the zone-lock holds on 16 GiB.
    #[serde(flatten)]
    high_order: HighOrder,
    #[serde(flatten)]
    lock_holds: LockHolds,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---- high orders against the peer (issue 18 item 5) ----
//
// "Cold": a fully merged zone (and a fresh peer), so an order-k pair splits a top-order block
// down to k and merges it back up (10 - k splits and merges per pair). "Warm": one order-k
// block is held first, so its buddy stays free at order k and each pair takes and returns that
// buddy with no split and no merge. The peer gets the same two states.

/// The peer as `benches/alloc_free.rs` builds it: `buddy_system_allocator`'s `FrameAllocator`
/// with the zone's largest block (2^10 frames) behind a mutex.
type Peer = parking_lot::Mutex<FrameAllocator<11>>;

fn new_peer(frames: usize) -> Peer {
    let mut f = FrameAllocator::<11>::new();
    f.add_frame(0, frames);
    parking_lot::Mutex::new(f)
}

fn peer_pairs(peer: &Peer, count: usize, n: u64) {
    for _ in 0..n {
        let f = peer.lock().alloc(count).unwrap();
        peer.lock().dealloc(black_box(f), count);
    }
}

fn order_pairs(z: &Zone, order: Order, n: u64) {
    for _ in 0..n {
        black_box(z.alloc_pages(order, Migratetype::Movable).unwrap());
    }
}

/// Alloc+free pairs per second with `threads` threads each running `work(n)` (pinned, started
/// together; wall time from the first start to the last end), median over `rounds`.
fn pairs_per_s(threads: usize, rounds: usize, n: u64, work: &(dyn Fn(u64) + Sync)) -> f64 {
    median(
        (0..rounds)
            .map(|_| {
                let start = Barrier::new(threads);
                let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
                    let hs: Vec<_> = (0..threads)
                        .map(|t| {
                            let start = &start;
                            s.spawn(move || {
                                common::pin_to_cpu(t);
                                start.wait();
                                let t0 = Instant::now();
                                work(n);
                                (t0, Instant::now())
                            })
                        })
                        .collect();
                    hs.into_iter().map(|h| h.join().unwrap()).collect()
                });
                let first = spans.iter().map(|s| s.0).min().unwrap();
                let last = spans.iter().map(|s| s.1).max().unwrap();
                (threads as u64 * n) as f64 / (last - first).as_secs_f64()
            })
            .collect(),
    )
}

/// ns per page of the cross-thread pattern: thread A allocates batches of 64 order-0 pages
/// and hands each batch to thread B, which frees it (`alloc` / `free` are the two halves),
/// median over `rounds` of `batches` batches.
fn cross_thread_ns_per_page<T: Send>(
    rounds: usize,
    batches: u64,
    alloc: &(dyn Fn() -> T + Sync),
    free: &(dyn Fn(T) + Sync),
) -> f64 {
    median(
        (0..rounds)
            .map(|_| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<T>>(4);
                let t0 = Instant::now();
                std::thread::scope(|s| {
                    s.spawn(move || {
                        common::pin_to_cpu(0);
                        for _ in 0..batches {
                            tx.send((0..64).map(|_| alloc()).collect()).unwrap();
                        }
                    });
                    s.spawn(move || {
                        common::pin_to_cpu(1);
                        for batch in rx {
                            batch.into_iter().for_each(free);
                        }
                    });
                });
                t0.elapsed().as_nanos() as f64 / (batches * 64) as f64
            })
            .collect(),
    )
}

/// The high-order figures, each with the peer measured in the same run.
#[derive(serde::Serialize)]
struct HighOrder {
    /// Order-1, -2, -3 alloc+free pairs on a fully merged zone (cold), ns.
    order_pair_cold_ns: [f64; 3],
    peer_order_pair_cold_ns: [f64; 3],
    /// The same with one block of the order held (warm: no split, no merge), ns.
    order_pair_warm_ns: [f64; 3],
    peer_order_pair_warm_ns: [f64; 3],
    /// Order-3 pairs per second, 1 and 2 pinned threads on a zone that starts fully merged,
    /// and the 2-thread speedup; the same for the peer.
    order3_pairs_per_s_1t: f64,
    order3_pairs_per_s_2t: f64,
    order3_speedup_2t: f64,
    peer_order3_pairs_per_s_1t: f64,
    peer_order3_pairs_per_s_2t: f64,
    peer_order3_speedup_2t: f64,
    /// Thread A allocates 64 order-0 pages, thread B frees them: ns per page.
    cross_thread_ns_per_page: f64,
    peer_cross_thread_ns_per_page: f64,
    /// With high-order pcps (`ZoneConfig::allocator`): the order-1, -2, -3 pairs (the pcp
    /// serves them, so the zone's cold or warm state no longer matters), ns.
    hopcp_order_pair_ns: [f64; 3],
    /// With high-order pcps: order-3 pairs per second, 1 and 2 pinned threads, the speedup.
    hopcp_order3_pairs_per_s_1t: f64,
    hopcp_order3_pairs_per_s_2t: f64,
    hopcp_order3_speedup_2t: f64,
}

fn high_order(rounds: usize, scale: u64, size: usize) -> HighOrder {
    let frames = size / PAGE_SIZE;
    let iters = 500_000 * scale;
    let mut h = HighOrder {
        order_pair_cold_ns: [0.0; 3],
        peer_order_pair_cold_ns: [0.0; 3],
        order_pair_warm_ns: [0.0; 3],
        peer_order_pair_warm_ns: [0.0; 3],
        order3_pairs_per_s_1t: 0.0,
        order3_pairs_per_s_2t: 0.0,
        order3_speedup_2t: 0.0,
        peer_order3_pairs_per_s_1t: 0.0,
        peer_order3_pairs_per_s_2t: 0.0,
        peer_order3_speedup_2t: 0.0,
        cross_thread_ns_per_page: 0.0,
        peer_cross_thread_ns_per_page: 0.0,
        hopcp_order_pair_ns: [0.0; 3],
        hopcp_order3_pairs_per_s_1t: 0.0,
        hopcp_order3_pairs_per_s_2t: 0.0,
        hopcp_order3_speedup_2t: 0.0,
    };
    for (i, k) in (1..=3u32).enumerate() {
        let order = Order(k);
        let count = order.nr_pages() as usize;
        let z = zone(size, Fixes::ALL);
        h.order_pair_cold_ns[i] = ns_per_op(rounds, iters, |n| order_pairs(&z, order, n));
        let held = z.alloc_pages(order, Migratetype::Movable).unwrap();
        h.order_pair_warm_ns[i] = ns_per_op(rounds, iters, |n| order_pairs(&z, order, n));
        drop(held);
        let p = new_peer(frames);
        h.peer_order_pair_cold_ns[i] = ns_per_op(rounds, iters, |n| peer_pairs(&p, count, n));
        let held = p.lock().alloc(count).unwrap();
        h.peer_order_pair_warm_ns[i] = ns_per_op(rounds, iters, |n| peer_pairs(&p, count, n));
        p.lock().dealloc(held, count);
        z.drain_all_pages();
        let r = z.audit();
        assert!(r.is_ok() && r.true_free_pages == r.managed_pages, "{r}");
        let hz = allocator_zone(size);
        h.hopcp_order_pair_ns[i] = ns_per_op(rounds, iters, |n| order_pairs(&hz, order, n));
        hz.drain_all_pages();
        let r = hz.audit();
        assert!(r.is_ok() && r.true_free_pages == r.managed_pages, "{r}");
    }
    let hz = allocator_zone(size);
    let ours = |n: u64| order_pairs(&hz, Order(3), n);
    h.hopcp_order3_pairs_per_s_1t = pairs_per_s(1, rounds, iters, &ours);
    h.hopcp_order3_pairs_per_s_2t = pairs_per_s(2, rounds, iters, &ours);
    h.hopcp_order3_speedup_2t = h.hopcp_order3_pairs_per_s_2t / h.hopcp_order3_pairs_per_s_1t;
    hz.drain_all_pages();
    let r = hz.audit();
    assert!(r.is_ok() && r.true_free_pages == r.managed_pages, "{r}");

    let z = zone(size, Fixes::ALL);
    let ours = |n: u64| order_pairs(&z, Order(3), n);
    h.order3_pairs_per_s_1t = pairs_per_s(1, rounds, iters, &ours);
    h.order3_pairs_per_s_2t = pairs_per_s(2, rounds, iters, &ours);
    h.order3_speedup_2t = h.order3_pairs_per_s_2t / h.order3_pairs_per_s_1t;
    let p = new_peer(frames);
    let theirs = |n: u64| peer_pairs(&p, 8, n);
    h.peer_order3_pairs_per_s_1t = pairs_per_s(1, rounds, iters, &theirs);
    h.peer_order3_pairs_per_s_2t = pairs_per_s(2, rounds, iters, &theirs);
    h.peer_order3_speedup_2t = h.peer_order3_pairs_per_s_2t / h.peer_order3_pairs_per_s_1t;

    let batches = 20_000 * scale;
    h.cross_thread_ns_per_page = cross_thread_ns_per_page(
        rounds,
        batches,
        &|| z.alloc_pages(Order(0), Migratetype::Movable).unwrap(),
        &drop,
    );
    h.peer_cross_thread_ns_per_page =
        cross_thread_ns_per_page(rounds, batches, &|| p.lock().alloc(1).unwrap(), &|f| {
            p.lock().dealloc(f, 1)
        });
    z.drain_all_pages();
    let r = z.audit();
    assert!(r.is_ok() && r.true_free_pages == r.managed_pages, "{r}");
    h
}

fn print_high_order(h: &HighOrder) {
    println!(
        "\nhigh orders (cold: fully merged zone; warm: a held block keeps its buddy free; \
         speedup: how many times faster ours is)"
    );
    println!(
        "{:<40} {:>12} {:>12} {:>8}",
        "figure", "ours", "peer", "speedup"
    );
    for (i, k) in (1..=3).enumerate() {
        for (state, ours, peer) in [
            (
                "cold",
                h.order_pair_cold_ns[i],
                h.peer_order_pair_cold_ns[i],
            ),
            (
                "warm",
                h.order_pair_warm_ns[i],
                h.peer_order_pair_warm_ns[i],
            ),
        ] {
            let name = format!("order-{k} pair, {state} (ns)");
            println!("{name:<40} {ours:>12.3} {peer:>12.3} {:>8.2}", peer / ours);
        }
    }
    let rows = [
        (
            "order-3 pairs/s, 1 thread (M)",
            h.order3_pairs_per_s_1t / 1e6,
            h.peer_order3_pairs_per_s_1t / 1e6,
        ),
        (
            "order-3 pairs/s, 2 threads (M)",
            h.order3_pairs_per_s_2t / 1e6,
            h.peer_order3_pairs_per_s_2t / 1e6,
        ),
        (
            "  2-thread speedup",
            h.order3_speedup_2t,
            h.peer_order3_speedup_2t,
        ),
    ];
    for (name, ours, peer) in rows {
        println!("{name:<40} {ours:>12.3} {peer:>12.3} {:>8.2}", ours / peer);
    }
    let (ours, peer) = (h.cross_thread_ns_per_page, h.peer_cross_thread_ns_per_page);
    println!(
        "{:<40} {ours:>12.3} {peer:>12.3} {:>8.2}",
        "cross-thread, A allocs 64, B frees (ns/page)",
        peer / ours
    );
    println!(
        "\nwith high-order pcps (ZoneConfig::allocator; ratio: high-order pcps / 3.17 pcps, \
         cold zone; < 1 is faster)"
    );
    println!(
        "{:<40} {:>12} {:>12} {:>8}",
        "figure", "hi-order", "3.17 pcps", "ratio"
    );
    for (i, k) in (1..=3).enumerate() {
        let (ours, old) = (h.hopcp_order_pair_ns[i], h.order_pair_cold_ns[i]);
        let name = format!("order-{k} pair (ns)");
        println!("{name:<40} {ours:>12.3} {old:>12.3} {:>8.2}", ours / old);
    }
    for (name, ours, old) in [
        (
            "order-3 pairs/s, 1 thread (M)",
            h.hopcp_order3_pairs_per_s_1t / 1e6,
            h.order3_pairs_per_s_1t / 1e6,
        ),
        (
            "order-3 pairs/s, 2 threads (M)",
            h.hopcp_order3_pairs_per_s_2t / 1e6,
            h.order3_pairs_per_s_2t / 1e6,
        ),
        (
            "  2-thread speedup",
            h.hopcp_order3_speedup_2t,
            h.order3_speedup_2t,
        ),
    ] {
        println!("{name:<40} {ours:>12.3} {old:>12.3} {:>8.2}", ours / old);
    }
}

// ---- zone-lock holds on a 16 GiB zone (issue 18 item 4) ----

/// 16 GiB: the arena is an anonymous mapping whose pages nothing here touches, so only the
/// page metadata (13 bytes a page, 52 MiB) and the pfn list below become resident.
const LOCK_HOLD_ZONE: usize = 16 << 30;

/// How long `audit`, `audit_chunked` and `pagetypeinfo` keep the zone lock on a 16 GiB zone,
/// measured two ways: by the operation itself (the one-hold audit's duration is its hold;
/// the chunked audit times each chunk's hold), and by what an allocator sees: the worst
/// order-3 alloc+free pair (every one takes the zone lock) of a thread allocating throughout,
/// next to the same thread's worst pair while nothing else runs.
#[derive(serde::Serialize)]
struct LockHolds {
    /// `audit()`: one hold of every pcp lock and the zone lock (median duration, ms).
    audit_ms: f64,
    /// `audit_chunked(16384 pages)`: its longest zone-lock hold (the worst over five runs,
    /// ms) and its whole duration (median, ms).
    audit_chunked_longest_hold_ms: f64,
    audit_chunked_ms: f64,
    /// `pagetypeinfo()`: its whole duration (median, ms); its holds are one free list each.
    pagetypeinfo_ms: f64,
    /// The allocating thread's worst order-3 pair (µs, median over five runs of the
    /// operation, each with its own allocating thread): during 50 ms of nothing else, during
    /// `audit`, during `audit_chunked`, during `pagetypeinfo`.
    worst_pair_idle_us: f64,
    worst_pair_during_audit_us: f64,
    worst_pair_during_audit_chunked_us: f64,
    worst_pair_during_pagetypeinfo_us: f64,
    /// Free order-0 blocks on the longest free list (the fragmented zone's shape).
    longest_free_list: u64,
}

/// The worst alloc+free order-3 pair of a thread allocating on `z` while `op` runs once on
/// this thread, and `op`'s duration.
fn worst_pair_during(z: &Zone, op: &mut dyn FnMut()) -> (Duration, Duration) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (started, stop) = (AtomicBool::new(false), AtomicBool::new(false));
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            common::pin_to_cpu(1);
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                black_box(z.alloc_pages(Order(3), Migratetype::Movable).unwrap());
                worst = worst.max(t0.elapsed());
                started.store(true, Ordering::Relaxed);
            }
            worst
        });
        while !started.load(Ordering::Relaxed) {
            std::hint::spin_loop();
        }
        let t0 = Instant::now();
        op();
        let took = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        (t.join().unwrap(), took)
    })
}

/// [`worst_pair_during`] five times: the medians of the worst pair (µs) and of `op` (ms).
fn worst_pair_median(z: &Zone, mut op: impl FnMut()) -> (f64, f64) {
    let (worst, took): (Vec<_>, Vec<_>) = (0..5)
        .map(|_| worst_pair_during(z, &mut op))
        .map(|(w, t)| (w.as_secs_f64() * 1e6, ms(t)))
        .unzip();
    (median(worst), median(took))
}

fn lock_holds() -> LockHolds {
    let z = zone(LOCK_HOLD_ZONE, Fixes::ALL);
    // Fragment the lower three quarters: every other page allocated, so those quarters' free
    // pages are single order-0 blocks on one long list; the top quarter stays free for the
    // allocating thread's order-3 pairs.
    let nr = z.geometry().nr_pages;
    let mut pfns = Vec::with_capacity(nr as usize);
    while let Ok(p) = z.alloc_pfn(Order(0), Migratetype::Movable) {
        pfns.push(p);
    }
    for &p in &pfns {
        if p.0 >= nr / 4 * 3 || p.0 % 2 == 1 {
            z.free_pfn(p, Order(0)).unwrap();
        }
    }
    z.drain_all_pages();
    let before = z.audit();
    assert!(before.is_ok(), "{before}");
    let longest_free_list = before
        .free_blocks
        .iter()
        .flat_map(|per_type| per_type.iter().copied())
        .max()
        .unwrap_or(0);

    let chunk = std::num::NonZeroU64::new(16_384).unwrap();
    // The idle window: as long as a one-hold audit, nothing else running.
    let (idle, _) = worst_pair_median(&z, || std::thread::sleep(Duration::from_millis(50)));
    let (during_audit, audit_ms) = worst_pair_median(&z, || {
        black_box(z.audit());
    });
    let mut longest_hold = Duration::ZERO;
    let (during_chunked, audit_chunked_ms) = worst_pair_median(&z, || {
        let r = z.audit_chunked(chunk);
        assert!(r.is_ok(), "{r}");
        longest_hold = longest_hold.max(r.chunked.unwrap().longest_hold);
    });
    let (during_pti, pagetypeinfo_ms) = worst_pair_median(&z, || {
        black_box(z.pagetypeinfo());
    });
    LockHolds {
        audit_ms,
        audit_chunked_longest_hold_ms: ms(longest_hold),
        audit_chunked_ms,
        pagetypeinfo_ms,
        worst_pair_idle_us: idle,
        worst_pair_during_audit_us: during_audit,
        worst_pair_during_audit_chunked_us: during_chunked,
        worst_pair_during_pagetypeinfo_us: during_pti,
        longest_free_list,
    }
}

fn print_lock_holds(l: &LockHolds) {
    println!(
        "\nzone-lock holds, 16 GiB zone, lower 3/4 every other page allocated \
         ({} blocks on the longest free list)",
        l.longest_free_list
    );
    println!(
        "{:<40} {:>12} {:>22}",
        "operation", "ms", "worst order-3 pair (µs)"
    );
    println!(
        "{:<40} {:>12} {:>22.1}",
        "nothing", "", l.worst_pair_idle_us
    );
    let rows = [
        ("audit (one hold)", l.audit_ms, l.worst_pair_during_audit_us),
        (
            "audit_chunked(16384), whole",
            l.audit_chunked_ms,
            l.worst_pair_during_audit_chunked_us,
        ),
        (
            "pagetypeinfo, whole",
            l.pagetypeinfo_ms,
            l.worst_pair_during_pagetypeinfo_us,
        ),
    ];
    for (name, t, worst) in rows {
        println!("{name:<40} {t:>12.3} {worst:>22.1}");
    }
    println!(
        "{:<40} {:>12.3}",
        "audit_chunked longest hold", l.audit_chunked_longest_hold_ms
    );
}
