//! Movable allocations that can move, and page migration (`mm/migrate.c`'s role for
//! `alloc_contig_range`, memory offline and compaction).
//!
//! # What it owns
//! [`MovablePages`]: a movable block whose bytes are reached through a pin ([`Pinned`]); while
//! it is not pinned the allocator may migrate it: take a destination block (a new Movable
//! allocation, outside isolated pageblocks, or for compaction a free page its free scanner
//! isolated: the [`MigrateTarget`] callbacks, 3.17's `get_new_page` / `put_new_page`), win the
//! pin word, copy the bytes, update the handle, free the old block (which lands on an
//! `Isolate` list when its pageblock is isolated). The one function that does this,
//! `migrate_block`, serves every caller. The zone's movable registry maps
//! the current head pfn of every live `MovablePages` to its slot, so a migration scanning a
//! pfn range can find the owner.
//!
//! # The slot's pin word
//! | value | meaning | who sets it |
//! | --- | --- | --- |
//! | `UNPINNED` | nobody touches the bytes; migratable | pin guard drop, migrator when done |
//! | `PINNED` | the owner holds a [`Pinned`] guard | owner (`UNPINNED → PINNED`) |
//! | `MIGRATING` | a migrator is copying it | migrator (`UNPINNED → MIGRATING`) |
//! | `FREED` | the owner dropped the handle; the block is being freed | owner (`UNPINNED → FREED`) |
//!
//! Every transition out of `UNPINNED` is a compare-exchange, so the owner and a migrator never
//! both own the bytes; the owner waits (yielding) while a migration runs, a migrator gives up on
//! a pinned page after [`MIGRATE_PIN_RETRIES`] tries (the page is then busy). The pfn is updated
//! before the migrator releases the word (release/acquire), so a pin always sees the current
//! location, and a guard's lifetime ends before any migration can start: no reference to moved
//! memory survives a migration.
//!
//! # `alloc_contig_range`'s migration (3.17 `__alloc_contig_migrate_range`)
//! Batches of at most [`CONTIG_CLUSTER_MAX`] blocks, isolated as 3.17's
//! `isolate_migratepages_range` does (a live, non-compound [`MovablePages`]: transparent huge
//! pages, unmovable and plain allocations are skipped, and the range then fails at
//! `test_pages_isolated`); each batch gets up to [`CONTIG_MIGRATE_TRIES`] `migrate_pages`
//! calls of up to [`MIGRATE_PASSES`] passes, one try per block and pass (a pinned block is
//! 3.17's `-EAGAIN` from the reference count check of `migrate_page_move_mapping`), and a
//! batch that still holds a block after them fails the whole range. The model's pin stands
//! for a transient extra reference (a page-cache read's `find_get_page`); 3.17's racy skip of
//! an anonymous page whose count exceeds its mapcount at isolation time is not modelled (a
//! pinned page here is tried, not skipped).
//!
//! Lock order: registry shard locks are leaves (nothing else is taken while one is held).

use crate::error::AllocError;
use crate::page::Owner;
use crate::sync::Arc;
use crate::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use crate::types::{Migratetype, Order, PAGE_SIZE, Pfn};
use crate::zone::movable::MovableSlot;
use crate::zone::{Zone, ZoneInner};
use core::ops::Deref;

const UNPINNED: u8 = 0;
const PINNED: u8 = 1;
const MIGRATING: u8 = 2;
const FREED: u8 = 3;

/// How many times a migrator tries to take an unpinned page before reporting it busy.
pub const MIGRATE_PIN_RETRIES: u32 = 10;

/// `migrate_pages`' passes over its list (3.17: `for (pass = 0; pass < 10 && retry; pass++)`).
pub const MIGRATE_PASSES: u32 = 10;

/// `migrate_pages` calls `__alloc_contig_migrate_range` makes on one batch before it gives the
/// range up as busy (3.17: `++tries == 5`).
pub const CONTIG_MIGRATE_TRIES: u32 = 5;

/// Blocks `alloc_contig_range` isolates per batch (`COMPACT_CLUSTER_MAX`, 32).
pub const CONTIG_CLUSTER_MAX: usize = 32;

