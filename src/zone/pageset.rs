//! The zone's pcps (`zone->pageset`): the [`Pcp`] structures with their owner / remote
//! protocol, the registry, and the thread-local way to the calling thread's pcp. State owned
//! by the zone; `pcp` holds the allocation, free and drain paths built on it, and implements
//! [`PcpZone`], the one thing this module needs from the zone (a thread's exit drain).
//!
//! See `pcp` for the protection table and the two modes.

use crate::slowpath::PAGE_ALLOC_COSTLY_ORDER;
use crate::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use crate::sync::{Arc, MutPtr, Mutex, MutexGuard, RwLock, UnsafeCell, Weak};
use crate::types::{MIGRATE_PCPTYPES, Migratetype, Order};
use crate::vmstat::VmStatDiffs;
use crossbeam_utils::CachePadded;
use std::cell::RefCell;

pub(crate) use super::pcp_list::{PcpEntry, PcpList};

/// Order-0 event counts kept by a pcp's owner under the pcp lock.
///
/// The fast paths count only frees: the pages handed out follow from how `count` moved
/// (see [`PcpLists::pgalloc`]), so an allocation pays no counter of its own.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PcpEvents {
    /// Pages freed into this pcp (`pgfree`).
    pub(crate) pgfree: u64,
    /// Pages `rmqueue_bulk` put on it.
    pub(crate) refilled: u64,
    /// Pages `free_pcppages_bulk` took off it.
    pub(crate) bulk_freed: u64,
}

/// `NR_PCP_LISTS` with high-order pcps (5.14's 44042b449872, "mm/page_alloc: allow high-order
/// pages to be stored on the per-cpu lists"): one list per pcp migratetype for each order up to
/// `PAGE_ALLOC_COSTLY_ORDER`, and one per migratetype for `pageblock_order` (THP), as that
/// commit merged them (`NR_PCP_THP` 1 list per type; 5.16's 5d0a661d808f later kept one THP
/// list in all).
pub(crate) const NR_PCP_LISTS: usize = MIGRATE_PCPTYPES * (PAGE_ALLOC_COSTLY_ORDER as usize + 2);

/// `pcp_allowed_order(order)` (5.14): whether a block of `order` may be cached on a pcp with
/// high-order lists (`pageblock_order`: THP).
///
/// The kernel's `pageblock_order` is always above `PAGE_ALLOC_COSTLY_ORDER` (9 on x86-64), so
/// a cached block never spans two pageblocks, which its free path (one pageblock type per
/// block) relies on. The small geometries here (`pageblock_order` 1 or 2) keep that: orders
/// above `pageblock_order` are not cached.
#[inline(always)]
pub(crate) fn pcp_allowed_order(order: Order, pageblock_order: u32) -> bool {
    (order.0 <= PAGE_ALLOC_COSTLY_ORDER && order.0 <= pageblock_order) || order.0 == pageblock_order
}

/// `order_to_pindex(migratetype, order)` for an order [`pcp_allowed_order`] accepts: order `o`
/// up to `PAGE_ALLOC_COSTLY_ORDER` has the lists `MIGRATE_PCPTYPES * o + mt`, `pageblock_order`
/// the last `MIGRATE_PCPTYPES`. Order 0 is `mt`'s index, as in 3.17.
#[inline(always)]
pub(crate) fn order_to_pindex(list: Migratetype, order: Order) -> usize {
    let base = if order.0 <= PAGE_ALLOC_COSTLY_ORDER {
        order.0 as usize
    } else {
        PAGE_ALLOC_COSTLY_ORDER as usize + 1
    };
    MIGRATE_PCPTYPES * base + list.idx()
}

/// `pindex_to_order(pindex)`: the order of the blocks on list `pindex`.
#[inline(always)]
pub(crate) fn pindex_to_order(pindex: usize, pageblock_order: u32) -> Order {
    let base = (pindex / MIGRATE_PCPTYPES) as u32;
    if base > PAGE_ALLOC_COSTLY_ORDER {
        Order(pageblock_order)
    } else {
        Order(base)
    }
}

/// The sizes every pcp of a zone is made with: `high`, `batch`, and whether it has high-order
/// lists.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PcpShape {
    pub(crate) high: u32,
    pub(crate) batch: u32,
    pub(crate) high_order: bool,
}

/// A pcp's lists (`struct per_cpu_pages`), behind the pcp lock.
#[derive(Debug)]
pub(crate) struct PcpLists {
    /// This pcp's "CPU" (its index in the zone's registry): whose vmstat diffs the zone-lock
    /// sections it runs update.
    pub(crate) cpu: usize,
    /// Pages on all lists (a block of order `o` counts `2^o`, as 5.14's `pcp->count`).
    pub(crate) count: u32,
    /// `lists[NR_PCP_LISTS]`, indexed by [`order_to_pindex`]; the front is the list head (hot
    /// end). Only the first `nr_lists` are used: 3.17's `MIGRATE_PCPTYPES` order-0 lists, or
    /// all of them with high-order pcps.
    pub(crate) lists: [PcpList; NR_PCP_LISTS],
    /// How many of `lists` are in use (`free_pcppages_bulk` goes round them): 3.17's
    /// `MIGRATE_PCPTYPES`, or [`NR_PCP_LISTS`].
    pub(crate) nr_lists: usize,
    pub(crate) events: PcpEvents,
    /// 5.14's `pcp->free_factor` (high-order pcps only) as the last batch free left it, and
    /// [`pgalloc`](Self::pgalloc) then: see [`nr_pcp_free`](Self::nr_pcp_free).
    pub(crate) free_factor: u32,
    pub(crate) pgalloc_at_batch_free: u64,
}

