//! Zone configuration and its validation into a [`Geometry`].
//!
//! Defaults are x86-64 Linux 3.17: 4 KiB pages, `MAX_ORDER` 11 (orders 0..=10, 4 MiB top
//! blocks), `pageblock_order` 9 (2 MiB pageblocks, two per top-order block), pcp `batch` 31 and
//! `high` 186 for zones of 512 MiB and more (3.17's `zone_batchsize`), two `Reserve`
//! pageblocks. [`ZoneConfig::tiny`] gives the geometry loom and property tests use.

use crate::error::ConfigError;
use crate::fixes::Fixes;
use crate::hook::RaceHook;
use crate::sync::Arc;
use crate::trace::Trace;
use crate::types::{MAX_CPUS, MAX_SUPPORTED_ORDER, PAGE_SIZE, Pfn};
use core::fmt;

/// Where the arena's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// One anonymous private mapping (memmap2), the default.
    #[default]
    Mmap,
    /// A zeroed, page-aligned heap allocation (used by loom models, small tests and Miri).
    Heap,
}

/// The largest pcp `batch` accepted: `PAGE_SHIFT * 8` (96), the cap 3.17's
/// `pageset_set_high` (the `vm.percpu_pagelist_fraction` path) puts on `batch`.
/// `zone_batchsize`'s default never exceeds 31.
pub(crate) const PCP_BATCH_MAX: u32 = crate::types::PAGE_SHIFT * 8;

/// pcp sizing overrides (`high`, `batch`), for tests that want caches on a tiny zone.
///
/// [`ZoneConfig::geometry`] refuses ([`ConfigError::BadPcp`]) values outside these bounds,
/// which keep every pcp computation far from overflow:
/// - `high` ≤ max(pages in the zone, 96): a pcp cannot usefully cache more pages than the
///   zone has (3.17's `percpu_pagelist_fraction` path gives at most an eighth of them); the
///   floor of 96 lets tiny test zones keep a fixed pcp such as [`ZoneConfig::tiny`]'s;
/// - 1 ≤ `batch` ≤ min(max(`high`, 1), 96): 96 is `PAGE_SHIFT * 8`, 3.17's cap on `batch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcpConfig {
    /// Free to the buddy lists when a pcp holds this many pages. At most the zone's page
    /// count, or 96 if that is larger.
    pub high: u32,
    /// Pages moved per refill (`rmqueue_bulk`) and per high-watermark free. In
    /// `1..=min(max(high, 1), 96)`.
    pub batch: u32,
}

/// How movable allocations use the CMA area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CmaPolicy {
    /// 3.17: CMA pageblocks are only the first fallback of a Movable allocation.
    #[default]
    Fallback,
    /// The seed's patchset \[3\] ("aggressively allocate the pages on cma reserved memory"):
    /// Movable allocations alternate between the normal and the CMA free lists in runs of at
    /// least a pageblock, in proportion to free normal vs free CMA pages.
    Aggressive,
}

/// Whose pcp a thread uses, and whose vmstat diffs its updates go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PcpMode {
    /// One pcp per OS thread per zone (the fast default for allocator users): the owner uses
    /// it without a lock or a read-modify-write; other threads reach it only to drain it; a
    /// thread's pcp is drained when the thread exits and reused by the next new thread.
    #[default]
    PerThread,
    /// The kernel's: `n` CPUs, each with one pcp, used by whichever thread runs on that CPU
    /// (see [`set_thread_cpu`](crate::set_thread_cpu)) inside one short per-CPU critical
    /// section (3.17's interrupts-off section); `drain_all_pages` drains each CPU with pages in
    /// turn, as its IPI would; nothing is drained at thread exit. `n` is in `1..=4096`.
    PerCpu(u32),
}

