//! CMA: the contiguous memory allocator (`mm/cma.c`) over `alloc_contig_range`
//! (`mm/page_alloc.c`), as in 3.17.
//!
//! # What it owns
//! [`CmaArea`]: the zone's CMA area (reserved at zone creation: top-order aligned, its
//! pageblocks typed `CMA` and freed to the `CMA` lists), with its allocation bitmap under
//! `cma->lock`. [`Cma`] is the handle for allocating from it; [`CmaPages`] an owned contiguous
//! allocation, released on drop.
//!
//! # Lock order
//! `cma->lock` is a leaf (held only to search and set the bitmap). The zone's `cma_mutex`
//! (3.17's global `cma_mutex`) serialises `alloc_contig_range` calls made for CMA; under it,
//! isolation takes the zone lock per pageblock and drains the pcps (registry → pcp → zone).
//!
//! # Kernel functions mirrored
//! | here | kernel |
//! | --- | --- |
//! | [`Cma::alloc`] | `cma_alloc` (bitmap search, retry at the next aligned position on `-EBUSY`) |
//! | [`Cma::release`] / dropping [`CmaPages`] | `cma_release` (`free_contig_range` through the pcp, then clear the bitmap) |
//! | [`Zone::alloc_contig_range`] | `alloc_contig_range`: isolate (top-order aligned), migrate, drain, find `outer_start`, `test_pages_isolated`, `isolate_freepages_range`, trim, undo |
//! | [`Zone::free_contig_range`] | `free_contig_range` |

use crate::config::Geometry;
use crate::error::{FreeError, IsolateError};
use crate::sync::Mutex;
use crate::types::{Migratetype, Order, PAGE_SIZE, Pfn};
use crate::zone::{Zone, ZoneInner};
use core::fmt;

/// Why a CMA allocation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CmaError {
    /// The zone has no CMA area.
    NoArea,
    /// A request for zero pages.
    ZeroCount,
    /// More pages than the area holds.
    TooLarge {
        /// Pages requested.
        count: u64,
        /// Pages in the area.
        area: u64,
    },
    /// The alignment order is not below the zone's `max_order`.
    BadAlign(Order),
    /// No free, aligned range of the bitmap could be allocated (every candidate was taken or
    /// busy).
    NoSpace {
        /// The last error from `alloc_contig_range`, if a range was tried.
        last: Option<IsolateError>,
    },
    /// The range handed to [`Cma::release`] was not allocated from this area.
    NotAllocated {
        /// First pfn of the range.
        pfn: Pfn,
        /// Pages in the range.
        count: u64,
    },
}

impl fmt::Display for CmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmaError::NoArea => write!(f, "the zone has no CMA area"),
            CmaError::ZeroCount => write!(f, "CMA request for zero pages"),
            CmaError::TooLarge { count, area } => {
                write!(f, "CMA request for {count} pages exceeds the area's {area}")
            }
            CmaError::BadAlign(o) => write!(f, "CMA alignment {o} is out of range"),
            CmaError::NoSpace { last } => match last {
                Some(e) => write!(f, "no CMA range could be allocated (last: {e})"),
                None => write!(f, "no free CMA range of that size"),
            },
            CmaError::NotAllocated { pfn, count } => {
                write!(f, "{count} pages at {pfn} are not a CMA allocation")
            }
        }
    }
}

impl std::error::Error for CmaError {}

/// The zone's CMA area: `[base_pfn, base_pfn + count)`, one bitmap bit per page
/// (`order_per_bit` 0).
pub struct CmaArea {
    base_pfn: Pfn,
    count: u64,
    /// `cma->lock` + `cma->bitmap`.
    bitmap: Mutex<Vec<u64>>,
}

impl CmaArea {
    pub(crate) fn new(geo: &Geometry) -> Option<CmaArea> {
        (geo.cma_pages > 0).then(|| CmaArea {
            base_pfn: geo.cma_start,
            count: geo.cma_pages,
            bitmap: Mutex::new(vec![0; geo.cma_pages.div_ceil(64) as usize]),
        })
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
            .iter()
            .map(|w| w.count_ones() as u64)
            .sum()
    }