impl PcpLists {
    /// Empty lists for a pcp of `shape`.
    ///
    /// Each list has room for every block the pcp holds in the common case: an order-0 list for
    /// `high + batch` pages (the most a 3.17 pcp ever holds: a refill of `batch` onto a pcp
    /// just below `high`, then one free before the batch free), a list of order `o` for
    /// `(high + batch) >> o` blocks and at least one refill (`max(batch >> o, 2)`). With
    /// high-order lists a pcp can hold more (a THP of 512 pages on a pcp of `high` 186, or
    /// blocks that keep `count` above `high` while the batch frees take pages of other lists,
    /// which 5.14 allows), so every push outside the order-0 fast path checks for room, and a
    /// block that finds its list full goes to the buddy lists instead.
    pub(crate) fn new(cpu: usize, shape: PcpShape) -> PcpLists {
        let PcpShape {
            high,
            batch,
            high_order,
        } = shape;
        let pages = high as usize + batch as usize;
        let nr_lists = if high_order {
            NR_PCP_LISTS
        } else {
            MIGRATE_PCPTYPES
        };
        PcpLists {
            cpu,
            count: 0,
            lists: core::array::from_fn(|pindex| {
                if pindex >= nr_lists {
                    return PcpList::with_capacity(0);
                }
                // The list's order, or 4 for the THP lists (more room than their order needs:
                // a few entries).
                let o = pindex / MIGRATE_PCPTYPES;
                if o == 0 {
                    PcpList::with_capacity(pages)
                } else {
                    let refill = (batch as usize >> o).max(2);
                    PcpList::with_capacity((pages >> o).max(refill) + 1)
                }
            }),
            nr_lists,
            events: PcpEvents::default(),
            free_factor: 0,
            pgalloc_at_batch_free: 0,
        }
    }

    /// 5.14's `nr_pcp_free(pcp, high, batch)` (3b12e7e97938, "mm/page_alloc: scale the number
    /// of pages that are batch freed"), for a pcp that reached `high`: `batch << free_factor`
    /// pages, clamped to `batch..=high - batch`, and the factor raised while that is below
    /// `high - batch`, so that a run of frees with no allocation frees more each time.
    ///
    /// 5.14 halves `free_factor` on every allocation from the pcp (`rmqueue_pcplist`); here the
    /// halvings are applied when the factor is read, one per page handed out since the last
    /// batch free (by `pgalloc`, which the fast paths already keep), so that the allocation
    /// paths pay nothing. For order 0 that is one halving per allocation, as in 5.14; a
    /// high-order block counts its pages.
    pub(crate) fn nr_pcp_free(&mut self, high: u32, batch: u32) -> u32 {
        if high < batch {
            return 1;
        }
        let (min_nr_free, max_nr_free) = (batch, high - batch);
        let pgalloc = self.pgalloc();
        let halvings = pgalloc - self.pgalloc_at_batch_free;
        let mut factor = if halvings >= 32 {
            0
        } else {
            self.free_factor >> halvings
        };
        let n = u64::from(batch) << factor.min(32);
        if n < u64::from(max_nr_free) {
            factor += 1;
        }
        self.free_factor = factor;
        self.pgalloc_at_batch_free = pgalloc;
        // The kernel's clamp(): min(max(n, lo), hi), so `hi` wins when `high < 2 * batch`.
        n.max(u64::from(min_nr_free)).min(u64::from(max_nr_free)) as u32
    }

    /// Pages handed out through this pcp (`pgalloc_normal`): every page that entered
    /// (`pgfree` + refills) and is neither still on it nor freed from it in bulk.
    pub(crate) fn pgalloc(&self) -> u64 {
        self.events.pgfree + self.events.refilled - self.events.bulk_freed - u64::from(self.count)
    }

    /// Pages on the lists, each list's blocks weighed by their order: what `count` must be.
    pub(crate) fn listed_pages(&self, pageblock_order: u32) -> u64 {
        self.lists[..self.nr_lists]
            .iter()
            .enumerate()
            .map(|(i, q)| (q.len() as u64) << pindex_to_order(i, pageblock_order).0)
            .sum()
    }

    /// Every block on the lists: `(head pfn, order, cached migratetype)`.
    pub(crate) fn blocks(
        &self,
        pageblock_order: u32,
    ) -> impl Iterator<Item = (u64, Order, Migratetype)> + '_ {
        self.lists[..self.nr_lists]
            .iter()
            .enumerate()
            .flat_map(move |(i, q)| {
                let order = pindex_to_order(i, pageblock_order);
                q.iter().map(move |e| (u64::from(e.pfn), order, e.mt))
            })
    }
}

