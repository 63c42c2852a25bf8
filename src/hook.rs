//! Race-window injection: an optional hook called at the racy points of the 3.17 paths so
//! stress runs and tests can widen (spin, yield) or pin (block on a barrier) an interleaving.
//!
//! Off by default: the zone holds an `Option<Arc<dyn RaceHook>>`, so a zone without a hook
//! pays one predictable branch per window.

use crate::types::Pfn;

/// The racy points where a [`RaceHook`] is called.
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
}

/// Called at every [`RaceWindow`] when installed in the zone's config.
///
/// Implementations may spin, yield or block (for instance on a barrier shared with a test),
/// but must not call back into the zone from a window other than
/// [`RaceWindow::IsolateBetweenPageblocks`] and [`RaceWindow::IsolateBeforeDrain`], as the
/// free-path windows can be reached with a pcp lock held.
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