    fn test(bm: &[u64], i: u64) -> bool {
        bm[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set_range(bm: &mut [u64], start: u64, n: u64, on: bool) {
        for i in start..start + n {
            let w = &mut bm[(i / 64) as usize];
            if on {
                *w |= 1 << (i % 64);
            } else {
                *w &= !(1 << (i % 64));
            }
        }
    }

    /// `bitmap_find_next_zero_area(bitmap, maxno, start, nr, mask)` + `bitmap_set`, under
    /// `cma->lock`.
    fn reserve(&self, start: u64, nr: u64, mask: u64) -> Option<u64> {
        let mut bm = self.bitmap.lock();
        let mut idx = (start + mask) & !mask;
        while idx + nr <= self.count {
            match (idx..idx + nr).rev().find(|&i| Self::test(&bm, i)) {
                None => {
                    Self::set_range(&mut bm, idx, nr, true);
                    return Some(idx);
                }
                Some(busy) => idx = (busy + 1 + mask) & !mask,
            }
        }
        None
    }

    /// `cma_clear_bitmap`.
    fn clear(&self, bitmap_no: u64, nr: u64) {
        Self::set_range(&mut self.bitmap.lock(), bitmap_no, nr, false);
    }

    fn is_allocated(&self, bitmap_no: u64, nr: u64) -> bool {
        let bm = self.bitmap.lock();
        (bitmap_no..bitmap_no + nr).all(|i| Self::test(&bm, i))
    }
}

impl ZoneInner {
    /// `alloc_contig_range(start, end, migratetype)` (3.17). On success the pages of
    /// `[start, end)` are allocated as order-0 pages; returns the pages migrated.
    pub(crate) fn alloc_contig_range(
        &self,
        start: Pfn,
        end: Pfn,
        mt: Migratetype,
    ) -> Result<u64, IsolateError> {
        self.check_range(start, end, 1)?;
        let align = self
            .geo
            .max_order_nr_pages()
            .max(self.geo.pageblock_nr_pages);
        let istart = Pfn(start.0 & !(align - 1));
        let iend = Pfn(end.0.div_ceil(align) * align);
        self.start_isolate_page_range(istart, iend, mt)?;
        let res = self.alloc_contig_isolated(start, end);
        self.undo_isolate_page_range(istart, iend, mt)
            .expect("the range was validated by start_isolate_page_range");
        res
    }

    /// The part of `alloc_contig_range` that runs while the range is isolated.
    fn alloc_contig_isolated(&self, start: Pfn, end: Pfn) -> Result<u64, IsolateError> {
        let migrated = self.migrate_range(start, end).map_err(IsolateError::Busy)?;
        self.drain_all_pages();
        // outer_start: the head of the free block holding `start` (3.17 does not check that
        // the block found really covers `start`; the test below catches it).
        let outer_start = {
            let zf = self.lock();
            let mut order = 0;
            let mut outer = start;
            while zf.buddy_order(outer).is_none() {
                order += 1;
                if order >= self.geo.max_order {
                    return Err(IsolateError::Busy(start));
                }
                outer = Pfn(outer.0 & !((1u64 << order) - 1));
            }
            outer
        };
        self.test_pages_isolated(outer_start, end)?;
        let outer_end = self.isolate_freepages_range(outer_start, end)?;
        // Give back the head and tail outside the range: onto the Isolate lists, uncounted.
        for p in (outer_start.0..start.0).chain(end.0..outer_end.0) {
            self.free_pages(Pfn(p), Order(0));
        }
        Ok(migrated)
    }

    /// `isolate_freepages_range(cc, start, end)` in strict mode: take every free block from
    /// `start` up to `end` off the lists (`__isolate_free_page`: no accounting on `Isolate`
    /// pageblocks) and split it into allocated order-0 pages. Returns `outer_end`. If a page
    /// on the way is not free, gives back what it took and fails.
    fn isolate_freepages_range(&self, start: Pfn, end: Pfn) -> Result<Pfn, IsolateError> {
        let mut grabbed = Vec::new();
        let pfn = {
            let mut zf = self.lock();
            let zf = &mut *zf;
            let mut pfn = start;
            while pfn < end {
                let Some(order) = zf.buddy_order(pfn) else {
                    break;
                };
                self.isolate_free_page(zf, pfn, order);
                grabbed.push((pfn, order));
                pfn = pfn.add(order.nr_pages());
            }
            // split_free_page: every page becomes an allocated order-0 page.
            for &(p, order) in &grabbed {
                for q in p.0..p.0 + order.nr_pages() {
                    self.state.set_alloc(Pfn(q), Order(0), false);
                }
            }
            pfn
        };
        if pfn < end {
            for (p, order) in grabbed {
                for q in p.0..p.0 + order.nr_pages() {
                    self.free_pages(Pfn(q), Order(0));
                }
            }
            return Err(IsolateError::NotIsolated(pfn));
        }
        Ok(pfn)
    }
}

/// The zone's CMA area, for allocating (see [`Zone::cma`]).
#[derive(Clone, Copy)]
pub struct Cma<'z> {
    zone: &'z Zone,
    area: &'z CmaArea,
}

impl<'z> Cma<'z> {
    /// The area.
    pub fn area(&self) -> &'z CmaArea {
        self.area
    }