/// One thread's pcp for one zone.
///
/// # Protection (an asymmetric Dekker protocol)
/// | state word | written by | meaning |
/// | --- | --- | --- |
/// | `in_use` | the owner only | the owner is inside a pcp operation (fast path) |
/// | `remote` | a remote accessor holding `remote_lock` | a remote session wants or has the lists |
///
/// Owner fast path: `in_use = true`, its [`LightBarrier`](crate::sync::LightBarrier), read
/// `remote`; if false, use the lists, then `in_use = false` (release). Otherwise clear `in_use`
/// and take `remote_lock` (the slow path), which excludes every remote session.
/// Remote session ([`PcpRegistry::with_all_locked`], [`PcpRegistry::drain_each`]): take
/// `remote_lock`, `remote = true`,
/// [`heavy_barrier`](crate::sync::heavy_barrier), wait until `in_use` is false (acquire); on
/// drop `remote = false` (release) and unlock. The two barriers make the flags a Dekker pair
/// (at least one side sees the other's store), so the owner and a remote session never use the
/// lists at once. With `membarrier` the owner's barrier is only a compiler fence: the owner's
/// path has no read-modify-write at all and the rare remote side pays.
pub(crate) struct Pcp {
    in_use: AtomicBool,
    remote: AtomicBool,
    /// A per-CPU pcp's `pcp->count` as the last section left it (or `u32::MAX` if that
    /// section unwound): what `drain_all_pages` reads, without the lock, to skip empty CPUs
    /// (3.17's check of `pcp->count` before it sends a CPU the IPI). Stored at the end of each
    /// [`cpu_section`](Pcp::cpu_section) (see [`Pcp::publish_count`]). The owner fast path of a
    /// per-thread pcp does not store it: that took the order-0 pair from 149 to 152
    /// instructions (callgrind), past the 150 the per-thread pair is held to, so per-thread
    /// pcps are checked for pages in their (only tried) session instead.
    count: AtomicU32,
    barrier: crate::sync::LightBarrier,
    remote_lock: Mutex<()>,
    lists: UnsafeCell<PcpLists>,
    /// Whether a live thread owns this pcp (false: free for reuse by a new thread). Per-CPU
    /// pcps are always owned.
    owned: AtomicBool,
    /// Its index in the registry (its "CPU"), as in `PcpLists::cpu`, readable outside the
    /// lists.
    pub(crate) cpu: usize,
}

// SAFETY: the lists in the `UnsafeCell` are only reached by the owner thread between its
// `in_use` store and release (or under `remote_lock` on the owner's slow path), or by a remote
// session that holds `remote_lock` and has seen `in_use` false after its barrier; the protocol
// above makes those accesses mutually exclusive, and `PcpLists` is `Send`.
unsafe impl Sync for Pcp {}

/// The owner's access to its pcp's lists (see [`Pcp::try_owner`]): `in_use` is set while it
/// lives, and cleared (release) when it drops, also when the operation unwinds.
pub(crate) struct OwnerLists<'a> {
    in_use: &'a AtomicBool,
    lists: MutPtr<PcpLists>,
}

impl core::ops::Deref for OwnerLists<'_> {
    type Target = PcpLists;

    #[inline(always)]
    fn deref(&self) -> &PcpLists {
        // SAFETY: the guard exists only after `try_owner` published `in_use` and then read
        // `remote` as false (Dekker with the remote side's barrier), so no remote session uses
        // the lists until the guard's drop clears `in_use`; only the owner thread makes guards
        // for this pcp, and it holds one at a time (`try_owner` takes `&self` but the pcp is
        // reached only through the owner's thread-local, one operation at a time).
        unsafe { self.lists.deref() }
    }
}

impl core::ops::DerefMut for OwnerLists<'_> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut PcpLists {
        // SAFETY: as in `deref`: the owner has the lists exclusively while the guard lives,
        // and this borrow is tied to `&mut self`.
        unsafe { self.lists.deref() }
    }
}

impl Drop for OwnerLists<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.in_use.store(false, Ordering::Release);
    }
}

impl Pcp {
    fn new(shape: PcpShape, cpu: usize) -> Pcp {
        Pcp {
            in_use: AtomicBool::new(false),
            remote: AtomicBool::new(false),
            count: AtomicU32::new(0),
            barrier: crate::sync::LightBarrier::new(),
            remote_lock: Mutex::new(()),
            lists: UnsafeCell::new(PcpLists::new(cpu, shape)),
            owned: AtomicBool::new(true),
            cpu,
        }
    }

