//! The drift ledger: every accounting decision that moves `NR_FREE_PAGES` or
//! `NR_FREE_CMA_PAGES` away from the pages really on the free lists, recorded with its race
//! class and code path.
//!
//! # How it stays exact
//! While the ledger is on, the buddy core keeps the truth beside the counters: the pages on
//! non-`Isolate` free lists and on `CMA` free lists, updated by the list primitives themselves
//! (every block that enters, leaves or changes list). A decision point names itself
//! ([`ZoneFree::ledger_note`](crate::zone::ZoneFree::ledger_note)): the drift it caused is the
//! change of `counter − truth` since the last note. Whatever changes between notes without one
//! (a path that names none) is recorded when the zone lock is released, as
//! [`Race::Unclassified`] on the path last named. So the ledger's sum equals the audit's drift
//! at any quiescent point by construction — for the changes made while it was on — and an
//! unclassified entry is a path to look at, not a bucket to hide in.
//!
//! # Cost
//! Off (the default): one predictable branch in each list primitive and at each note and lock
//! release; nothing on the pcp fast path.

use crate::types::Migratetype;
use core::fmt;

/// Which race (in [`Fixes`](crate::Fixes)' naming) an accounting decision belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Race {
    /// A free carried a stale `Isolate` type into a pageblock no longer isolated.
    R1a,
    /// A free carried a stale normal type into a pageblock isolated meanwhile.
    R1b,
    /// A pcp page's cached type was stale when the bulk free ran.
    R2,
    /// A free into an isolated pageblock merged past `pageblock_order` with a normal one.
    R3a,
    /// A free into a normal pageblock merged past `pageblock_order` with an isolated one.
    R3b,
    /// A free block larger than a pageblock straddled an isolation change.
    R3c,
    /// `test_pages_isolated` moved a misplaced block to the `Isolate` list uncounted.
    R4,
    /// Undoing an isolation moved blocks back by a type other than the one they left with.
    Undo,
    /// A block that an earlier race (R1b, R2, R3b) had left on a counted (non-`Isolate`) list
    /// of an isolated pageblock left the counted lists uncounted: a free into that pageblock
    /// merged it and the merged block went to the `Isolate` list, or memory offline took it
    /// off its list (`__offline_isolated_pages` never adjusts the counters). For an R2 page (on
    /// a counted list but never counted) that undoes R2's drift; for a counted block it is new
    /// drift, the earlier race's consequence. Which race stranded a block is not tracked per
    /// block.
    Stranded,
    /// No rule above matched: a finding to investigate.
    Unclassified,
}

impl Race {
    /// The short name the documentation and `--json` use (`"R2"`, `"undo"`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Race::R1a => "R1a",
            Race::R1b => "R1b",
            Race::R2 => "R2",
            Race::R3a => "R3a",
            Race::R3b => "R3b",
            Race::R3c => "R3c",
            Race::R4 => "R4",
            Race::Undo => "undo",
            Race::Stranded => "stranded",
            Race::Unclassified => "unclassified",
        }
    }
}

impl fmt::Display for Race {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The code path of a decision, by its kernel function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum LedgerPath {
    /// `free_one_page` (a free that bypasses the pcp, order > 0 or `Isolate`).
    FreeOnePage,
    /// `free_pcppages_bulk` (a pcp's batch free or drain).
    FreePcppagesBulk,
    /// `__rmqueue` under `rmqueue_bulk` or `buffered_rmqueue`.
    Rmqueue,
    /// `move_freepages_block` from the allocation fallback (stealing a pageblock).
    StealPageblock,
    /// `set_migratetype_isolate`.
    SetMigratetypeIsolate,
    /// `unset_migratetype_isolate`.
    UnsetMigratetypeIsolate,
    /// `test_pages_isolated`' repair of a block found on another list.
    TestPagesIsolated,
    /// `__isolate_free_page` (CMA's `isolate_freepages_range`, compaction's free scanner).
    IsolateFreePage,
    /// Memory offline (`__offline_isolated_pages`).
    Hotplug,
    /// Anything not named above.
    Other,
}

impl LedgerPath {
    /// The kernel function's name.
    pub const fn name(self) -> &'static str {
        match self {
            LedgerPath::FreeOnePage => "free_one_page",
            LedgerPath::FreePcppagesBulk => "free_pcppages_bulk",
            LedgerPath::Rmqueue => "__rmqueue",
            LedgerPath::StealPageblock => "move_freepages_block",
            LedgerPath::SetMigratetypeIsolate => "set_migratetype_isolate",
            LedgerPath::UnsetMigratetypeIsolate => "unset_migratetype_isolate",
            LedgerPath::TestPagesIsolated => "test_pages_isolated",
            LedgerPath::IsolateFreePage => "__isolate_free_page",
            LedgerPath::Hotplug => "offline_pages",
            LedgerPath::Other => "other",
        }
    }
}

impl fmt::Display for LedgerPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One line of the ledger: every decision of one race on one path, summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The race class.
    pub race: Race,
    /// The code path.
    pub path: LedgerPath,
    /// Decisions that moved a counter.
    pub events: u64,
    /// Their sum of `NR_FREE_PAGES` drift (counter minus truth).
    pub free: i64,
    /// Their sum of `NR_FREE_CMA_PAGES` drift.
    pub cma: i64,
}

