//! `audit()`: recount everything under the locks and report drift. It never fixes anything.
//!
//! With every pcp lock and the zone lock held (lock order registry → pcps → zone), it walks
//! every free list, every pcp list and the allocation-state table, and checks:
//! - `F == F*`, `C == C*`: `NR_FREE_PAGES` against the pages on non-`Isolate` lists,
//!   `NR_FREE_CMA_PAGES` against the pages on `CMA` lists (signed drift `F - F*`, `C - C*`);
//! - `free_area[o].nr_free` == blocks on the order-`o` lists;
//! - every free head is inside the zone, aligned to its order, `PageBuddy` with that order,
//!   and not marked allocated; no page is in two places (two free blocks, a free block and a
//!   pcp, an allocated block);
//! - misplacement: no block on a non-`Isolate` list covers an `Isolate` pageblock and no block
//!   on the `Isolate` list covers a non-`Isolate` pageblock; no block on the `CMA` list covers a
//!   non-CMA pageblock and no block on another counted list covers a CMA pageblock;
//! - `nr_isolate_pageblock` == pageblocks typed `Isolate`;
//! - conservation: buddy-free + pcp-cached + allocated + offline == managed pages.
//!
//! That holds the locks for the whole walk: on a 16 GiB zone tens of milliseconds in which
//! no allocation that needs a pcp or the zone lock proceeds. `Zone::audit_chunked` checks the
//! zone a chunk of pageblocks at a time instead, dropping the locks between chunks; what it
//! can and cannot check that way is in its docs (per chunk: free heads, their links, page
//! ownership, misplacement, conservation; only if no one else took the zone lock during the
//! audit: the counters against the sums). The kernel has no such audit; the nearest are
//! `CONFIG_DEBUG_VM` checks made under the lock one page at a time.

use crate::page::state;
use crate::types::{MIGRATE_TYPES, Migratetype, Order, PageblockIdx, Pfn};
use crate::vmstat::ZoneStatItem;
use crate::zone::pageset::RemotePcp;
use crate::zone::{ZoneFree, ZoneInner};
use core::fmt;
use core::num::NonZeroU64;
use std::time::{Duration, Instant};

/// A free block on a list whose type disagrees with its pageblock(s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MisplacedBlock {
    /// Head pfn.
    pub pfn: Pfn,
    /// Block order.
    pub order: Order,
    /// The list it is on.
    pub list: Migratetype,
    /// The type of the (first disagreeing) pageblock it covers.
    pub pageblock: Migratetype,
}

/// A top-order block of a quiescent zone whose pages are all free on the buddy lists but do
/// not form one free block (found by [`Zone::audit_coalescing`](crate::Zone::audit_coalescing)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmergedBlock {
    /// Head of the top-order block.
    pub pfn: Pfn,
    /// The free blocks it is split into: head, order, the list each is on.
    pub pieces: Vec<(Pfn, Order, Migratetype)>,
    /// Why its first unmerged pair of free buddies did not merge, by the merge rules the
    /// zone's fixes apply.
    pub reason: String,
}

/// The result of [`Zone::audit`](crate::Zone::audit).
#[derive(Clone, Debug, Default)]
pub struct AuditReport {
    /// `NR_FREE_PAGES` as counted, exactly (the folded vmstat value plus every CPU's diff).
    pub nr_free_pages: i64,
    /// `NR_FREE_CMA_PAGES` as counted, exactly.
    pub nr_free_cma_pages: i64,
    /// `NR_FREE_PAGES` as a 3.17 reader saw it at the audit: the folded value alone
    /// ([`Zone::zone_page_state`](crate::Zone::zone_page_state) before its clamp at 0).
    pub vmstat_free_pages: i64,
    /// `NR_FREE_CMA_PAGES` as a 3.17 reader saw it, the same way.
    pub vmstat_free_cma_pages: i64,
    /// F*: pages on non-`Isolate` free lists.
    pub true_free_pages: u64,
    /// C*: pages on `CMA` free lists.
    pub true_free_cma_pages: u64,
    /// `F - F*`.
    pub drift_free: i64,
    /// `C - C*`.
    pub drift_cma: i64,
    /// `free_area[o].nr_free` as counted, per order.
    pub nr_free: Vec<u64>,
    /// Blocks found on the lists, per order and migratetype (`/proc/pagetypeinfo`).
    pub free_blocks: Vec<[u64; MIGRATE_TYPES]>,
    /// Pages on the free lists per migratetype.
    pub free_pages_by_type: [u64; MIGRATE_TYPES],
    /// Pages on the `Isolate` lists.
    pub isolated_free_pages: u64,
    /// Blocks whose list disagrees with their pageblock type.
    pub misplaced_blocks: Vec<MisplacedBlock>,
    /// Pages cached on pcp lists.
    pub pcp_pages: u64,
    /// Pages in allocated blocks.
    pub allocated_pages: u64,
    /// Offlined pages.
    pub offline_pages: u64,
    /// Managed pages of the zone.
    pub managed_pages: u64,
    /// `nr_isolate_pageblock` as counted.
    pub nr_isolate_pageblock: u64,
    /// Pageblocks typed `Isolate`.
    pub isolate_pageblocks: u64,
    /// Structural errors (bad heads, overlaps, `nr_free` mismatches, conservation).
    pub errors: Vec<String>,
    /// Top-order blocks that are entirely free but not merged (only filled by
    /// [`Zone::audit_coalescing`](crate::Zone::audit_coalescing)).
    pub unmerged_blocks: Vec<UnmergedBlock>,
    /// The drift ledger at the audit, when [`ZoneConfig::ledger`](crate::ZoneConfig::ledger)
    /// is on (see [`Zone::ledger`](crate::Zone::ledger)); the audit checks that its sums equal
    /// `drift_free` and `drift_cma`.
    pub ledger: Option<Vec<crate::LedgerEntry>>,
    /// How the audit went when it ran a chunk at a time
    /// ([`Zone::audit_chunked`](crate::Zone::audit_chunked)); `None` for the one-hold audits.
    pub chunked: Option<ChunkedAudit>,
}