    /// The owner's fast way in (the thread this pcp belongs to): `in_use = true`, the light
    /// barrier, then `remote`; `None` when a remote session wants or has the lists (the
    /// caller then takes [`locked`](Self::locked)).
    #[inline(always)]
    pub(crate) fn try_owner(&self) -> Option<OwnerLists<'_>> {
        self.enter_owner(false)
    }

    /// [`try_owner`](Self::try_owner) for a pcp whose barrier is light (the only kind the
    /// per-thread fast-path cache holds): the protocol without the barrier's branch.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn try_owner_light(&self) -> Option<OwnerLists<'_>> {
        self.enter_owner(true)
    }

    /// The owner protocol, with the barrier known to be light (`light`, a constant at each
    /// caller) or read from the barrier.
    #[inline(always)]
    fn enter_owner(&self, light: bool) -> Option<OwnerLists<'_>> {
        self.in_use.store(true, Ordering::Relaxed);
        if light {
            self.barrier.fence_light();
        } else {
            self.barrier.fence();
        }
        if self.remote.load(Ordering::Acquire) {
            self.in_use.store(false, Ordering::Release);
            return None;
        }
        // The lists are reached (under loom: the cell access begins) only once `remote` was
        // read as false.
        Some(OwnerLists {
            in_use: &self.in_use,
            lists: self.lists.get_mut(),
        })
    }

    /// Run `f` on the lists as their owner (the thread this pcp belongs to).
    #[inline(always)]
    pub(crate) fn owner<R>(&self, f: impl FnOnce(&mut PcpLists) -> R) -> R {
        match self.try_owner() {
            Some(mut l) => f(&mut l),
            None => self.owner_slow(f),
        }
    }

    #[cold]
    fn owner_slow<R>(&self, f: impl FnOnce(&mut PcpLists) -> R) -> R {
        self.locked(f)
    }

    /// Run `f` on the lists under `remote_lock`: the owner's slow path in
    /// [`PcpMode::PerThread`](crate::PcpMode::PerThread), and every use of a CPU's pcp in
    /// [`PcpMode::PerCpu`](crate::PcpMode::PerCpu) (3.17's interrupts-off section: whichever
    /// thread is on the CPU, or the drain the CPU runs for an IPI). Per-CPU pcps never set
    /// `in_use`, so the lock alone excludes everyone else.
    #[inline(always)]
    pub(crate) fn locked<R>(&self, f: impl FnOnce(&mut PcpLists) -> R) -> R {
        let _excl = self.remote_lock.lock();
        let p = self.lists.get_mut();
        // SAFETY: holding `remote_lock` excludes every remote session (they hold it for their
        // whole duration) and every other `locked` caller; the only other way to the lists is
        // the owner fast path of a per-thread pcp, which the caller is (owner_slow) or which
        // per-CPU pcps never take (they have no owner thread and are never in `CURRENT`).
        f(unsafe { p.deref() })
    }

    /// A per-CPU pcp's section: [`locked`](Self::locked), and the count published at its end
    /// for `drain_all_pages`' lock-free check. Kept apart from `locked`, which the per-thread
    /// owner's slow path shares: with the publication in `locked` the per-thread order-0 pair
    /// took 168 instructions instead of 149 (callgrind), though it never runs that code.
    #[inline(always)]
    pub(crate) fn cpu_section<R>(&self, f: impl FnOnce(&mut PcpLists) -> R) -> R {
        let _excl = self.remote_lock.lock();
        let p = self.lists.get_mut();
        // SAFETY: as in `locked`; per-CPU pcps have no owner fast path.
        let l = unsafe { p.deref() };
        let unwinding = CountOnUnwind(&self.count);
        let r = f(&mut *l);
        self.publish_count(l, unwinding);
        r
    }

    /// Publish the lists' count for `drain_all_pages`'s lock-free empty check, at the end of
    /// a use of the lists that did not unwind (`unwinding` is that use's guard, disarmed here).
    ///
    /// A relaxed store is enough: a drain must find the pages freed before it was called,
    /// and whatever made that free happen before the call (a join, a lock, a barrier) makes
    /// this store, which follows the free in its thread, visible to the drain's load.
    #[inline(always)]
    fn publish_count(&self, l: &PcpLists, unwinding: CountOnUnwind<'_>) {
        core::mem::forget(unwinding);
        self.count.store(l.count, Ordering::Relaxed);
    }

    /// Whether a per-CPU pcp's lists may hold pages, by the published count (no lock).
    #[inline]
    fn may_have_pages(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }

    /// [`locked`](Self::locked) if the lock is free now; `None` (and `f` not run) if not.
    fn try_locked<R>(&self, f: impl FnOnce(&mut PcpLists) -> R) -> Option<R> {
        let _excl = self.remote_lock.try_lock()?;
        let p = self.lists.get_mut();
        // SAFETY: as in `locked`: holding `remote_lock` excludes every remote session and every
        // other `locked` caller; per-CPU pcps (the only callers) have no owner fast path.
        let l = unsafe { p.deref() };
        let unwinding = CountOnUnwind(&self.count);
        let r = f(&mut *l);
        self.publish_count(l, unwinding);
        Some(r)
    }

    fn wait_owner_out(&self) {
        let mut spins = 0u32;
        while self.in_use.load(Ordering::Acquire) {
            spins += 1;
            if spins % 64 == 0 {
                crate::sync::yield_now();
            } else {
                crate::sync::spin_loop();
            }
        }
    }
}

/// Marks a pcp's published count unknown (`u32::MAX`: "look") if a use of its lists unwinds
/// (a race hook's panic inside `f`), so that no drain skips pages that use left behind.
/// Forgotten, not dropped, when the use returns: no cost on that path.
struct CountOnUnwind<'a>(&'a AtomicU32);

impl Drop for CountOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.store(u32::MAX, Ordering::Relaxed);
    }
}

/// A remote session on a pcp (see [`PcpRegistry::with_all_locked`]).
pub(crate) struct RemotePcp<'a> {
    pcp: &'a Pcp,
    _guard: MutexGuard<'a, ()>,
}

impl RemotePcp<'_> {
    /// Run `f` on the lists.
    pub(crate) fn with<R>(&mut self, f: impl FnOnce(&mut PcpLists) -> R) -> R {
        let p = self.pcp.lists.get_mut();
        // SAFETY: this session holds `remote_lock` and saw `in_use` false (acquire) after
        // publishing `remote` behind the heavy barrier, so the owner stays out (it takes its
        // slow path, which needs `remote_lock`) until the session drops; `&mut self` makes this
        // the only use of the lists within the session.
        f(unsafe { p.deref() })
    }
}

