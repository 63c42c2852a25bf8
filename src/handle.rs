//! [`Pages`] and [`OwnedPages`]: the owned handle to an allocated block, borrowing its zone or
//! keeping it alive through an `Arc`.

use crate::Zone;
use crate::sync::Arc;
use crate::types::{Order, PAGE_SIZE, Pfn};
use core::ops::{Deref, DerefMut};

/// An allocated block of `2^order` contiguous pages, owned: it gives access to the bytes and
/// frees the block (through the calling thread's pcp for order 0) when dropped. It cannot be
/// freed twice, and the zone's pfn API refuses it while the handle lives.
///
/// Generic over how it holds its zone, `Z`: [`Pages<'z>`](Pages) borrows it (from
/// [`Zone::alloc_pages`]), [`OwnedPages`] keeps an `Arc<Zone>` alive (from
/// [`Zone::alloc_pages_owned`]) and so can go to `std::thread::spawn`.
///
/// `Send` and `Sync` like a `Box<[u8]>`: a block allocated on one thread may be freed on
/// another (it then goes to the freeing thread's pcp, as in the kernel). It dereferences to
/// its bytes (`[u8]`).
pub struct PagesIn<Z: Deref<Target = Zone>> {
    zone: Z,
    pfn: Pfn,
    order: Order,
}

/// A block borrowing its zone: what [`Zone::alloc_pages`] returns.
pub type Pages<'z> = PagesIn<&'z Zone>;

/// A block that keeps its zone alive through an `Arc`: what [`Zone::alloc_pages_owned`]
/// returns. It is `'static`, so it can move to a thread spawned with `std::thread::spawn`.
///
/// ```
/// use pagealloc::{Migratetype, Order, Zone, ZoneConfig};
/// use std::sync::Arc;
///
/// let zone = Arc::new(Zone::new(ZoneConfig { size: 16 << 20, ..ZoneConfig::default() })?);
/// let workers: Vec<_> = (0..2u8)
///     .map(|i| {
///         let zone = zone.clone();
///         std::thread::spawn(move || {
///             let mut block = zone.alloc_pages_owned(Order(2), Migratetype::Movable).unwrap();
///             block.fill(i); // 16 KiB, through DerefMut<Target = [u8]>
///             block // handed back to the spawning thread, which frees it
///         })
///     })
///     .collect();
/// for (i, w) in workers.into_iter().enumerate() {
///     let block = w.join().unwrap();
///     assert!(block.iter().all(|&b| b == i as u8));
/// }
/// zone.drain_all_pages();
/// assert!(zone.audit().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type OwnedPages = PagesIn<Arc<Zone>>;

impl<Z: Deref<Target = Zone>> PagesIn<Z> {
    pub(crate) fn new(zone: Z, pfn: Pfn, order: Order) -> Self {
        PagesIn { zone, pfn, order }
    }

    /// The head page's frame number.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// The block's order.
    pub fn order(&self) -> Order {
        self.order
    }

    /// Pages in the block (`2^order`).
    pub fn nr_pages(&self) -> u64 {
        self.order.nr_pages()
    }

    /// Bytes in the block.
    pub fn len(&self) -> usize {
        PAGE_SIZE << self.order.0
    }

    /// Always false: a block has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The address of the first byte, for reading.
    pub fn as_ptr(&self) -> *const u8 {
        self.zone.inner.arena.page_ptr(self.pfn)
    }

    /// The address of the first byte, for writing.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.zone.inner.arena.page_ptr(self.pfn)
    }

    /// The block's bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY:
        // - the pointer is the start of this block inside the live arena (the zone outlives
        //   the handle: it is borrowed or kept alive by `Z`), and the block's `len()` bytes are
        //   inside the arena;
        // - the bytes are initialised (the mapping is zero-filled, the heap backend zeroed);
        // - this handle owns the block (held in the page-state table, so nothing else frees or
        //   hands it out), so nobody writes to it while `&self` is borrowed.
        unsafe { core::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// The block's bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only access to the bytes.
        unsafe { core::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len()) }
    }

    /// Give up the handle without freeing: the caller now owns the block as a raw pfn and
    /// frees it with [`Zone::free_pfn`] (which refuses it while a handle owns it).
    pub fn into_pfn(self) -> Pfn {
        let this = core::mem::ManuallyDrop::new(self);
        this.zone.inner.state.release_to_pfn(this.pfn);
        // SAFETY: `this` is never used or dropped again; the zone reference (or `Arc`) is
        // moved out once and dropped here, so no reference count is leaked or released twice.
        drop(unsafe { core::ptr::read(&this.zone) });
        this.pfn
    }

    /// The zone this block belongs to.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }
}

impl<Z: Deref<Target = Zone>> Drop for PagesIn<Z> {
    #[inline(always)]
    fn drop(&mut self) {
        debug_assert!(
            self.zone.inner.state.is_held(self.pfn, self.order),
            "a Pages handle's block {} is not held",
            self.pfn
        );
        self.zone.inner.free_pages(self.pfn, self.order);
    }
}

impl<Z: Deref<Target = Zone>> Deref for PagesIn<Z> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<Z: Deref<Target = Zone>> DerefMut for PagesIn<Z> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl<Z: Deref<Target = Zone>> AsRef<[u8]> for PagesIn<Z> {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<Z: Deref<Target = Zone>> AsMut<[u8]> for PagesIn<Z> {
    fn as_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl<Z: Deref<Target = Zone>> core::fmt::Debug for PagesIn<Z> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pages")
            .field("pfn", &self.pfn)
            .field("order", &self.order)
            .finish()
    }
}
