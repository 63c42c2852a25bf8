//! Typed errors. Every bad input gets one of these and leaves the allocator intact.

use crate::types::{Migratetype, Order, Pfn};
use core::fmt;

/// Why a [`ZoneConfig`](crate::ZoneConfig) was refused or the arena could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The arena size is zero.
    ZeroSize,
    /// The arena size is not a multiple of the top-order block.
    SizeNotMultiple {
        /// Requested arena size in bytes.
        size: usize,
        /// Bytes in one top-order block (`2^(max_order-1)` pages).
        block: usize,
    },
    /// `max_order` is outside `1..=MAX_SUPPORTED_ORDER`.
    MaxOrderOutOfRange {
        /// The requested `max_order`.
        max_order: u32,
    },
    /// `pageblock_order` is not below `max_order`.
    PageblockOrderOutOfRange {
        /// The requested `pageblock_order`.
        pageblock_order: u32,
        /// The requested `max_order`.
        max_order: u32,
    },
    /// The arena has more pages than page frame numbers can address.
    TooManyPages {
        /// Pages requested.
        pages: u64,
    },
    /// The CMA area does not fit in the arena.
    CmaTooLarge {
        /// Requested CMA bytes.
        cma: usize,
        /// Arena bytes.
        arena: usize,
    },
    /// The CMA size is not a multiple of the top-order block (CMA areas are aligned to
    /// `max(MAX_ORDER_NR_PAGES, pageblock_nr_pages)`, as 3.17 requires).
    CmaUnaligned {
        /// Requested CMA bytes.
        cma: usize,
        /// Required alignment in bytes.
        align: usize,
    },
    /// The pcp sizes are out of bounds: `high` above max(pages in the zone, 96), or `batch`
    /// outside `1..=min(max(high, 1), 96)` (see [`PcpConfig`](crate::PcpConfig)).
    BadPcp {
        /// Requested `high`.
        high: u32,
        /// Requested `batch`.
        batch: u32,
    },
    /// [`PcpMode::PerCpu`](crate::PcpMode::PerCpu) with 0 CPUs or more than
    /// [`MAX_CPUS`](crate::MAX_CPUS).
    BadCpus {
        /// Requested CPU count.
        cpus: u32,
    },
    /// `reserve_pageblocks` asks for `Reserve` pageblocks with fixes that include
    /// [`Fixes::NO_RESERVE`](crate::Fixes::NO_RESERVE) (kernels from 4.4 on have none).
    ReserveRemoved {
        /// The requested number of `Reserve` pageblocks.
        reserve: u64,
    },
    /// The heap-backend arena ([`Backend::Heap`](crate::Backend::Heap)) could not be
    /// allocated (the allocator refused a zeroed, page-aligned block of this size).
    ArenaAlloc {
        /// Bytes asked for (the arena size).
        bytes: usize,
    },
    /// The side tables (page metadata) could not be allocated.
    MetadataAlloc {
        /// Bytes asked for.
        bytes: usize,
    },
    /// The anonymous mapping for the arena failed.
    Mmap(std::io::Error),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroSize => write!(f, "arena size is zero"),
            ConfigError::SizeNotMultiple { size, block } => write!(
                f,
                "arena size {size} is not a multiple of the top-order block ({block} bytes)"
            ),
            ConfigError::MaxOrderOutOfRange { max_order } => write!(
                f,
                "max_order {max_order} out of range 1..={}",
                crate::types::MAX_SUPPORTED_ORDER
            ),
            ConfigError::PageblockOrderOutOfRange {
                pageblock_order,
                max_order,
            } => write!(
                f,
                "pageblock_order {pageblock_order} must be below max_order {max_order}"
            ),
            ConfigError::TooManyPages { pages } => write!(f, "{pages} pages is too many"),
            ConfigError::CmaTooLarge { cma, arena } => {
                write!(
                    f,
                    "CMA area of {cma} bytes does not fit in an arena of {arena}"
                )
            }
            ConfigError::CmaUnaligned { cma, align } => write!(
                f,
                "CMA size {cma} is not a multiple of the CMA alignment ({align} bytes)"
            ),
            ConfigError::BadPcp { high, batch } => {
                write!(
                    f,
                    "pcp high {high} / batch {batch} out of bounds: high must be at most the \
                     zone's page count or 96, whichever is larger, and batch in \
                     1..=min(max(high, 1), 96)"
                )
            }
            ConfigError::BadCpus { cpus } => write!(
                f,
                "PcpMode::PerCpu({cpus}): the CPU count must be in 1..={}",
                crate::types::MAX_CPUS
            ),
            ConfigError::ArenaAlloc { bytes } => {
                write!(
                    f,
                    "could not allocate the arena ({bytes} bytes on the heap)"
                )
            }
            ConfigError::ReserveRemoved { reserve } => write!(
                f,
                "{reserve} Reserve pageblocks requested, but the fixes include no-reserve \
                 (MIGRATE_RESERVE was removed in 4.4)"
            ),
            ConfigError::MetadataAlloc { bytes } => {
                write!(f, "could not allocate {bytes} bytes of page metadata")
            }
            ConfigError::Mmap(e) => write!(f, "mmap of the arena failed: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Mmap(e) => Some(e),
            _ => None,
        }
    }
}

