//! Allocation flags as 3.17 has them: the caller's [`Gfp`] mask (`gfp_t`, `include/linux/gfp.h`)
//! and the allocator's internal `ALLOC_*` flags (`mm/internal.h`), with the conversions
//! `allocflags_to_migratetype` and `gfp_to_alloc_flags`.
//!
//! Only the bits this allocator acts on exist: the migratetype bits, `__GFP_HIGH`, `__GFP_WAIT`
//! (may reclaim and compact), `__GFP_IO` / `__GFP_FS` (compaction and the OOM path test them),
//! `__GFP_NOWARN`, `__GFP_NORETRY`, `__GFP_NO_KSWAPD`, `__GFP_MEMALLOC` / `__GFP_NOMEMALLOC`,
//! and `__GFP_COMP` (a compound page: what makes a movable block of [`Gfp::GFP_TRANSHUGE`] a
//! transparent huge page that `alloc_contig_range` cannot migrate).

use crate::types::Migratetype;
use core::fmt;

/// A `gfp_t` mask: what the caller allows the allocator to do and which migratetype it wants.
///
/// ```
/// use pagealloc::{Gfp, Migratetype};
/// assert_eq!(Gfp::GFP_KERNEL.migratetype(), Migratetype::Unmovable);
/// assert_eq!(Gfp::GFP_HIGHUSER_MOVABLE.migratetype(), Migratetype::Movable);
/// assert!(Gfp::GFP_KERNEL.can_wait() && !Gfp::GFP_ATOMIC.can_wait());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Gfp(u32);

impl Gfp {
    /// `__GFP_HIGH`: may dip further below the min watermark (`ALLOC_HIGH`).
    pub const HIGH: Gfp = Gfp(0x20);
    /// `__GFP_IO`: may start I/O (carried, not acted on).
    pub const IO: Gfp = Gfp(0x40);
    /// `__GFP_FS`: may call into the filesystem (carried, not acted on).
    pub const FS: Gfp = Gfp(0x80);
    /// `__GFP_WAIT`: may sleep: direct reclaim and compaction are allowed.
    pub const WAIT: Gfp = Gfp(0x10);
    /// `__GFP_NOWARN`: fail quietly (no allocation-failure message).
    pub const NOWARN: Gfp = Gfp(0x200);
    /// `__GFP_NORETRY`: give up after one round of reclaim.
    pub const NORETRY: Gfp = Gfp(0x1000);
    /// `__GFP_MEMALLOC`: ignore the watermarks (`ALLOC_NO_WATERMARKS`).
    pub const MEMALLOC: Gfp = Gfp(0x2000);
    /// `__GFP_COMP`: a compound page. A movable block allocated with it is one compound page
    /// (a transparent huge page with [`Gfp::GFP_TRANSHUGE`]): `alloc_contig_range` skips it
    /// instead of migrating it (3.17's `PageTransHuge` test), so a range holding it is busy.
    pub const COMP: Gfp = Gfp(0x4000);
    /// `__GFP_NOMEMALLOC`: never use the emergency reserves (no `ALLOC_NO_WATERMARKS`, and
    /// no `ALLOC_HARDER` for an atomic request), even inside reclaim or with
    /// `__GFP_MEMALLOC`.
    pub const NOMEMALLOC: Gfp = Gfp(0x10000);
    /// `__GFP_HARDWALL` (carried, not acted on: there are no cpusets).
    pub const HARDWALL: Gfp = Gfp(0x20000);
    /// `__GFP_RECLAIMABLE`: a reclaimable (slab-like) allocation.
    pub const RECLAIMABLE: Gfp = Gfp(0x80000);
    /// `__GFP_NO_KSWAPD`: do not wake kswapd.
    pub const NO_KSWAPD: Gfp = Gfp(0x40_0000);
    /// `__GFP_MOVABLE`: a movable allocation (may use CMA).
    pub const MOVABLE: Gfp = Gfp(0x08);