/// `enum migrate_mode` (3.17): how hard a migration waits for a busy (pinned) block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MigrateMode {
    /// `MIGRATE_ASYNC`: never wait; a pinned block is busy at once.
    Async,
    /// `MIGRATE_SYNC` (and `MIGRATE_SYNC_LIGHT`, which differs from it only on pages under
    /// writeback): wait for the pin, up to [`MIGRATE_PIN_RETRIES`] tries.
    Sync,
}

/// Where a migration's destination comes from, and where an unused one goes: 3.17's
/// `new_page_t get_new_page` and `free_page_t put_new_page` callbacks of `migrate_pages`.
pub(crate) trait MigrateTarget {
    /// A held block of `order` for the migration to copy into, or `None` (`-ENOMEM`).
    fn get_new_page(&mut self, order: Order) -> Option<Pfn>;
    /// Take back a block `get_new_page` gave, unused.
    fn put_new_page(&mut self, pfn: Pfn, order: Order);
}

/// `alloc_migrate_target`: a new Movable allocation, freed again if unused.
struct NewAllocation<'a>(&'a ZoneInner);

impl MigrateTarget for NewAllocation<'_> {
    fn get_new_page(&mut self, order: Order) -> Option<Pfn> {
        self.0.alloc(order, Migratetype::Movable, Owner::Held).ok()
    }

    fn put_new_page(&mut self, pfn: Pfn, order: Order) {
        self.0.free_pages(pfn, order);
    }
}

/// The outcome of one migration attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Migrate {
    /// Copied to a new block; the old block was freed.
    Moved,
    /// Freed by its owner meanwhile (or moved by another migrator): nothing to do.
    Gone,
    /// Pinned throughout the retries, or in the middle of its free.
    Busy,
    /// Not a live movable block (unmovable, or a plain [`Pages`](crate::Pages)).
    NotMovable,
    /// No destination block could be allocated.
    NoMemory,
}

impl ZoneInner {
    /// Allocate a held movable block of `order` and register its slot for migration.
    fn alloc_movable_slot(&self, order: Order) -> Result<Arc<MovableSlot>, AllocError> {
        let pfn = self.alloc(order, Migratetype::Movable, Owner::Held)?;
        Ok(self.register_movable(pfn, order, false))
    }

    /// [`alloc_movable_slot`](Self::alloc_movable_slot) through the `Gfp` path (watermarks,
    /// reclaim, compaction), for `gfp` with `__GFP_MOVABLE`.
    fn alloc_movable_slot_gfp(
        &self,
        order: Order,
        gfp: crate::Gfp,
    ) -> Result<Arc<MovableSlot>, AllocError> {
        if gfp.migratetype() != Migratetype::Movable {
            return Err(AllocError::BadMigratetype(gfp.migratetype()));
        }
        let pfn = self.alloc_gfp(order, gfp, Owner::Held)?;
        // `prep_compound_page` for `__GFP_COMP` (an order-0 page is never compound).
        let compound = gfp.contains(crate::Gfp::COMP) && order.0 > 0;
        Ok(self.register_movable(pfn, order, compound))
    }

    /// Register the held movable block at `pfn` for migration (`compound`: a `__GFP_COMP`
    /// block, which `alloc_contig_range` does not migrate).
    fn register_movable(&self, pfn: Pfn, order: Order, compound: bool) -> Arc<MovableSlot> {
        let slot = Arc::new(MovableSlot {
            pfn: AtomicU64::new(pfn.0),
            order,
            compound,
            pin: AtomicU8::new(UNPINNED),
        });
        self.movable.insert(pfn, slot.clone());
        slot
    }

