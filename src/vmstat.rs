//! Zone counters as 3.17's `mm/vmstat.c` keeps them: a folded value per zone
//! (`zone->vm_stat[]`, readable without any lock) plus a small signed diff per CPU
//! (`per_cpu_pageset.vm_stat_diff[]`) that is folded into it when it would pass
//! `stat_threshold`, by the periodic `vmstat_update`, or on demand.
//!
//! A 3.17 reader of `NR_FREE_PAGES` (`zone_page_state`, what `/proc/zoneinfo` and the
//! watermark checks read) sees the folded value, which lags the truth by up to
//! `stat_threshold` pages per CPU; `zone_page_state_snapshot` adds the diffs. This library also
//! keeps the exact sum beside them (the audit's reference), so drift stays exact.
//!
//! # Protection
//! | state | lock |
//! | --- | --- |
//! | the diffs | the zone lock (every 3.17 update of these counters runs under it too) |
//! | the folded values | written under the zone lock, read without it |
//!
//! The kernel keeps the diffs in per-CPU memory and folds with `this_cpu_xchg`, so its fold
//! needs no zone lock; here the fold takes the zone lock briefly. The values a reader can
//! observe are the same: a folded value plus diffs of at most `stat_threshold` each.

use crate::sync::Arc;
use crate::sync::atomic::{AtomicI64, Ordering};

/// `enum zone_stat_item`: the zone counters kept per CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZoneStatItem {
    /// `NR_FREE_PAGES`: pages on the free lists other than `Isolate`'s.
    NrFreePages,
    /// `NR_FREE_CMA_PAGES`: pages on the CMA free lists.
    NrFreeCmaPages,
}

/// `NR_VM_ZONE_STAT_ITEMS`.
pub(crate) const NR_VM_ZONE_STAT_ITEMS: usize = 2;

impl ZoneStatItem {
    /// Every item, in `vmstat_text` order.
    pub const ALL: [ZoneStatItem; NR_VM_ZONE_STAT_ITEMS] =
        [ZoneStatItem::NrFreePages, ZoneStatItem::NrFreeCmaPages];

    /// The name `/proc/zoneinfo` and `/proc/vmstat` print.
    pub const fn name(self) -> &'static str {
        match self {
            ZoneStatItem::NrFreePages => "nr_free_pages",
            ZoneStatItem::NrFreeCmaPages => "nr_free_cma",
        }
    }

    #[inline]
    const fn idx(self) -> usize {
        self as usize
    }
}

/// `zone->vm_stat[]`: the folded counters. Shared (cheap to clone); written only under the
/// zone lock, read without it.
#[derive(Clone, Debug)]
pub(crate) struct ZoneVmStat(Arc<[AtomicI64; NR_VM_ZONE_STAT_ITEMS]>);

impl ZoneVmStat {
    pub(crate) fn new() -> Self {
        ZoneVmStat(Arc::new(core::array::from_fn(|_| AtomicI64::new(0))))
    }

    /// The folded value, as `atomic_long_read(&zone->vm_stat[item])`.
    #[inline]
    pub(crate) fn read(&self, item: ZoneStatItem) -> i64 {
        self.0[item.idx()].load(Ordering::Relaxed)
    }

    /// `zone_page_state_add`. The caller holds the zone lock (the only writers), so a load
    /// and a store suffice.
    #[inline]
    fn add(&self, item: ZoneStatItem, x: i64) {
        let a = &self.0[item.idx()];
        a.store(a.load(Ordering::Relaxed) + x, Ordering::Relaxed);
    }
}

/// The per-CPU diffs (`vm_stat_diff`) of one zone and its `stat_threshold`, kept under the
/// zone lock. A "CPU" is a per-CPU pcp in `PcpMode::PerCpu`, or a thread's pcp in
/// `PcpMode::PerThread` (the diffs belong to the pcp's owner).
#[derive(Debug)]
pub(crate) struct VmStatDiffs {
    folded: ZoneVmStat,
    diffs: Vec<[i8; NR_VM_ZONE_STAT_ITEMS]>,
    threshold: i8,
}

impl VmStatDiffs {
    /// No CPU: a thread without a pcp for the zone (one that never used its pcp, or is
    /// exiting). Its updates go straight to the folded value, as if its diff were folded at
    /// once.
    pub(crate) const NO_CPU: usize = usize::MAX;

    pub(crate) fn new(folded: ZoneVmStat, threshold: u8) -> Self {
        VmStatDiffs {
            folded,
            diffs: Vec::new(),
            threshold: threshold.min(125) as i8,
        }
    }

    /// Make room for `cpu`'s diffs (called when a lock holder names its CPU, so that
    /// [`mod_state`](Self::mod_state) needs no check but the bounds).
    #[inline]
    pub(crate) fn reserve_cpu(&mut self, cpu: usize) {
        if cpu != Self::NO_CPU && cpu >= self.diffs.len() {
            self.diffs.resize(cpu + 1, [0; NR_VM_ZONE_STAT_ITEMS]);
        }
    }

