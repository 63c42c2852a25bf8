//! What the examples (and `benches/mmtests.rs`, `tests/threads.rs`) share: command-line flags, the
//! seeded PRNG, the stop flag set by SIGINT/SIGTERM, CPU pinning, the modelled CPUs (`--cpus`),
//! the periodic `vmstat_update` timer, the page-cache workload (`--page-cache`, in
//! [`page_cache`]), the SVG pictures (`--plot`, in [`plot`]) and live progress on a terminal
//! (in [`progress`]). (A directory module, so Cargo does not build it as an example of its own.)
#![allow(dead_code)] // each example uses a different part
#![allow(clippy::disallowed_types)] // the stop flag is a plain std atomic: the loom shim rule is the library's

pub(crate) mod page_cache;
pub(crate) mod plot;
pub(crate) mod progress;

use pagealloc::{AuditReport, Fixes, MAX_CPUS, PcpMode, Trace, TraceEvent, TraceOptions, Zone};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::Duration;

// ---- stop flag ----

/// Set by SIGINT/SIGTERM (or by the example itself at its deadline).
pub(crate) static STOP: AtomicBool = AtomicBool::new(false);

/// Whether the run should stop.
pub(crate) fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Make SIGINT and SIGTERM set [`STOP`] (the first one; a second one exits at once, with
/// status 130), through `ctrlc`.
pub(crate) fn install_signal_handlers() {
    let result = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    if let Err(e) = result {
        eprintln!("warning: no Ctrl-C handler ({e}); stop the run with a timeout instead");
    }
}

// ---- CPU pinning ----

/// Pin the calling thread to CPU `cpu` (modulo the CPUs there are), where the OS allows;
/// returns whether it did.
pub(crate) fn pin_to_cpu(cpu: usize) -> bool {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: `set` is a plain bitmask owned by this frame; CPU_ZERO/CPU_SET write inside it
    // (the index is reduced below CPU_SETSIZE), and sched_setaffinity reads
    // `size_of::<cpu_set_t>()` bytes from it. A failure only leaves the thread unpinned.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET((cpu % n) % libc::CPU_SETSIZE as usize, &mut set);
        libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

// ---- modelled CPUs (--cpus) ----

/// `--cpus N`, shared by `stress`, `cma_stress` and `isolate_race` (flattened into each). Absent:
/// the library's default, one pcp per OS thread ([`PcpMode::PerThread`]), drained when the
/// thread exits. `--cpus N`: the kernel's layout, [`PcpMode::PerCpu(N)`](PcpMode::PerCpu): N
/// pcps (and N sets of vmstat diffs, `stat_threshold` computed for N online CPUs), each used by
/// whichever threads run on that CPU, none drained at thread exit. Each worker thread `i` binds
/// itself to CPU `i` ([`CpuOpts::bind`]; the library reduces it modulo N), so 16 workers on
/// `--cpus 4` are the seed's 4-CPU VM running `make -j16`; an example's other threads take the
/// indexes after the workers'.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub(crate) struct CpuOpts {
    /// Model N CPUs (1 to 4096): per-CPU pcps and vmstat diffs, worker i
    /// on CPU i mod N, nothing drained at thread exit [default: a pcp per
    /// thread, drained when the thread exits]
    #[arg(long, value_name = "N", value_parser = parse_cpus, verbatim_doc_comment)]
    pub(crate) cpus: Option<u32>,
}

impl CpuOpts {
    /// The zone's pcp mode.
    pub(crate) fn pcp_mode(&self) -> PcpMode {
        match self.cpus {
            Some(n) => PcpMode::PerCpu(n),
            None => PcpMode::PerThread,
        }
    }

    /// Put the calling thread on CPU `index` (modulo the modelled CPUs) in per-CPU mode; a
    /// no-op in per-thread mode.
    pub(crate) fn bind(&self, index: usize) {
        if self.cpus.is_some() {
            pagealloc::set_thread_cpu(Some(index));
        }
    }

    /// For headers: `per-thread pcps` or `4 CPUs (per-CPU pcps)`.
    pub(crate) fn describe(&self) -> String {
        match self.cpus {
            Some(n) => format!("{n} CPU{} (per-CPU pcps)", if n == 1 { "" } else { "s" }),
            None => "per-thread pcps".into(),
        }
    }

    /// For `--json`: the CPU count, 0 for per-thread pcps.
    pub(crate) fn json(&self) -> u32 {
        self.cpus.unwrap_or(0)
    }
}

/// `--cpus`: 1 to `MAX_CPUS`.
fn parse_cpus(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (1..=MAX_CPUS).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from 1 to {MAX_CPUS}")),
    }
}