impl Drop for RemotePcp<'_> {
    fn drop(&mut self) {
        self.pcp.remote.store(false, Ordering::Release);
    }
}

/// Who calls `drain_all_pages`, which decides what a caller that finds a drain in progress
/// does. The kernel serialises drains with `pcpu_drain_mutex` since 4.11 (bd233f538d51, "mm,
/// page_alloc: use static global work_struct for draining per-cpu pages"; 3.17 let every
/// caller send its IPIs at once): a caller that needs the drain complete when it returns
/// (CMA, memory hotplug: `drain_all_pages(zone)`) waits for the mutex and drains; the direct
/// reclaimers' `drain_all_pages(NULL)` does not drain again while a drain runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DrainCaller {
    /// The caller needs every pcp drained after its call: isolation, CMA, the public
    /// [`Zone::drain_all_pages`](crate::Zone::drain_all_pages). Waits for a drain in
    /// progress, then drains.
    Complete,
    /// An allocation that found the zone short (the slow path's drain-and-retry): if a drain
    /// is in progress, waits for it to end and retries with its result instead of draining
    /// again. The kernel's reclaimer returns at once and relies on its retry loop; the plain
    /// API here retries once, so it waits for the pages the running drain frees.
    Reclaim,
}

/// What a thread's exit needs from the zone its pcp belongs to (the zone implements it in
/// `pcp`): this module knows the zone only through it.
pub(crate) trait PcpZone: Send + Sync {
    /// `drain_pages`: free everything on `l` to the zone's buddy lists.
    fn exit_drain(&self, l: &mut PcpLists);
    /// Fold `cpu`'s vmstat diffs into the zone's counters (the CPU goes away).
    fn exit_fold(&self, cpu: usize);
}

/// All pcps of a zone (`zone->pageset`), in creation order (the "cpu" numbers `zoneinfo()`
/// prints): the per-thread pcps claimed so far, or the fixed per-CPU pcps; and the way to the
/// calling thread's one.
pub(crate) struct PcpRegistry {
    pcps: Mutex<Vec<Arc<CachePadded<Pcp>>>>,
    /// [`PcpMode::PerCpu`](crate::PcpMode::PerCpu)'s pcps, CPU by CPU (also in `pcps`);
    /// empty in per-thread mode.
    per_cpu: Box<[Arc<CachePadded<Pcp>>]>,
    /// The zone's id, as the thread-local pcp lists know it.
    zone_id: u64,
    /// The zone, weakly: what a thread's pcp list remembers to drain at thread exit.
    zone: Weak<dyn PcpZone>,
    /// Whether the zone has a race hook (so that a per-CPU section checks for one).
    has_hook: bool,
    /// `pcpu_drain_mutex`: one `drain_all_pages` at a time (see [`DrainCaller`]); taken
    /// shared by a caller that only waits for the drain in progress.
    drain_lock: RwLock<()>,
    /// Keep this zone out of the fast path's per-thread cache (a traced zone: its order-0
    /// paths then run the uncached branch, where the tracepoints are). Loom builds have no
    /// cache.
    #[cfg_attr(loom, allow(dead_code))]
    uncached: bool,
    /// Per-CPU pcps, no race hook, no trace: the per-CPU leaf paths may run.
    #[cfg_attr(loom, allow(dead_code))]
    cpu_fast: bool,
    shape: PcpShape,
}

impl PcpRegistry {
    /// The registry of zone `zone_id` with `cpus` CPUs (`None`: per-thread pcps, created on
    /// demand) of `shape`.
    pub(crate) fn new(
        zone_id: u64,
        zone: Weak<dyn PcpZone>,
        has_hook: bool,
        uncached: bool,
        cpus: Option<u32>,
        shape: PcpShape,
    ) -> Self {
        let per_cpu: Box<[_]> = (0..cpus.unwrap_or(0) as usize)
            .map(|cpu| Arc::new(CachePadded::new(Pcp::new(shape, cpu))))
            .collect();
        PcpRegistry {
            pcps: Mutex::new(per_cpu.to_vec()),
            per_cpu,
            zone_id,
            zone,
            has_hook,
            drain_lock: RwLock::new(()),
            uncached,
            cpu_fast: cpus.is_some() && !has_hook && !uncached,
            shape,
        }
    }

