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
//! | [`Cma::release_pfn`] | `cma_release` of a range handed to the pfn API by [`CmaPages::into_pfn`] |
//! | [`Zone::alloc_contig_range`] | `alloc_contig_range`: isolate (top-order aligned), migrate, drain, find `outer_start`, `test_pages_isolated`, `isolate_freepages_range` (in `compaction`, as in 3.17), trim, undo |
//! | [`Zone::free_contig_range`] | `free_contig_range` |

use crate::error::{FreeError, IsolateError};
use crate::isolate::UndoIsolation;
use crate::page::Owner;
use crate::sync::Arc;
use crate::types::{Migratetype, Order, PAGE_SIZE, Pfn};
use crate::zone::FreeRest;
pub use crate::zone::cma_area::CmaArea;
use crate::zone::{Zone, ZoneInner};
use core::fmt;
use core::ops::Deref;

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

impl ZoneInner {
    /// Free the held pages `[pfn, pfn + count)` of `area` and clear their bitmap bits
    /// (cleared also if a race hook panics in a free; every page is still freed).
    fn cma_release_held(&self, area: &CmaArea, pfn: Pfn, count: u64) {
        let _bits = area.reservation_of(pfn, count);
        self.free_each((pfn.0..pfn.0 + count).map(|p| (Pfn(p), Order(0))));
        self.trace.cma_release(pfn, count);
    }

    /// `alloc_contig_range(start, end, migratetype)` (3.17). On success the pages of
    /// `[start, end)` are allocated as order-0 pages to `owner`; returns the pages migrated.
    ///
    /// If a race hook panics inside, the isolation is undone and every page this call took is
    /// given back before the panic leaves.
    pub(crate) fn alloc_contig_range(
        &self,
        start: Pfn,
        end: Pfn,
        mt: Migratetype,
        owner: Owner,
    ) -> Result<u64, IsolateError> {
        self.check_range(start, end, 1)?;
        let align = self
            .geo
            .max_order_nr_pages()
            .max(self.geo.pageblock_nr_pages);
        let istart = Pfn(start.0 & !(align - 1));
        let iend = Pfn(end.0.div_ceil(align) * align);
        self.start_isolate_page_range(istart, iend, mt)?;
        let isolated = UndoIsolation::new(self, istart, iend, mt);
        let res = self.alloc_contig_isolated(start, end);
        isolated.disarm();
        // The range's pages go back if the undo below unwinds before the caller has them.
        let taken = res
            .is_ok()
            .then(|| FreeRest::new(self, (start.0..end.0).map(|p| (Pfn(p), Order(0)))));
        self.undo_isolate_page_range(istart, iend, mt)
            .expect("the range was validated by start_isolate_page_range");
        if let Some(taken) = taken {
            taken.disarm();
            if owner == Owner::Pfn {
                for p in start.0..end.0 {
                    self.state.release_to_pfn(Pfn(p));
                }
            }
        }
        res
    }