/// Configuration of one zone. Build it with struct update syntax from
/// [`ZoneConfig::default`] or [`ZoneConfig::tiny`].
#[derive(Clone)]
pub struct ZoneConfig {
    /// Arena size in bytes (default 1 GiB). A multiple of the top-order block.
    pub size: usize,
    /// `MAX_ORDER`: the number of orders (exclusive bound), default 11.
    pub max_order: u32,
    /// `pageblock_order`, default 9. Must be below `max_order`.
    pub pageblock_order: u32,
    /// Bytes of CMA area at the top of the zone (default 0). A multiple of the top-order block.
    pub cma_size: usize,
    /// How movable allocations use the CMA area.
    pub cma_policy: CmaPolicy,
    /// pcp `high`/`batch`; `None` computes them as 3.17's `zone_batchsize` does.
    pub pcp: Option<PcpConfig>,
    /// Number of `Reserve` pageblocks; `None` computes 3.17's `min(2, roundup(min_wmark,
    /// pageblock_nr_pages) >> pageblock_order)`, or 0 when `fixes` has
    /// [`Fixes::NO_RESERVE`] (4.4 and later have no `Reserve` pageblocks; a non-zero count is
    /// then [`ConfigError::ReserveRemoved`](crate::ConfigError::ReserveRemoved)).
    pub reserve_pageblocks: Option<u64>,
    /// Which race fixes are on.
    pub fixes: Fixes,
    /// Optional race-window hook (off by default).
    pub race_hook: Option<Arc<dyn RaceHook>>,
    /// Where the arena's bytes come from.
    pub backend: Backend,
    /// Per-thread or per-CPU pcps (and vmstat diffs). Default [`PcpMode::PerThread`].
    pub pcp_mode: PcpMode,
    /// Keep the drift ledger ([`Zone::ledger`](crate::Zone::ledger)): off by default (one
    /// predictable branch per list operation when off).
    pub ledger: bool,
    /// `vm.min_free_kbytes`, the sysctl the watermarks derive from; `None` computes 3.17's
    /// boot default (`init_per_zone_wmark_min`: `int_sqrt(lowmem_kbytes * 16)` clamped to
    /// 128..=65536). Tiny test zones set `Some(0)` (no watermarks): the boot default's floor
    /// of 32 pages is more than they hold, and compaction's free scanner, which obeys the low
    /// watermark, would take nothing.
    pub min_free_kbytes: Option<u64>,
    /// Record the kmem tracepoints as `trace_pipe` lines ([`Trace`]): off by
    /// default (one predictable branch per emitting path when off).
    pub trace: Option<Trace>,
    /// Cache blocks of orders 1 to `PAGE_ALLOC_COSTLY_ORDER` (3) and of `pageblock_order`
    /// (THP) on the pcps as well, as the kernel does since 5.14 (44042b449872, "mm/page_alloc:
    /// allow high-order pages to be stored on the per-cpu lists"): such an allocation or free
    /// then stays off the zone lock like an order-0 one; and the batch free at `high` scales as
    /// 5.14's `nr_pcp_free` does. `high` and `batch` stay 3.17's `zone_batchsize` figures (or
    /// [`pcp`](Self::pcp)): 5.14's `zone_highsize` splits the low watermark across CPUs, which
    /// per-thread pcps do not have. Off by default, so that the pcps are 3.17's (order 0 only)
    /// and the races are 3.17's; on in [`ZoneConfig::allocator`].
    pub pcp_high_order: bool,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        ZoneConfig {
            size: 1 << 30,
            max_order: 11,
            pageblock_order: 9,
            cma_size: 0,
            cma_policy: CmaPolicy::Fallback,
            pcp: None,
            reserve_pageblocks: None,
            fixes: Fixes::NONE,
            race_hook: None,
            backend: Backend::Mmap,
            pcp_mode: PcpMode::PerThread,
            ledger: false,
            min_free_kbytes: None,
            trace: None,
            pcp_high_order: false,
        }
    }
}

impl fmt::Debug for ZoneConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneConfig")
            .field("size", &self.size)
            .field("max_order", &self.max_order)
            .field("pageblock_order", &self.pageblock_order)
            .field("cma_size", &self.cma_size)
            .field("cma_policy", &self.cma_policy)
            .field("pcp", &self.pcp)
            .field("reserve_pageblocks", &self.reserve_pageblocks)
            .field("fixes", &self.fixes)
            .field("race_hook", &self.race_hook.is_some())
            .field("backend", &self.backend)
            .field("pcp_mode", &self.pcp_mode)
            .field("ledger", &self.ledger)
            .field("min_free_kbytes", &self.min_free_kbytes)
            .field("trace", &self.trace)
            .field("pcp_high_order", &self.pcp_high_order)
            .finish()
    }
}

