//! The zone's compaction state: 3.17's `struct zone` fields for compaction (the deferral
//! counters, where the scanners restart, the `PG_migrate_skip` hint per pageblock). State owned
//! by the zone; `compaction` holds the paths that use it.
//!
//! # Protection
//! | state | lock | 3.17 |
//! | --- | --- | --- |
//! | [`CompactZone`]: `compact_considered`, `compact_defer_shift`, `compact_order_failed`, `compact_cached_free_pfn`, `compact_cached_migrate_pfn[2]`, `compact_blockskip_flush` | the state's own mutex, a leaf (nothing else is taken while it is held) | plain fields, written with no lock at all |
//! | the skip hint, one flag per pageblock | none: atomic flags | `PG_migrate_skip`, a pageblock bit set and cleared with `cmpxchg` |
//!
//! Why a leaf mutex rather than the zone lock or plain atomics: 3.17 reads and writes these
//! fields racily (two compactors can both defer, a deferral count can be lost), which only
//! bends heuristics. Atomics per field would keep that raciness (`defer_compaction` changes
//! three fields together); the zone lock would make compaction's bookkeeping lengthen the
//! allocator's hottest lock. A mutex of its own makes each of `compaction_deferred`,
//! `defer_compaction`, `compaction_defer_reset` atomic as a whole, so a test can predict them
//! exactly, and costs a few uncontended lock operations per compaction.

use crate::sync::Mutex;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::types::{PageblockIdx, Pfn};

/// `COMPACT_MAX_DEFER_SHIFT`: compaction is skipped at most `1 << 6` = 64 times in a row.
pub(crate) const COMPACT_MAX_DEFER_SHIFT: u32 = 6;

/// The compaction fields of `struct zone` that 3.17 keeps as plain values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CompactZone {
    /// `compact_considered`: allocations that asked since the last deferral.
    pub(crate) compact_considered: u64,
    /// `compact_defer_shift`: skip compaction up to `1 << shift` times.
    pub(crate) compact_defer_shift: u32,
    /// `compact_order_failed`: the lowest order a sync compaction failed for.
    pub(crate) compact_order_failed: u32,
    /// `compact_cached_free_pfn`: where the free scanner restarts.
    pub(crate) cached_free_pfn: Pfn,
    /// `compact_cached_migrate_pfn[sync]`: where the migrate scanner restarts, for async
    /// (`[0]`) and sync (`[1]`) compaction.
    pub(crate) cached_migrate_pfn: [Pfn; 2],
    /// `compact_blockskip_flush`: a compaction ran to completion, so the skip hints may be
    /// cleared (by kswapd when it goes to sleep).
    pub(crate) blockskip_flush: bool,
}

/// The zone's compaction state.
#[derive(Debug)]
pub(crate) struct CompactState {
    zone: Mutex<CompactZone>,
    /// `PG_migrate_skip` per pageblock.
    skip: Box<[AtomicBool]>,
    /// The scanners' initial positions: the zone's start, and its end aligned down to a
    /// pageblock.
    start_pfn: Pfn,
    free_start_pfn: Pfn,
}

impl CompactState {
    /// The state of a fresh zone of `nr_pageblocks` pageblocks of `pageblock_nr_pages`.
    ///
    /// 3.17 starts from a zeroed `struct zone` and relies on `compact_zone`'s range check to
    /// move a cached pfn of 0 to the zone's end; here the zone starts at pfn 0, where that
    /// check would accept 0, so the initial values are the ones the check would set.
    pub(crate) fn new(nr_pageblocks: u64, pageblock_nr_pages: u64) -> CompactState {
        let end = Pfn(nr_pageblocks * pageblock_nr_pages);
        CompactState {
            zone: Mutex::new(CompactZone {
                compact_considered: 0,
                compact_defer_shift: 0,
                compact_order_failed: 0,
                cached_free_pfn: end,
                cached_migrate_pfn: [Pfn(0); 2],
                blockskip_flush: false,
            }),
            skip: (0..nr_pageblocks).map(|_| AtomicBool::new(false)).collect(),
            start_pfn: Pfn(0),
            free_start_pfn: end,
        }
    }