    /// `GFP_ATOMIC`: `__GFP_HIGH`: cannot sleep, may use part of the reserve.
    pub const GFP_ATOMIC: Gfp = Gfp::HIGH;
    /// `GFP_NOWAIT`: cannot sleep, no access to the reserve (`GFP_ATOMIC & ~__GFP_HIGH`).
    pub const GFP_NOWAIT: Gfp = Gfp(0);
    /// `GFP_NOIO`: `__GFP_WAIT`.
    pub const GFP_NOIO: Gfp = Gfp::WAIT;
    /// `GFP_NOFS`: `__GFP_WAIT | __GFP_IO`.
    pub const GFP_NOFS: Gfp = Gfp(Gfp::WAIT.0 | Gfp::IO.0);
    /// `GFP_KERNEL`: `__GFP_WAIT | __GFP_IO | __GFP_FS`, unmovable.
    pub const GFP_KERNEL: Gfp = Gfp(Gfp::WAIT.0 | Gfp::IO.0 | Gfp::FS.0);
    /// `GFP_USER`: `GFP_KERNEL | __GFP_HARDWALL`.
    pub const GFP_USER: Gfp = Gfp(Gfp::GFP_KERNEL.0 | Gfp::HARDWALL.0);
    /// `GFP_HIGHUSER_MOVABLE` (without `__GFP_HIGHMEM`, which a one-zone node ignores): user
    /// pages and page cache, movable.
    pub const GFP_HIGHUSER_MOVABLE: Gfp = Gfp(Gfp::GFP_USER.0 | Gfp::MOVABLE.0);
    /// `GFP_TRANSHUGE` (3.17 `include/linux/gfp.h`): `GFP_HIGHUSER_MOVABLE | __GFP_COMP |
    /// __GFP_NOMEMALLOC | __GFP_NORETRY | __GFP_NOWARN | __GFP_NO_KSWAPD`, what a transparent
    /// huge page fault allocates its order-9 page with (`alloc_hugepage_vma` with `defrag`;
    /// without it, `__GFP_WAIT` is cleared). The slow path tells it apart: it wakes no kswapd,
    /// compacts asynchronously only, reclaims once and never takes the OOM path.
    pub const GFP_TRANSHUGE: Gfp = Gfp(Gfp::GFP_HIGHUSER_MOVABLE.0
        | Gfp::COMP.0
        | Gfp::NOMEMALLOC.0
        | Gfp::NORETRY.0
        | Gfp::NOWARN.0
        | Gfp::NO_KSWAPD.0);
    /// `GFP_KERNEL | __GFP_RECLAIMABLE`: what a reclaimable slab cache allocates with.
    pub const GFP_KERNEL_RECLAIMABLE: Gfp = Gfp(Gfp::GFP_KERNEL.0 | Gfp::RECLAIMABLE.0);

    /// The raw bits (3.17's values).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Gfp) -> bool {
        self.0 & other.0 == other.0
    }

    /// `__GFP_WAIT` is set: the caller may sleep.
    pub const fn can_wait(self) -> bool {
        self.contains(Gfp::WAIT)
    }

    /// `self` without the bits of `other` (`gfp & ~other`).
    pub const fn without(self, other: Gfp) -> Gfp {
        Gfp(self.0 & !other.0)
    }

    /// `(gfp & GFP_TRANSHUGE) == GFP_TRANSHUGE`: the slow path's test for a transparent huge
    /// page fault (3.17 keeps their compaction asynchronous).
    pub const fn is_transhuge(self) -> bool {
        self.contains(Gfp::GFP_TRANSHUGE)
    }

    /// The mask of a 3.17 THP fault, `alloc_hugepage_gfpmask(defrag, 0)`: exactly
    /// [`Gfp::GFP_TRANSHUGE`], or `GFP_TRANSHUGE & ~__GFP_WAIT` when defrag is off for the VMA.
    /// `do_huge_pmd_anonymous_page` (and the COW of a huge page, `do_huge_pmd_wp_page`) pass it
    /// to `alloc_hugepage_vma` and count `thp_fault_alloc` / `thp_fault_fallback` on the
    /// outcome; khugepaged adds `__GFP_OTHER_NODE` (its `thp_collapse_alloc*`) and hugetlbfs
    /// uses another mask, so neither matches.
    pub const fn is_thp_fault(self) -> bool {
        self.without(Gfp::WAIT).0 == Gfp::GFP_TRANSHUGE.without(Gfp::WAIT).0
    }

    /// `oom_gfp_allowed` (3.17 `include/linux/oom.h`): `__GFP_FS` set and `__GFP_NORETRY`
    /// clear. Only such requests take the OOM path when reclaim makes no progress.
    pub const fn oom_allowed(self) -> bool {
        self.contains(Gfp::FS) && !self.contains(Gfp::NORETRY)
    }

    /// The mask the plain API's tracepoints print for a request of type `mt` (which takes no
    /// mask): the mobility bit alone.
    pub(crate) const fn for_migratetype(mt: Migratetype) -> Gfp {
        match mt {
            Migratetype::Movable => Gfp::MOVABLE,
            Migratetype::Reclaimable => Gfp::RECLAIMABLE,
            _ => Gfp(0),
        }
    }

    /// `allocflags_to_migratetype`: `__GFP_MOVABLE` → Movable, `__GFP_RECLAIMABLE` →
    /// Reclaimable, else Unmovable (both bits: Movable, as 3.17's bit arithmetic gives
    /// `MIGRATE_RESERVE`, which the slow path would not serve; refused here instead).
    pub const fn migratetype(self) -> Migratetype {
        if self.contains(Gfp::MOVABLE) {
            Migratetype::Movable
        } else if self.contains(Gfp::RECLAIMABLE) {
            Migratetype::Reclaimable
        } else {
            Migratetype::Unmovable
        }
    }
}