/// How a chunked audit ([`Zone::audit_chunked`](crate::Zone::audit_chunked)) went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkedAudit {
    /// Pages per chunk (the request rounded up to a multiple of the top-order block).
    pub chunk_pages: u64,
    /// Chunks, each checked in one hold of every pcp lock and the zone lock.
    pub chunks: u64,
    /// The longest of those holds of the zone lock, from taking it to letting the next
    /// waiter in (the pcp locks are held from before it is taken, a wait for it longer).
    pub longest_hold: Duration,
    /// Whether the whole-zone comparisons ran: no one else took the zone lock between the
    /// audit's first chunk and its last, so the zone-locked state (free lists, `nr_free`,
    /// the free-page counters, the pageblock table, the ledger) was the same for every chunk
    /// and the sums over the chunks are a snapshot. When `false`, `drift_free`, `drift_cma`,
    /// the `nr_free`, `nr_isolate_pageblock`, `offline_pages` and ledger checks were not made
    /// (the drift fields are 0); the per-chunk checks and conservation were.
    pub whole_zone_checked: bool,
}

impl AuditReport {
    /// No drift, no misplaced block, no structural error (and, when the coalescing check
    /// ran, no unmerged top-order block).
    pub fn is_ok(&self) -> bool {
        self.drift_free == 0
            && self.drift_cma == 0
            && self.misplaced_blocks.is_empty()
            && self.errors.is_empty()
            && self.unmerged_blocks.is_empty()
    }

    /// Whether buddy + pcp + allocated + offline pages add up to the managed pages.
    pub fn conservation_ok(&self) -> bool {
        self.true_free_pages
            + self.isolated_free_pages
            + self.pcp_pages
            + self.allocated_pages
            + self.offline_pages
            == self.managed_pages
    }

    /// Panic with `pagealloc audit failed: …` unless the report is clean.
    #[track_caller]
    pub fn assert_ok(&self) {
        if !self.is_ok() {
            panic!("pagealloc audit failed: {self}");
        }
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NR_FREE_PAGES {} (true {}, drift {:+}), NR_FREE_CMA_PAGES {} (true {}, drift {:+}), \
             {} misplaced blocks, pcp {}, allocated {}, offline {}, isolated free {}, managed {}",
            self.nr_free_pages,
            self.true_free_pages,
            self.drift_free,
            self.nr_free_cma_pages,
            self.true_free_cma_pages,
            self.drift_cma,
            self.misplaced_blocks.len(),
            self.pcp_pages,
            self.allocated_pages,
            self.offline_pages,
            self.isolated_free_pages,
            self.managed_pages
        )?;
        if let Some(m) = self.misplaced_blocks.first() {
            write!(
                f,
                "; first misplaced: {} {} on the {} list in a {} pageblock",
                m.pfn, m.order, m.list, m.pageblock
            )?;
        }
        if let Some(u) = self.unmerged_blocks.first() {
            write!(
                f,
                "; {} unmerged top-order blocks, first at {} in {} pieces: {}",
                self.unmerged_blocks.len(),
                u.pfn,
                u.pieces.len(),
                u.reason
            )?;
        }
        if let Some(c) = self.chunked.filter(|c| !c.whole_zone_checked) {
            write!(
                f,
                "; audited in {} chunks while the zone changed: counters not compared",
                c.chunks
            )?;
        }
        if let Some(l) = self.ledger.as_ref().filter(|l| !l.is_empty()) {
            write!(f, "; ledger:")?;
            for e in l {
                write!(
                    f,
                    " {} on {} ×{} {:+}/{:+}",
                    e.race, e.path, e.events, e.free, e.cma
                )?;
            }
        }
        for e in self.errors.iter().take(8) {
            write!(f, "; {e}")?;
        }
        if self.errors.len() > 8 {
            write!(f, "; … {} more errors", self.errors.len() - 8)?;
        }
        Ok(())
    }
}

/// Where a page was found during the audit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Owner {
    None,
    Buddy,
    Pcp,
    Allocated,
    Offline,
}

/// Who holds each page of `[base, base + owner.len())`, as the audit finds them; a page found
/// twice is an error.
struct Census {
    base: u64,
    owner: Vec<Owner>,
}

impl Census {
    /// A census of `pages` pages from `base`, nobody's yet.
    fn new(base: u64, pages: u64) -> Self {
        Census {
            base,
            owner: vec![Owner::None; pages as usize],
        }
    }

    /// Whether `pfn` is a page this census covers.
    fn covers(&self, pfn: Pfn) -> bool {
        (self.base..self.base + self.owner.len() as u64).contains(&pfn.0)
    }

    fn claim(&mut self, r: &mut AuditReport, pfn: Pfn, pages: u64, who: Owner) {
        let end = (pfn.0 + pages).min(self.base + self.owner.len() as u64);
        for p in pfn.0.max(self.base)..end {
            let o = &mut self.owner[(p - self.base) as usize];
            if *o != Owner::None && r.errors.len() < 64 {
                r.errors
                    .push(format!("pfn {p:#x} is both {o:?} and {who:?}"));
            }
            *o = who;
        }
    }

    /// Whether every page of `[pfn, pfn + pages)` is in a free block.
    fn all_buddy(&self, pfn: Pfn, pages: u64) -> bool {
        let from = (pfn.0 - self.base) as usize;
        self.owner[from..from + pages as usize]
            .iter()
            .all(|o| *o == Owner::Buddy)
    }
}

