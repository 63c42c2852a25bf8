//! The kernel's kmem tracepoints, in the kernel's own text: `trace_pipe` lines a caller
//! collects in a file or pipe ([`Trace`], set in `ZoneConfig::trace`).
//!
//! # Events and their formats
//! Each event prints its fields with the `TP_printk` format of the kernel version named (the
//! format text is [`TraceEvent::format`]), emitted where that kernel emits it:
//!
//! | event | `TP_printk` format | source | emitted in (kernel → here) |
//! | --- | --- | --- | --- |
//! | `mm_page_alloc` | `page=%p pfn=%lu order=%d migratetype=%d gfp_flags=%s` | 3.17 `include/trace/events/kmem.h` | `__alloc_pages_nodemask`, success or failure (`page=(null)`) → `ZoneInner::alloc`, `ZoneInner::alloc_gfp` |
//! | `mm_page_free` | `page=%p pfn=%lu order=%d` | 3.17 `kmem.h` | `free_pages_prepare` (every free of an allocated block) → `free_hot_cold_page`, `__free_pages_ok` |
//! | `mm_page_free_batched` | `page=%p pfn=%lu order=0 cold=%d` | 3.17 `kmem.h` | `free_hot_cold_page_list` → `Zone::free_hot_cold_page_list` |
//! | `mm_page_pcpu_drain` | `page=%p pfn=%lu order=%d migratetype=%d` | 3.17 `kmem.h` (`DEFINE_EVENT_PRINT` of class `mm_page`) | `free_pcppages_bulk`, per page after `__free_one_page`, with the type it was freed by |
//! | `mm_page_alloc_zone_locked` | `page=%p pfn=%lu order=%u migratetype=%d percpu_refill=%d` | 3.17 `kmem.h` (class `mm_page`) | `__rmqueue`, success or failure, with the requested type (`MIGRATE_RESERVE` after its retry) |
//! | `mm_page_alloc_extfrag` | `page=%p pfn=%lu alloc_order=%d fallback_order=%d pageblock_order=%d alloc_migratetype=%d fallback_migratetype=%d fragmenting=%d change_ownership=%d` | 3.17 `kmem.h` | `__rmqueue_fallback` (`change_ownership` is `new_type == alloc_migratetype`, `fragmenting` is `fallback_order < pageblock_order`) |
//! | `test_pages_isolated` | `start_pfn=0x%lx end_pfn=0x%lx fin_pfn=0x%lx ret=%s` | 4.4 `include/trace/events/page_isolation.h` (as first merged: `ret` is `success` iff `end_pfn == fin_pfn`) | `test_pages_isolated` after the zone lock is dropped (not on the early `-EBUSY` of a pageblock not isolated) |
//! | `cma_alloc` | `pfn=%lx page=%p count=%u align=%u` | `include/trace/events/cma.h` as in mainline when `test_pages_isolated` was added (blob `d7cd961`; the first posting had no `align`) | `cma_alloc`, success or failure (`pfn=ffffffffffffffff page=(null)`) |
//! | `cma_release` | `pfn=%lx page=%p count=%u` | the same `cma.h` | `cma_release` after the pages are freed (a dropped `CmaPages` or `Cma::release_pfn`) |
//! | `pagealloc_ledger` | `race=%s path=%s free=%ld cma=%ld` | **this crate's own event, in no kernel**: one line per drift-ledger note (`LedgerEntry`) | under the zone lock, where the ledger records it |
//!
//! The kernel sources read: `include/trace/events/kmem.h`, `include/trace/events/gfpflags.h`,
//! `mm/page_alloc.c`, `kernel/trace/trace_output.c` and `lib/vsprintf.c` of v3.17 (the
//! import of 3.17.0 in `lexi6725/linux-3.17.0`, commit `26c80e24`);
//! `include/trace/events/page_isolation.h` as added by Joonsoo Kim's "mm/page_isolation: add
//! new tracepoint, test_pages_isolated" (v4.4, blob `6fb6440`; 2016 changed `==` to `<=`);
//! `include/trace/events/cma.h` from Stefan Strogin's "mm: cma: add trace events for CMA
//! allocations and freeings" (v4.2) with its `align` follow-up (blob `e01b35d` → `d7cd961`).
//!
//! # Field values
//! - `page=%p` is a stable per-pfn `struct page` address, as on x86-64 with
//!   `CONFIG_SPARSEMEM_VMEMMAP`: `0xffffea0000000000 + pfn * 64` (`vmemmap` base, 64-byte
//!   `struct page`), printed as `%p` printed it in 3.17 — 16 lower-case hex digits, no `0x`;
//!   a NULL page prints `(null)` right-aligned in the same 16 columns.
//! - `migratetype=%d` is 3.17's number ([`Migratetype`] has 3.17's values).
//! - `gfp_flags=%s` is 3.17's `show_gfp_flags`: the names of its table in its order, each
//!   taking its bits off, joined by `|`, left-over bits as `0x%lx`, and `GFP_NOWAIT` for 0.
//!   The plain API (`Zone::alloc_pages` and friends, which take a
//!   migratetype and no mask) is traced with the mobility bit alone (`GFP_MOVABLE`,
//!   `GFP_RECLAIMABLE`, or `GFP_NOWAIT` for unmovable); [`Gfp`] requests with their mask.
//!
//! # Line format
//! 3.17's `trace_print_context` then `ftrace_raw_output_prep`:
//! `"%16s-%-5d [%03d] "`, with the `irq-info` option the flags column
//! (`trace_print_lat_fmt`: irqs-off `d`, need-resched `.`, hard/softirq `.`, preempt depth in
//! hex or `.`), then `" %5lu.%06lu: "`, the event name, `": "` and the fields. The flags
//! column is off unless [`TraceOptions::irq_info`] asks for it (the kernel's
//! `trace_options/irq-info`; `trace-pagealloc-postprocess.pl`'s line pattern does not allow
//! it). What it shows is what 3.17 recorded: the tracepoint's own `rcu_read_lock_sched`
//! counts one preemption level, so an event outside any lock shows `...1`, one under the zone
//! lock (`spin_lock_irqsave`) `d..2`.
//! - comm: the thread's name if it has one (Rust names the OS thread too, as `prctl` would),
//!   else the process's name, cut to 15 bytes (`TASK_COMM_LEN`), or `<...>` (what the
//!   kernel prints for a pid whose comm it no longer has) in a thread's exit drain; pid: the thread id
//!   (`gettid`); cpu: the modelled CPU the thread is bound to (`set_thread_cpu`),
//!   else the OS's; timestamp: seconds and microseconds since the [`Trace`] was created,
//!   taken under the output lock so lines are in time order.
//!
//! # Cost
//! Off (no `ZoneConfig::trace`, the default): each emitting path
//! tests one `Option` field it already has at hand, a branch that always goes the same way.
//! The per-thread pcp fast path (an order-0 allocation or free through the thread's cached
//! pcp) tests nothing: a traced zone never enters the thread-local pcp cache, so its order-0
//! allocations and frees take the uncached path, where `mm_page_alloc` and `mm_page_free`
//! are emitted. On: each event takes the output lock, formats one line into a 64 KiB buffer
//! and writes when it fills (`bench_report` prints the cost per event). [`Trace::flush`]
//! writes what is buffered; the last clone's drop flushes too.