impl core::ops::BitOr for Gfp {
    type Output = Gfp;
    fn bitor(self, rhs: Gfp) -> Gfp {
        Gfp(self.0 | rhs.0)
    }
}

impl fmt::Debug for Gfp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gfp({:#x})", self.0)
    }
}

impl fmt::Display for Gfp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// The allocator's own flags (`ALLOC_*`, `mm/internal.h` in 3.17): which watermark to check
/// and how far below it a request may go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct AllocFlags(u32);

/// Which watermark an allocation checks (`alloc_flags & ALLOC_WMARK_MASK`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Wmark {
    Min = 0,
    Low = 1,
    High = 2,
}

impl AllocFlags {
    const WMARK_MASK: u32 = 0x03;
    /// No flags: what 3.17's compaction passes (`zone_watermark_ok(zone, order, mark, 0, 0)`),
    /// a check against the mark given, with free CMA pages not counted.
    pub(crate) const NONE: AllocFlags = AllocFlags(0);
    /// `ALLOC_NO_WATERMARKS`.
    pub(crate) const NO_WATERMARKS: AllocFlags = AllocFlags(0x04);
    /// `ALLOC_HARDER`: a quarter below the mark.
    pub(crate) const HARDER: AllocFlags = AllocFlags(0x10);
    /// `ALLOC_HIGH` (= `__GFP_HIGH`): half below the mark.
    pub(crate) const HIGH: AllocFlags = AllocFlags(0x20);
    /// `ALLOC_CMA`: free CMA pages count toward the mark (movable requests).
    pub(crate) const CMA: AllocFlags = AllocFlags(0x80);

    /// Check `w`, nothing else.
    pub(crate) const fn wmark(w: Wmark) -> AllocFlags {
        AllocFlags(w as u32)
    }

    /// The watermark to check, or `None` with `ALLOC_NO_WATERMARKS`.
    pub(crate) const fn which(self) -> Option<Wmark> {
        if self.0 & Self::NO_WATERMARKS.0 != 0 {
            return None;
        }
        Some(match self.0 & Self::WMARK_MASK {
            0 => Wmark::Min,
            1 => Wmark::Low,
            _ => Wmark::High,
        })
    }

    pub(crate) const fn contains(self, f: AllocFlags) -> bool {
        self.0 & f.0 == f.0
    }

    pub(crate) const fn with(self, f: AllocFlags) -> AllocFlags {
        AllocFlags(self.0 | f.0)
    }

    pub(crate) const fn without(self, f: AllocFlags) -> AllocFlags {
        AllocFlags(self.0 & !f.0)
    }

    /// The fast path's flags (`__alloc_pages_nodemask`): `ALLOC_WMARK_LOW`, and `ALLOC_CMA`
    /// for a movable request.
    pub(crate) const fn fast_path(mt: Migratetype) -> AllocFlags {
        let f = AllocFlags::wmark(Wmark::Low);
        if matches!(mt, Migratetype::Movable) {
            f.with(AllocFlags::CMA)
        } else {
            f
        }
    }