impl ZoneInner {
    /// Recount everything with all locks held. See the module docs. With `coalescing`, also
    /// check that every entirely free top-order block is one free block.
    pub(crate) fn audit(&self, coalescing: bool) -> AuditReport {
        self.pcps.with_all_locked(|pcps| {
            let zf = self.lock();
            let g = &self.geo;
            let mut census = Census::new(0, g.nr_pages);
            let mut r = self.empty_report();
            self.read_counters(&zf, &mut r);
            r.offline_pages = zf.offline_pages();
            self.audit_free_lists(&zf, &mut r, &mut census);
            self.audit_pcps(pcps, &mut r, &mut census, true);
            self.audit_allocated(&mut r, &mut census);
            self.audit_isolate_count(&mut r);
            if coalescing {
                self.audit_coalescing(&zf, &mut r, &census);
            }
            Self::check_drift(&zf, &mut r);
            Self::check_conservation(&mut r);
            r
        })
    }

    /// A report with nothing counted yet.
    fn empty_report(&self) -> AuditReport {
        AuditReport {
            free_blocks: vec![[0; MIGRATE_TYPES]; self.geo.max_order as usize],
            managed_pages: self.geo.nr_pages,
            ..AuditReport::default()
        }
    }

    /// Read the zone's counters into the report (all but `offline_pages`) and check the
    /// vmstat diffs against the exact counts.
    fn read_counters(&self, zf: &ZoneFree, r: &mut AuditReport) {
        r.nr_free_pages = zf.nr_free_pages();
        r.nr_free_cma_pages = zf.nr_free_cma_pages();
        r.vmstat_free_pages = self.vm_stat.read(ZoneStatItem::NrFreePages);
        r.vmstat_free_cma_pages = self.vm_stat.read(ZoneStatItem::NrFreeCmaPages);
        r.nr_free = zf.nr_free().to_vec();
        r.nr_isolate_pageblock = zf.nr_isolate_pageblock();
        for (item, exact) in [
            (ZoneStatItem::NrFreePages, r.nr_free_pages),
            (ZoneStatItem::NrFreeCmaPages, r.nr_free_cma_pages),
        ] {
            let snapshot = zf.vmstat().snapshot(item);
            if snapshot != exact {
                r.errors.push(format!(
                    "vmstat: {} folded + per-CPU diffs = {snapshot}, but the exact count is {exact}",
                    item.name()
                ));
            }
        }
    }

    /// The drift `F - F*`, `C - C*`, and the ledger's sums against it.
    fn check_drift(zf: &ZoneFree, r: &mut AuditReport) {
        r.drift_free = r.nr_free_pages - r.true_free_pages as i64;
        r.drift_cma = r.nr_free_cma_pages - r.true_free_cma_pages as i64;
        if let Some(l) = zf.ledger_entries() {
            let sums = l.iter().fold((0, 0), |(f, c), e| (f + e.free, c + e.cma));
            if sums != (r.drift_free, r.drift_cma) {
                r.errors.push(format!(
                    "ledger: its entries sum to {:+}/{:+}, the drift is {:+}/{:+}",
                    sums.0, sums.1, r.drift_free, r.drift_cma
                ));
            }
            r.ledger = Some(l);
        }
    }

    /// Buddy + pcp + allocated + offline pages against the managed pages.
    fn check_conservation(r: &mut AuditReport) {
        if !r.conservation_ok() {
            r.errors.push(format!(
                "conservation: free {} + isolated {} + pcp {} + allocated {} + offline {} != managed {}",
                r.true_free_pages,
                r.isolated_free_pages,
                r.pcp_pages,
                r.allocated_pages,
                r.offline_pages,
                r.managed_pages
            ));
        }
    }

    /// The audit a chunk at a time (see [`Zone::audit_chunked`](crate::Zone::audit_chunked)):
    /// `chunk_pages` rounded up to a multiple of the top-order block.
    pub(crate) fn audit_chunked(&self, chunk_pages: u64) -> AuditReport {
        let g = &self.geo;
        let top = g.max_order_nr_pages();
        let chunk = chunk_pages.div_ceil(top).saturating_mul(top);
        let mut r = self.empty_report();
        let mut offline_marked = 0;
        let mut longest_hold = Duration::ZERO;
        let mut chunks = 0u64;
        // The lock's hold count after this audit's first taking of it, and how many times it
        // took the lock since: if the count moved by more, someone else held the lock between
        // two chunks.
        let mut first_hold = 0u64;
        let mut own_holds_since = 0u64;
        let mut quiescent = false;
        let mut start = 0;
        while start < g.nr_pages {
            let end = start.saturating_add(chunk).min(g.nr_pages);
            let last = end == g.nr_pages;
            let mut census = Census::new(start, end - start);
            let held = self.pcps.with_all_locked(|pcps| {
                let mut zf = self.lock();
                let t = Instant::now();
                if chunks == 0 {
                    first_hold = zf.holds();
                } else {
                    own_holds_since += 1;
                }
                for p in start..end {
                    let pfn = Pfn(p);
                    if let Some(order) = zf.buddy_order(pfn) {
                        if order.0 >= g.max_order {
                            r.errors
                                .push(format!("free head {pfn} has order {}", order.0));
                            continue;
                        }
                        if let Err(e) = zf.check_links(pfn)
                            && r.errors.len() < 64
                        {
                            r.errors.push(e);
                        }
                        self.audit_free_block(pfn, order, zf.list_of(pfn), &mut r, &mut census);
                    }
                }
                self.audit_pcps(pcps, &mut r, &mut census, chunks == 0);
                offline_marked += self.audit_states(&mut r, &mut census);
                r.isolate_pageblocks += self.isolate_pageblocks(
                    start >> g.pageblock_order
                        ..end.div_ceil(g.pageblock_nr_pages).min(g.nr_pageblocks),
                );
                if last {
                    quiescent = zf.holds() == first_hold.wrapping_add(own_holds_since);
                    self.read_counters(&zf, &mut r);
                    if quiescent {
                        self.check_whole_zone(&zf, &mut r, offline_marked);
                    }
                    t.elapsed()
                } else {
                    let held = t.elapsed();
                    // Hand the zone lock to whoever waits for it before the next chunk takes
                    // it again (with an unfair lock this thread would win it back at once and
                    // the waiters would wait for the whole audit after all).
                    zf.let_waiters_in();
                    held
                }
            });
            longest_hold = longest_hold.max(held);
            chunks += 1;
            start = end;
            if !last {
                self.race_window(crate::hook::RaceWindow::AuditBetweenChunks, Pfn(start));
            }
        }
        r.offline_pages = offline_marked;
        Self::check_conservation(&mut r);
        r.chunked = Some(ChunkedAudit {
            chunk_pages: chunk,
            chunks,
            longest_hold,
            whole_zone_checked: quiescent,
        });
        r
    }