    /// `unmap_and_move` for one movable block: the part every migration shares. Its
    /// destination comes from `target` (a new allocation, or a page compaction's free scanner
    /// isolated: `compaction_alloc`) and goes back to it if it is not used
    /// (`compaction_free`, or a plain free). Returns what happened; on [`Migrate::Moved`] the
    /// destination is the handle's block (held, movable) and the old block has been freed.
    ///
    /// As in 3.17, the destination is taken *before* the block is locked (pinned here), so no
    /// pin is held while `get_new_page` runs (compaction's free scanner takes the zone lock
    /// and has a race window); a block found freed or moved before that costs nothing.
    /// `mode` says how long to wait for a pinned block: [`MigrateMode::Async`] tries once
    /// (`MIGRATE_ASYNC` does not sleep on a locked page), [`MigrateMode::Sync`] up to
    /// [`MIGRATE_PIN_RETRIES`] times.
    pub(crate) fn migrate_block(
        &self,
        pfn: Pfn,
        mode: MigrateMode,
        target: &mut dyn MigrateTarget,
    ) -> Migrate {
        let max_tries = match mode {
            MigrateMode::Async => 1,
            MigrateMode::Sync => MIGRATE_PIN_RETRIES,
        };
        let r = self.unmap_and_move(pfn, max_tries, target);
        if r == Migrate::Busy {
            self.lock().events_mut().pgmigrate_fail += 1;
        }
        r
    }