use crate::gfp::Gfp;
use crate::sync::{Arc, Mutex};
use crate::types::{Migratetype, Order, Pfn};
use core::fmt;
use std::io::{self, BufWriter, Write};
use std::time::Instant;

/// One event a [`Trace`] can record (its kernel name is [`name`](Self::name)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TraceEvent {
    /// `kmem:mm_page_alloc`.
    MmPageAlloc,
    /// `kmem:mm_page_free`.
    MmPageFree,
    /// `kmem:mm_page_free_batched`.
    MmPageFreeBatched,
    /// `kmem:mm_page_pcpu_drain`.
    MmPagePcpuDrain,
    /// `kmem:mm_page_alloc_zone_locked`.
    MmPageAllocZoneLocked,
    /// `kmem:mm_page_alloc_extfrag`.
    MmPageAllocExtfrag,
    /// `page_isolation:test_pages_isolated` (4.4).
    TestPagesIsolated,
    /// `cma:cma_alloc` (4.2).
    CmaAlloc,
    /// `cma:cma_release` (4.2).
    CmaRelease,
    /// This crate's own drift-ledger event (in no kernel).
    PageallocLedger,
}

impl TraceEvent {
    /// Every event, in the order of the module's table.
    pub const ALL: [TraceEvent; 10] = [
        TraceEvent::MmPageAlloc,
        TraceEvent::MmPageFree,
        TraceEvent::MmPageFreeBatched,
        TraceEvent::MmPagePcpuDrain,
        TraceEvent::MmPageAllocZoneLocked,
        TraceEvent::MmPageAllocExtfrag,
        TraceEvent::TestPagesIsolated,
        TraceEvent::CmaAlloc,
        TraceEvent::CmaRelease,
        TraceEvent::PageallocLedger,
    ];

