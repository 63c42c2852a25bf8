//! Race-window injection: an optional hook called at the racy points of the 3.17 paths so
//! stress runs and tests can widen (spin, yield) or pin (block on a barrier) an interleaving.
//!
//! Off by default: the zone holds an `Option<Arc<dyn RaceHook>>`, so a zone without a hook
//! pays one predictable branch per window.
//!
//! # Re-entry
//! A hook is user code running in the middle of the allocator, so the allocator keeps a
//! per-thread record of the window the thread is in (`Frame`) and checks it wherever a call
//! from the hook could reach something the interrupted path holds: this thread's pcp, the pcp
//! registry and the drain lock (every pcp, in `drain_all_pages`), a movable block's pin word,
//! the `cma_mutex`.
//! The zone lock is never held at a window. While the hook runs, the thread's cached pcp
//! pointer is parked, so even the order-0 fast path goes through the checked slow path; in the
//! free-path windows that path leaves the pcp alone and serves the call from the buddy lists
//! under the zone lock. A call that cannot be served that way panics, before it takes
//! anything, with a message naming the window: it never reaches a second `&mut` to a pcp or
//! waits on a lock its own thread holds. Which window allows what is on [`RaceWindow`].
//!
//! # Panics
//! A hook may panic. Every path that calls one leaves the allocator whole when it unwinds: a
//! block being freed is still freed (straight to the buddy lists), an isolation in progress is
//! undone, a CMA reservation is cleared, and no lock stays held. No hook is called while the
//! thread is already panicking (cleanup runs without them), and a panic during a thread-exit
//! drain is caught there (the pages stay on that pcp for the next `drain_all_pages`).

use crate::types::Pfn;
use core::cell::Cell;

/// The racy points where a [`RaceHook`] is called.
///
/// What a hook may do from each window (checked: a call the window does not allow panics
/// with a message naming the window, before it takes anything):
///
/// | window | held by the interrupted path | the hook may call |
/// | --- | --- | --- |
/// | [`FreeBeforeZoneLock`](Self::FreeBeforeZoneLock), [`FreeBeforePcpAdd`](Self::FreeBeforePcpAdd) | a block in mid-free (and the `cma_mutex` inside [`Cma::alloc`](crate::Cma::alloc)) | allocations and frees on any zone: they bypass this thread's pcp and use the buddy lists under the zone lock. Not what walks every pcp — `drain_all_pages` (so also isolation, offline, an allocation that finds the zone empty), `audit`, `zoneinfo` — nor `Cma::alloc`, nor waiting on a movable block this thread is migrating: those panic |
/// | [`PcpBulkBeforeZoneLock`](Self::PcpBulkBeforeZoneLock) | a pcp: its owner's, or inside `drain_all_pages` the zone's drain lock and the pcps that drain has open | as above |
/// | [`IsolateBetweenPageblocks`](Self::IsolateBetweenPageblocks), [`IsolateBeforeDrain`](Self::IsolateBeforeDrain) | no lock (the `cma_mutex` inside `Cma::alloc`) | anything, except `Cma::alloc` on the same zone when reached from inside `Cma::alloc` (the `cma_mutex` is not recursive) |
/// | [`AuditBetweenChunks`](Self::AuditBetweenChunks) | no lock, no pcp | anything |
/// | [`FreeScannerBeforeZoneLock`](Self::FreeScannerBeforeZoneLock) | no lock, no pcp, no pin: only the free pages this compaction isolated so far (allocated pages, held by it) | anything: allocations, frees, `drain_all_pages`, isolation, `Cma::alloc` (it may find the compactor's isolated pages busy), pinning or dropping any `MovablePages` (compaction takes its destination page before it pins the block it moves), another compaction |
///
/// Blocking, spinning and yielding are allowed everywhere (that is what hooks are for); a
/// hook that blocks forever blocks its thread with whatever the table says is held.
///
/// The race names (R1a ... R3b) are those of [`Fixes`](crate::Fixes#the-races).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RaceWindow {
    /// A free path has read the pageblock type without the zone lock and is about to take the
    /// zone lock (`free_one_page` callers: order > 0 frees, and `Isolate` order-0 frees).
    /// Races R1a and R1b.
    FreeBeforeZoneLock,
    /// An order-0 free has read the pageblock type and is about to put the page on its pcp
    /// with that cached type (the page can land after a drain: race R2's variant).
    FreeBeforePcpAdd,
    /// `free_pcppages_bulk` is about to take the zone lock with pages whose cached types were
    /// set earlier (race R2).
    PcpBulkBeforeZoneLock,
    /// `start_isolate_page_range` / `undo_isolate_page_range` between two pageblocks (races
    /// R3a and R3b).
    IsolateBetweenPageblocks,
    /// `set_migratetype_isolate` has isolated a pageblock and dropped the zone lock, before
    /// `drain_all_pages`.
    IsolateBeforeDrain,
    /// Compaction's free scanner (`isolate_freepages`) has chosen a pageblock by its type,
    /// read without the zone lock (Movable or CMA), and is about to take the zone lock to
    /// recheck it and split its free pages (`isolate_freepages_block` → `split_free_page`).
    /// `pfn` is the pageblock's first page. A free, an allocation or an isolation in that
    /// pageblock can land here; the recheck under the lock is what 3.17 relies on.
    FreeScannerBeforeZoneLock,
    /// [`Zone::audit_chunked`](crate::Zone::audit_chunked) has checked a chunk and dropped
    /// every lock; `pfn` is the first page of the next chunk. Anything can change the zone
    /// here, which is what the chunked audit must tolerate.
    AuditBetweenChunks,
}