    /// `cma_alloc(cma, count, align)`: `count` contiguous pages aligned to `2^align` pages,
    /// migrating movable pages out of the way. On `-EBUSY` retries at the next aligned
    /// position of the bitmap, as 3.17 does.
    pub fn alloc(&self, count: u64, align: Order) -> Result<CmaPages<'z>, CmaError> {
        let z = &self.zone.inner;
        if count == 0 {
            return Err(CmaError::ZeroCount);
        }
        if count > self.area.count {
            return Err(CmaError::TooLarge {
                count,
                area: self.area.count,
            });
        }
        if align.0 >= z.geo.max_order {
            return Err(CmaError::BadAlign(align));
        }
        let mask = (1u64 << align.0) - 1;
        let mut start = 0;
        let mut last = None;
        while let Some(bitmap_no) = self.area.reserve(start, count, mask) {
            let pfn = self.area.base_pfn.add(bitmap_no);
            let res = {
                let _cma_mutex = z.cma_mutex.lock();
                z.alloc_contig_range(pfn, pfn.add(count), Migratetype::Cma)
            };
            match res {
                Ok(_) => {
                    z.lock().events.cma_alloc_success += 1;
                    return Ok(CmaPages {
                        cma: *self,
                        pfn,
                        count,
                    });
                }
                Err(e) => {
                    self.area.clear(bitmap_no, count);
                    last = Some(e);
                    start = bitmap_no + mask + 1;
                }
            }
        }
        z.lock().events.cma_alloc_fail += 1;
        Err(CmaError::NoSpace { last })
    }

    /// `cma_release(cma, pages, count)`: free the pages (through the pcp, each keeping its
    /// CMA type) and clear their bitmap bits.
    pub fn release(&self, pages: CmaPages<'_>) {
        drop(pages);
    }

    /// Release a range by pfn (kernel style): fails if it is not an allocation of this area.
    pub fn release_pfn(&self, pfn: Pfn, count: u64) -> Result<(), CmaError> {
        let base = self.area.base_pfn.0;
        let in_area = pfn.0 >= base
            && count > 0
            && pfn
                .0
                .checked_add(count)
                .is_some_and(|end| end <= base + self.area.count);
        if !in_area || !self.area.is_allocated(pfn.0 - base, count) {
            return Err(CmaError::NotAllocated { pfn, count });
        }
        self.release_unchecked(pfn, count);
        Ok(())
    }

    fn release_unchecked(&self, pfn: Pfn, count: u64) {
        let z = &self.zone.inner;
        for p in pfn.0..pfn.0 + count {
            z.free_pages(Pfn(p), Order(0));
        }
        self.area.clear(pfn.0 - self.area.base_pfn.0, count);
    }
}

impl fmt::Debug for Cma<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cma")
            .field("base_pfn", &self.area.base_pfn)
            .field("count", &self.area.count)
            .finish()
    }
}

/// An owned CMA allocation: `count` contiguous pages, released on drop.
pub struct CmaPages<'z> {
    cma: Cma<'z>,
    pfn: Pfn,
    count: u64,
}

// SAFETY: a `CmaPages` owns its pages exclusively (the bitmap bits and the pages' allocated
// state are this handle's until it drops), like a `Box<[u8]>`.
unsafe impl Send for CmaPages<'_> {}
// SAFETY: `&CmaPages` only gives shared `&[u8]` access.
unsafe impl Sync for CmaPages<'_> {}

impl CmaPages<'_> {
    /// First pfn.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// Pages.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the `count` pages from `pfn` are inside the area (checked at allocation),
        // allocated to this handle alone, and contiguous in the arena; `&self` forbids writes.
        unsafe {
            core::slice::from_raw_parts(
                self.cma.zone.inner.arena.page_ptr(self.pfn),
                self.count as usize * PAGE_SIZE,
            )
        }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only reference.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.cma.zone.inner.arena.page_ptr(self.pfn),
                self.count as usize * PAGE_SIZE,
            )
        }
    }
}

impl Drop for CmaPages<'_> {
    fn drop(&mut self) {
        self.cma.release_unchecked(self.pfn, self.count);
    }
}

impl fmt::Debug for CmaPages<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CmaPages")
            .field("pfn", &self.pfn)
            .field("count", &self.count)
            .finish()
    }
}

impl Zone {
    /// The zone's CMA area, if it has one.
    pub fn cma(&self) -> Option<Cma<'_>> {
        self.inner.cma.as_ref().map(|area| Cma { zone: self, area })
    }

    /// `alloc_contig_range(start, end, mt)`: make `[start, end)` free and allocate it as
    /// order-0 pages (migrating movable blocks away). Returns the pages migrated. The caller
    /// owns the pages and gives them back with [`free_contig_range`](Self::free_contig_range).
    pub fn alloc_contig_range(
        &self,
        start: Pfn,
        end: Pfn,
        mt: Migratetype,
    ) -> Result<u64, IsolateError> {
        self.inner.alloc_contig_range(start, end, mt)
    }

    /// `free_contig_range(pfn, nr_pages)`: free `nr_pages` order-0 pages from `pfn`. Stops at
    /// the first page that is not an allocated order-0 page and returns its error.
    pub fn free_contig_range(&self, pfn: Pfn, nr_pages: u64) -> Result<(), FreeError> {
        let end = pfn.0.saturating_add(nr_pages);
        for p in pfn.0..end {
            self.inner.free_checked(Pfn(p), Order(0))?;
        }
        Ok(())
    }
}
