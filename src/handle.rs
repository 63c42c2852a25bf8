//! [`Pages`]: the owned handle to an allocated block.

use crate::Zone;
use crate::types::{Order, PAGE_SIZE, Pfn};

/// An allocated block of `2^order` contiguous pages, owned: it gives access to the bytes and
/// frees the block (through the calling thread's pcp for order 0) when dropped. It cannot be
/// freed twice.
///
/// `Send` and `Sync` like a `Box<[u8]>`: a block allocated on one thread may be freed on
/// another (it then goes to the freeing thread's pcp, as in the kernel).
pub struct Pages<'z> {
    zone: &'z Zone,
    pfn: Pfn,
    order: Order,
}

impl<'z> Pages<'z> {
    pub(crate) fn new(zone: &'z Zone, pfn: Pfn, order: Order) -> Self {
        Pages { zone, pfn, order }
    }

    /// The head page's frame number.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// The block's order.
    pub fn order(&self) -> Order {
        self.order
    }

    /// Bytes in the block.
    pub fn len(&self) -> usize {
        PAGE_SIZE << self.order.0
    }

    /// Always false: a block has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The address of the first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.zone.inner.arena.page_ptr(self.pfn)
    }

    /// The block's bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY:
        // - the pointer is the start of this block inside the live arena (the zone outlives
        //   `'z`), and the block's `len()` bytes are inside the arena;
        // - the bytes are initialised (the mapping is zero-filled, the heap backend zeroed);
        // - this handle owns the block, so nobody writes to it while `&self` is borrowed.
        unsafe { core::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// The block's bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only access to the bytes.
        unsafe { core::slice::from_raw_parts_mut(self.as_ptr(), self.len()) }
    }

    /// Give up the handle without freeing: the caller now owns the block as a raw pfn and
    /// frees it with [`Zone::free_pfn`] (which refuses it while a handle owns it).
    pub fn into_pfn(self) -> Pfn {
        let pfn = self.pfn;
        self.zone.inner.state.release_to_pfn(pfn);
        core::mem::forget(self);
        pfn
    }

    /// The zone this block belongs to.
    pub fn zone(&self) -> &'z Zone {
        self.zone
    }
}

impl Drop for Pages<'_> {
    #[inline]
    fn drop(&mut self) {
        debug_assert!(
            self.zone.inner.state.is_held(self.pfn, self.order),
            "a Pages handle's block {} is not held",
            self.pfn
        );
        self.zone.inner.free_pages(self.pfn, self.order);
    }
}

impl core::fmt::Debug for Pages<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pages")
            .field("pfn", &self.pfn)
            .field("order", &self.order)
            .finish()
    }
}