// ---- periodic work: vmstat_update ----

/// A scoped thread that calls a closure every `period` until [`stop`](Self::stop)ped (or
/// dropped): a timer. It waits on a channel (`recv_timeout`), so stopping it is immediate.
#[derive(Debug)]
pub(crate) struct Periodic<'scope> {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<ScopedJoinHandle<'scope, u64>>,
}

impl<'scope> Periodic<'scope> {
    /// Start the thread `name` in `s`, calling `tick` every `period`.
    pub(crate) fn spawn<'env>(
        s: &'scope Scope<'scope, 'env>,
        name: &str,
        period: Duration,
        mut tick: impl FnMut() + Send + 'scope,
    ) -> Periodic<'scope> {
        let (tx, rx) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(s, move || {
                let mut ticks = 0;
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(period) {
                    tick();
                    ticks += 1;
                }
                ticks
            })
            .expect("spawn a timer thread");
        Periodic {
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stop the timer and join it; the number of ticks it made.
    pub(crate) fn stop(mut self) -> u64 {
        self.stop = None;
        match self.handle.take().map(ScopedJoinHandle::join) {
            Some(Ok(ticks)) => ticks,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => 0,
        }
    }
}

impl Drop for Periodic<'_> {
    fn drop(&mut self) {
        // Disconnect: the thread returns at once (the scope joins it).
        self.stop = None;
    }
}

/// How often 3.17 folds the per-CPU vmstat diffs (`sysctl_stat_interval`, 1 s).
pub(crate) const VMSTAT_INTERVAL: Duration = Duration::from_secs(1);

/// 3.17's periodic `vmstat_update` for the run: a [`Periodic`] thread calling
/// [`Zone::vmstat_update`] every [`VMSTAT_INTERVAL`] until stopped.
pub(crate) fn vmstat_timer<'scope>(
    s: &'scope Scope<'scope, '_>,
    zone: &'scope Zone,
) -> Periodic<'scope> {
    Periodic::spawn(s, "vmstat_update", VMSTAT_INTERVAL, move || {
        zone.vmstat_update()
    })
}

/// What `zone_page_state` showed at the audit, as drift: the folded `NR_FREE_PAGES` and
/// `NR_FREE_CMA_PAGES` minus the pages really on the lists (the exact drift is
/// `drift_free`/`drift_cma`; the difference is the per-CPU diffs not folded yet).
pub(crate) fn vmstat_drift(r: &AuditReport) -> (i64, i64) {
    (
        r.vmstat_free_pages - r.true_free_pages as i64,
        r.vmstat_free_cma_pages - r.true_free_cma_pages as i64,
    )
}

/// One drift-ledger line in an example's `--json` object: which race, on which path, how many
/// decisions, and their drift (free/CMA pages; the lines sum to `drift_free`/`drift_cma`).
#[derive(serde::Serialize, Clone, Debug)]
pub(crate) struct LedgerJson {
    race: &'static str,
    path: &'static str,
    events: u64,
    free: i64,
    cma: i64,
}

/// The audit's drift ledger for `--json` (empty when the ledger is off).
pub(crate) fn ledger_json(r: &AuditReport) -> Vec<LedgerJson> {
    r.ledger
        .iter()
        .flatten()
        .map(|e| LedgerJson {
            race: e.race.name(),
            path: e.path.name(),
            events: e.events,
            free: e.free,
            cma: e.cma,
        })
        .collect()
}