    /// [`migrate_block`](Self::migrate_block) with `max_tries` pin tries, a busy block not
    /// counted in `pgmigrate_fail` (3.17 counts only permanent failures there, not the
    /// `-EAGAIN` pages a `migrate_pages` call leaves on its list after its last pass).
    fn unmap_and_move(&self, pfn: Pfn, max_tries: u32, target: &mut dyn MigrateTarget) -> Migrate {
        let Some(slot) = self.movable.get(pfn) else {
            // Not a live MovablePages. Freed since the scan: gone. An unmovable allocation:
            // cannot move. A block in the middle of its free, or a movable allocation without
            // a slot (a `Pages` or a pfn allocated as Movable, or a MovablePages between its
            // registry removal and its free): busy, for the next round to look again.
            return if self.state.alloc_order(pfn).is_none() {
                Migrate::Gone
            } else if self.state.is_unmovable_alloc(pfn) {
                Migrate::NotMovable
            } else {
                Migrate::Busy
            };
        };
        // Moved or being freed since the caller found it (3.17: `page_count(page) == 1`, the
        // page was freed from under us): nothing to do, and no destination taken.
        if slot.pfn.load(Ordering::Relaxed) != pfn.0 || slot.pin.load(Ordering::Relaxed) == FREED {
            return Migrate::Gone;
        }
        let order = slot.order;
        // The destination is held from the moment it is taken: the pfn API cannot free it.
        let Some(dst) = target.get_new_page(order) else {
            self.lock().events_mut().pgmigrate_fail += 1;
            return Migrate::NoMemory;
        };
        let mut tries = 0;
        loop {
            match slot.pin.compare_exchange(
                UNPINNED,
                MIGRATING,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(FREED) => {
                    target.put_new_page(dst, order);
                    return Migrate::Gone;
                }
                Err(_) => {
                    tries += 1;
                    if tries >= max_tries {
                        target.put_new_page(dst, order);
                        return Migrate::Busy;
                    }
                    crate::sync::yield_now();
                }
            }
        }
        if slot.pfn.load(Ordering::Relaxed) != pfn.0 {
            slot.pin.store(UNPINNED, Ordering::Release);
            target.put_new_page(dst, order);
            return Migrate::Gone;
        }
        // The slot's block is a handle's block: held, movable, of the slot's order. Anything
        // else would be a registry entry that outlived its block, and moving it would take
        // another owner's bytes: refuse (and say so in debug builds).
        if !self.state.is_held(pfn, order) {
            debug_assert!(false, "movable registry entry for {pfn} is stale");
            slot.pin.store(UNPINNED, Ordering::Release);
            target.put_new_page(dst, order);
            return Migrate::NotMovable;
        }
        let len = PAGE_SIZE << order.0;
        // SAFETY:
        // - source: the block at `pfn` is allocated and owned by `slot`, whose pin word this
        //   thread holds as MIGRATING, so neither its owner (who must pin or free first) nor
        //   another migrator touches its bytes; `len` bytes from its head are inside the arena;
        // - destination: `dst` was handed to this thread alone by `get_new_page` (a fresh
        //   allocation, or a page isolated from the free lists for this compaction), held, so
        //   no one else reads or writes it;
        // - the two blocks are distinct blocks of the arena, so they do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(self.arena.page_ptr(pfn), self.arena.page_ptr(dst), len);
        }
        self.movable.remove(pfn);
        self.movable.insert(dst, slot.clone());
        slot.pfn.store(dst.0, Ordering::Relaxed);
        slot.pin.store(UNPINNED, Ordering::Release);
        self.free_pages(pfn, order);
        self.lock().events_mut().pgmigrate_success += order.nr_pages();
        Migrate::Moved
    }

    /// The migrate scanner's test for a block it may isolate (3.17's `PageLRU` test, its
    /// "pinned anonymous page" skip, and `__isolate_lru_page`): `pfn` heads a live
    /// [`MovablePages`] block of order 0 that nobody pins right now. Racy by design, as in
    /// the kernel: [`migrate_block`](Self::migrate_block) decides.
    pub(crate) fn movable_candidate(&self, pfn: Pfn) -> bool {
        self.movable.get(pfn).is_some_and(|s| {
            s.order.0 == 0
                && s.pfn.load(Ordering::Relaxed) == pfn.0
                && s.pin.load(Ordering::Relaxed) == UNPINNED
        })
    }

    /// `isolate_migratepages_range(zone, cc, pfn, end, true)` as `alloc_contig_range` calls
    /// it: from `*cursor`, the blocks 3.17 would isolate from the LRU, at most
    /// [`CONTIG_CLUSTER_MAX`], with `*cursor` moved past the last block looked at. A block is
    /// taken when it is a live [`MovablePages`] (`PageLRU`) that is not compound
    /// (`PageTransHuge`: skipped whole) and reaches past `start` (the scan starts at the
    /// max-order block holding `start`, so a larger movable block covering `start` is
    /// found). Everything else allocated is skipped: unmovable and plain allocations (not on
    /// the LRU), transparent huge pages, blocks in the middle of their free. They stay where
    /// they are, and `test_pages_isolated` fails the range later (`-EBUSY`).
    fn isolate_contig_candidates(
        &self,
        cursor: &mut Pfn,
        start: Pfn,
        end: Pfn,
    ) -> Vec<(Pfn, Order)> {
        let mut list = Vec::new();
        while *cursor < end && list.len() < CONTIG_CLUSTER_MAX {
            let p = *cursor;
            match self.state.alloc_order(p) {
                Some(order) => {
                    *cursor = p.add(order.nr_pages());
                    let lru = self.movable.get(p).is_some_and(|s| {
                        !s.compound
                            && s.pfn.load(Ordering::Relaxed) == p.0
                            && s.pin.load(Ordering::Relaxed) != FREED
                    });
                    if lru && *cursor > start {
                        list.push((p, order));
                    }
                }
                None => *cursor = p.add(1),
            }
        }
        list
    }

    /// `__alloc_contig_migrate_range(cc, start, end)` (3.17 `mm/page_alloc.c`): migrate away
    /// every block of `[start, end)` that can be isolated for migration. Returns the pages
    /// moved, or the pfn of a block that stayed busy.
    ///
    /// As in 3.17: isolate a batch of at most [`CONTIG_CLUSTER_MAX`] blocks
    /// (`isolate_contig_candidates`: transparent huge pages, unmovable and plain allocations
    /// are skipped, not failed: the range fails later, at `test_pages_isolated`), and hand it
    /// to `migrate_pages`, which makes up to 10 passes over the blocks left, one try each
    /// (`unmap_and_move`; a pinned block is `-EAGAIN`, the count check of
    /// `migrate_page_move_mapping`, and stays on the list for the next pass). A batch still
    /// holding blocks after 5 `migrate_pages` calls (`++tries == 5`) fails the whole range
    /// (`-EBUSY`) at once, the rest of the range unscanned; an empty batch moves on to the
    /// next. A block with no destination (`-ENOMEM`) ends its `migrate_pages` call and
    /// counts as busy (3.17 would return `-ENOMEM`, which `cma_alloc` does not retry).
    pub(crate) fn migrate_range(&self, start: Pfn, end: Pfn) -> Result<u64, Pfn> {
        let mut moved = 0;
        let mut cursor = Pfn(start.0 & !(self.geo.max_order_nr_pages() - 1));
        loop {
            let mut list = self.isolate_contig_candidates(&mut cursor, start, end);
            if list.is_empty() {
                if cursor >= end {
                    return Ok(moved);
                }
                continue;
            }
            let mut tries = 0;
            loop {
                moved += self.migrate_pages_contig(&mut list);
                if list.is_empty() {
                    break;
                }
                tries += 1;
                if tries == CONTIG_MIGRATE_TRIES {
                    return Err(list[0].0);
                }
            }
        }
    }

    /// `migrate_pages(list, alloc_migrate_target, NULL, 0, MIGRATE_SYNC, MR_CMA)`: up to
    /// [`MIGRATE_PASSES`] passes over `list`, one migration try per block and pass; a moved,
    /// gone or unmovable block leaves the list, a busy one stays for the next pass. Returns
    /// the pages moved; what is left on `list` is still busy (`-EAGAIN`).
    fn migrate_pages_contig(&self, list: &mut Vec<(Pfn, Order)>) -> u64 {
        let mut moved = 0;
        for pass in 0..MIGRATE_PASSES {
            if pass > 0 {
                // cond_resched(): let the holders of transient references run.
                crate::sync::yield_now();
            }
            let mut retry = 0;
            let mut nomem = false;
            list.retain(|&(p, order)| {
                if nomem {
                    return true;
                }
                match self.unmap_and_move(p, 1, &mut NewAllocation(self)) {
                    Migrate::Moved => {
                        moved += order.nr_pages();
                        false
                    }
                    Migrate::Gone => false,
                    Migrate::NotMovable => {
                        self.lock().events_mut().pgmigrate_fail += 1;
                        false
                    }
                    Migrate::Busy => {
                        retry += 1;
                        true
                    }
                    Migrate::NoMemory => {
                        nomem = true;
                        true
                    }
                }
            });
            if nomem || retry == 0 {
                break;
            }
        }
        moved
    }
}

