//! Newtypes for the allocator's ids: [`Pfn`], [`Order`], [`PageblockIdx`], and the
//! [`Migratetype`] enum in Linux 3.17's order and spelling.

use core::fmt;

/// Bytes per page (4 KiB, as x86-64).
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// The largest `max_order` a zone accepts (blocks of `2^19` pages = 2 GiB).
pub const MAX_SUPPORTED_ORDER: u32 = 20;

/// A page frame number: the index of a 4 KiB page inside the zone's arena.
///
/// The zone's first page is pfn 0 (`zone_start_pfn` is 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pfn(pub u64);

impl Pfn {
    /// The pfn as an index into per-page tables.
    #[inline]
    pub const fn idx(self) -> usize {
        self.0 as usize
    }

    /// The pfn `n` pages further on.
    #[inline]
    #[must_use]
    pub const fn add(self, n: u64) -> Pfn {
        Pfn(self.0 + n)
    }

    /// Whether this pfn is aligned to a block of `order`.
    #[inline]
    pub const fn is_aligned(self, order: Order) -> bool {
        self.0 & ((1u64 << order.0) - 1) == 0
    }
}

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pfn {:#x}", self.0)
    }
}

/// A buddy order: a block of order `o` is `2^o` pages, aligned to `2^o` pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Order(pub u32);

impl Order {
    /// Pages in a block of this order.
    #[inline]
    pub const fn nr_pages(self) -> u64 {
        1u64 << self.0
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "order {}", self.0)
    }
}

/// The index of a pageblock (`pfn >> pageblock_order`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PageblockIdx(pub u64);

impl PageblockIdx {
    /// The index as a table index.
    #[inline]
    pub const fn idx(self) -> usize {
        self.0 as usize
    }
}

/// Migratetypes with the values and order of Linux 3.17 built with `CONFIG_CMA` and
/// `CONFIG_MEMORY_ISOLATION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Migratetype {
    /// `MIGRATE_UNMOVABLE` (0): a pcp type.
    Unmovable = 0,
    /// `MIGRATE_RECLAIMABLE` (1): a pcp type.
    Reclaimable = 1,
    /// `MIGRATE_MOVABLE` (2): a pcp type.
    Movable = 2,
    /// `MIGRATE_RESERVE` (3, `= MIGRATE_PCPTYPES`): the min-watermark reserve blocks, the
    /// allocator's last resort.
    Reserve = 3,
    /// `MIGRATE_CMA` (4): only movable allocations; a CMA block only ever changes to and from
    /// `Isolate`.
    Cma = 4,
    /// `MIGRATE_ISOLATE` (5): "can't allocate from here". Free pages on its lists are not
    /// counted in `NR_FREE_PAGES`.
    Isolate = 5,
}

/// Number of pcp lists (`MIGRATE_PCPTYPES`).
pub const MIGRATE_PCPTYPES: usize = 3;
/// Number of migratetypes (`MIGRATE_TYPES`).
pub const MIGRATE_TYPES: usize = 6;

impl Migratetype {
    /// All six, in value order.
    pub const ALL: [Migratetype; MIGRATE_TYPES] = [
        Migratetype::Unmovable,
        Migratetype::Reclaimable,
        Migratetype::Movable,
        Migratetype::Reserve,
        Migratetype::Cma,
        Migratetype::Isolate,
    ];

    /// 3.17's `migratetype_names[]` entry.
    pub const fn name(self) -> &'static str {
        match self {
            Migratetype::Unmovable => "Unmovable",
            Migratetype::Reclaimable => "Reclaimable",
            Migratetype::Movable => "Movable",
            Migratetype::Reserve => "Reserve",
            Migratetype::Cma => "CMA",
            Migratetype::Isolate => "Isolate",
        }
    }

    /// The type with value `v`, if any.
    #[inline]
    pub const fn from_u8(v: u8) -> Option<Migratetype> {
        match v {
            0 => Some(Migratetype::Unmovable),
            1 => Some(Migratetype::Reclaimable),
            2 => Some(Migratetype::Movable),
            3 => Some(Migratetype::Reserve),
            4 => Some(Migratetype::Cma),
            5 => Some(Migratetype::Isolate),
            _ => None,
        }
    }

    /// The value as a table index.
    #[inline]
    pub const fn idx(self) -> usize {
        self as usize
    }

    /// `is_migrate_isolate(mt)`.
    #[inline]
    pub const fn is_isolate(self) -> bool {
        matches!(self, Migratetype::Isolate)
    }

    /// `is_migrate_cma(mt)`.
    #[inline]
    pub const fn is_cma(self) -> bool {
        matches!(self, Migratetype::Cma)
    }

    /// Whether a caller may ask for this type (`Unmovable`, `Reclaimable`, `Movable`).
    #[inline]
    pub const fn is_pcp_type(self) -> bool {
        (self as usize) < MIGRATE_PCPTYPES
    }

    /// The pcp list `free_hot_cold_page` puts a page of this pageblock type on: its own list
    /// for the three pcp types, Movable for `CMA` and `Reserve`; `None` for `Isolate` (such
    /// pages bypass the pcp).
    #[inline(always)]
    pub(crate) const fn pcp_list(self) -> Option<Migratetype> {
        match self {
            Migratetype::Isolate => None,
            mt if mt.is_pcp_type() => Some(mt),
            _ => Some(Migratetype::Movable),
        }
    }

    /// The 3.17 `fallbacks[]` row, without the terminating `Reserve`.
    ///
    /// Movable falls back to CMA first, then Reclaimable, then Unmovable. CMA, Reserve and
    /// Isolate have no fallbacks.
    pub const fn fallbacks(self) -> &'static [Migratetype] {
        match self {
            Migratetype::Unmovable => &[Migratetype::Reclaimable, Migratetype::Movable],
            Migratetype::Reclaimable => &[Migratetype::Unmovable, Migratetype::Movable],
            Migratetype::Movable => &[
                Migratetype::Cma,
                Migratetype::Reclaimable,
                Migratetype::Unmovable,
            ],
            _ => &[],
        }
    }
}

impl fmt::Display for Migratetype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Migratetype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Migratetype::ALL
            .into_iter()
            .find(|mt| mt.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown migratetype {s:?}"))
    }
}

/// The largest CPU count [`PcpMode::PerCpu`](crate::PcpMode::PerCpu) accepts (3.17's `NR_CPUS` default on x86_64 is
/// 64; distributions build with up to 8192).
pub const MAX_CPUS: u32 = 4096;