    /// The chunked audit's comparisons of the zone's counters with the sums over its chunks,
    /// valid only when nothing changed the zone between the chunks.
    fn check_whole_zone(&self, zf: &ZoneFree, r: &mut AuditReport, offline_marked: u64) {
        for (order, per_type) in r.free_blocks.iter().enumerate() {
            let found: u64 = per_type.iter().sum();
            if found != r.nr_free[order] {
                r.errors.push(format!(
                    "free_area[{order}].nr_free is {} but {found} blocks are listed",
                    r.nr_free[order]
                ));
            }
        }
        if offline_marked != zf.offline_pages() {
            r.errors.push(format!(
                "{} pages marked offline but offline_pages is {}",
                offline_marked,
                zf.offline_pages()
            ));
        }
        Self::check_isolate_count(r);
        Self::check_drift(zf, r);
    }

    /// Walk every free list: heads, orders, `nr_free`, the true counts, misplaced blocks.
    fn audit_free_lists(&self, zf: &ZoneFree, r: &mut AuditReport, census: &mut Census) {
        let g = &self.geo;
        for order in 0..g.max_order {
            let order = Order(order);
            for mt in Migratetype::ALL {
                let mut heads = Vec::new();
                zf.list_for_each(order, mt, |pfn| heads.push(pfn));
                for pfn in heads {
                    if pfn.0 >= g.nr_pages {
                        r.free_blocks[order.0 as usize][mt.idx()] += 1;
                        r.errors.push(format!("free head {pfn} outside the zone"));
                        continue;
                    }
                    if zf.buddy_order(pfn) != Some(order) {
                        r.errors.push(format!(
                            "{pfn} on an {order} list but PageBuddy/order say {:?}",
                            zf.buddy_order(pfn)
                        ));
                    }
                    if zf.list_of(pfn) != mt {
                        r.errors.push(format!(
                            "free head {pfn} on the {mt} list records another list"
                        ));
                    }
                    self.audit_free_block(pfn, order, mt, r, census);
                }
            }
            let found: u64 = r.free_blocks[order.0 as usize].iter().sum();
            if found != zf.nr_free()[order.0 as usize] {
                r.errors.push(format!(
                    "free_area[{}].nr_free is {} but {} blocks are listed",
                    order.0,
                    zf.nr_free()[order.0 as usize],
                    found
                ));
            }
        }
    }

    /// Count the free block `(pfn, order)` on list `mt` and check what one block can show:
    /// alignment, not marked allocated, no page claimed twice, the pageblocks it covers.
    fn audit_free_block(
        &self,
        pfn: Pfn,
        order: Order,
        mt: Migratetype,
        r: &mut AuditReport,
        census: &mut Census,
    ) {
        r.free_blocks[order.0 as usize][mt.idx()] += 1;
        if !pfn.is_aligned(order) {
            r.errors
                .push(format!("free head {pfn} not aligned to {order}"));
        }
        if self.state.alloc_order(pfn).is_some() {
            r.errors
                .push(format!("free head {pfn} is marked allocated"));
        }
        let pages = order.nr_pages();
        r.free_pages_by_type[mt.idx()] += pages;
        if mt.is_isolate() {
            r.isolated_free_pages += pages;
        } else {
            r.true_free_pages += pages;
        }
        if mt.is_cma() {
            r.true_free_cma_pages += pages;
        }
        census.claim(r, pfn, pages, Owner::Buddy);
        if let Some(pb) = self.misplaced(pfn, order, mt) {
            r.misplaced_blocks.push(MisplacedBlock {
                pfn,
                order,
                list: mt,
                pageblock: pb,
            });
        }
    }

