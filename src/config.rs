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
use crate::types::{MAX_SUPPORTED_ORDER, PAGE_SIZE, Pfn};
use core::fmt;

/// Where the arena's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// One anonymous private mapping (memmap2), the default.
    #[default]
    Mmap,
    /// A zeroed heap allocation (used by loom models and small tests).
    Heap,
}

/// pcp sizing overrides (`high`, `batch`), for tests that want caches on a tiny zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcpConfig {
    /// Free to the buddy lists when a pcp holds this many pages.
    pub high: u32,
    /// Pages moved per refill (`rmqueue_bulk`) and per high-watermark free.
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
            .finish()
    }
}

impl ZoneConfig {
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
        let managed = nr_pages;
        let (high, batch) = match self.pcp {
            Some(p) => {
                if p.batch == 0 || p.batch > p.high.max(1) {
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
        let wmark = Watermarks::for_single_zone(managed);
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
            reserve_pageblocks: reserve,
            wmark,
        })
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
/// single-zone node. Only shown in `zoneinfo()`; this library does not reclaim.
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
        let kbytes = managed_pages * (PAGE_SIZE as u64 / 1024);
        let min_free_kbytes = isqrt(kbytes * 16).clamp(128, 65536);
        let min = min_free_kbytes >> (crate::types::PAGE_SHIFT - 10);
        Watermarks {
            min,
            low: min + (min >> 2),
            high: min + (min >> 1),
        }
    }
}

fn isqrt(n: u64) -> u64 {
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
    /// Number of `Reserve` pageblocks.
    pub reserve_pageblocks: u64,
    /// Watermarks (informational).
    pub wmark: Watermarks,
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
}
