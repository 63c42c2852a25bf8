//! # pagealloc
//!
//! The Linux 3.17 page allocator — zone-locked buddy free lists per order and migratetype,
//! pageblocks, per-thread or per-CPU pcp caches with 3.17's per-CPU vmstat counters,
//! pageblock isolation and CMA — rebuilt as a concurrent
//! userspace library over one mmap'd arena, with the free-page accounting races of Joonsoo
//! Kim's 2014 patchset "fix freepage count problems in memory isolation" and every fix
//! selectable at run time ([`Fixes`]).
//!
//! ```
//! use pagealloc::{Fixes, Migratetype, Order, Zone, ZoneConfig};
//!
//! let zone = Zone::new(ZoneConfig { size: 64 << 20, fixes: Fixes::ALL, ..ZoneConfig::default() })?;
//! let mut block = zone.alloc_pages(Order(3), Migratetype::Movable)?; // 8 pages, 32 KiB
//! block.as_mut_slice()[..4].copy_from_slice(b"page");
//! drop(block);
//! zone.drain_all_pages();
//! let report = zone.audit();
//! assert_eq!(report.drift_free, 0);
//! print!("{}", zone.buddyinfo());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`ZoneConfig::default`] is the 3.17 model the race experiments use (no fixes, order-0
//! pcps). As a plain page-frame allocator, start from [`ZoneConfig::allocator`]: every fix on,
//! and high-order pcps (5.14's), so that orders 1–3 stay off the zone lock too.
//!
//! ## Map
//! | module | owns | kernel |
//! | --- | --- | --- |
//! | `sync` | the concurrency shim (std / parking_lot / loom) | — |
//! | `types` | [`Pfn`], [`Order`], [`PageblockIdx`], [`Migratetype`] | `mmzone.h` |
//! | `config` | [`ZoneConfig`], [`Geometry`] | `zone_batchsize`, watermarks |
//! | `arena` | the mmap'd pages | the memory map |
//! | `page` | the `struct page` side tables, block ownership (held by a handle or not) | `struct page` |
//! | `zone::pageblock` | per-pageblock migratetype | `pageblock_flags` |
//! | `zone::buddy` | the buddy core: free lists, merge/split/fallback, the counters, under the zone lock | `mm/page_alloc.c` |
//! | `zone::pageset`, `zone::cma_area`, `zone::movable`, `zone::shrinker` | the state the zone owns for pcps, CMA, migration and reclaim | `zone->pageset`, `struct cma` |
//! | `zone::ledger` | [`LedgerEntry`]: the drift ledger, by [`Race`] and [`LedgerPath`] | — |
//! | `zone` | [`Zone`], `free_one_page`, the allocation entry, checked pfn frees | `mm/page_alloc.c` |
//! | `gfp` | [`Gfp`] and the `ALLOC_*` flags | `gfp.h`, `mm/internal.h` |
//! | `slowpath` | [`Zone::alloc_pages_gfp`]: watermarks, kswapd wake-up, direct compaction and reclaim | `__alloc_pages_nodemask` |
//! | `vmscan` | [`Shrinker`]s, direct reclaim, [`Kswapd`] | `mm/vmscan.c` |
//! | `cpu` | which CPU a thread is on ([`set_thread_cpu`]) for [`PcpMode::PerCpu`] | `smp_processor_id` |
//! | `vmstat` | [`ZoneStatItem`]: per-CPU counter diffs folded past `stat_threshold` | `mm/vmstat.c` |
//! | `pcp` | per-thread or per-CPU caches ([`PcpMode`]), of order 0 or (5.14's) also orders 1–3 and `pageblock_order`, `drain_all_pages` | `per_cpu_pages` |
//! | `isolate` | pageblock isolation, memory offline | `mm/page_isolation.c`, `mm/memory_hotplug.c` |
//! | `cma` | [`Cma`], `alloc_contig_range` | `mm/cma.c`, `mm/page_alloc.c` |
//! | `fixes` | [`Fixes`]: the 2014 patches and the later fixes as flags | the decision table |
//! | `hook` | [`RaceHook`]: race-window injection, and what a hook may call from each window ([`RaceWindow`]) | — |
//! | `audit` | [`Zone::audit`], [`Zone::audit_chunked`], [`Zone::audit_coalescing`], [`AuditReport`] | — |
//! | `procfs` | `/proc/buddyinfo`, `pagetypeinfo`, `zoneinfo`, `vmstat` text | `mm/vmstat.c` |
//! | `trace` | [`Trace`]: the kmem tracepoints (and the isolation, CMA and ledger events) as `trace_pipe` lines | `include/trace/events/kmem.h`, `kernel/trace/trace_output.c` |
//! | `handle` | [`Pages`] and [`OwnedPages`], the owned allocation handles | — |
//! | `migrate` | [`MovablePages`], pins, page migration | `mm/migrate.c` |
//! | `compaction` | [`Zone::compact_memory`], [`Zone::compact_zone`], direct compaction's scanners, `split_free_page` | `mm/compaction.c` |
//!
//! ## Locks
//! pcp registry → pcp lock → zone lock. The pageblock type is written under the zone lock and
//! read without it on the free paths: that read is race R1 (the races are named and explained
//! on [`Fixes`](Fixes#the-races)).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod sync;