/// The audit's drift ledger as text lines: `R2 on free_pcppages_bulk: 13 events, -26/-26`.
pub(crate) fn ledger_lines(r: &AuditReport) -> Vec<String> {
    r.ledger
        .iter()
        .flatten()
        .map(|e| {
            format!(
                "ledger: {} on {}: {} events, {:+}/{:+}",
                e.race, e.path, e.events, e.free, e.cma
            )
        })
        .collect()
}

/// `drift (exact) -26/-26, as zone_page_state showed it -31/-28` (free/CMA).
pub(crate) fn drift_line(r: &AuditReport) -> String {
    let (vf, vc) = vmstat_drift(r);
    format!(
        "drift (exact) {:+}/{:+}, as zone_page_state showed it {vf:+}/{vc:+}",
        r.drift_free, r.drift_cma
    )
}

// ---- tracing (--trace) ----

/// `--trace FILE`, `--trace-events LIST`, `--trace-irq-info`, shared by `stress`, `cma_stress`
/// and `isolate_race` (flattened into each): the kernel's kmem tracepoints as `trace_pipe`
/// lines ([`Trace`]), one file for every run of the process (each run's zone writes to it).
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct TraceOpts {
    /// Write the kmem tracepoints as trace_pipe lines to FILE (a file
    /// or a named pipe) [default: no trace]
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    trace: Option<PathBuf>,
    /// Record only these events, comma-separated (mm_page_alloc,
    /// mm_page_free, mm_page_free_batched, mm_page_pcpu_drain,
    /// mm_page_alloc_zone_locked, mm_page_alloc_extfrag,
    /// test_pages_isolated, cma_alloc, cma_release, pagealloc_ledger)
    /// [default: all]
    #[arg(
        long,
        value_name = "LIST",
        value_parser = parse_trace_events,
        requires = "trace",
        verbatim_doc_comment
    )]
    trace_events: Option<TraceEvents>,
    /// Print the flags column (the kernel's irq-info trace option)
    #[arg(long, requires = "trace")]
    trace_irq_info: bool,
    /// The trace, once opened.
    #[arg(skip)]
    opened: OnceLock<Trace>,
}

/// The events of `--trace-events`.
#[derive(Clone, Debug)]
pub(crate) struct TraceEvents(Vec<TraceEvent>);

fn parse_trace_events(v: &str) -> Result<TraceEvents, String> {
    TraceEvent::parse_list(v)
        .map(TraceEvents)
        .map_err(|e| e.to_string())
}

impl TraceOpts {
    /// The trace for a run's zone (`ZoneConfig::trace`): `None` without `--trace`; the file is
    /// opened (created or truncated) on first use and shared by every later run.
    pub(crate) fn trace(&self) -> Result<Option<Trace>, String> {
        let Some(path) = &self.trace else {
            return Ok(None);
        };
        if let Some(t) = self.opened.get() {
            return Ok(Some(t.clone()));
        }
        let opts = TraceOptions {
            events: self.trace_events.clone().map(|e| e.0).unwrap_or_default(),
            irq_info: self.trace_irq_info,
        };
        let t =
            Trace::create(path, opts).map_err(|e| format!("--trace {}: {e}", path.display()))?;
        Ok(Some(self.opened.get_or_init(|| t).clone()))
    }

    /// Write out what the trace buffered; false (after saying why on stderr) if writing failed.
    pub(crate) fn finish(&self, prog: &str) -> bool {
        match (self.opened.get(), &self.trace) {
            (Some(t), Some(path)) => match t.flush() {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("{prog}: --trace {}: {e}", path.display());
                    false
                }
            },
            _ => true,
        }
    }
}

// ---- flags ----