    /// The event's name as the line prints it (`mm_page_alloc`, …).
    pub const fn name(self) -> &'static str {
        match self {
            TraceEvent::MmPageAlloc => "mm_page_alloc",
            TraceEvent::MmPageFree => "mm_page_free",
            TraceEvent::MmPageFreeBatched => "mm_page_free_batched",
            TraceEvent::MmPagePcpuDrain => "mm_page_pcpu_drain",
            TraceEvent::MmPageAllocZoneLocked => "mm_page_alloc_zone_locked",
            TraceEvent::MmPageAllocExtfrag => "mm_page_alloc_extfrag",
            TraceEvent::TestPagesIsolated => "test_pages_isolated",
            TraceEvent::CmaAlloc => "cma_alloc",
            TraceEvent::CmaRelease => "cma_release",
            TraceEvent::PageallocLedger => "pagealloc_ledger",
        }
    }

    /// Whether the kernel has this event (every one but [`PageallocLedger`](Self::PageallocLedger)).
    pub const fn is_kernel_event(self) -> bool {
        !matches!(self, TraceEvent::PageallocLedger)
    }

    /// The `TP_printk` format string its fields follow (see the module's table for the
    /// kernel version of each).
    pub const fn format(self) -> &'static str {
        match self {
            TraceEvent::MmPageAlloc => "page=%p pfn=%lu order=%d migratetype=%d gfp_flags=%s",
            TraceEvent::MmPageFree => "page=%p pfn=%lu order=%d",
            TraceEvent::MmPageFreeBatched => "page=%p pfn=%lu order=0 cold=%d",
            TraceEvent::MmPagePcpuDrain => "page=%p pfn=%lu order=%d migratetype=%d",
            TraceEvent::MmPageAllocZoneLocked => {
                "page=%p pfn=%lu order=%u migratetype=%d percpu_refill=%d"
            }
            TraceEvent::MmPageAllocExtfrag => {
                "page=%p pfn=%lu alloc_order=%d fallback_order=%d pageblock_order=%d alloc_migratetype=%d fallback_migratetype=%d fragmenting=%d change_ownership=%d"
            }
            TraceEvent::TestPagesIsolated => "start_pfn=0x%lx end_pfn=0x%lx fin_pfn=0x%lx ret=%s",
            TraceEvent::CmaAlloc => "pfn=%lx page=%p count=%u align=%u",
            TraceEvent::CmaRelease => "pfn=%lx page=%p count=%u",
            TraceEvent::PageallocLedger => "race=%s path=%s free=%ld cma=%ld",
        }
    }

    const fn bit(self) -> u32 {
        1 << self as u32
    }

    /// Parse a comma-separated list of event names (`"mm_page_alloc,cma_alloc"`); `"all"`
    /// or an empty string is every event.
    pub fn parse_list(s: &str) -> Result<Vec<TraceEvent>, UnknownTraceEvent> {
        let s = s.trim();
        if s.is_empty() || s == "all" {
            return Ok(TraceEvent::ALL.to_vec());
        }
        s.split(',').map(|name| name.trim().parse()).collect()
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for TraceEvent {
    type Err = UnknownTraceEvent;

    fn from_str(s: &str) -> Result<TraceEvent, UnknownTraceEvent> {
        TraceEvent::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| UnknownTraceEvent(s.to_owned()))
    }
}

/// A name that is no [`TraceEvent`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownTraceEvent(pub String);