impl ZoneConfig {
    /// The configuration for allocator users (a 1 GiB zone like [`ZoneConfig::default`]): every
    /// fix on ([`Fixes::ALL`], so the free counts stay exact whatever isolation does) and
    /// high-order pcps ([`pcp_high_order`](Self::pcp_high_order)), so that allocations and
    /// frees up to order 3 scale with threads. [`ZoneConfig::default`] is the 3.17 model the
    /// race experiments use instead.
    pub fn allocator() -> Self {
        ZoneConfig {
            fixes: Fixes::ALL,
            pcp_high_order: true,
            ..ZoneConfig::default()
        }
    }

    /// A tiny geometry for loom models and property tests: `max_order` 3 (top blocks of 4
    /// pages), `pageblock_order` 1 (pageblocks of 2 pages), `pages` pages on the heap, no
    /// reserve blocks, pcp `high` 4 / `batch` 2.
    pub fn tiny(pages: usize) -> Self {
        ZoneConfig {
            size: pages * PAGE_SIZE,
            max_order: 3,
            pageblock_order: 1,
            pcp: Some(PcpConfig { high: 4, batch: 2 }),
            reserve_pageblocks: Some(0),
            backend: Backend::Heap,
            ..ZoneConfig::default()
        }
    }

    /// Validate and derive the geometry.
    pub fn geometry(&self) -> Result<Geometry, ConfigError> {
        if !(1..=MAX_SUPPORTED_ORDER).contains(&self.max_order) {
            return Err(ConfigError::MaxOrderOutOfRange {
                max_order: self.max_order,
            });
        }
        if self.pageblock_order >= self.max_order {
            return Err(ConfigError::PageblockOrderOutOfRange {
                pageblock_order: self.pageblock_order,
                max_order: self.max_order,
            });
        }
        if self.size == 0 {
            return Err(ConfigError::ZeroSize);
        }
        let block = PAGE_SIZE << (self.max_order - 1);
        if self.size % block != 0 {
            return Err(ConfigError::SizeNotMultiple {
                size: self.size,
                block,
            });
        }
        let nr_pages = (self.size / PAGE_SIZE) as u64;
        // Leave room for the list sentinels after the last pfn in a u32 index.
        if nr_pages > (u32::MAX as u64) / 2 {
            return Err(ConfigError::TooManyPages { pages: nr_pages });
        }
        if self.cma_size > self.size {
            return Err(ConfigError::CmaTooLarge {
                cma: self.cma_size,
                arena: self.size,
            });
        }
        if self.cma_size % block != 0 {
            return Err(ConfigError::CmaUnaligned {
                cma: self.cma_size,
                align: block,
            });
        }
        let cpus = match self.pcp_mode {
            PcpMode::PerCpu(n) if !(1..=MAX_CPUS).contains(&n) => {
                return Err(ConfigError::BadCpus { cpus: n });
            }
            PcpMode::PerCpu(n) => Some(n),
            PcpMode::PerThread => None,
        };
        // num_online_cpus() for stat_threshold: the modelled CPUs, or this machine's.
        let online_cpus = cpus.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get().min(MAX_CPUS as usize) as u32)
        });
        let managed = nr_pages;
        let stat_threshold = crate::vmstat::calculate_normal_threshold(managed, online_cpus);
        let (high, batch) = match self.pcp {
            Some(p) => {
                // nr_pages <= u32::MAX / 2 (checked above), so high + batch cannot overflow.
                let max_high = (nr_pages as u32).max(PCP_BATCH_MAX);
                if p.high > max_high || p.batch == 0 || p.batch > p.high.clamp(1, PCP_BATCH_MAX) {
                    return Err(ConfigError::BadPcp {
                        high: p.high,
                        batch: p.batch,
                    });
                }
                (p.high, p.batch)
            }
            None => {
                let b = zone_batchsize(managed);
                (6 * b, b.max(1))
            }
        };
        let wmark = match self.min_free_kbytes {
            Some(kbytes) => Watermarks::from_min_free_kbytes(kbytes),
            None => Watermarks::for_single_zone(managed),
        };
        let pageblock_nr_pages = 1u64 << self.pageblock_order;
        let cma_pages = (self.cma_size / PAGE_SIZE) as u64;
        let nr_pageblocks = nr_pages >> self.pageblock_order;
        let reserve = match self.reserve_pageblocks {
            Some(r) if r > 0 && self.fixes.contains(Fixes::NO_RESERVE) => {
                return Err(ConfigError::ReserveRemoved { reserve: r });
            }
            Some(r) => r,
            None if self.fixes.contains(Fixes::NO_RESERVE) => 0,
            None => (wmark.min.div_ceil(pageblock_nr_pages)).min(2),
        }
        .min(nr_pageblocks - (cma_pages >> self.pageblock_order));
        Ok(Geometry {
            nr_pages,
            max_order: self.max_order,
            pageblock_order: self.pageblock_order,
            pageblock_nr_pages,
            nr_pageblocks,
            cma_start: Pfn(nr_pages - cma_pages),
            cma_pages,
            pcp_high: high,
            pcp_batch: batch,
            pcp_high_order: self.pcp_high_order,
            reserve_pageblocks: reserve,
            wmark,
            cpus,
            online_cpus,
            stat_threshold,
            percpu_drift_mark: percpu_drift_mark(&wmark, online_cpus, stat_threshold),
        })
    }
}