    /// `drain_all_pages`' walk: run `drain` on the lists of every pcp, one drain at a time per
    /// zone (`pcpu_drain_mutex`; see [`DrainCaller`] for who waits for whom).
    ///
    /// Under the drain lock, every pcp that is free now is drained: per-CPU mode, each CPU
    /// whose published count is not 0 (read without its lock), in its per-CPU section, one
    /// after the other (3.17's `on_each_cpu_mask(cpus_with_pcps, drain_local_pages)`);
    /// per-thread mode, through remote sessions (the pcps read from the registry, whose lock
    /// is dropped before any pcp lock is taken; each pcp's lock only tried; the sessions opened
    /// with one heavy barrier for all; `drain` sees the count). A pcp that is busy — its
    /// lock held, or its owner inside an operation — is a thread that the OS may have
    /// preempted there, which the kernel's pcp sections (interrupts or preemption off) never
    /// are; no drain waits for one while it holds the drain lock. A
    /// [`DrainCaller::Reclaim`] drain leaves busy pcps alone (the kernel's reclaim-path drain
    /// is best effort: since 4.11 it skips the whole drain while another one runs); a
    /// [`DrainCaller::Complete`] drain waits for each of them after it released the drain lock.
    /// A pcp registered after the registry was read holds only pages freed after the drain
    /// began, which a drain may leave, as in the kernel.
    pub(crate) fn drain_each(&self, caller: DrainCaller, mut drain: impl FnMut(&mut PcpLists)) {
        crate::hook::check_reentry("drain_all_pages");
        let one_drain = match caller {
            DrainCaller::Complete => self.drain_lock.write(),
            DrainCaller::Reclaim => match self.drain_lock.try_write() {
                Some(g) => g,
                None => {
                    drop(self.drain_lock.read());
                    return;
                }
            },
        };
        let complete = caller == DrainCaller::Complete;
        if self.is_per_cpu() {
            let busy: Vec<&Pcp> = self
                .per_cpu
                .iter()
                .map(|p| &***p)
                .filter(|p| p.may_have_pages() && p.try_locked(&mut drain).is_none())
                .collect();
            drop(one_drain);
            if complete {
                for p in busy {
                    p.cpu_section(&mut drain);
                }
            }
            return;
        }
        let pcps: Vec<Arc<CachePadded<Pcp>>> = self.pcps.lock().clone();
        let mut locked_out = Vec::new();
        let mut sessions: Vec<RemotePcp<'_>> = Vec::with_capacity(pcps.len());
        for p in &pcps {
            match p.remote_lock.try_lock() {
                Some(guard) => {
                    p.remote.store(true, Ordering::Relaxed);
                    sessions.push(RemotePcp {
                        pcp: p,
                        _guard: guard,
                    });
                }
                None => locked_out.push(&***p),
            }
        }
        if !sessions.is_empty() {
            crate::sync::heavy_barrier();
        }
        // Drain and close every session whose owner is out of its operation; keep the others
        // open for a complete drain, close them for a reclaim drain.
        sessions.retain_mut(|s| {
            if s.pcp.in_use.load(Ordering::Acquire) {
                return complete;
            }
            s.with(&mut drain);
            false
        });
        drop(one_drain);
        if complete {
            for mut s in sessions {
                s.pcp.wait_owner_out();
                s.with(&mut drain);
            }
            for p in locked_out {
                let guard = p.remote_lock.lock();
                p.remote.store(true, Ordering::Relaxed);
                let mut s = RemotePcp {
                    pcp: p,
                    _guard: guard,
                };
                crate::sync::heavy_barrier();
                s.pcp.wait_owner_out();
                s.with(&mut drain);
            }
        }
    }

    /// Open a remote session on every pcp (in registry order, with one heavy barrier for all)
    /// and run `f` with them; no pcp is added meanwhile: the walks that need every pcp at one
    /// instant (`audit`, `zoneinfo`). `drain_all_pages` walks with
    /// [`drain_each`](Self::drain_each) instead.
    pub(crate) fn with_all_locked<R>(&self, f: impl FnOnce(&mut [RemotePcp<'_>]) -> R) -> R {
        crate::hook::check_reentry("a pcp walk (audit, zoneinfo)");
        let pcps = self.pcps.lock();
        let guards: Vec<_> = pcps.iter().map(|p| p.remote_lock.lock()).collect();
        for p in pcps.iter() {
            p.remote.store(true, Ordering::Relaxed);
        }
        if !pcps.is_empty() {
            crate::sync::heavy_barrier();
        }
        let mut sessions: Vec<RemotePcp<'_>> = pcps
            .iter()
            .zip(guards)
            .map(|(p, g)| {
                p.wait_owner_out();
                RemotePcp { pcp: p, _guard: g }
            })
            .collect();
        f(&mut sessions)
    }

    /// A pcp for a new owner: a released one if any, else a new one.
    fn claim(&self) -> Arc<CachePadded<Pcp>> {
        let mut pcps = self.pcps.lock();
        for p in pcps.iter() {
            if p.owned
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return p.clone();
            }
        }
        let p = Arc::new(CachePadded::new(Pcp::new(self.shape, pcps.len())));
        pcps.push(p.clone());
        p
    }
}

/// A thread's pcp for one zone.
struct LocalPcp {
    zone_id: u64,
    zone: Weak<dyn PcpZone>,
    pcp: Arc<CachePadded<Pcp>>,
}

/// A thread's pcps, one per zone it has used; drained and released at thread exit.
#[derive(Default)]
struct LocalPcps {
    entries: Vec<LocalPcp>,
}

impl Drop for LocalPcps {
    fn drop(&mut self) {
        // A failing loom model drops its threads' locals while unwinding, outside the model,
        // where loom values can no longer be touched.
        #[cfg(loom)]
        if std::thread::panicking() {
            return;
        }
        // From here on this thread owns no pcp: later frees (from other thread-locals'
        // destructors) bypass the pcp.
        #[cfg(not(loom))]
        CURRENT.set((0, core::ptr::null()));
        for e in self.entries.drain(..) {
            if let Some(zone) = e.zone.upgrade() {
                // A race hook may panic inside this drain; unwinding out of a thread-local
                // destructor would abort the process. The drain stops where the hook was
                // (before the zone lock, the lists untouched), the panic message has been
                // printed, and the pages stay on the pcp, which is still in the zone's
                // registry, for the next drain_all_pages.
                #[cfg(not(loom))]
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    e.pcp.owner(|l| zone.exit_drain(l))
                }));
                #[cfg(loom)]
                e.pcp.owner(|l| zone.exit_drain(l));
                // The pcp's "CPU" goes away: fold its diffs (cpu_vm_stats_fold).
                zone.exit_fold(e.pcp.cpu);
            }
            e.pcp.owned.store(false, Ordering::Release);
        }
    }
}