    /// Run `f` on the fields, under their (leaf) lock.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut CompactZone) -> R) -> R {
        f(&mut self.zone.lock())
    }

    /// A copy of the fields.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> CompactZone {
        *self.zone.lock()
    }

    /// `get_pageblock_skip`.
    #[inline]
    pub(crate) fn get_skip(&self, block: PageblockIdx) -> bool {
        self.skip[block.idx()].load(Ordering::Relaxed)
    }

    /// `set_pageblock_skip`.
    #[inline]
    pub(crate) fn set_skip(&self, block: PageblockIdx) {
        self.skip[block.idx()].store(true, Ordering::Relaxed);
    }

    /// `__reset_isolation_suitable`: the scanners restart at the zone's ends, every skip hint
    /// is cleared, and the flush request is done.
    pub(crate) fn reset_isolation_suitable(&self) {
        self.with(|z| {
            z.cached_migrate_pfn = [self.start_pfn; 2];
            z.cached_free_pfn = self.free_start_pfn;
            z.blockskip_flush = false;
        });
        for s in self.skip.iter() {
            s.store(false, Ordering::Relaxed);
        }
    }

    /// Scanners meeting (`compact_finished`): the next compaction starts anew, and (unless
    /// kswapd ran it) the skip hints may be flushed.
    pub(crate) fn scanners_met(&self, by_kswapd: bool) {
        self.with(|z| {
            z.cached_migrate_pfn = [self.start_pfn; 2];
            z.cached_free_pfn = self.free_start_pfn;
            if !by_kswapd {
                z.blockskip_flush = true;
            }
        });
    }

    /// `defer_compaction(zone, order)`: a sync compaction for `order` failed to produce a
    /// page: skip the next `1 << ++shift` attempts at `order` or above.
    pub(crate) fn defer_compaction(&self, order: u32) {
        self.with(|z| {
            z.compact_considered = 0;
            z.compact_defer_shift += 1;
            if order < z.compact_order_failed {
                z.compact_order_failed = order;
            }
            if z.compact_defer_shift > COMPACT_MAX_DEFER_SHIFT {
                z.compact_defer_shift = COMPACT_MAX_DEFER_SHIFT;
            }
        });
    }

    /// `compaction_deferred(zone, order)`: whether to skip compaction for `order` this time
    /// (counting the attempt).
    pub(crate) fn compaction_deferred(&self, order: u32) -> bool {
        self.with(|z| {
            let defer_limit = 1u64 << z.compact_defer_shift;
            if order < z.compact_order_failed {
                return false;
            }
            z.compact_considered += 1;
            if z.compact_considered > defer_limit {
                z.compact_considered = defer_limit;
            }
            z.compact_considered < defer_limit
        })
    }

    /// `compaction_defer_reset(zone, order, alloc_success)`: compaction for `order` succeeded
    /// (an allocation was served, or the watermark for `order` is met).
    pub(crate) fn compaction_defer_reset(&self, order: u32, alloc_success: bool) {
        self.with(|z| {
            if alloc_success {
                z.compact_considered = 0;
                z.compact_defer_shift = 0;
            }
            if order >= z.compact_order_failed {
                z.compact_order_failed = order + 1;
            }
        });
    }

    /// `compaction_restarting(zone, order)`: the deferral ran its full course for `order`.
    pub(crate) fn compaction_restarting(&self, order: u32) -> bool {
        self.with(|z| {
            order >= z.compact_order_failed
                && z.compact_defer_shift == COMPACT_MAX_DEFER_SHIFT
                && z.compact_considered >= 1u64 << z.compact_defer_shift
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The deferral arithmetic of 3.17's `include/linux/compaction.h`, step by step.
    #[test]
    fn deferral_follows_3_17() {
        let s = CompactState::new(4, 512);
        // A fresh zone: order_failed 0, shift 0: never deferred.
        assert!(!s.compaction_deferred(9));
        // A sync failure at order 9: skip the next attempt (1 << 1 = 2: considered 1 < 2).
        s.defer_compaction(9);
        assert_eq!(s.snapshot().compact_order_failed, 0, "9 is not below 0");
        assert!(s.compaction_deferred(9));
        assert!(!s.compaction_deferred(9), "the second attempt runs");
        s.defer_compaction(9);
        // shift 2: three attempts skipped, the fourth runs.
        assert!(s.compaction_deferred(9));
        assert!(s.compaction_deferred(9));
        assert!(s.compaction_deferred(9));
        assert!(!s.compaction_deferred(9));
        // A success resets everything for this order and above; lower orders were never
        // deferred once order_failed is above them.
        s.compaction_defer_reset(9, true);
        let z = s.snapshot();
        assert_eq!(
            (
                z.compact_considered,
                z.compact_defer_shift,
                z.compact_order_failed
            ),
            (0, 0, 10)
        );
        assert!(!s.compaction_deferred(3), "below order_failed");
        // The shift saturates at COMPACT_MAX_DEFER_SHIFT, and after 64 skipped attempts
        // compaction is "restarting".
        for _ in 0..10 {
            s.defer_compaction(4);
        }
        assert_eq!(s.snapshot().compact_defer_shift, COMPACT_MAX_DEFER_SHIFT);
        assert_eq!(s.snapshot().compact_order_failed, 4);
        assert!(!s.compaction_restarting(4));
        let skipped = (0..100).take_while(|_| s.compaction_deferred(4)).count();
        assert_eq!(skipped, 63);
        assert!(s.compaction_restarting(4));
        assert!(!s.compaction_restarting(3));
    }
}