/// A movable allocation: its bytes are reached through [`pin`](Self::pin); while unpinned the
/// allocator may move it elsewhere (CMA allocations and memory offline do). Freed on drop.
///
/// Generic over how it holds its zone, like [`PagesIn`](crate::PagesIn):
/// [`MovablePages<'z>`](MovablePages) borrows it ([`Zone::alloc_movable`]),
/// [`OwnedMovablePages`] keeps an `Arc<Zone>` alive ([`Zone::alloc_movable_owned`]).
pub struct MovablePagesIn<Z: Deref<Target = Zone>> {
    zone: Z,
    slot: Arc<MovableSlot>,
}

/// A movable block borrowing its zone: what [`Zone::alloc_movable`] returns.
pub type MovablePages<'z> = MovablePagesIn<&'z Zone>;

/// A movable block that keeps its zone alive through an `Arc` (so it can move to a thread
/// spawned with `std::thread::spawn`): what [`Zone::alloc_movable_owned`] returns.
pub type OwnedMovablePages = MovablePagesIn<Arc<Zone>>;

impl<Z: Deref<Target = Zone>> MovablePagesIn<Z> {
    /// Pin the block and get at its bytes; migration waits for the guard to drop. If a
    /// migration of this block is running, waits for it to finish first (see [`Pinned`] for
    /// what a leaked guard does).
    ///
    /// # Panics
    /// When called from a race hook at a window that allows no zone calls while the block is
    /// being migrated (the migration could be the hook's own caller).
    pub fn pin(&mut self) -> Pinned<'_> {
        while self
            .slot
            .pin
            .compare_exchange(UNPINNED, PINNED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            crate::hook::check_reentry("MovablePages::pin on a block being migrated");
            crate::sync::yield_now();
        }
        let pfn = Pfn(self.slot.pfn.load(Ordering::Relaxed));
        Pinned {
            slot: &self.slot,
            ptr: self.zone.inner.arena.page_ptr(pfn),
            pfn,
            len: PAGE_SIZE << self.slot.order.0,
        }
    }

    /// Where the block is now (it may move as soon as this returns).
    pub fn pfn(&self) -> Pfn {
        Pfn(self.slot.pfn.load(Ordering::Acquire))
    }

    /// The block's order.
    pub fn order(&self) -> Order {
        self.slot.order
    }

    /// Whether the block is a compound page (allocated with
    /// [`Gfp::COMP`](crate::Gfp::COMP), as [`Gfp::GFP_TRANSHUGE`](crate::Gfp::GFP_TRANSHUGE)
    /// has it: a transparent huge page). `alloc_contig_range` does not migrate a compound
    /// block: a range holding one is busy until it is freed.
    pub fn is_compound(&self) -> bool {
        self.slot.compound
    }
}