/// 3.17's `refresh_zone_stat_thresholds`: `percpu_drift_mark`.
pub(crate) fn percpu_drift_mark(wmark: &Watermarks, online_cpus: u32, stat_threshold: u8) -> u64 {
    let max_drift = u64::from(online_cpus) * u64::from(stat_threshold);
    let tolerate_drift = wmark.low - wmark.min;
    if max_drift > tolerate_drift {
        wmark.high + max_drift
    } else {
        0
    }
}

/// 3.17's `zone_batchsize`: about a quarter of a megabyte's worth of pages per refill, capped
/// at 512 KiB, rounded to `2^n - 1`.
fn zone_batchsize(managed_pages: u64) -> u32 {
    let mut batch = managed_pages / 1024;
    if batch * PAGE_SIZE as u64 > 512 * 1024 {
        batch = (512 * 1024) / PAGE_SIZE as u64;
    }
    batch /= 4;
    if batch < 1 {
        batch = 1;
    }
    let b = batch + batch / 2;
    let pow = 1u64 << (63 - b.leading_zeros());
    (pow - 1) as u32
}

/// The zone watermarks (pages), as 3.17's `__setup_per_zone_wmarks` computes them for a
/// single-zone node: what `Gfp` allocations, kswapd and compaction check (the plain API
/// ignores them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermarks {
    /// `WMARK_MIN`.
    pub min: u64,
    /// `WMARK_LOW` = min + min/4.
    pub low: u64,
    /// `WMARK_HIGH` = min + min/2.
    pub high: u64,
}

impl Watermarks {
    /// `min_free_kbytes = int_sqrt(lowmem_kbytes * 16)` clamped to 128..=65536, as pages.
    pub fn for_single_zone(managed_pages: u64) -> Self {
        Watermarks::from_min_free_kbytes(min_free_kbytes_for(managed_pages))
    }

    /// `setup_per_zone_wmarks` for a one-zone node: `min` is `min_free_kbytes` in pages,
    /// `low` a quarter above it, `high` a half above it.
    pub fn from_min_free_kbytes(min_free_kbytes: u64) -> Self {
        let min = min_free_kbytes >> (crate::types::PAGE_SHIFT - 10);
        Watermarks {
            min,
            low: min + (min >> 2),
            high: min + (min >> 1),
        }
    }
}

/// `init_per_zone_wmark_min`'s formula: `int_sqrt(lowmem_kbytes * 16)`, clamped to
/// 128..=65536, for `lowmem_pages` pages of lowmem.
pub(crate) fn min_free_kbytes_for(lowmem_pages: u64) -> u64 {
    let kbytes = lowmem_pages * (PAGE_SIZE as u64 / 1024);
    isqrt(kbytes * 16).clamp(128, 65536)
}