mod arena;
mod audit;
mod cma;
mod compaction;
mod config;
mod cpu;
mod error;
mod fixes;
mod gfp;
mod handle;
mod hook;
mod isolate;
mod migrate;
mod page;

mod pcp;
mod procfs;
mod slowpath;
mod trace;
mod types;
mod vmscan;
mod vmstat;
mod zone;

pub use audit::{
    AuditReport, ChunkedAudit, MisplacedBlock, PageState, PageblockState, UnmergedBlock,
};
pub use cma::{Cma, CmaArea, CmaError, CmaPages, CmaPagesIn, OwnedCmaPages};
pub use compaction::{CompactResult, EXTFRAG_THRESHOLD};
pub use config::{Backend, CmaPolicy, Geometry, PcpConfig, PcpMode, Watermarks, ZoneConfig};
pub use cpu::{set_thread_cpu, thread_cpu};
pub use error::{AllocError, CompactError, ConfigError, FreeError, IsolateError};
pub use fixes::Fixes;
pub use gfp::Gfp;
pub use handle::{OwnedPages, Pages, PagesIn};
pub use hook::{RaceHook, RaceWindow, SpinHook, YieldHook};
pub use migrate::{
    CONTIG_CLUSTER_MAX, CONTIG_MIGRATE_TRIES, MIGRATE_PASSES, MIGRATE_PIN_RETRIES, MovablePages,
    MovablePagesIn, OwnedMovablePages, Pinned,
};
pub use slowpath::{MAX_RECLAIM_RETRIES, PAGE_ALLOC_COSTLY_ORDER};
pub use trace::{Trace, TraceEvent, TraceOptions, UnknownTraceEvent};
pub use types::{
    MAX_CPUS, MAX_SUPPORTED_ORDER, MIGRATE_PCPTYPES, MIGRATE_TYPES, Migratetype, Order, PAGE_SHIFT,
    PAGE_SIZE, PageblockIdx, Pfn,
};
pub use vmscan::{Kswapd, ReclaimCounters};
pub use vmstat::ZoneStatItem;
pub use zone::Zone;
pub use zone::ledger::{DriftSample, LedgerEntry, LedgerPath, Race};
pub use zone::shrinker::Shrinker;

/// Whether the pcp owner path runs without hardware fences: the process registered for
/// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` and remote drains pay for the barrier
/// instead (false under Miri, under loom, with `PAGEALLOC_NO_MEMBARRIER` set, or on kernels
/// without it). Benchmarks report it beside their figures.
pub fn asymmetric_barriers() -> bool {
    sync::asymmetric_barriers()
}

// The handles are `Send + Sync` like a `Box<[u8]>` (a block allocated on one thread may be
// freed on another, where it goes to that thread's pcp, as in the kernel) and the zone is
// shared by reference: derived by the compiler from their fields, asserted here so a change
// that loses them fails to build. `Pinned` borrows a raw pointer and stays on its thread.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Zone>();
    send_sync::<Pages<'static>>();
    send_sync::<OwnedPages>();
    send_sync::<MovablePages<'static>>();
    send_sync::<OwnedMovablePages>();
    send_sync::<CmaPages<'static>>();
    send_sync::<OwnedCmaPages>();
    send_sync::<Cma<'static>>();
    send_sync::<ZoneConfig>();
};