    /// Walk every pcp list: the pages the census covers are counted and claimed; with
    /// `whole_lists`, also each list's count and its pages outside the zone.
    fn audit_pcps(
        &self,
        pcps: &mut [RemotePcp<'_>],
        r: &mut AuditReport,
        census: &mut Census,
        whole_lists: bool,
    ) {
        let g = &self.geo;
        for session in pcps.iter_mut() {
            session.with(|l| {
                let listed = l.listed_pages(g.pageblock_order);
                if whole_lists && listed != u64::from(l.count) {
                    r.errors
                        .push(format!("pcp count {} but {} pages listed", l.count, listed));
                }
                for (head, order, _) in l.blocks(g.pageblock_order) {
                    let pfn = Pfn(head);
                    let pages = order.nr_pages();
                    if pfn.0 + pages > g.nr_pages || !pfn.is_aligned(order) {
                        if whole_lists {
                            r.errors.push(format!(
                                "pcp block {pfn} order {} outside the zone",
                                order.0
                            ));
                        }
                        continue;
                    }
                    if !census.covers(pfn) {
                        continue;
                    }
                    if self.state.alloc_order(pfn).is_some() {
                        r.errors.push(format!("pcp page {pfn} is marked allocated"));
                    }
                    r.pcp_pages += pages;
                    census.claim(r, pfn, pages, Owner::Pcp);
                }
            });
        }
    }

    /// Walk the page-state table over the census's pages: allocated blocks and offline pages.
    /// Returns the pages marked offline.
    fn audit_states(&self, r: &mut AuditReport, census: &mut Census) -> u64 {
        let mut offline_marked = 0;
        for p in census.base..census.base + census.owner.len() as u64 {
            let pfn = Pfn(p);
            if let Some(order) = self.state.alloc_order(pfn) {
                r.allocated_pages += order.nr_pages();
                census.claim(r, pfn, order.nr_pages(), Owner::Allocated);
            } else if self.state.get(pfn) == state::OFFLINE {
                offline_marked += 1;
                census.claim(r, pfn, 1, Owner::Offline);
            }
        }
        offline_marked
    }

    /// [`audit_states`](Self::audit_states) over the whole zone, and the offline pages
    /// marked against `offline_pages`.
    fn audit_allocated(&self, r: &mut AuditReport, census: &mut Census) {
        let offline_marked = self.audit_states(r, census);
        if offline_marked != r.offline_pages {
            r.errors.push(format!(
                "{} pages marked offline but offline_pages is {}",
                offline_marked, r.offline_pages
            ));
        }
    }

    /// The pageblocks typed `Isolate` among `blocks`.
    fn isolate_pageblocks(&self, blocks: core::ops::Range<u64>) -> u64 {
        blocks
            .filter(|&b| self.pageblock.get_block(PageblockIdx(b)).is_isolate())
            .count() as u64
    }

    /// `nr_isolate_pageblock` against the pageblocks typed `Isolate`.
    fn audit_isolate_count(&self, r: &mut AuditReport) {
        r.isolate_pageblocks = self.isolate_pageblocks(0..self.geo.nr_pageblocks);
        Self::check_isolate_count(r);
    }

    /// `nr_isolate_pageblock` against `isolate_pageblocks`, both already in the report.
    fn check_isolate_count(r: &mut AuditReport) {
        if r.isolate_pageblocks != r.nr_isolate_pageblock {
            r.errors.push(format!(
                "nr_isolate_pageblock is {} but {} pageblocks are Isolate",
                r.nr_isolate_pageblock, r.isolate_pageblocks
            ));
        }
    }

    /// Every top-order block whose pages are all in free blocks is one free block.
    fn audit_coalescing(&self, zf: &ZoneFree, r: &mut AuditReport, census: &Census) {
        let g = &self.geo;
        let top = g.max_order_nr_pages();
        for head in (0..g.nr_pages).step_by(top as usize) {
            let head = Pfn(head);
            if census.all_buddy(head, top) && zf.buddy_order(head) != Some(Order(g.max_order - 1)) {
                r.unmerged_blocks.push(self.unmerged(zf, head));
            }
        }
    }

    /// Describe the entirely free but split top-order block at `head`.
    fn unmerged(&self, zf: &ZoneFree, head: Pfn) -> UnmergedBlock {
        let g = &self.geo;
        let end = head.add(g.max_order_nr_pages());
        let mut pieces = Vec::new();
        let mut p = head;
        while p < end {
            let Some(order) = zf.buddy_order(p) else {
                p = p.add(1);
                continue;
            };
            let list = zf.list_of(p);
            pieces.push((p, order, list));
            p = p.add(order.nr_pages());
        }
        let pair = pieces
            .iter()
            .filter(|&&(a, o, _)| {
                let b = Pfn(a.0 ^ o.nr_pages());
                b > a && pieces.iter().any(|&(q, qo, _)| q == b && qo == o)
            })
            .min_by_key(|&&(_, o, _)| o);
        let reason = match pair {
            None => "its free blocks do not pair up as buddies".to_string(),
            Some(&(a, o, _)) => {
                let b = Pfn(a.0 ^ o.nr_pages());
                let (ta, tb) = (self.pageblock.get(a), self.pageblock.get(b));
                let above = o.0 >= g.pageblock_order;
                if above
                    && self.fixes.contains(crate::Fixes::NO_MIXED_MERGE)
                    && ta != tb
                    && !(ta.is_pcp_type() && tb.is_pcp_type())
                {
                    format!(
                        "the {o} buddies at {a} and {b} lie in a {ta} and a {tb} pageblock, which \
                         the 2022 rule (NO_MIXED_MERGE) never merges above pageblock_order"
                    )
                } else if above && self.fixes.contains(crate::Fixes::ISOLATE_MERGE_LIMIT) {
                    format!(
                        "the {o} buddies at {a} and {b} were not merged: a free capped at \
                         pageblock_order while its pageblock was isolated (v3 patch 4's \
                         ISOLATE_MERGE_LIMIT) stays split once the isolation is undone"
                    )
                } else {
                    format!(
                        "the {o} buddies at {a} ({ta} pageblock) and {b} ({tb}) are both free \
                         but not merged, which no merge rule of these fixes explains"
                    )
                }
            }
        };
        UnmergedBlock {
            pfn: head,
            pieces,
            reason,
        }
    }

    /// The type of a pageblock covered by the free block `(pfn, order)` on list `mt` that makes
    /// the block misplaced, if any.
    fn misplaced(&self, pfn: Pfn, order: Order, mt: Migratetype) -> Option<Migratetype> {
        let g = &self.geo;
        let pages = order.nr_pages().max(1);
        let first = pfn.0 >> g.pageblock_order;
        let last = (pfn.0 + pages - 1) >> g.pageblock_order;
        (first..=last).find_map(|b| {
            let pb = self.pageblock.get_block(PageblockIdx(b));
            list_disagrees(mt, pb).then_some(pb)
        })
    }

    /// [`Zone::pageblock_map`](crate::Zone::pageblock_map): one walk of every free list and
    /// one read of the pageblock table, under the zone lock only.
    fn pageblock_map(&self) -> Vec<PageblockState> {
        let g = &self.geo;
        let shift = g.pageblock_order;
        // Allocated before the lock: the hold is the walk alone.
        let mut map = vec![
            PageblockState {
                migratetype: Migratetype::Movable,
                isolated: false,
                free_pages: 0,
                misplaced_pages: 0,
            };
            g.nr_pageblocks as usize
        ];
        let zf = self.lock();
        for (b, state) in map.iter_mut().enumerate() {
            let idx = PageblockIdx(b as u64);
            let mt = self.pageblock.get_block(idx);
            state.isolated = mt.is_isolate();
            state.migratetype = if state.isolated {
                self.pageblock.saved(Pfn((b as u64) << shift))
            } else {
                mt
            };
        }
        for order in 0..g.max_order {
            for list in Migratetype::ALL {
                zf.list_for_each(Order(order), list, |pfn| {
                    // A block larger than a pageblock covers several: count its pages in each.
                    let end = pfn.0 + Order(order).nr_pages();
                    let mut at = pfn.0;
                    while at < end && at < g.nr_pages {
                        let b = (at >> shift) as usize;
                        let next = (((at >> shift) + 1) << shift).min(end);
                        let pages = next - at;
                        let table = if map[b].isolated {
                            Migratetype::Isolate
                        } else {
                            map[b].migratetype
                        };
                        map[b].free_pages += pages;
                        if list_disagrees(list, table) {
                            map[b].misplaced_pages += pages;
                        }
                        at = next;
                    }
                });
            }
        }
        drop(zf);
        map
    }
}

/// The audit's misplacement rule: a free block on list `list` in a pageblock of type
/// `pageblock` is misplaced when exactly one of the two is `Isolate`, or (neither being
/// `Isolate`) exactly one of them is `CMA` (a CMA page on a counted non-CMA list, or the
/// reverse, breaks `NR_FREE_CMA_PAGES`). `Unmovable`, `Reclaimable`, `Movable` and `Reserve`
/// may share pages by fallback and steal, as in the kernel.
fn list_disagrees(list: Migratetype, pageblock: Migratetype) -> bool {
    if list.is_isolate() || pageblock.is_isolate() {
        list.is_isolate() != pageblock.is_isolate()
    } else {
        list.is_cma() != pageblock.is_cma()
    }
}

/// One pageblock in [`Zone::pageblock_map`](crate::Zone::pageblock_map).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageblockState {
    /// The pageblock's type; for an isolated pageblock, the type it had before the isolation
    /// (which its un-isolation restores).
    pub migratetype: Migratetype,
    /// The pageblock is isolated (typed `Isolate` in the table, as 3.17 marks it).
    pub isolated: bool,
    /// Pages of this pageblock on the buddy free lists (of any type).
    pub free_pages: u64,
    /// Of those, pages on a list of another type than the pageblock's, by the audit's
    /// misplacement rule (see [`AuditReport::misplaced_blocks`]): what the 2014 races leave
    /// on the lists.
    pub misplaced_pages: u64,
}