    /// The part of `alloc_contig_range` that runs while the range is isolated. On success the
    /// pages of `[start, end)` are allocated order-0 pages, held.
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
        self.free_each(
            (outer_start.0..start.0)
                .chain(end.0..outer_end.0)
                .map(|p| (Pfn(p), Order(0))),
        );
        Ok(migrated)
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
    /// migrating movable pages out of the way.
    ///
    /// On a failure it tries the next candidate range of the bitmap, as 3.17 does on
    /// `-EBUSY`: the next aligned position (`start = bitmap_no + mask + 1`), also when the
    /// block that made the range busy (a transparent huge page, an unmovable page) lies in
    /// that range too, so every candidate holding it is isolated, migrated and undone in
    /// turn. A fully busy area is reported as [`CmaError::NoSpace`] after at most one attempt
    /// per aligned position, each bounded (see [`Zone::alloc_contig_range`]).
    /// [`CmaArea::busy_attempts`] counts the failed attempts.
    ///
    /// # Panics
    /// When called from a race hook that runs inside a `Cma::alloc` of the same zone (3.17's
    /// `cma_mutex` is not recursive) or at a window that allows no zone calls.
    pub fn alloc(&self, count: u64, align: Order) -> Result<CmaPages<'z>, CmaError> {
        let pfn = self.alloc_held(count, align)?;
        Ok(CmaPagesIn::new(self.zone, pfn, count))
    }

    /// [`alloc`](Self::alloc) up to the handle: the first pfn of `count` pages held for one.
    fn alloc_held(&self, count: u64, align: Order) -> Result<Pfn, CmaError> {
        let r = self.alloc_held_untraced(count, align);
        if let Ok(_) | Err(CmaError::NoSpace { .. }) = r {
            // 4.2's trace_cma_alloc, after the search (not on the argument checks before it).
            let page = r.as_ref().ok().copied();
            self.zone.inner.trace.cma_alloc(page, count, align);
        }
        r
    }

    /// [`alloc_held`](Self::alloc_held) before its tracepoint.
    fn alloc_held_untraced(&self, count: u64, align: Order) -> Result<Pfn, CmaError> {
        let z = &self.zone.inner;
        crate::hook::check_reentry("Cma::alloc");
        if count == 0 {
            return Err(CmaError::ZeroCount);
        }
        if count > self.area.count() {
            return Err(CmaError::TooLarge {
                count,
                area: self.area.count(),
            });
        }
        if align.0 >= z.geo.max_order {
            return Err(CmaError::BadAlign(align));
        }
        let mask = (1u64 << align.0) - 1;
        let mut start = 0;
        let mut last = None;
        while let Some(reservation) = self.area.reserve(start, count, mask) {
            let bitmap_no = reservation.bitmap_no;
            let pfn = self.area.base_pfn().add(bitmap_no);
            let res = {
                let _held = crate::hook::CmaMutexHeld::enter(z.id);
                let _cma_mutex = z.cma_mutex.lock();
                z.alloc_contig_range(pfn, pfn.add(count), Migratetype::Cma, Owner::Held)
            };
            match res {
                Ok(_) => {
                    reservation.keep();
                    z.lock().events_mut().cma_alloc_success += 1;
                    return Ok(pfn);
                }
                Err(e) => {
                    drop(reservation);
                    self.area.count_busy();
                    // "try again with a bit different memory target": the next aligned
                    // position, even when the busy block is still inside that range.
                    start = bitmap_no + mask + 1;
                    last = Some(e);
                }
            }
        }
        z.lock().events_mut().cma_alloc_fail += 1;
        Err(CmaError::NoSpace { last })
    }

    /// `cma_release(cma, pages, count)`: free the pages (through the pcp, each keeping its
    /// CMA type) and clear their bitmap bits. The same as dropping `pages`.
    pub fn release<Z: Deref<Target = Zone>>(&self, pages: CmaPagesIn<Z>) {
        drop(pages);
    }

    /// Release a range by pfn (kernel style), one that [`CmaPages::into_pfn`] handed to the
    /// pfn API: `pfn` and `count` must lie inside one or more such allocations, every page of
    /// them. Anything else — pages of a live [`CmaPages`], of an allocation still in flight,
    /// already released, or outside the area — is [`CmaError::NotAllocated`], and nothing
    /// changes. The check and the hand-over happen under `cma->lock`, so of two racing
    /// releases of one range exactly one succeeds.
    pub fn release_pfn(&self, pfn: Pfn, count: u64) -> Result<(), CmaError> {
        let base = self.area.base_pfn().0;
        let in_area = pfn.0 >= base
            && count > 0
            && pfn
                .0
                .checked_add(count)
                .is_some_and(|end| end <= base + self.area.count());
        if !in_area {
            return Err(CmaError::NotAllocated { pfn, count });
        }
        if !self.area.take_pfn_owned(pfn, count) {
            return Err(CmaError::NotAllocated { pfn, count });
        }
        self.zone.inner.cma_release_held(self.area, pfn, count);
        Ok(())
    }
}

impl fmt::Debug for Cma<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cma")
            .field("base_pfn", &self.area.base_pfn())
            .field("count", &self.area.count())
            .finish()
    }
}

/// An owned CMA allocation: `count` contiguous pages, released on drop.
///
/// Generic over how it holds its zone, `Z`, like [`PagesIn`](crate::PagesIn):
/// [`CmaPages<'z>`](CmaPages) borrows it (from [`Cma::alloc`]), [`OwnedCmaPages`] keeps an
/// `Arc<Zone>` alive (from [`Zone::cma_alloc_owned`]) and so can go to `std::thread::spawn`.
/// It dereferences to its bytes (`[u8]`).
pub struct CmaPagesIn<Z: Deref<Target = Zone>> {
    zone: Z,
    pfn: Pfn,
    count: u64,
}

/// A CMA allocation borrowing its zone: what [`Cma::alloc`] returns.
pub type CmaPages<'z> = CmaPagesIn<&'z Zone>;

/// A CMA allocation that keeps its zone alive through an `Arc`: what
/// [`Zone::cma_alloc_owned`] returns; `'static`, so it can move to any thread.
///
/// ```
/// use pagealloc::{Order, Zone, ZoneConfig};
/// use std::sync::Arc;
///
/// let zone = Arc::new(Zone::new(ZoneConfig { size: 16 << 20, cma_size: 8 << 20, ..ZoneConfig::default() })?);
/// let z = zone.clone();
/// let buffer = std::thread::spawn(move || {
///     let mut b = z.cma_alloc_owned(256, Order(8)).unwrap(); // 1 MiB, 1 MiB-aligned
///     b.fill(0x5a);
///     b
/// })
/// .join()
/// .unwrap();
/// assert!(buffer.iter().all(|&x| x == 0x5a));
/// drop(buffer); // cma_release
/// zone.drain_all_pages();
/// assert!(zone.audit().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type OwnedCmaPages = CmaPagesIn<Arc<Zone>>;