// The fast path's cache of `LOCAL_PCPS.entries[0]`: `(zone id, pcp)`, or `(0, null)`. A
// const-initialised thread-local without a destructor is one TLS-relative load.
#[cfg(not(loom))]
std::thread_local! {
    static CURRENT: core::cell::Cell<(u64, *const Pcp)> = const { core::cell::Cell::new((0, core::ptr::null())) };
}

crate::sync::thread_local! {
    static LOCAL_PCPS: RefCell<LocalPcps> = RefCell::new(LocalPcps::default());
}

/// The fast path's pcp cache, parked while a race hook runs (see [`ParkedPcp`]).
#[cfg(not(loom))]
type ParkedCurrent = (u64, *const Pcp);
/// Under loom there is no cache to park.
#[cfg(loom)]
type ParkedCurrent = ();

/// The calling thread's fast-path pcp cache, cleared while this guard lives, so that every
/// pcp access made while a race hook runs goes through the slow path, where re-entry is
/// checked; restored when the hook returns or unwinds.
///
/// The cache is only a shortcut to `LOCAL_PCPS.entries[0]`; restoring an older value is sound
/// whatever the hook did meanwhile: the pointer is used only when its zone id matches the zone
/// being called, and a zone id belongs to a zone that is alive while its methods run (ids are
/// never reused), whose registry keeps the pcp alive, and this thread still owns it (ownership
/// is only released by `LocalPcps::drop`, at thread exit, which clears the cache after any hook
/// has returned).
pub(crate) struct ParkedPcp(ParkedCurrent);

impl ParkedPcp {
    #[inline]
    pub(crate) fn new() -> ParkedPcp {
        #[cfg(not(loom))]
        return ParkedPcp(CURRENT.replace((0, core::ptr::null())));
        #[cfg(loom)]
        return ParkedPcp(());
    }
}

impl Drop for ParkedPcp {
    #[inline]
    fn drop(&mut self) {
        #[cfg(not(loom))]
        CURRENT.set(self.0);
    }
}

impl PcpRegistry {
    /// The calling thread's per-thread pcp for this zone, if the fast-path cache holds it (it
    /// holds only pcps whose barrier is light: see `this_thread_pcp_slow`).
    #[inline(always)]
    #[cfg(not(loom))]
    pub(crate) fn cached(&self) -> Option<&Pcp> {
        let (id, pcp) = CURRENT.get();
        // SAFETY: `CURRENT` holds `(zone id, pcp)` only for a pcp that this thread owns and
        // that is registered in that zone's registry (set by `this_thread_pcp_slow`, cleared by
        // `LocalPcps::drop` before ownership is released). Zone ids are never reused, and
        // `self` is that zone's registry, alive for the returned borrow and holding an `Arc`
        // to the pcp: the pointer is valid for that long.
        (id == self.zone_id).then(|| unsafe { &*pcp })
    }

    /// Run `f` on the calling thread's pcp lists (`this_cpu_ptr(zone->pageset)` with
    /// interrupts off): its own pcp in per-thread mode (registered on first use), the pcp of
    /// the CPU it is on in per-CPU mode. `None` when the thread is exiting and its
    /// thread-locals are gone, or is running a race hook at a window that bars pcp use
    /// (callers then bypass the pcp).
    #[inline(always)]
    pub(crate) fn with_lists<R>(&self, f: impl FnOnce(&mut PcpLists) -> R) -> Option<R> {
        #[cfg(not(loom))]
        if let Some(pcp) = self.cached() {
            return Some(pcp.owner(f));
        }
        self.with_lists_uncached(f)
    }

    /// [`with_lists`](Self::with_lists) past the per-thread cache, out of line so the
    /// per-thread fast path stays small.
    #[inline(never)]
    fn with_lists_uncached<R>(&self, f: impl FnOnce(&mut PcpLists) -> R) -> Option<R> {
        if self.is_per_cpu() {
            return self.with_cpu_lists(f);
        }
        self.with_thread_lists_slow(f)
    }

    /// Whether per-CPU mode's leaf paths may run: per-CPU pcps, and no race hook or trace
    /// (whose full paths check them).
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn cpu_fast(&self) -> bool {
        self.cpu_fast
    }