impl<Z: Deref<Target = Zone>> Drop for MovablePagesIn<Z> {
    fn drop(&mut self) {
        while self
            .slot
            .pin
            .compare_exchange(UNPINNED, FREED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            crate::hook::check_reentry("a drop of a MovablePages being migrated");
            crate::sync::yield_now();
        }
        let pfn = Pfn(self.slot.pfn.load(Ordering::Relaxed));
        let z = &self.zone.inner;
        z.movable.remove(pfn);
        z.free_pages(pfn, self.slot.order);
    }
}

impl<Z: Deref<Target = Zone>> core::fmt::Debug for MovablePagesIn<Z> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MovablePages")
            .field("pfn", &self.pfn())
            .field("order", &self.order())
            .finish()
    }
}

/// A pinned movable block: its bytes, which cannot move while this guard lives.
///
/// # Leaking the guard
/// Like a leaked `MutexGuard`, a guard passed to `mem::forget` never unpins: the block stays
/// pinned for good. Nothing unsound follows — migrations report it busy (so CMA allocations
/// and offlining over it fail with `-EBUSY`, in bounded time), and the handle's own
/// [`pin`](MovablePages::pin) and drop wait for the pin to go, which it never does: they
/// wait forever, as locking a mutex whose guard was leaked does.
pub struct Pinned<'a> {
    slot: &'a MovableSlot,
    ptr: *mut u8,
    pfn: Pfn,
    len: usize,
}

impl Pinned<'_> {
    /// The block's current head pfn.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is the head of the allocated block (read after winning the pin word, so
        // it is the current location); `len` bytes of it lie in the live arena; the pin word
        // (PINNED) keeps migrators and the freeing path away until this guard drops, and the
        // guard borrows the handle mutably, so no other access exists.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl core::fmt::Debug for Pinned<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pinned")
            .field("pfn", &self.pfn)
            .field("len", &self.len)
            .finish()
    }
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        self.slot.pin.store(UNPINNED, Ordering::Release);
    }
}

impl Zone {
    /// Allocate a movable block of `2^order` pages that the allocator may migrate while it is
    /// not pinned (so CMA allocations and memory offline can take its pages).
    pub fn alloc_movable(&self, order: Order) -> Result<MovablePages<'_>, AllocError> {
        let slot = self.inner.alloc_movable_slot(order)?;
        Ok(MovablePagesIn { zone: self, slot })
    }

    /// [`alloc_movable`](Self::alloc_movable) through the watermarks, reclaim and
    /// compaction of [`alloc_pages_gfp`](Self::alloc_pages_gfp): page cache and user memory
    /// that CMA and compaction can migrate. `gfp` must be movable
    /// ([`Gfp::GFP_HIGHUSER_MOVABLE`](crate::Gfp::GFP_HIGHUSER_MOVABLE) or another mask with
    /// `__GFP_MOVABLE`), else [`AllocError::BadMigratetype`].
    pub fn alloc_movable_gfp(
        &self,
        order: Order,
        gfp: crate::Gfp,
    ) -> Result<MovablePages<'_>, AllocError> {
        let slot = self.inner.alloc_movable_slot_gfp(order, gfp)?;
        Ok(MovablePagesIn { zone: self, slot })
    }

    /// [`alloc_movable`](Self::alloc_movable) for a zone shared by `Arc`: the handle keeps the
    /// zone alive, so it is `'static` and can move to any thread.
    pub fn alloc_movable_owned(
        self: &Arc<Self>,
        order: Order,
    ) -> Result<OwnedMovablePages, AllocError> {
        let slot = self.inner.alloc_movable_slot(order)?;
        Ok(MovablePagesIn {
            zone: self.clone(),
            slot,
        })
    }

    /// Number of live [`MovablePages`] handles.
    pub fn nr_movable(&self) -> usize {
        self.inner.movable.len()
    }
}