impl RaceWindow {
    /// Whether a hook called at this window may use its thread's pcp and walk every pcp
    /// (`drain_all_pages`, isolation, `audit`): only the isolation windows and the free
    /// scanner's, where the interrupted path holds no pcp and no block in mid-free.
    pub const fn allows_pcp_calls(self) -> bool {
        matches!(
            self,
            RaceWindow::IsolateBetweenPageblocks
                | RaceWindow::IsolateBeforeDrain
                | RaceWindow::FreeScannerBeforeZoneLock
                | RaceWindow::AuditBetweenChunks
        )
    }
}

/// Called at every [`RaceWindow`] when installed in the zone's config.
///
/// Implementations may spin, yield or block (for instance on a barrier shared with a test).
/// What they may call back into is on [`RaceWindow`]; a call the window does not allow
/// panics, naming the window. A hook may panic: the allocator stays whole (see the module
/// docs of [`RaceWindow`]'s table).
pub trait RaceHook: Send + Sync {
    /// The calling thread reached `window` while working on `pfn`.
    fn window(&self, window: RaceWindow, pfn: Pfn);
}

/// A hook that spins for a number of iterations at every window (yielding every 64 spins), to
/// widen the windows in stress runs on few cores.
#[derive(Clone, Copy, Debug)]
pub struct SpinHook {
    /// Spin iterations per window.
    pub spins: u32,
}

impl RaceHook for SpinHook {
    fn window(&self, _window: RaceWindow, _pfn: Pfn) {
        for i in 0..self.spins {
            if i % 64 == 63 {
                crate::sync::yield_now();
            } else {
                crate::sync::spin_loop();
            }
        }
    }
}

/// A hook that yields the CPU once at every window: a loom scheduling point under `--cfg
/// loom`.
#[derive(Clone, Copy, Debug, Default)]
pub struct YieldHook;

impl RaceHook for YieldHook {
    fn window(&self, _window: RaceWindow, _pfn: Pfn) {
        crate::sync::yield_now();
    }
}

crate::sync::thread_local! {
    /// The window the calling thread's hook is running in, if any.
    // Not `const`: loom's `thread_local!` takes only plain initialisers.
    #[allow(clippy::missing_const_for_thread_local)]
    static WINDOW: Cell<Option<RaceWindow>> = Cell::new(None);
    /// The id of the zone whose `cma_mutex` the calling thread holds (0: none).
    #[allow(clippy::missing_const_for_thread_local)]
    static CMA_MUTEX_HELD: Cell<u64> = Cell::new(0);
}