/// The drift now, from [`Zone::drift_sample`](crate::Zone::drift_sample): exactly, and as a
/// 3.17 reader of `zone_page_state` sees it, for both counters (counter minus the pages really
/// on the lists, as the audit's `drift_free` / `drift_cma`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriftSample {
    /// `NR_FREE_PAGES` (exact: folded value plus every CPU's diff) minus the pages on
    /// non-`Isolate` free lists.
    pub free: i64,
    /// `NR_FREE_CMA_PAGES` (exact) minus the pages on `CMA` free lists.
    pub cma: i64,
    /// `zone_page_state(NR_FREE_PAGES)` before its clamp at 0 (the folded value alone) minus
    /// the same pages: the drift plus the per-CPU diffs not folded yet.
    pub vmstat_free: i64,
    /// `zone_page_state(NR_FREE_CMA_PAGES)`, the same way.
    pub vmstat_cma: i64,
}

/// What the buddy core saw since the last note (for classifying a decision).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LedgerFlags {
    /// A free merged past `pageblock_order` across an isolation boundary.
    pub(crate) crossed_isolation: bool,
    /// A block larger than a pageblock changed list.
    pub(crate) straddled: bool,
    /// A block left an `Isolate` list without being allocated: in a pageblock no longer
    /// isolated, that is a block R1a stranded there.
    pub(crate) left_isolate_list: bool,
    /// A block left a counted (non-`Isolate`) list by `del_from_free_list` (a merge, or an
    /// allocation): in a free into an isolated pageblock, a buddy R1b or R2 stranded there.
    pub(crate) left_counted_list: bool,
}

/// The ledger's state, under the zone lock.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Pages on non-`Isolate` free lists / on `CMA` free lists.
    truth_free: i64,
    truth_cma: i64,
    /// `(counter_free - truth_free, counter_cma - truth_cma)` at the last note.
    drift_at_note: (i64, i64),
    /// The path last named (for a change recorded at the lock's release).
    pub(crate) path: Option<LedgerPath>,
    /// Since the last note: a free merged past `pageblock_order` across an isolation
    /// boundary.
    pub(crate) crossed_isolation: bool,
    /// Since the last note: a block larger than a pageblock changed list.
    pub(crate) straddled: bool,
    /// Since the last note: a block left an `Isolate` list without being allocated (merged
    /// into a free, or moved to an `Isolate` list again).
    pub(crate) left_isolate_list: bool,
    /// Since the last note: a block left a counted list by `del_from_free_list`.
    pub(crate) left_counted_list: bool,
    entries: Vec<LedgerEntry>,
}

impl Ledger {
    /// A block of `nr` pages joins (`nr > 0`) or leaves list `mt`.
    #[inline]
    pub(crate) fn list_change(&mut self, mt: Migratetype, nr: i64) {
        if !mt.is_isolate() {
            self.truth_free += nr;
        }
        if mt.is_cma() {
            self.truth_cma += nr;
        }
    }

    /// Close a decision: whatever `counter − truth` moved since the last note goes to
    /// `(race, path)`; returns that change.
    pub(crate) fn note(&mut self, counter: (i64, i64), path: LedgerPath, race: Race) -> (i64, i64) {
        let now = (counter.0 - self.truth_free, counter.1 - self.truth_cma);
        let d = (now.0 - self.drift_at_note.0, now.1 - self.drift_at_note.1);
        self.drift_at_note = now;
        if d == (0, 0) {
            return d;
        }
        match self
            .entries
            .iter_mut()
            .find(|e| e.race == race && e.path == path)
        {
            Some(e) => {
                e.events += 1;
                e.free += d.0;
                e.cma += d.1;
            }
            None => self.entries.push(LedgerEntry {
                race,
                path,
                events: 1,
                free: d.0,
                cma: d.1,
            }),
        }
        d
    }

    /// What happened since the last note, for the classifier; clears it.
    pub(crate) fn take_flags(&mut self) -> LedgerFlags {
        let f = LedgerFlags {
            crossed_isolation: self.crossed_isolation,
            straddled: self.straddled,
            left_isolate_list: self.left_isolate_list,
            left_counted_list: self.left_counted_list,
        };
        self.crossed_isolation = false;
        self.straddled = false;
        self.left_isolate_list = false;
        self.left_counted_list = false;
        f
    }

    /// The pages on non-`Isolate` and on `CMA` free lists, as the list primitives counted
    /// them.
    pub(crate) fn truth(&self) -> (i64, i64) {
        (self.truth_free, self.truth_cma)
    }

    /// Whether anything moved since the last note.
    pub(crate) fn pending(&self, counter: (i64, i64)) -> bool {
        (counter.0 - self.truth_free, counter.1 - self.truth_cma) != self.drift_at_note
    }

    /// The entries, sorted by race then path.
    pub(crate) fn entries(&self) -> Vec<LedgerEntry> {
        let mut v = self.entries.clone();
        v.sort_by_key(|e| (e.race, e.path));
        v
    }
}
