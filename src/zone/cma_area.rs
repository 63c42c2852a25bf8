//! The zone's CMA area (`struct cma`): its range and its allocation bitmap under `cma->lock`
//! (a leaf lock, held only to search and set bits). State owned by the zone; `cma` holds the
//! allocation and release paths built on it.

use crate::config::Geometry;
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::types::Pfn;
use core::fmt;

/// The zone's CMA area: `[base_pfn, base_pfn + count)`, one bitmap bit per page
/// (`order_per_bit` 0).
pub struct CmaArea {
    base_pfn: Pfn,
    count: u64,
    /// `cma->lock` + `cma->bitmap`, and the pfn-owned ranges.
    bitmap: Mutex<CmaBitmaps>,
    /// `alloc_contig_range` calls made by `cma_alloc` that failed (each followed by a retry
    /// at the next aligned position, or by the allocation's failure). 3.17 counts nothing
    /// here; its `pr_debug("memory range at %p is busy, retrying")` marks each one.
    busy: AtomicU64,
}

/// The area's bitmaps, under `cma->lock`.
///
/// | `reserved` | `pfn_owned` | the page is |
/// | --- | --- | --- |
/// | 0 | 0 | not part of a CMA allocation |
/// | 1 | 0 | reserved by a [`Cma::alloc`](crate::Cma::alloc) in flight, or owned by a live [`CmaPages`](crate::CmaPages) |
/// | 1 | 1 | part of an allocation handed to the pfn API ([`CmaPages::into_pfn`](crate::CmaPagesIn::into_pfn)), which [`Cma::release_pfn`](crate::Cma::release_pfn) takes back |
///
/// The pages of a CMA allocation stay `HELD` in the page-state table until released, so the
/// zone's own pfn frees refuse them; `pfn_owned` is the ownership record `release_pfn`
/// checks and clears under the lock, so two releases of one range cannot both succeed.
struct CmaBitmaps {
    /// `cma->bitmap`.
    reserved: Vec<u64>,
    pfn_owned: Vec<u64>,
}

fn test_bit(bm: &[u64], i: u64) -> bool {
    bm[(i / 64) as usize] & (1 << (i % 64)) != 0
}

fn set_bits(bm: &mut [u64], start: u64, n: u64, on: bool) {
    for i in start..start + n {
        let w = &mut bm[(i / 64) as usize];
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }
}

impl CmaArea {
    pub(crate) fn new(geo: &Geometry) -> Option<CmaArea> {
        let words = geo.cma_pages.div_ceil(64) as usize;
        (geo.cma_pages > 0).then(|| CmaArea {
            base_pfn: geo.cma_start,
            count: geo.cma_pages,
            bitmap: Mutex::new(CmaBitmaps {
                reserved: vec![0; words],
                pfn_owned: vec![0; words],
            }),
            busy: AtomicU64::new(0),
        })
    }

    /// CMA attempts that failed since the area was made: every `alloc_contig_range` of a
    /// [`Cma::alloc`](crate::Cma::alloc) that did not serve it (a busy range: a block that
    /// could not be migrated, a page not free at `test_pages_isolated`), whether the
    /// allocation then succeeded at a later position or not.
    pub fn busy_attempts(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }

    /// Count one failed `alloc_contig_range` of `cma_alloc`.
    pub(crate) fn count_busy(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    /// First pfn of the area.
    pub fn base_pfn(&self) -> Pfn {
        self.base_pfn
    }

    /// Pages in the area.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Pages currently allocated from the area.
    pub fn used(&self) -> u64 {
        self.bitmap
            .lock()
            .reserved
            .iter()
            .map(|w| w.count_ones() as u64)
            .sum()
    }

    /// `bitmap_find_next_zero_area(bitmap, maxno, start, nr, mask)` + `bitmap_set`, under
    /// `cma->lock`.
    pub(crate) fn reserve(&self, start: u64, nr: u64, mask: u64) -> Option<Reservation<'_>> {
        let mut bm = self.bitmap.lock();
        let mut idx = (start + mask) & !mask;
        while idx + nr <= self.count {
            match (idx..idx + nr).rev().find(|&i| test_bit(&bm.reserved, i)) {
                None => {
                    set_bits(&mut bm.reserved, idx, nr, true);
                    return Some(Reservation {
                        area: self,
                        bitmap_no: idx,
                        nr,
                    });
                }
                Some(busy) => idx = (busy + 1 + mask) & !mask,
            }
        }
        None
    }

    /// The reservation of the allocated pages `[pfn, pfn + count)`, to clear their bits when
    /// the caller has freed them (`cma_release`'s `cma_clear_bitmap`; dropped also if a free
    /// unwinds).
    pub(crate) fn reservation_of(&self, pfn: Pfn, count: u64) -> Reservation<'_> {
        Reservation {
            area: self,
            bitmap_no: pfn.0 - self.base_pfn.0,
            nr: count,
        }
    }

    /// Hand the allocated pages `[pfn, pfn + count)` to the pfn API (`CmaPages::into_pfn`).
    pub(crate) fn mark_pfn_owned(&self, pfn: Pfn, count: u64) {
        let no = pfn.0 - self.base_pfn.0;
        set_bits(&mut self.bitmap.lock().pfn_owned, no, count, true);
    }

    /// Take `[pfn, pfn + count)` back from the pfn API, under `cma->lock`: true if every page
    /// of it was handed there (they no longer are), false (and nothing changes) otherwise.
    /// The caller checked that the range lies inside the area.
    pub(crate) fn take_pfn_owned(&self, pfn: Pfn, count: u64) -> bool {
        let no = pfn.0 - self.base_pfn.0;
        let mut bm = self.bitmap.lock();
        if !(no..no + count).all(|i| test_bit(&bm.pfn_owned, i)) {
            return false;
        }
        set_bits(&mut bm.pfn_owned, no, count, false);
        true
    }

    /// Whether `pfn` is a page of this area handed to the pfn API.
    pub(crate) fn is_pfn_owned(&self, pfn: Pfn) -> bool {
        pfn >= self.base_pfn
            && pfn.0 - self.base_pfn.0 < self.count
            && test_bit(&self.bitmap.lock().pfn_owned, pfn.0 - self.base_pfn.0)
    }
}

impl fmt::Debug for CmaArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CmaArea")
            .field("base_pfn", &self.base_pfn)
            .field("count", &self.count)
            .field("used", &self.used())
            .finish()
    }
}

/// Reserved bits of the area's bitmap, cleared when dropped (`cma_clear_bitmap`): after a
/// failed attempt, after a release, and if a race hook panics in between.
pub(crate) struct Reservation<'a> {
    area: &'a CmaArea,
    /// The first reserved bit (page offset in the area).
    pub(crate) bitmap_no: u64,
    nr: u64,
}

impl Reservation<'_> {
    /// Keep the bits reserved: a [`CmaPages`](crate::CmaPages) owns them now.
    pub(crate) fn keep(self) {
        core::mem::forget(self);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        set_bits(
            &mut self.area.bitmap.lock().reserved,
            self.bitmap_no,
            self.nr,
            false,
        );
    }
}