    /// `gfp_to_alloc_flags(gfp)`: `ALLOC_WMARK_MIN`, `ALLOC_HIGH` from `__GFP_HIGH`,
    /// `ALLOC_HARDER` for atomic requests (neither `__GFP_WAIT` nor `__GFP_NO_KSWAPD`) unless
    /// `__GFP_NOMEMALLOC`, `ALLOC_NO_WATERMARKS` for `__GFP_MEMALLOC` or inside reclaim
    /// (`PF_MEMALLOC`) unless `__GFP_NOMEMALLOC`, `ALLOC_CMA` for movable requests.
    pub(crate) fn from_gfp(gfp: Gfp, in_reclaim: bool) -> AllocFlags {
        let mut f = AllocFlags::wmark(Wmark::Min);
        if gfp.contains(Gfp::HIGH) {
            f = f.with(AllocFlags::HIGH);
        }
        let atomic = !gfp.contains(Gfp::WAIT) && !gfp.contains(Gfp::NO_KSWAPD);
        let nomemalloc = gfp.contains(Gfp::NOMEMALLOC);
        if atomic && !nomemalloc {
            f = f.with(AllocFlags::HARDER);
        }
        if !nomemalloc && (gfp.contains(Gfp::MEMALLOC) || in_reclaim) {
            f = f.with(AllocFlags::NO_WATERMARKS);
        }
        if matches!(gfp.migratetype(), Migratetype::Movable) {
            f = f.with(AllocFlags::CMA);
        }
        f
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn gfp_to_alloc_flags_as_3_17() {
        let k = AllocFlags::from_gfp(Gfp::GFP_KERNEL, false);
        assert_eq!(k.which(), Some(Wmark::Min));
        assert!(!k.contains(AllocFlags::HARDER) && !k.contains(AllocFlags::CMA));
        let a = AllocFlags::from_gfp(Gfp::GFP_ATOMIC, false);
        assert!(a.contains(AllocFlags::HIGH) && a.contains(AllocFlags::HARDER));
        let m = AllocFlags::from_gfp(Gfp::GFP_HIGHUSER_MOVABLE, false);
        assert!(m.contains(AllocFlags::CMA));
        assert_eq!(AllocFlags::from_gfp(Gfp::GFP_KERNEL, true).which(), None);
        assert_eq!(
            AllocFlags::fast_path(Migratetype::Movable).which(),
            Some(Wmark::Low)
        );
        assert_eq!(
            Gfp::GFP_KERNEL_RECLAIMABLE.migratetype(),
            Migratetype::Reclaimable
        );
    }

    /// `GFP_TRANSHUGE` has 3.17's bits (without `__GFP_HIGHMEM`, which the one-zone node
    /// drops from `GFP_HIGHUSER_MOVABLE` too), and `__GFP_NOMEMALLOC` keeps it off the
    /// reserves even inside reclaim; `defrag` off clears `__GFP_WAIT` and is still movable.
    #[test]
    fn gfp_transhuge_as_3_17() {
        assert_eq!(Gfp::GFP_TRANSHUGE.bits(), 0x43_52d8);
        assert!(Gfp::GFP_TRANSHUGE.is_transhuge());
        assert!(!Gfp::GFP_HIGHUSER_MOVABLE.is_transhuge());
        assert!(!Gfp::GFP_TRANSHUGE.oom_allowed() && Gfp::GFP_KERNEL.oom_allowed());
        assert!(!Gfp::GFP_NOFS.oom_allowed());
        assert_eq!(Gfp::GFP_TRANSHUGE.migratetype(), Migratetype::Movable);
        let t = AllocFlags::from_gfp(Gfp::GFP_TRANSHUGE, true);
        assert_eq!(t.which(), Some(Wmark::Min));
        assert!(t.contains(AllocFlags::CMA) && !t.contains(AllocFlags::HARDER));
        let nodefrag = Gfp::GFP_TRANSHUGE.without(Gfp::WAIT);
        assert!(!nodefrag.can_wait() && !nodefrag.is_transhuge());
        // Both are THP-fault masks; khugepaged's extra bit or a plain movable mask are not.
        assert!(Gfp::GFP_TRANSHUGE.is_thp_fault() && nodefrag.is_thp_fault());
        assert!(!Gfp::GFP_HIGHUSER_MOVABLE.is_thp_fault());
        assert!(!Gfp(Gfp::GFP_TRANSHUGE.0 | Gfp::HIGH.0).is_thp_fault());
        // Not atomic: __GFP_NO_KSWAPD is set, and __GFP_NOMEMALLOC forbids ALLOC_HARDER anyway.
        assert!(!AllocFlags::from_gfp(nodefrag, false).contains(AllocFlags::HARDER));
        let atomic_nomemalloc = Gfp::NOMEMALLOC;
        assert!(!AllocFlags::from_gfp(atomic_nomemalloc, false).contains(AllocFlags::HARDER));
        assert!(AllocFlags::from_gfp(Gfp(0), false).contains(AllocFlags::HARDER));
    }
}