pub(crate) fn isqrt(n: u64) -> u64 {
    let mut x = (n as f64).sqrt() as u64;
    while x * x > n {
        x -= 1;
    }
    while (x + 1) * (x + 1) <= n {
        x += 1;
    }
    x
}

/// A validated geometry, derived from a [`ZoneConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Pages in the zone (`spanned_pages` = `present_pages` = `managed_pages`).
    pub nr_pages: u64,
    /// `MAX_ORDER` (exclusive).
    pub max_order: u32,
    /// `pageblock_order`.
    pub pageblock_order: u32,
    /// `pageblock_nr_pages`.
    pub pageblock_nr_pages: u64,
    /// Number of pageblocks.
    pub nr_pageblocks: u64,
    /// First pfn of the CMA area (`nr_pages` when there is none).
    pub cma_start: Pfn,
    /// Pages in the CMA area.
    pub cma_pages: u64,
    /// pcp `high`.
    pub pcp_high: u32,
    /// pcp `batch`.
    pub pcp_batch: u32,
    /// Whether pcps cache high-order blocks ([`ZoneConfig::pcp_high_order`]).
    pub pcp_high_order: bool,
    /// Number of `Reserve` pageblocks.
    pub reserve_pageblocks: u64,
    /// Watermarks (from [`ZoneConfig::min_free_kbytes`]).
    pub wmark: Watermarks,
    /// The CPU count of [`PcpMode::PerCpu`], `None` in [`PcpMode::PerThread`].
    pub cpus: Option<u32>,
    /// `num_online_cpus()` for the vmstat thresholds: `cpus`, or this machine's CPU count.
    pub online_cpus: u32,
    /// vmstat's `stat_threshold` (3.17's `calculate_normal_threshold`, from the managed pages
    /// and the CPU count: this machine's in [`PcpMode::PerThread`]).
    pub stat_threshold: u8,
    /// `zone->percpu_drift_mark`: below it, kswapd's watermark checks add the per-CPU diffs
    /// (`high` + `online_cpus * stat_threshold` when that drift exceeds `low - min`, else 0).
    pub percpu_drift_mark: u64,
}