/// The options every stress example (`stress`, `cma_stress`, `isolate_race`) has: which fix
/// sets to run, the seed, JSON output. Each example flattens it into its own clap arguments
/// (`#[command(flatten)]`); `stress` changes the default to `all` and takes one set.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct RunOpts {
    #[arg(
        id = "fixes",
        long = "fixes",
        value_name = "SETS",
        value_parser = parse_fix_sets,
        action = clap::ArgAction::Append,
        default_value = "none;all",
        help = FIXES_HELP,
    )]
    fix_sets: Vec<FixSets>,
    /// PRNG seed, decimal or 0x-hex [default: from the clock]
    #[arg(
        long,
        value_name = "N",
        value_parser = parse_seed,
        default_value_t = default_seed(),
        hide_default_value = true
    )]
    pub(crate) seed: u64,
    /// End with one JSON object of the results as the last line of stdout
    #[arg(long)]
    pub(crate) json: bool,
}

impl RunOpts {
    /// The fix sets of every `--fixes` in order (the default when none is given).
    pub(crate) fn fixes(&self) -> Vec<Fixes> {
        self.fix_sets
            .iter()
            .flat_map(|s| s.0.iter().copied())
            .collect()
    }
}

/// The sets of one `--fixes` value.
#[derive(Clone, Debug)]
pub(crate) struct FixSets(Vec<Fixes>);

/// How every example reads `--fixes` (its help text; lines short enough for the help column).
pub(crate) const FIXES_HELP: &str = "\
The fix sets to run, in order. A fix set is a preset (none, seed,
v3.18, v4.6, all) or presets and flag names joined by ',' or '+' (their
union); ';' separates sets to run one after another, and --fixes may
be repeated";

/// One `--fixes` value, the one grammar of every example (see [`FIXES_HELP`]): `;` separates
/// sets (runs); within a set, `,` and `+` join presets and flags (their union), as
/// `Fixes::from_str` parses it. `none;all` → two runs;
/// `recheck-free-one-page,recheck-pcp-bulk;all` → two runs, the first with two flags.
pub(crate) fn parse_fix_sets(v: &str) -> Result<FixSets, String> {
    let out = v
        .split(';')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::parse::<Fixes>)
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Err("empty list".into());
    }
    Ok(FixSets(out))
}

/// One `--fixes` value that must be a single set (no `;`).
pub(crate) fn parse_fix_set(v: &str) -> Result<Fixes, String> {
    match parse_fix_sets(v)?.0.as_slice() {
        [one] => Ok(*one),
        _ => Err("one fix set only (no ';')".into()),
    }
}

/// A `u64`, decimal or `0x` hex (seeds).
pub(crate) fn parse_seed(v: &str) -> Result<u64, String> {
    let t = v.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse::<u64>(),
    }
    .map_err(|e| e.to_string())
}

/// A whole number, at least 1 (thread and allocation counts).
pub(crate) fn at_least_one<T: std::str::FromStr + PartialOrd + From<u8>>(
    v: &str,
) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(n),
        _ => Err("expected a whole number, at least 1".into()),
    }
}

/// A size in MiB that is a multiple of 4 (whole top-order blocks), 0 allowed.
pub(crate) fn multiple_of_4(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n % 4 == 0 => Ok(n),
        _ => Err("expected a multiple of 4".into()),
    }
}

/// As [`multiple_of_4`], but not 0.
pub(crate) fn positive_multiple_of_4(v: &str) -> Result<usize, String> {
    match multiple_of_4(v) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a positive multiple of 4".into()),
    }
}

/// Exit as clap does on a usage error (message and usage on stderr, status 2), for the checks
/// across flags that no single value parser can make.
pub(crate) fn usage_error<T: clap::CommandFactory>(msg: impl std::fmt::Display) -> ! {
    T::command()
        .error(clap::error::ErrorKind::ArgumentConflict, msg)
        .exit()
}

/// A seed from the clock and the pid, for runs without `--seed`.
pub(crate) fn default_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    splitmix64(t.as_nanos() as u64 ^ u64::from(std::process::id()))
}

// ---- PRNG ----

/// splitmix64's finaliser: a good 64-bit mix.
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// xorshift64*, seeded through splitmix64.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(splitmix64(seed) | 1)
    }

    /// The next 64 bits.
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next() >> 32) * u128::from(n)) >> 32) as u64
    }

    /// True with probability `pct` %.
    pub(crate) fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}