/// Where one page is, as [`Zone::page_state`](crate::Zone::page_state) finds it under the
/// locks (the `/proc/kpageflags` question).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    /// Inside a free block on a buddy list.
    Free {
        /// Head of the free block.
        head: Pfn,
        /// Its order.
        order: Order,
        /// The list it is on.
        list: Migratetype,
    },
    /// On a pcp list.
    Pcp,
    /// Inside an allocated block.
    Allocated {
        /// Head of the block.
        head: Pfn,
        /// Its order.
        order: Order,
    },
    /// Offline (memory hot-remove).
    Offline,
    /// None of the above: in flight between two of them (e.g. held by an isolation step).
    InFlight,
}

impl crate::Zone {
    /// Where page `pfn` is: free (with its block and list), on a pcp, allocated, offline. Takes
    /// every pcp lock and the zone lock. `None` for a pfn outside the zone.
    pub fn page_state(&self, pfn: Pfn) -> Option<PageState> {
        let z = &self.inner;
        if pfn.0 >= z.geo.nr_pages {
            return None;
        }
        Some(z.pcps.with_all_locked(|pcps| {
            let zf = z.lock();
            for o in 0..z.geo.max_order {
                let head = Pfn(pfn.0 & !((1u64 << o) - 1));
                if let Some(order) = zf.buddy_order(head)
                    && order.0 >= o
                {
                    let list = zf.list_of(head);
                    return PageState::Free { head, order, list };
                }
                if let Some(order) = z.state.alloc_order(head)
                    && order.0 >= o
                {
                    return PageState::Allocated { head, order };
                }
            }
            if z.state.get(pfn) == state::OFFLINE {
                return PageState::Offline;
            }
            let pb = z.geo.pageblock_order;
            if pcps.iter_mut().any(|session| {
                session.with(|l| {
                    l.blocks(pb)
                        .any(|(head, order, _)| (head..head + order.nr_pages()).contains(&pfn.0))
                })
            }) {
                return PageState::Pcp;
            }
            PageState::InFlight
        }))
    }