/// Why an allocation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllocError {
    /// The order is not below the zone's `max_order`.
    BadOrder {
        /// The requested order.
        order: Order,
        /// The zone's `max_order` (exclusive).
        max_order: u32,
    },
    /// Only `Unmovable`, `Reclaimable` and `Movable` can be requested.
    BadMigratetype(Migratetype),
    /// No free block of that order is left, even after draining every pcp.
    NoMemory {
        /// The requested order.
        order: Order,
        /// The requested migratetype.
        migratetype: Migratetype,
    },
    /// A [`Gfp`](crate::Gfp) allocation failed after the slow path (watermarks, kswapd,
    /// direct reclaim, the pcp drain): where 3.17 would invoke the OOM killer.
    OutOfMemory {
        /// The requested order.
        order: Order,
        /// The request's flags.
        gfp: crate::Gfp,
        /// `__GFP_NOWARN` was set (the kernel would print no allocation-failure message).
        quiet: bool,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::BadOrder { order, max_order } => {
                write!(f, "{order} is not below max_order {max_order}")
            }
            AllocError::BadMigratetype(mt) => {
                write!(f, "cannot allocate with migratetype {mt}")
            }
            AllocError::NoMemory { order, migratetype } => {
                write!(f, "out of memory for an {order} {migratetype} allocation")
            }
            AllocError::OutOfMemory { order, gfp, .. } => {
                write!(f, "page allocation failure: {order}, mode:{gfp}")
            }
        }
    }
}

impl std::error::Error for AllocError {}

/// Why a pfn-level free was refused. The allocator is unchanged when this is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FreeError {
    /// The pfn is not inside this zone.
    Foreign(Pfn),
    /// The order is not below the zone's `max_order`.
    BadOrder(Order),
    /// The pfn is not aligned to the order it is freed with.
    Unaligned {
        /// The pfn.
        pfn: Pfn,
        /// The order given.
        order: Order,
    },
    /// The page heads an allocation of a different order.
    WrongOrder {
        /// The pfn.
        pfn: Pfn,
        /// The order given.
        order: Order,
        /// The order it was allocated with.
        allocated: Order,
    },
    /// The page was freed already and has not been allocated as a block head since.
    DoubleFree(Pfn),
    /// The page does not head an allocation and was never freed as one (a free page, a tail
    /// page of a block, or a page that was never handed out).
    NotAllocated(Pfn),
    /// The page is offline (memory hot-remove).
    Offline(Pfn),
    /// The block is owned by a live handle ([`Pages`](crate::Pages),
    /// [`MovablePages`](crate::MovablePages), [`CmaPages`](crate::CmaPages)), or held by the
    /// allocator on its way elsewhere: only its owner frees it.
    HandleOwned(Pfn),
    /// The page belongs to a CMA allocation handed to the pfn API
    /// ([`CmaPages::into_pfn`](crate::CmaPages::into_pfn)): it goes back through
    /// [`Cma::release_pfn`](crate::Cma::release_pfn), which also clears the area's bitmap.
    CmaAllocation(Pfn),
}