/// Call `hook` at `window`, recording the window for the re-entry checks. Skipped while the
/// thread is panicking (cleanup runs without hooks) and during thread teardown, when the
/// record cannot be kept. The caller parks the thread's pcp cache around it (the zone's
/// `race_window`).
#[inline]
pub(crate) fn call(hook: &dyn RaceHook, window: RaceWindow, pfn: Pfn) {
    if std::thread::panicking() {
        return;
    }
    let Ok(prev) = WINDOW.try_with(|w| {
        let prev = w.get();
        // A window reached from a hook of a window that bars pcp use (an allocation made
        // there can compact, and compaction has a window of its own) stays barred: the outer
        // path still holds its pcp or its block in mid-free.
        let record = match prev {
            Some(outer) if !outer.allows_pcp_calls() => outer,
            _ => window,
        };
        w.set(Some(record));
        prev
    }) else {
        return;
    };
    let _frame = Frame { prev };
    hook.window(window, pfn);
}

/// A hook's record, restored when the hook returns or unwinds.
struct Frame {
    prev: Option<RaceWindow>,
}

impl Drop for Frame {
    fn drop(&mut self) {
        let _ = WINDOW.try_with(|w| w.set(self.prev));
    }
}

/// The window whose hook the calling thread is running, if any.
fn current_window() -> Option<RaceWindow> {
    WINDOW.try_with(Cell::get).ok().flatten()
}

/// The window whose hook the calling thread is running, if that window allows no pcp use
/// (see [`RaceWindow::allows_pcp_calls`]): the pcp slow path then serves the call from the
/// buddy lists instead.
#[inline]
pub(crate) fn pcp_barred() -> Option<RaceWindow> {
    current_window().filter(|w| !w.allows_pcp_calls())
}

/// Refuse `what` (a call that walks every pcp, or waits on what the interrupted path may
/// hold) from a hook whose window does not allow it. Called before `what` takes anything.
///
/// # Panics
/// If the calling thread is running a hook at such a window.
#[inline]
pub(crate) fn check_reentry(what: &str) {
    if let Some(w) = pcp_barred() {
        reentry_panic(w, what);
    }
}

#[cold]
#[inline(never)]
fn reentry_panic(w: RaceWindow, what: &str) -> ! {
    panic!(
        "pagealloc: a RaceHook called {what} from RaceWindow::{w:?}, where the interrupted \
         path holds a pcp or a block in mid-free; see RaceWindow for what each window allows"
    )
}

/// Marks the calling thread as holding zone `zone_id`'s `cma_mutex` until dropped.
pub(crate) struct CmaMutexHeld(u64);

impl CmaMutexHeld {
    /// Check that the calling thread does not hold `zone_id`'s `cma_mutex` already (a hook
    /// re-entering `Cma::alloc`), then mark it as holding it.
    ///
    /// # Panics
    /// If it does: 3.17's `cma_mutex` is not recursive, and waiting would never end.
    pub(crate) fn enter(zone_id: u64) -> CmaMutexHeld {
        let prev = CMA_MUTEX_HELD.try_with(|c| c.replace(zone_id)).unwrap_or(0);
        if prev == zone_id {
            let at = current_window().map_or_else(
                || "outside any window".to_string(),
                |w| format!("RaceWindow::{w:?}"),
            );
            panic!(
                "pagealloc: a RaceHook called Cma::alloc from {at} inside a Cma::alloc of the \
                 same zone, whose cma_mutex this thread holds (a nested CMA allocation would \
                 wait on itself)"
            );
        }
        CmaMutexHeld(prev)
    }
}

impl Drop for CmaMutexHeld {
    fn drop(&mut self) {
        let _ = CMA_MUTEX_HELD.try_with(|c| c.set(self.0));
    }
}