    /// A snapshot of every pageblock, in pfn order: its type, whether it is isolated, its free
    /// pages and how many of them are misplaced (on a list of another type, by the audit's
    /// rule). The picture `/proc/pagetypeinfo`'s block counts summarise (3.17
    /// `mm/vmstat.c`, `pagetypeinfo_showblockcount_print`), one entry per pageblock instead of
    /// one count per type, with the audit's misplacement check per pageblock.
    ///
    /// Taken under the zone lock alone (not the pcp locks: pcp pages are neither free nor
    /// counted, so they do not change it), which it holds for one walk of every free list and
    /// one read of the pageblock table, `O(free blocks + pageblocks)`, like
    /// [`pagetypeinfo`](Self::pagetypeinfo)'s walk; the result is allocated before the lock.
    /// Measured once (release build, 2-core machine under load): about 1.5 times
    /// `pagetypeinfo()`'s time; 1.7 ms on a 1 GiB zone with every other page free (131,072
    /// free blocks, the worst case), 5 µs on a fresh one. Call it now and then, not on a hot
    /// path.
    ///
    /// ```
    /// use pagealloc::{Zone, ZoneConfig};
    /// let zone = Zone::new(ZoneConfig { size: 64 << 20, ..ZoneConfig::default() })?;
    /// let map = zone.pageblock_map();
    /// assert_eq!(map.len() as u64, zone.geometry().nr_pageblocks);
    /// assert!(map.iter().all(|b| !b.isolated && b.misplaced_pages == 0));
    /// assert_eq!(map.iter().map(|b| b.free_pages).sum::<u64>(), zone.geometry().nr_pages);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pageblock_map(&self) -> Vec<PageblockState> {
        self.inner.pageblock_map()
    }

    /// Recount every free list, pcp and allocation under the locks and compare with the
    /// counters. Never changes anything.
    ///
    /// Pages cached on a thread's pcp count as allocated until that pcp is drained: at thread
    /// exit (the pcp's thread-local destructor), by [`drain_all_pages`](crate::Zone::drain_all_pages),
    /// or when it reaches `high`. `std::thread::scope`'s implicit join does not wait for a
    /// thread's thread-local destructors, so join explicitly (or drain) before expecting
    /// `pcp_pages == 0`.
    pub fn audit(&self) -> AuditReport {
        self.inner.audit(false)
    }

    /// [`audit`](Self::audit) without the long stall: the zone is checked a chunk of
    /// `chunk_pages` pages at a time (rounded up to a multiple of the top-order block, so no
    /// free or allocated block straddles two chunks), each chunk under every pcp lock and the
    /// zone lock, which are dropped between chunks so allocations proceed. Each chunk is
    /// quiescent only while it is checked, so the report says exactly what can be checked
    /// that way.
    ///
    /// Checked for every chunk, sound however the zone changes between chunks (each page is
    /// looked at in one hold, in which nothing can move it):
    /// - every free head in the chunk (found by its `PageBuddy` flag, not by walking the
    ///   lists): aligned, not marked allocated, no page claimed twice, not misplaced against
    ///   its pageblocks, and linked on its free list: both neighbours link back to it and are
    ///   free heads of its order on its list, or that list's head ([`MisplacedBlock`]s and
    ///   `errors` as the full audit's);
    /// - every pcp page, allocated block and offline page in the chunk: no page in two
    ///   places, no pcp page marked allocated;
    /// - conservation: each page is counted in its own chunk only, so buddy + pcp + allocated
    ///   + offline == managed is exact even when pages move meanwhile.
    ///
    /// Checked only when the zone was quiescent for the whole audit, i.e. no one else took the
    /// zone lock between the first chunk and the last
    /// ([`ChunkedAudit::whole_zone_checked`]): the counters against the sums over all chunks
    /// (`F == F*`, `C == C*`, `free_area[o].nr_free`, `nr_isolate_pageblock`,
    /// `offline_pages`, the ledger's sums). A counter is one number for the zone; comparing it
    /// with sums gathered at different moments would report drift that is not there.
    ///
    /// Never checked here: that each list is one chain from its head (a walk from the list
    /// head, which is as long as the list; a block linked consistently but cut off from its
    /// list shows up only as an `nr_free` mismatch, so only on a quiescent zone), and
    /// [`audit_coalescing`](Self::audit_coalescing)'s merge check. Use
    /// [`audit`](Self::audit) on a quiescent zone for those.
    ///
    /// Between chunks the zone lock is handed to the threads waiting for it (a fair unlock, as
    /// the kernel's queued spinlock releases), so an allocation waits for one chunk at most,
    /// not for the audit. The cost is linear in the chunk: about 1 ms per 65536 pages on this
    /// project's 2-core machine, so `chunk_pages` = 16384 keeps each hold well under 2 ms on
    /// any zone, where [`audit`](Self::audit) holds every lock for about 70 ms on a 16 GiB
    /// zone (`examples/bench_report.rs` measures both; [`ChunkedAudit::longest_hold`] is the
    /// longest hold of one run). On a quiescent zone the report equals
    /// [`audit`](Self::audit)'s (up to `chunked`).
    pub fn audit_chunked(&self, chunk_pages: NonZeroU64) -> AuditReport {
        self.inner.audit_chunked(chunk_pages.get())
    }

    /// [`audit`](Self::audit), plus the check that holds only of a quiescent zone (pcps
    /// drained, nothing isolated; call [`drain_all_pages`](Self::drain_all_pages) first):
    /// every top-order block whose pages are all free on the buddy lists is one free block of
    /// the top order, so the whole zone can serve top-order allocations again once everything
    /// is freed. Blocks that failed to merge are in
    /// [`AuditReport::unmerged_blocks`], each with the rule that kept it apart.
    ///
    /// Under [`Fixes::SEED`](crate::Fixes::SEED) (v3 as posted) a free capped at
    /// `pageblock_order` during an isolation stays split after it; every other preset
    /// coalesces fully.
    pub fn audit_coalescing(&self) -> AuditReport {
        self.inner.audit(true)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{AuditReport, Migratetype, Order, Zone, ZoneConfig};
    use core::num::NonZeroU64;

    fn zone() -> Zone {
        Zone::new(ZoneConfig::tiny(16)).unwrap()
    }

    /// The one-hold audit and the chunked one with the smallest chunk (one top-order block).
    fn audits(z: &Zone) -> [AuditReport; 2] {
        let chunked = z.audit_chunked(NonZeroU64::MIN);
        let c = chunked.chunked.expect("chunked");
        assert_eq!(c.chunks, 16 / z.geometry().max_order_nr_pages());
        assert!(c.whole_zone_checked, "no one else touched the zone");
        [z.audit(), chunked]
    }

    #[test]
    fn chunked_audit_of_a_quiescent_zone_equals_the_full_one() {
        let z = zone();
        let _held: Vec<_> = [0, 1, 0, 2]
            .into_iter()
            .map(|o| z.alloc_pages(Order(o), Migratetype::Movable).unwrap())
            .collect();
        let [full, chunked] = audits(&z);
        assert!(full.is_ok() && chunked.is_ok(), "{full} / {chunked}");
        assert_eq!(full.to_string(), chunked.to_string());
        assert_eq!(full.free_blocks, chunked.free_blocks);
        assert_eq!(full.nr_free, chunked.nr_free);
        assert_eq!(full.free_pages_by_type, chunked.free_pages_by_type);
        assert_eq!(full.isolate_pageblocks, chunked.isolate_pageblocks);
    }

    #[test]
    fn a_chunk_larger_than_the_zone_is_one_chunk() {
        let z = zone();
        let r = z.audit_chunked(NonZeroU64::MAX);
        r.assert_ok();
        assert_eq!(r.chunked.unwrap().chunks, 1);
    }

    #[test]
    fn chunked_audit_finds_a_head_linked_on_the_wrong_list() {
        let z = zone();
        {
            let mut zf = z.inner.lock();
            let head = zf.list_first(Order(2), Migratetype::Movable).unwrap();
            zf.set_list_for_test(head, Migratetype::Unmovable);
        }
        for r in audits(&z) {
            assert!(!r.is_ok(), "{r}");
            assert!(r.errors.iter().any(|e| e.contains("list")), "{r}");
        }
    }

    #[test]
    fn clean_zone_audits_clean() {
        let z = zone();
        for r in audits(&z) {
            assert!(r.is_ok(), "{r}");
            assert_eq!(r.true_free_pages, 16);
            assert!(r.conservation_ok());
        }
    }

    #[test]
    fn counter_corruption_is_reported_as_drift() {
        let z = zone();
        z.inner.lock().skew_for_test(3, 0, None);
        for r in audits(&z) {
            assert!(!r.is_ok());
            assert_eq!(r.drift_free, 3);
            assert_eq!(r.drift_cma, 0);
        }
    }

    #[test]
    fn nr_free_corruption_is_reported() {
        let z = zone();
        z.inner.lock().skew_for_test(0, 0, Some(1));
        for r in audits(&z) {
            assert!(!r.is_ok());
            assert!(r.errors.iter().any(|e| e.contains("nr_free")), "{r}");
        }
    }

    #[test]
    fn misplaced_block_is_reported() {
        let z = zone();
        {
            let mut zf = z.inner.lock();
            // Retype the pageblock of pfn 0 as Isolate without moving its free pages.
            zf.isolate_pageblock(crate::Pfn(0), Migratetype::Movable);
        }
        for r in audits(&z) {
            assert!(!r.misplaced_blocks.is_empty(), "{r}");
            assert!(!r.is_ok());
        }
    }

    #[test]
    fn lost_page_breaks_conservation() {
        let z = zone();
        let p = z.alloc_pfn(Order(1), Migratetype::Movable).unwrap();
        // Forget the allocation without freeing: mark it free in the state table only.
        z.inner.state.set_freed(p);
        for r in audits(&z) {
            assert!(!r.conservation_ok());
            assert!(!r.is_ok(), "{r}");
            assert!(r.errors.iter().any(|e| e.contains("conservation")), "{r}");
        }
    }

    /// The map of `tiny(16)`: pageblocks of 2 pages, free blocks of order 2 (4 pages, two
    /// pageblocks each).
    fn map_of(z: &Zone) -> Vec<(bool, Migratetype, u64, u64)> {
        z.pageblock_map()
            .iter()
            .map(|b| (b.isolated, b.migratetype, b.free_pages, b.misplaced_pages))
            .collect()
    }

    #[test]
    fn pageblock_map_of_a_free_zone() {
        let z = zone();
        let map = map_of(&z);
        assert_eq!(map.len(), 8);
        assert!(
            map.iter()
                .all(|&b| b == (false, Migratetype::Movable, 2, 0)),
            "{map:?}"
        );
    }

    #[test]
    fn pageblock_map_shows_an_isolated_pageblock_and_its_misplaced_pages() {
        let z = zone();
        {
            let mut zf = z.inner.lock();
            // Retype pageblock 0 (pfns 0-1) as Isolate without moving its free pages: they stay
            // on the Movable list, misplaced.
            zf.isolate_pageblock(crate::Pfn(0), Migratetype::Movable);
        }
        let map = map_of(&z);
        // Isolated, remembers Movable, its 2 free pages misplaced; its neighbour is clean.
        assert_eq!(map[0], (true, Migratetype::Movable, 2, 2));
        assert_eq!(map[1], (false, Migratetype::Movable, 2, 0));
        let misplaced: u64 = map.iter().map(|b| b.3).sum();
        assert_eq!(misplaced, 2);
        // The audit agrees that a block is misplaced.
        assert!(!z.audit().misplaced_blocks.is_empty());
    }

    #[test]
    fn pageblock_map_counts_a_straddling_block_in_each_pageblock() {
        // 3.17 (no fix): isolating pageblock 2 moves the whole order-2 block headed there
        // (pfns 4-7) to the Isolate list, so pageblock 3 (not isolated) has 2 free pages on
        // the Isolate list: misplaced.
        let z = Zone::new(ZoneConfig {
            fixes: crate::Fixes::NONE,
            ..ZoneConfig::tiny(16)
        })
        .unwrap();
        z.set_migratetype_isolate(crate::Pfn(4)).unwrap();
        let map = map_of(&z);
        assert_eq!(map[2], (true, Migratetype::Movable, 2, 0), "{map:?}");
        assert_eq!(map[3], (false, Migratetype::Movable, 2, 2), "{map:?}");
        // With every fix (2024's hygiene splits the straddling block), nothing is misplaced.
        let z = Zone::new(ZoneConfig {
            fixes: crate::Fixes::ALL,
            ..ZoneConfig::tiny(16)
        })
        .unwrap();
        z.set_migratetype_isolate(crate::Pfn(4)).unwrap();
        let map = map_of(&z);
        assert_eq!(map[2], (true, Migratetype::Movable, 2, 0), "{map:?}");
        assert_eq!(map[3], (false, Migratetype::Movable, 2, 0), "{map:?}");
        assert_eq!(map.iter().filter(|b| b.0).count(), 1);
    }

    #[test]
    fn report_message_names_the_drift() {
        let z = zone();
        z.inner.lock().skew_for_test(0, -2, None);
        for r in audits(&z) {
            let msg = r.to_string();
            assert!(msg.contains("drift -2"), "{msg}");
        }
    }
}
