//! The zone's pcps (`zone->pageset`): the [`Pcp`] structures with their owner / remote
//! protocol, the registry, and the thread-local way to the calling thread's pcp. State owned
//! by the zone; `pcp` holds the allocation, free and drain paths built on it, and implements
//! [`PcpZone`], the one thing this module needs from the zone (a thread's exit drain).
//!
//! See `pcp` for the protection table and the two modes.

use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{Arc, Mutex, MutexGuard, UnsafeCell, Weak};
use crate::types::{MIGRATE_PCPTYPES, Migratetype};
use crate::vmstat::VmStatDiffs;
use crossbeam_utils::CachePadded;
use std::cell::RefCell;
use std::collections::VecDeque;

/// One page on a pcp list: its pfn and the migratetype cached when it entered the pcp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PcpEntry {
    pub(crate) pfn: u32,
    pub(crate) mt: Migratetype,
}

/// Order-0 event counts kept by a pcp's owner under the pcp lock.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PcpEvents {
    /// Pages handed out through this pcp (`pgalloc_normal`).
    pub(crate) pgalloc: u64,
    /// Pages freed into this pcp (`pgfree`).
    pub(crate) pgfree: u64,
}

/// A pcp's lists (`struct per_cpu_pages`), behind the pcp lock.
#[derive(Debug)]
pub(crate) struct PcpLists {
    /// This pcp's "CPU" (its index in the zone's registry): whose vmstat diffs the zone-lock
    /// sections it runs update.
    pub(crate) cpu: usize,
    /// Pages on all lists.
    pub(crate) count: u32,
    /// `lists[MIGRATE_PCPTYPES]`; the front is the list head (hot end).
    pub(crate) lists: [VecDeque<PcpEntry>; MIGRATE_PCPTYPES],
    pub(crate) events: PcpEvents,
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
/// Remote session ([`PcpRegistry::with_all_locked`]): take `remote_lock`, `remote = true`,
/// [`heavy_barrier`](crate::sync::heavy_barrier), wait until `in_use` is false (acquire); on
/// drop `remote = false` (release) and unlock. The two barriers make the flags a Dekker pair
/// (at least one side sees the other's store), so the owner and a remote session never use the
/// lists at once. With `membarrier` the owner's barrier is only a compiler fence: the owner's
/// path has no read-modify-write at all and the rare remote side pays.
pub(crate) struct Pcp {
    in_use: AtomicBool,
    remote: AtomicBool,
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

/// Clears `in_use` when the owner's operation ends, also when it unwinds.
struct InUse<'a>(&'a AtomicBool);

impl Drop for InUse<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Pcp {
    fn new(high: u32, batch: u32, cpu: usize) -> Pcp {
        // Room for a full list without regrowth at the usual sizes (186 + 31), in usize so no
        // `high` overflows; capped so a large `high` (up to the zone's page count) does not
        // preallocate huge lists: they grow on demand past 1024 entries.
        let cap = (high as usize + batch as usize).min(1024);
        Pcp {
            in_use: AtomicBool::new(false),
            remote: AtomicBool::new(false),
            barrier: crate::sync::LightBarrier::new(),
            remote_lock: Mutex::new(()),
            lists: UnsafeCell::new(PcpLists {
                cpu,
                count: 0,
                lists: core::array::from_fn(|_| VecDeque::with_capacity(cap)),
                events: PcpEvents::default(),
            }),
            owned: AtomicBool::new(true),
            cpu,
        }
    }

    /// Run `f` on the lists as their owner (the thread this pcp belongs to).
    #[inline(always)]
    pub(crate) fn owner<R>(&self, f: impl FnOnce(&mut PcpLists) -> R) -> R {
        self.in_use.store(true, Ordering::Relaxed);
        let in_use = InUse(&self.in_use);
        self.barrier.fence();
        if !self.remote.load(Ordering::Acquire) {
            let p = self.lists.get_mut();
            // SAFETY: `in_use` was published before `remote` was read as false (Dekker with
            // the remote side's barrier), so no remote session uses the lists until `in_use`
            // is cleared by `in_use`'s drop after `f`; only this (owner) thread runs owner
            // operations on this pcp.
            let r = f(unsafe { p.deref() });
            drop(in_use);
            return r;
        }
        drop(in_use);
        self.owner_slow(f)
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
    /// Keep this zone out of the fast path's per-thread cache (a traced zone: its order-0
    /// paths then run the uncached branch, where the tracepoints are). Loom builds have no
    /// cache.
    #[cfg_attr(loom, allow(dead_code))]
    uncached: bool,
    high: u32,
    batch: u32,
}

impl PcpRegistry {
    /// The registry of zone `zone_id` with `cpus` CPUs (`None`: per-thread pcps, created on
    /// demand) of `high`/`batch`.
    pub(crate) fn new(
        zone_id: u64,
        zone: Weak<dyn PcpZone>,
        has_hook: bool,
        uncached: bool,
        cpus: Option<u32>,
        high: u32,
        batch: u32,
    ) -> Self {
        let per_cpu: Box<[_]> = (0..cpus.unwrap_or(0) as usize)
            .map(|cpu| Arc::new(CachePadded::new(Pcp::new(high, batch, cpu))))
            .collect();
        PcpRegistry {
            pcps: Mutex::new(per_cpu.to_vec()),
            per_cpu,
            zone_id,
            zone,
            has_hook,
            uncached,
            high,
            batch,
        }
    }

    /// The number of CPUs in per-CPU mode, 0 in per-thread mode.
    #[inline]
    pub(crate) fn nr_cpus(&self) -> usize {
        self.per_cpu.len()
    }

    /// Open a remote session on every pcp (in registry order, with one heavy barrier for all)
    /// and run `f` with them; no pcp is added meanwhile.
    pub(crate) fn with_all_locked<R>(&self, f: impl FnOnce(&mut [RemotePcp<'_>]) -> R) -> R {
        crate::hook::check_reentry("drain_all_pages (or a pcp walk)");
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
        let p = Arc::new(CachePadded::new(Pcp::new(
            self.high,
            self.batch,
            pcps.len(),
        )));
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
    /// The calling thread's per-thread pcp for this zone, if the fast-path cache holds it.
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
        Some(self.per_cpu[crate::cpu::current(self.per_cpu.len())].locked(f))
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
        #[cfg(not(loom))]
        if !self.uncached {
            CURRENT.set((self.zone_id, &**pcp as *const Pcp));
        }
        Some(pcp)
    }

    /// Run `f` on CPU `cpu`'s lists in its per-CPU section (per-CPU mode: what the drain's
    /// IPI runs on that CPU).
    pub(crate) fn cpu_locked<R>(&self, cpu: usize, f: impl FnOnce(&mut PcpLists) -> R) -> R {
        self.per_cpu[cpu].locked(f)
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