impl fmt::Display for UnknownTraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown trace event {:?} (known: ", self.0)?;
        for (i, e) in TraceEvent::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{e}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownTraceEvent {}

/// What a [`Trace`] records and how.
#[derive(Clone, Debug, Default)]
pub struct TraceOptions {
    /// The events to record; empty records every one.
    pub events: Vec<TraceEvent>,
    /// Print the flags column (the kernel's `irq-info` trace option).
    pub irq_info: bool,
}

/// A trace sink: `trace_pipe` lines written to a file, pipe or any writer. Cheap to clone
/// (all clones write to the same place); give one to `ZoneConfig::trace`.
///
/// ```
/// use pagealloc::{Migratetype, Order, Trace, TraceOptions, Zone, ZoneConfig};
/// let path = std::env::temp_dir().join(format!("pagealloc-doc-{}.trace", std::process::id()));
/// let trace = Trace::create(&path, TraceOptions::default())?;
/// let zone = Zone::new(ZoneConfig { size: 16 << 20, trace: Some(trace.clone()), ..ZoneConfig::default() })?;
/// drop(zone.alloc_pages(Order(2), Migratetype::Movable)?);
/// trace.flush()?;
/// let text = std::fs::read_to_string(&path)?;
/// assert!(text.lines().any(|l| l.contains(": mm_page_alloc: page=") && l.contains(" order=2 migratetype=2 gfp_flags=GFP_MOVABLE")));
/// assert!(text.lines().any(|l| l.contains(": mm_page_free: page=") && l.ends_with(" order=2")));
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Trace {
    inner: Arc<Tracer>,
}

struct Tracer {
    out: Mutex<Out>,
    mask: u32,
    irq_info: bool,
    start: Instant,
}

struct Out {
    w: BufWriter<Box<dyn Write + Send>>,
    /// The first write error; nothing more is written after it.
    err: Option<io::Error>,
    lines: u64,
}

/// Where an event runs, for the flags column.
#[derive(Clone, Copy)]
enum Ctx {
    /// Outside any lock: `...1` (the tracepoint's own preemption level).
    Task,
    /// Under the zone lock, taken with `spin_lock_irqsave` or with interrupts already off:
    /// `d..2`.
    ZoneLocked,
}

impl Trace {
    /// A trace writing to `out` (buffered).
    pub fn new(out: impl Write + Send + 'static, opts: TraceOptions) -> Trace {
        let mask = if opts.events.is_empty() {
            u32::MAX
        } else {
            opts.events.iter().fold(0, |m, e| m | e.bit())
        };
        Trace {
            inner: Arc::new(Tracer {
                out: Mutex::new(Out {
                    w: BufWriter::with_capacity(64 << 10, Box::new(out)),
                    err: None,
                    lines: 0,
                }),
                mask,
                irq_info: opts.irq_info,
                start: Instant::now(),
            }),
        }
    }

    /// A trace writing to the file or named pipe at `path` (created or truncated; a pipe
    /// blocks until a reader opens it, as `open(2)` does).
    pub fn create(path: impl AsRef<std::path::Path>, opts: TraceOptions) -> io::Result<Trace> {
        let f = std::fs::File::create(path)?;
        Ok(Trace::new(f, opts))
    }

    /// Whether `event` is recorded.
    pub fn enabled(&self, event: TraceEvent) -> bool {
        self.inner.mask & event.bit() != 0
    }

    /// Lines recorded so far (written or buffered).
    pub fn lines(&self) -> u64 {
        self.inner.out.lock().lines
    }

    /// Write out what is buffered. Returns the first write error the trace met, if any (after
    /// one, nothing more is written).
    pub fn flush(&self) -> io::Result<()> {
        let mut out = self.inner.out.lock();
        if out.err.is_none()
            && let Err(e) = out.w.flush()
        {
            out.err = Some(e);
        }
        match &out.err {
            None => Ok(()),
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }

    /// Write one line: the context prefix, `name: `, the fields.
    #[cold]
    #[inline(never)]
    fn emit(&self, ev: TraceEvent, ctx: Ctx, fields: fmt::Arguments<'_>) {
        if !self.enabled(ev) {
            return;
        }
        let cpu = crate::cpu::current(crate::types::MAX_CPUS as usize);
        let write = |comm: &str, pid: i32| {
            let mut out = self.inner.out.lock();
            if out.err.is_some() {
                return;
            }
            let t = self.inner.start.elapsed();
            let flags = match (self.inner.irq_info, ctx) {
                (false, _) => "",
                (true, Ctx::Task) => "...1",
                (true, Ctx::ZoneLocked) => "d..2",
            };
            let r = writeln!(
                out.w,
                "{:>16}-{:<5} [{:03}] {} {:5}.{:06}: {}: {}",
                comm,
                pid,
                cpu,
                flags,
                t.as_secs(),
                t.subsec_micros(),
                ev.name(),
                fields
            );
            match r {
                Ok(()) => out.lines += 1,
                Err(e) => out.err = Some(e),
            }
        };
        // A thread's pcp is drained by its thread-local destructor, when `TASK` may be gone:
        // then the line says `<...>`, as the kernel's does for a pid whose comm it lost.
        if TASK.try_with(|t| write(&t.comm, t.pid)).is_err() {
            write("<...>", gettid());
        }
    }

    // ---- the events (called through `Tracepoints`) ----

    #[cold]
    #[inline(never)]
    fn mm_page_alloc(&self, page: Option<Pfn>, order: Order, mt: Migratetype, gfp: Gfp) {
        self.emit(
            TraceEvent::MmPageAlloc,
            Ctx::Task,
            format_args!(
                "page={} pfn={} order={} migratetype={} gfp_flags={}",
                PagePtr(page),
                page.map_or(0, |p| p.0),
                order.0,
                mt as i32,
                ShowGfpFlags(gfp.bits())
            ),
        );
    }

    #[cold]
    #[inline(never)]
    fn mm_page_free(&self, pfn: Pfn, order: Order) {
        self.emit(
            TraceEvent::MmPageFree,
            Ctx::Task,
            format_args!(
                "page={} pfn={} order={}",
                PagePtr(Some(pfn)),
                pfn.0,
                order.0
            ),
        );
    }

    #[cold]
    #[inline(never)]
    fn mm_page_free_batched(&self, pfn: Pfn, cold: bool) {
        self.emit(
            TraceEvent::MmPageFreeBatched,
            Ctx::Task,
            format_args!(
                "page={} pfn={} order=0 cold={}",
                PagePtr(Some(pfn)),
                pfn.0,
                cold as i32
            ),
        );
    }

    #[cold]
    #[inline(never)]
    fn mm_page_pcpu_drain(&self, pfn: Pfn, order: Order, mt: Migratetype) {
        self.emit(
            TraceEvent::MmPagePcpuDrain,
            Ctx::ZoneLocked,
            format_args!(
                "page={} pfn={} order={} migratetype={}",
                PagePtr(Some(pfn)),
                pfn.0,
                order.0,
                mt as i32
            ),
        );
    }

    #[cold]
    #[inline(never)]
    fn mm_page_alloc_zone_locked(&self, page: Option<Pfn>, order: Order, mt: Migratetype) {
        self.emit(
            TraceEvent::MmPageAllocZoneLocked,
            Ctx::ZoneLocked,
            format_args!(
                "page={} pfn={} order={} migratetype={} percpu_refill={}",
                PagePtr(page),
                page.map_or(0, |p| p.0),
                order.0,
                mt as i32,
                (order.0 == 0) as i32
            ),
        );
    }

    #[cold]
    #[inline(never)]
    fn mm_page_alloc_extfrag(&self, e: &Extfrag) {
        self.emit(
            TraceEvent::MmPageAllocExtfrag,
            Ctx::ZoneLocked,
            format_args!(
                "page={} pfn={} alloc_order={} fallback_order={} pageblock_order={} alloc_migratetype={} fallback_migratetype={} fragmenting={} change_ownership={}",
                PagePtr(Some(e.pfn)),
                e.pfn.0,
                e.alloc_order.0,
                e.fallback_order.0,
                e.pageblock_order,
                e.alloc_mt as i32,
                e.fallback_mt as i32,
                (e.fallback_order.0 < e.pageblock_order) as i32,
                (e.new_mt == e.alloc_mt) as i32
            ),
        );
    }

    #[cold]
    #[inline(never)]
    fn test_pages_isolated(&self, start: Pfn, end: Pfn, fin: Pfn) {
        self.emit(
            TraceEvent::TestPagesIsolated,
            Ctx::Task,
            format_args!(
                "start_pfn={:#x} end_pfn={:#x} fin_pfn={:#x} ret={}",
                start.0,
                end.0,
                fin.0,
                if end == fin { "success" } else { "fail" }
            ),
        );
    }

    #[cold]
    #[inline(never)]
    fn cma_alloc(&self, page: Option<Pfn>, count: u64, align: Order) {
        self.emit(
            TraceEvent::CmaAlloc,
            Ctx::Task,
            format_args!(
                "pfn={:x} page={} count={} align={}",
                page.map_or(u64::MAX, |p| p.0),
                PagePtr(page),
                count,
                align.0
            ),
        );
    }

    #[cold]
    #[inline(never)]
    fn cma_release(&self, pfn: Pfn, count: u64) {
        self.emit(
            TraceEvent::CmaRelease,
            Ctx::Task,
            format_args!(
                "pfn={:x} page={} count={}",
                pfn.0,
                PagePtr(Some(pfn)),
                count
            ),
        );
    }

    #[cold]
    #[inline(never)]
    fn ledger(&self, race: &str, path: &str, free: i64, cma: i64) {
        self.emit(
            TraceEvent::PageallocLedger,
            Ctx::ZoneLocked,
            format_args!("race={race} path={path} free={free} cma={cma}"),
        );
    }
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let events: Vec<_> = TraceEvent::ALL
            .into_iter()
            .filter(|e| self.enabled(*e))
            .map(TraceEvent::name)
            .collect();
        f.debug_struct("Trace")
            .field("events", &events)
            .field("irq_info", &self.inner.irq_info)
            .finish_non_exhaustive()
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let mut out = self.out.lock();
        if out.err.is_none() {
            // Nobody is left to report an error to.
            let _ = out.w.flush();
        }
    }
}

/// The calling thread's comm and pid, as the line prefix prints them.
struct Task {
    comm: String,
    pid: i32,
}

crate::sync::thread_local! {
    static TASK: Task = Task::current();
}

impl Task {
    fn current() -> Task {
        let thread = std::thread::current();
        let name = match thread.name() {
            Some(n) if n != "main" => n.to_owned(),
            _ => std::env::args_os()
                .next()
                .and_then(|a| {
                    std::path::Path::new(&a)
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                })
                .unwrap_or_default(),
        };
        // TASK_COMM_LEN is 16 with the NUL: 15 bytes, cut on a character boundary.
        let mut end = name.len().min(15);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        Task {
            comm: name[..end].to_owned(),
            pid: gettid(),
        }
    }
}

#[cfg(all(target_os = "linux", not(miri)))]
fn gettid() -> i32 {
    // SAFETY: gettid takes no arguments and only reads the calling thread's id.
    unsafe { libc::gettid() }
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn gettid() -> i32 {
    std::process::id() as i32
}

/// `%p` of a `struct page *` (see the module docs).
struct PagePtr(Option<Pfn>);

impl PagePtr {
    /// x86-64's `VMEMMAP_START` (4-level paging).
    const VMEMMAP_START: u64 = 0xffff_ea00_0000_0000;
    /// `sizeof(struct page)` on x86-64 in 3.17.
    const STRUCT_PAGE_SIZE: u64 = 64;
}

impl fmt::Display for PagePtr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(pfn) => write!(
                f,
                "{:016x}",
                PagePtr::VMEMMAP_START.wrapping_add(pfn.0.wrapping_mul(PagePtr::STRUCT_PAGE_SIZE))
            ),
            None => write!(f, "{:>16}", "(null)"),
        }
    }
}