    /// Per-CPU mode: run `f` in the section of the calling thread's CPU (3.17's
    /// `local_irq_save` … `local_irq_restore` around `this_cpu_ptr(zone->pageset)`).
    ///
    /// A thread bound with [`set_thread_cpu`](crate::set_thread_cpu) always uses its CPU,
    /// waiting if another thread is in that CPU's section. An unbound thread is on whichever
    /// CPU the OS runs it on, and a kernel task always finds its CPU's section free (nothing
    /// can be preempted inside one); here a thread the OS preempted inside a section holds it,
    /// so an unbound thread that finds the section of the CPU it was just on held takes the
    /// first free section of the others, as if the OS had run it there, and waits only when
    /// every section is held. Bound threads (the race tests, the stress examples' workers)
    /// are unaffected.
    #[inline(always)]
    pub(crate) fn cpu_section<R>(&self, f: impl FnOnce(&mut PcpLists) -> R) -> R {
        let n = self.per_cpu.len();
        let (cpu, bound) = crate::cpu::current_bound(n);
        if bound || n == 1 {
            return self.per_cpu[cpu].cpu_section(f);
        }
        let mut f = Some(f);
        let mut run = |l: &mut PcpLists| (f.take().expect("a section runs once"))(l);
        match self.per_cpu[cpu].try_locked(&mut run) {
            Some(r) => r,
            None => self.cpu_section_elsewhere(cpu, run),
        }
    }

    /// [`cpu_section`](Self::cpu_section) for an unbound thread whose CPU's section is held:
    /// the first other CPU whose section is free, else wait for its own.
    #[cold]
    #[inline(never)]
    fn cpu_section_elsewhere<R>(&self, cpu: usize, mut run: impl FnMut(&mut PcpLists) -> R) -> R {
        let n = self.per_cpu.len();
        for i in 1..n {
            let other = (cpu + i) % n;
            if let Some(r) = self.per_cpu[other].try_locked(&mut run) {
                return r;
            }
        }
        self.per_cpu[cpu].cpu_section(run)
    }

    /// Whether the pcps are per CPU.
    #[inline(always)]
    pub(crate) fn is_per_cpu(&self) -> bool {
        !self.per_cpu.is_empty()
    }

    /// Per-CPU mode: run `f` in the calling thread's CPU's section.
    #[inline(always)]
    pub(crate) fn with_cpu_lists<R>(&self, f: impl FnOnce(&mut PcpLists) -> R) -> Option<R> {
        if self.has_hook && crate::hook::pcp_barred().is_some() {
            // A race hook at a free-path window: this CPU's pcp may be held below it.
            return None;
        }
        Some(self.cpu_section(f))
    }

    /// Per-thread mode past the fast-path cache: the thread's pcp's first use in a while.
    #[cold]
    #[inline(never)]
    pub(crate) fn with_thread_lists_slow<R>(
        &self,
        f: impl FnOnce(&mut PcpLists) -> R,
    ) -> Option<R> {
        let pcp = LOCAL_PCPS
            .try_with(|local| self.this_thread_pcp_slow(local))
            .ok()
            .flatten()?;
        Some(pcp.owner(f))
    }

    /// The calling thread's per-thread pcp, claimed on first use, made the fast-path cache's
    /// entry.
    #[cold]
    fn this_thread_pcp_slow(&self, local: &RefCell<LocalPcps>) -> Option<Arc<CachePadded<Pcp>>> {
        if crate::hook::pcp_barred().is_some() {
            // A race hook at a free-path window: this thread's pcp (or every pcp) may be in
            // use below it. Leave the pcps alone; the caller uses the buddy lists.
            return None;
        }
        let mut l = local.try_borrow_mut().ok()?;
        // Forget pcps of zones that are gone.
        l.entries.retain(|e| e.zone.strong_count() > 0);
        let pos = match l.entries.iter().position(|e| e.zone_id == self.zone_id) {
            Some(p) => p,
            None => {
                let pcp = self.claim();
                l.entries.push(LocalPcp {
                    zone_id: self.zone_id,
                    zone: self.zone.clone(),
                    pcp,
                });
                l.entries.len() - 1
            }
        };
        // Most recently used first.
        l.entries.swap(0, pos);
        let pcp = l.entries[0].pcp.clone();
        drop(l);
        // The fast-path cache holds only pcps with a light barrier (membarrier registered),
        // and no traced zone's; otherwise every operation comes here and takes `owner`.
        #[cfg(not(loom))]
        if pcp.barrier.is_light() && !self.uncached {
            CURRENT.set((self.zone_id, &**pcp as *const Pcp));
        }
        Some(pcp)
    }

    /// The "CPU" whose vmstat diffs the calling thread's zone-lock sections update: the CPU
    /// it is on (per-CPU mode), its pcp's index (per-thread mode), or
    /// [`VmStatDiffs::NO_CPU`] for a thread that has no pcp for this zone (it never claims
    /// one here: this runs where the zone lock is about to be taken).
    #[inline]
    pub(crate) fn this_cpu(&self) -> usize {
        let n = self.per_cpu.len();
        if n > 0 {
            return crate::cpu::current(n);
        }
        #[cfg(not(loom))]
        if let Some(pcp) = self.cached() {
            return pcp.cpu;
        }
        LOCAL_PCPS
            .try_with(|local| {
                let l = local.try_borrow().ok()?;
                l.entries
                    .iter()
                    .find(|e| e.zone_id == self.zone_id)
                    .map(|e| e.pcp.cpu)
            })
            .ok()
            .flatten()
            .unwrap_or(VmStatDiffs::NO_CPU)
    }
}