impl<Z: Deref<Target = Zone>> CmaPagesIn<Z> {
    fn new(zone: Z, pfn: Pfn, count: u64) -> Self {
        CmaPagesIn { zone, pfn, count }
    }

    /// The area the pages came from (present while a handle lives).
    fn area(&self) -> &CmaArea {
        self.zone
            .inner
            .cma
            .as_ref()
            .expect("a CMA allocation implies a CMA area")
    }

    /// First pfn.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// Pages in the allocation (`cma_alloc`'s `count`; the same as
    /// [`nr_pages`](Self::nr_pages)).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Pages in the allocation.
    pub fn nr_pages(&self) -> u64 {
        self.count
    }

    /// Bytes in the allocation.
    pub fn len(&self) -> usize {
        self.count as usize * PAGE_SIZE
    }

    /// Always false: an allocation has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Give up the handle without releasing: the caller now owns the range as raw pfns and
    /// gives it back with [`Cma::release_pfn`] (in one call or several). Returns the first
    /// pfn; the range is [`count`](Self::count) pages. The zone's own
    /// [`free_pfn`](Zone::free_pfn) and [`free_contig_range`](Zone::free_contig_range) refuse
    /// these pages ([`FreeError::CmaAllocation`]): only `release_pfn` also clears the bitmap.
    pub fn into_pfn(self) -> Pfn {
        self.area().mark_pfn_owned(self.pfn, self.count);
        let pfn = self.pfn;
        // The zone handle (an `Arc` for `OwnedCmaPages`) is dropped; the pages stay held.
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this.zone` is read once and `this` is never used or dropped again.
        drop(unsafe { core::ptr::read(&this.zone) });
        pfn
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the `count` pages from `pfn` are inside the area (checked at allocation),
        // held for this handle alone (the pfn API refuses held pages, and only this handle's
        // drop or `into_pfn` gives them up), and contiguous in the arena; `&self` forbids
        // writes.
        unsafe {
            core::slice::from_raw_parts(
                self.zone.inner.arena.page_ptr(self.pfn),
                self.count as usize * PAGE_SIZE,
            )
        }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only reference.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.zone.inner.arena.page_ptr(self.pfn),
                self.count as usize * PAGE_SIZE,
            )
        }
    }
}

impl<Z: Deref<Target = Zone>> Deref for CmaPagesIn<Z> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<Z: Deref<Target = Zone>> core::ops::DerefMut for CmaPagesIn<Z> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl<Z: Deref<Target = Zone>> Drop for CmaPagesIn<Z> {
    fn drop(&mut self) {
        self.zone
            .inner
            .cma_release_held(self.area(), self.pfn, self.count);
    }
}

impl<Z: Deref<Target = Zone>> fmt::Debug for CmaPagesIn<Z> {
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

    /// [`Cma::alloc`] for a zone shared by `Arc`: the handle keeps the zone alive, so it is
    /// `'static` and can move to any thread (see [`OwnedCmaPages`]).
    pub fn cma_alloc_owned(
        self: &Arc<Self>,
        count: u64,
        align: Order,
    ) -> Result<OwnedCmaPages, CmaError> {
        let pfn = self
            .cma()
            .ok_or(CmaError::NoArea)?
            .alloc_held(count, align)?;
        Ok(CmaPagesIn::new(self.clone(), pfn, count))
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
        self.inner.alloc_contig_range(start, end, mt, Owner::Pfn)
    }

    /// `free_contig_range(pfn, nr_pages)`: free `nr_pages` allocated order-0 pages from `pfn`
    /// (pages the pfn API owns, as [`alloc_contig_range`](Self::alloc_contig_range) hands
    /// out). All or nothing: if any page of the range is not such a page (out of the zone,
    /// free, part of a larger block, owned by a handle, part of a CMA allocation), returns the
    /// error for the first one and frees none.
    pub fn free_contig_range(&self, pfn: Pfn, nr_pages: u64) -> Result<(), FreeError> {
        let z = &self.inner;
        let end = match pfn.0.checked_add(nr_pages) {
            Some(end) if end <= z.geo.nr_pages => end,
            _ => return Err(FreeError::Foreign(pfn.max(Pfn(z.geo.nr_pages)))),
        };
        let mut claimed = Vec::new();
        for p in pfn.0..end {
            match z.claim_pfn(Pfn(p), Order(0)) {
                Ok(prev) => claimed.push(prev),
                Err(e) => {
                    for (q, prev) in (pfn.0..).zip(claimed) {
                        z.state.unclaim(Pfn(q), prev);
                    }
                    return Err(e);
                }
            }
        }
        z.free_each((pfn.0..end).map(|p| (Pfn(p), Order(0))));
        Ok(())
    }
}