/// 3.17's `show_gfp_flags` table (`include/trace/events/gfpflags.h`), with 3.17's bit values
/// (`include/linux/gfp.h`): most bits first, so composite names win.
const GFP_NAMES: [(u32, &str); 28] = {
    const WAIT: u32 = 0x10;
    const IO: u32 = 0x40;
    const FS: u32 = 0x80;
    const HARDWALL: u32 = 0x20000;
    const HIGHMEM: u32 = 0x02;
    const MOVABLE: u32 = 0x08;
    const RECLAIMABLE: u32 = 0x80000;
    const HIGH: u32 = 0x20;
    const KERNEL: u32 = WAIT | IO | FS;
    const USER: u32 = KERNEL | HARDWALL;
    const HIGHUSER: u32 = USER | HIGHMEM;
    const HIGHUSER_MOVABLE: u32 = HIGHUSER | MOVABLE;
    const COMP: u32 = 0x4000;
    const NOMEMALLOC: u32 = 0x10000;
    const NORETRY: u32 = 0x1000;
    const NOWARN: u32 = 0x200;
    const NO_KSWAPD: u32 = 0x40_0000;
    [
        (
            HIGHUSER_MOVABLE | COMP | NOMEMALLOC | NORETRY | NOWARN | NO_KSWAPD,
            "GFP_TRANSHUGE",
        ),
        (HIGHUSER_MOVABLE, "GFP_HIGHUSER_MOVABLE"),
        (HIGHUSER, "GFP_HIGHUSER"),
        (USER, "GFP_USER"),
        (KERNEL | RECLAIMABLE, "GFP_TEMPORARY"),
        (KERNEL, "GFP_KERNEL"),
        (WAIT | IO, "GFP_NOFS"),
        (HIGH, "GFP_ATOMIC"),
        (WAIT, "GFP_NOIO"),
        (HIGH, "GFP_HIGH"),
        (WAIT, "GFP_WAIT"),
        (IO, "GFP_IO"),
        (0x100, "GFP_COLD"),
        (NOWARN, "GFP_NOWARN"),
        (0x400, "GFP_REPEAT"),
        (0x800, "GFP_NOFAIL"),
        (NORETRY, "GFP_NORETRY"),
        (COMP, "GFP_COMP"),
        (0x8000, "GFP_ZERO"),
        (NOMEMALLOC, "GFP_NOMEMALLOC"),
        (0x2000, "GFP_MEMALLOC"),
        (HARDWALL, "GFP_HARDWALL"),
        (0x40000, "GFP_THISNODE"),
        (RECLAIMABLE, "GFP_RECLAIMABLE"),
        (MOVABLE, "GFP_MOVABLE"),
        (0x20_0000, "GFP_NOTRACK"),
        (NO_KSWAPD, "GFP_NO_KSWAPD"),
        // The table's end: GFP_FS has no entry of its own (it prints inside a composite
        // name, or as left-over bits).
        (0x80_0000, "GFP_OTHER_NODE"),
    ]
};