impl Geometry {
    /// Pages in a top-order block (`MAX_ORDER_NR_PAGES`).
    #[inline]
    pub const fn max_order_nr_pages(&self) -> u64 {
        1u64 << (self.max_order - 1)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_3_17_x86_64() {
        let g = ZoneConfig::default().geometry().unwrap();
        assert_eq!(g.nr_pages, 262_144);
        assert_eq!((g.pcp_batch, g.pcp_high), (31, 186));
        assert_eq!(g.pageblock_nr_pages, 512);
        assert_eq!(g.max_order_nr_pages(), 1024);
        assert_eq!(g.wmark.min, 1024);
        assert_eq!(g.reserve_pageblocks, 2);
    }

    #[test]
    fn bad_configs_are_typed_errors() {
        let c = |f: fn(&mut ZoneConfig)| {
            let mut c = ZoneConfig::default();
            f(&mut c);
            c.geometry().unwrap_err()
        };
        assert!(matches!(c(|c| c.size = 0), ConfigError::ZeroSize));
        assert!(matches!(
            c(|c| c.size = 4096),
            ConfigError::SizeNotMultiple { .. }
        ));
        assert!(matches!(
            c(|c| c.max_order = 0),
            ConfigError::MaxOrderOutOfRange { .. }
        ));
        assert!(matches!(
            c(|c| c.max_order = 40),
            ConfigError::MaxOrderOutOfRange { .. }
        ));
        assert!(matches!(
            c(|c| c.pageblock_order = 11),
            ConfigError::PageblockOrderOutOfRange { .. }
        ));
        assert!(matches!(
            c(|c| c.cma_size = 2 << 30),
            ConfigError::CmaTooLarge { .. }
        ));
        assert!(matches!(
            c(|c| c.cma_size = 4096),
            ConfigError::CmaUnaligned { .. }
        ));
        assert!(matches!(
            c(|c| c.pcp = Some(PcpConfig { high: 4, batch: 0 })),
            ConfigError::BadPcp { .. }
        ));
        assert!(matches!(
            c(|c| c.size = 1 << 46),
            ConfigError::TooManyPages { .. }
        ));
    }

    fn pcp(cfg: ZoneConfig, high: u32, batch: u32) -> Result<Geometry, ConfigError> {
        ZoneConfig {
            pcp: Some(PcpConfig { high, batch }),
            ..cfg
        }
        .geometry()
    }

    #[track_caller]
    fn assert_bad_pcp(cfg: ZoneConfig, high: u32, batch: u32) {
        match pcp(cfg, high, batch) {
            Err(ConfigError::BadPcp { high: h, batch: b }) => assert_eq!((h, b), (high, batch)),
            other => panic!("high {high} batch {batch}: {other:?}"),
        }
    }

    #[test]
    fn pcp_batch_is_capped_at_page_shift_times_8() {
        assert_eq!(PCP_BATCH_MAX, 96);
        let z = ZoneConfig::default; // 262,144 pages
        let g = pcp(z(), 1000, 96).unwrap();
        assert_eq!((g.pcp_high, g.pcp_batch), (1000, 96));
        assert_bad_pcp(z(), 1000, 97);
        assert_bad_pcp(z(), 1000, u32::MAX);
        assert_bad_pcp(z(), 1000, 0);
        // batch never exceeds high (or 1 when high is 0).
        assert!(pcp(z(), 0, 1).is_ok());
        assert_bad_pcp(z(), 0, 2);
        assert!(pcp(z(), 50, 50).is_ok());
        assert_bad_pcp(z(), 50, 51);
    }

    #[test]
    fn pcp_high_is_bounded_by_the_zone() {
        let z = ZoneConfig::default; // 262,144 pages
        let g = pcp(z(), 262_144, 96).unwrap();
        assert_eq!(g.pcp_high, 262_144);
        assert_bad_pcp(z(), 262_145, 96);
        assert_bad_pcp(z(), u32::MAX, 1);
        assert_bad_pcp(z(), u32::MAX, u32::MAX);
        // A zone smaller than 96 pages still accepts high up to 96.
        let tiny = || ZoneConfig::tiny(8);
        assert!(pcp(tiny(), 96, 96).is_ok());
        assert_bad_pcp(tiny(), 97, 1);
        // The largest zone the geometry accepts: high up to its page count, and high + batch
        // still fits in a u32.
        let huge = || ZoneConfig {
            size: (u32::MAX as usize / 2 + 1 - 1024) * PAGE_SIZE,
            ..ZoneConfig::default()
        };
        let n = huge().geometry().unwrap().nr_pages as u32;
        let g = pcp(huge(), n, 96).unwrap();
        assert!(g.pcp_high.checked_add(g.pcp_batch).is_some());
        assert_bad_pcp(huge(), n + 1, 96);
    }

    #[test]
    fn every_shipped_pcp_geometry_still_validates() {
        // ZoneConfig::tiny (high 4, batch 2) down to a single page.
        for pages in [1, 4, 8, 16, 64] {
            let g = ZoneConfig {
                max_order: 1,
                pageblock_order: 0,
                ..ZoneConfig::tiny(pages)
            }
            .geometry()
            .unwrap();
            assert_eq!((g.pcp_high, g.pcp_batch), (4, 2));
        }
        assert!(ZoneConfig::tiny(8).geometry().is_ok());
        // The tests' overrides on 16 and 32 MiB zones and on tiny ones.
        let mib = |m: usize| ZoneConfig {
            size: m << 20,
            ..ZoneConfig::default()
        };
        for (high, batch) in [(8, 4), (64, 16), (186, 31)] {
            assert!(pcp(mib(16), high, batch).is_ok(), "{high}/{batch}");
        }
        for (high, batch) in [(8, 4), (32, 8)] {
            assert!(pcp(ZoneConfig::tiny(64), high, batch).is_ok());
        }
        // cma_stress's percpu_pagelist_fraction = 8 on 1 GiB: high 32768, batch 96.
        assert!(pcp(ZoneConfig::default(), 32_768, 96).is_ok());
        // The computed defaults, small to large zones.
        for m in [4, 16, 512, 1024, 4 << 20] {
            let g = mib(m).geometry().unwrap();
            assert!(g.pcp_batch <= 31 && g.pcp_high <= 186, "{m} MiB: {g:?}");
        }
    }
}