impl fmt::Display for FreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FreeError::Foreign(pfn) => write!(f, "{pfn} is not in this zone"),
            FreeError::BadOrder(order) => write!(f, "{order} is out of range"),
            FreeError::Unaligned { pfn, order } => write!(f, "{pfn} is not aligned to {order}"),
            FreeError::WrongOrder {
                pfn,
                order,
                allocated,
            } => write!(f, "{pfn} freed as {order} but allocated as {allocated}"),
            FreeError::DoubleFree(pfn) => write!(f, "double free of {pfn}"),
            FreeError::NotAllocated(pfn) => write!(f, "{pfn} is not an allocated block head"),
            FreeError::Offline(pfn) => write!(f, "{pfn} is offline"),
            FreeError::HandleOwned(pfn) => {
                write!(
                    f,
                    "{pfn} is owned by a live handle; only the handle frees it"
                )
            }
            FreeError::CmaAllocation(pfn) => write!(
                f,
                "{pfn} belongs to a CMA allocation; release it with Cma::release_pfn"
            ),
        }
    }
}

impl std::error::Error for FreeError {}

/// Why an isolation, test, offline or online request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IsolateError {
    /// `start` or `end` is not aligned to a pageblock (3.17 `BUG_ON`s here; we refuse).
    Unaligned {
        /// Range start.
        start: Pfn,
        /// Range end (exclusive).
        end: Pfn,
        /// Required alignment in pages.
        align: u64,
    },
    /// The range is empty, reversed, or not inside the zone.
    OutOfZone {
        /// Range start.
        start: Pfn,
        /// Range end (exclusive).
        end: Pfn,
    },
    /// A pageblock in the range is already isolated (overlapping isolation requests).
    AlreadyIsolated(Pfn),
    /// `has_unmovable_pages`: the pageblock at this pfn holds allocated unmovable pages
    /// (`-EBUSY`).
    Busy(Pfn),
    /// `test_pages_isolated`: the page at this pfn is not a free page on an isolated
    /// pageblock (`-EBUSY`).
    NotIsolated(Pfn),
    /// The migratetype to restore on un-isolation must be a real type (not `Isolate`).
    BadMigratetype(Migratetype),
    /// `online_pages`: the page at this pfn is not offline.
    NotOffline(Pfn),
    /// `offline_pages`: the page at this pfn is already offline.
    AlreadyOffline(Pfn),
}

impl fmt::Display for IsolateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IsolateError::Unaligned { start, end, align } => write!(
                f,
                "range [{}, {}) is not aligned to {align} pages",
                start.0, end.0
            ),
            IsolateError::OutOfZone { start, end } => {
                write!(
                    f,
                    "range [{}, {}) is empty or outside the zone",
                    start.0, end.0
                )
            }
            IsolateError::AlreadyIsolated(p) => write!(f, "pageblock at {p} is already isolated"),
            IsolateError::Busy(p) => write!(f, "pageblock at {p} holds unmovable pages"),
            IsolateError::NotIsolated(p) => write!(f, "{p} is not a free isolated page"),
            IsolateError::BadMigratetype(mt) => write!(f, "cannot restore migratetype {mt}"),
            IsolateError::NotOffline(p) => write!(f, "{p} is not offline"),
            IsolateError::AlreadyOffline(p) => write!(f, "{p} is already offline"),
        }
    }
}

impl std::error::Error for IsolateError {}

/// Why a compaction request was refused. The zone is untouched when this is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CompactError {
    /// The order is not below the zone's `max_order`.
    BadOrder {
        /// The requested order.
        order: Order,
        /// The zone's `max_order` (exclusive).
        max_order: u32,
    },
}

impl fmt::Display for CompactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompactError::BadOrder { order, max_order } => {
                write!(
                    f,
                    "cannot compact for {order}: not below max_order {max_order}"
                )
            }
        }
    }
}

impl std::error::Error for CompactError {}