/// `show_gfp_flags(flags)`: `ftrace_print_flags_seq` over [`GFP_NAMES`].
struct ShowGfpFlags(u32);

impl fmt::Display for ShowGfpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut flags = self.0;
        if flags == 0 {
            return f.write_str("GFP_NOWAIT");
        }
        let mut first = true;
        for &(mask, name) in &GFP_NAMES {
            // The kernel's loop stops at the table's end or once no flag is left.
            if flags == 0 {
                break;
            }
            if flags & mask != mask {
                continue;
            }
            flags &= !mask;
            if !first {
                f.write_str("|")?;
            }
            first = false;
            f.write_str(name)?;
        }
        if flags != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{flags:#x}")?;
        }
        Ok(())
    }
}

/// The arguments of `mm_page_alloc_extfrag`.
pub(crate) struct Extfrag {
    pub(crate) pfn: Pfn,
    pub(crate) alloc_order: Order,
    pub(crate) fallback_order: Order,
    pub(crate) pageblock_order: u32,
    pub(crate) alloc_mt: Migratetype,
    pub(crate) fallback_mt: Migratetype,
    pub(crate) new_mt: Migratetype,
}

/// A zone's tracepoints: the [`Trace`] it was configured with, if any. Each method is the
/// tracepoint's `trace_*` call: one test of the `Option` when off.
#[derive(Clone, Default)]
pub(crate) struct Tracepoints(Option<Trace>);