    /// `__mod_zone_page_state(zone, item, delta)` on `cpu`: add to the CPU's diff; when the
    /// sum passes `±stat_threshold`, fold it into the zone's value. A CPU without diffs (not
    /// reserved, or [`NO_CPU`](Self::NO_CPU)) updates the folded value directly.
    #[inline]
    pub(crate) fn mod_state(&mut self, cpu: usize, item: ZoneStatItem, delta: i64) {
        let t = u64::from(self.threshold as u8);
        match self.diffs.get_mut(cpu) {
            Some(d) => {
                let d = &mut d[item.idx()];
                let x = delta + i64::from(*d);
                if x.unsigned_abs() > t {
                    self.folded.add(item, x);
                    *d = 0;
                } else {
                    *d = x as i8;
                }
            }
            None => self.folded.add(item, delta),
        }
    }

    /// Fold `cpu`'s diffs into the zone's values (`refresh_cpu_vm_stats` for one CPU, or
    /// `cpu_vm_stats_fold` when it goes away).
    pub(crate) fn fold_cpu(&mut self, cpu: usize) {
        if let Some(d) = self.diffs.get_mut(cpu) {
            for item in ZoneStatItem::ALL {
                let v = core::mem::take(&mut d[item.idx()]);
                if v != 0 {
                    self.folded.add(item, i64::from(v));
                }
            }
        }
    }

    /// Fold every CPU's diffs (`vmstat_update` having run on every CPU).
    pub(crate) fn fold_all(&mut self) {
        for cpu in 0..self.diffs.len() {
            self.fold_cpu(cpu);
        }
    }

    /// `zone_page_state_snapshot`: the folded value plus every CPU's diff (not clamped).
    pub(crate) fn snapshot(&self, item: ZoneStatItem) -> i64 {
        self.folded.read(item)
            + self
                .diffs
                .iter()
                .map(|d| i64::from(d[item.idx()]))
                .sum::<i64>()
    }

    /// `cpu`'s diff for `item` (0 for a CPU that never updated).
    #[cfg(test)]
    pub(crate) fn diff(&self, cpu: usize, item: ZoneStatItem) -> i8 {
        self.diffs.get(cpu).map_or(0, |d| d[item.idx()])
    }
}

/// `fls(x)`: the 1-based index of the highest set bit, 0 for 0.
fn fls(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// 3.17's `calculate_normal_threshold(zone)`: `2 * fls(num_online_cpus()) * (1 + fls(mem))`
/// with `mem` the zone's managed memory in 128 MiB units, at most 125.
pub(crate) fn calculate_normal_threshold(managed_pages: u64, cpus: u32) -> u8 {
    let mem = managed_pages >> (27 - crate::types::PAGE_SHIFT);
    let threshold = 2 * fls(u64::from(cpus)) * (1 + fls(mem));
    threshold.min(125) as u8
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn threshold_matches_3_17_arithmetic() {
        // 1 GiB, 4 CPUs: mem = 8 (128 MiB units), fls(8) = 4, fls(4) = 3: 2 * 3 * 5. With 1 and
        // 2 CPUs: 10 and 20 (procfs317_calc.py agrees).
        assert_eq!(calculate_normal_threshold(262_144, 4), 30);
        assert_eq!(calculate_normal_threshold(262_144, 1), 10);
        assert_eq!(calculate_normal_threshold(262_144, 2), 20);
        assert_eq!(calculate_normal_threshold(3977, 2), 4);
        // 64 MiB, 2 CPUs: mem = 0: 2 * 2 * 1.
        assert_eq!(calculate_normal_threshold(16_384, 2), 4);
        // Capped at 125.
        assert_eq!(calculate_normal_threshold(1 << 30, 1024), 125);
    }

    #[test]
    fn diffs_fold_past_the_threshold_and_the_snapshot_is_exact() {
        let folded = ZoneVmStat::new();
        let mut v = VmStatDiffs::new(folded.clone(), 4);
        for cpu in 0..3 {
            v.reserve_cpu(cpu);
        }
        let item = ZoneStatItem::NrFreePages;
        v.mod_state(0, item, 3);
        v.mod_state(1, item, -2);
        assert_eq!(
            folded.read(item),
            0,
            "within the threshold nothing is folded"
        );
        assert_eq!(v.snapshot(item), 1);
        v.mod_state(0, item, 2); // 5 > 4: CPU 0 folds
        assert_eq!((folded.read(item), v.diff(0, item)), (5, 0));
        v.mod_state(VmStatDiffs::NO_CPU, item, 10);
        assert_eq!(folded.read(item), 15);
        v.fold_all();
        assert_eq!((folded.read(item), v.snapshot(item)), (13, 13));
        assert_eq!(v.diff(1, item), 0);
        // A large delta folds at once, whatever the diff was.
        v.mod_state(2, ZoneStatItem::NrFreeCmaPages, -1000);
        assert_eq!(folded.read(ZoneStatItem::NrFreeCmaPages), -1000);
    }
}