impl Tracepoints {
    pub(crate) fn new(trace: Option<Trace>) -> Tracepoints {
        Tracepoints(trace)
    }

    /// `trace_mm_page_alloc(page, order, gfp, mt)`.
    #[inline(always)]
    pub(crate) fn mm_page_alloc(&self, page: Option<Pfn>, order: Order, mt: Migratetype, gfp: Gfp) {
        if let Some(t) = &self.0 {
            t.mm_page_alloc(page, order, mt, gfp);
        }
    }

    /// `trace_mm_page_free(page, order)`.
    #[inline(always)]
    pub(crate) fn mm_page_free(&self, pfn: Pfn, order: Order) {
        if let Some(t) = &self.0 {
            t.mm_page_free(pfn, order);
        }
    }

    /// `trace_mm_page_free_batched(page, cold)`.
    #[inline(always)]
    pub(crate) fn mm_page_free_batched(&self, pfn: Pfn, cold: bool) {
        if let Some(t) = &self.0 {
            t.mm_page_free_batched(pfn, cold);
        }
    }

    /// `trace_mm_page_pcpu_drain(page, order, mt)`.
    #[inline(always)]
    pub(crate) fn mm_page_pcpu_drain(&self, pfn: Pfn, order: Order, mt: Migratetype) {
        if let Some(t) = &self.0 {
            t.mm_page_pcpu_drain(pfn, order, mt);
        }
    }

    /// `trace_mm_page_alloc_zone_locked(page, order, mt)`.
    #[inline(always)]
    pub(crate) fn mm_page_alloc_zone_locked(
        &self,
        page: Option<Pfn>,
        order: Order,
        mt: Migratetype,
    ) {
        if let Some(t) = &self.0 {
            t.mm_page_alloc_zone_locked(page, order, mt);
        }
    }

    /// `trace_mm_page_alloc_extfrag(page, order, current_order, start_mt, fallback_mt,
    /// new_type)`.
    #[inline(always)]
    pub(crate) fn mm_page_alloc_extfrag(&self, e: impl FnOnce() -> Extfrag) {
        if let Some(t) = &self.0 {
            t.mm_page_alloc_extfrag(&e());
        }
    }

    /// `trace_test_pages_isolated(start_pfn, end_pfn, fin_pfn)`.
    #[inline(always)]
    pub(crate) fn test_pages_isolated(&self, start: Pfn, end: Pfn, fin: Pfn) {
        if let Some(t) = &self.0 {
            t.test_pages_isolated(start, end, fin);
        }
    }

    /// `trace_cma_alloc(pfn or -1, page or NULL, count, align)`.
    #[inline(always)]
    pub(crate) fn cma_alloc(&self, page: Option<Pfn>, count: u64, align: Order) {
        if let Some(t) = &self.0 {
            t.cma_alloc(page, count, align);
        }
    }

    /// `trace_cma_release(pfn, pages, count)`.
    #[inline(always)]
    pub(crate) fn cma_release(&self, pfn: Pfn, count: u64) {
        if let Some(t) = &self.0 {
            t.cma_release(pfn, count);
        }
    }

    /// This crate's `pagealloc_ledger` event: one ledger note.
    #[inline(always)]
    pub(crate) fn ledger(&self, race: &str, path: &str, free: i64, cma: i64) {
        if let Some(t) = &self.0 {
            t.ledger(race, path, free, cma);
        }
    }
}

impl fmt::Debug for Tracepoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tracepoints").field(&self.0).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn show_gfp_flags_follows_the_3_17_table() {
        let s = |g: u32| ShowGfpFlags(g).to_string();
        assert_eq!(s(0), "GFP_NOWAIT");
        assert_eq!(s(Gfp::GFP_KERNEL.bits()), "GFP_KERNEL");
        // No __GFP_HIGHMEM here: GFP_HIGHUSER_MOVABLE's bits without it are GFP_USER's plus
        // __GFP_MOVABLE.
        assert_eq!(s(Gfp::GFP_HIGHUSER_MOVABLE.bits()), "GFP_USER|GFP_MOVABLE");
        assert_eq!(s(Gfp::GFP_NOFS.bits()), "GFP_NOFS");
        assert_eq!(s(Gfp::GFP_ATOMIC.bits()), "GFP_ATOMIC");
        assert_eq!(s(Gfp::GFP_KERNEL_RECLAIMABLE.bits()), "GFP_TEMPORARY");
        assert_eq!(s(Gfp::FS.bits()), "0x80");
        assert_eq!(s(Gfp::FS.bits() | Gfp::MOVABLE.bits()), "GFP_MOVABLE|0x80");
    }

    #[test]
    fn page_pointers_print_as_3_17_printed_them() {
        assert_eq!(PagePtr(Some(Pfn(1))).to_string(), "ffffea0000000040");
        assert_eq!(PagePtr(None).to_string(), "          (null)");
    }

    #[test]
    fn event_lists_parse_with_typed_errors() {
        assert_eq!(
            TraceEvent::parse_list("").unwrap().len(),
            TraceEvent::ALL.len()
        );
        assert_eq!(
            TraceEvent::parse_list("mm_page_alloc, cma_release").unwrap(),
            vec![TraceEvent::MmPageAlloc, TraceEvent::CmaRelease]
        );
        let e = TraceEvent::parse_list("mm_page_alloc,nope").unwrap_err();
        assert_eq!(e, UnknownTraceEvent("nope".into()));
    }
}
