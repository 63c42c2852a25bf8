//! The kernel's `/proc` text for a zone: [`buddyinfo`](crate::Zone::buddyinfo),
//! [`pagetypeinfo`](crate::Zone::pagetypeinfo), [`zoneinfo`](crate::Zone::zoneinfo) and
//! [`vmstat`](crate::Zone::vmstat), byte for byte as Linux 3.17's `mm/vmstat.c` prints them.
//!
//! # The kernel being imitated
//! x86-64 Linux 3.17 with `CONFIG_CMA` and `CONFIG_MEMORY_ISOLATION` (so all six migratetypes
//! are listed, in 3.17's order: Unmovable, Reclaimable, Movable, Reserve, CMA, Isolate),
//! `CONFIG_SMP`, `CONFIG_VM_EVENT_COUNTERS`, `CONFIG_MIGRATION`, `CONFIG_COMPACTION`,
//! `CONFIG_HUGETLB_PAGE`, `CONFIG_TRANSPARENT_HUGEPAGE` and `CONFIG_NUMA=n`. There is one node,
//! `Node 0`, and its only populated zone is `Normal`: `DMA`, `DMA32` and `Movable` exist
//! (`MAX_NR_ZONES` is 4, so `protection` has four entries and `/proc/vmstat` has its
//! `pgalloc_dma` .. `pgscan_direct_movable` lines) but are empty, so `populated_zone()` skips
//! them everywhere else. Orders run over `0..max_order` of the zone's [`Geometry`]; the zone
//! starts at pfn 0. A "cpu" is a pcp: one per CPU in [`PcpMode::PerCpu`](crate::PcpMode), one
//! per thread that ever used the zone in [`PcpMode::PerThread`](crate::PcpMode) (numbered in
//! registration order, kept after its thread exits).
//!
//! # What is real and what prints 0
//! | line | value |
//! | --- | --- |
//! | buddyinfo, `free_area[order].nr_free` | `ZoneFree::nr_free` |
//! | pagetypeinfo free counts | counted by walking every `free_list[mt]`, as the kernel does, up to [`FREE_COUNT_CAP`] blocks per list (printed `>100000` past it, as since Linux 5.4; 3.17 had no cap) |
//! | pagetypeinfo block counts | the pageblock table, read without the zone lock (see [Locks](#locks)) |
//! | `pages free`, `nr_free_pages` | `zone_page_state(NR_FREE_PAGES)`: the folded vmstat value (without the per-CPU diffs not yet folded), clamped at 0 |
//! | `nr_free_cma` | `zone_page_state(NR_FREE_CMA_PAGES)`, the same way |
//! | `min` / `low` / `high` | the zone's watermarks ([`Zone::watermarks`](crate::Zone::watermarks)) |
//! | `spanned` / `present` / `managed` | the zone's pages (all three are equal here) |
//! | pageset `count` / `high` / `batch` | each pcp's count and the geometry's `pcp_high` / `pcp_batch` |
//! | `vm stats threshold` | the zone's `stat_threshold` (3.17's `calculate_normal_threshold`; see [`Geometry::stat_threshold`](crate::Geometry::stat_threshold)) |
//! | `all_unreclaimable` | always 1: no LRU pages, so `!zone_reclaimable()` (0 < 0 is false) |
//! | `inactive_ratio` | 3.17's `calculate_zone_inactive_ratio` on the managed pages |
//! | `pgalloc_normal`, `pgfree` | Σ pcp events + zone-path events (pages) |
//! | `pgmigrate_success` / `pgmigrate_fail` | zone events |
//! | `pgscan_{kswapd,direct}_normal`, `pgsteal_{kswapd,direct}_normal`, `allocstall`, `pageoutrun`, `compact_*` | reclaim and compaction events (`vmscan`, `slowpath`, `compaction`) |
//! | `thp_fault_alloc` / `thp_fault_fallback` | zone events: a THP-fault request ([`Gfp::is_thp_fault`](crate::Gfp::is_thp_fault), the mask of `do_huge_pmd_anonymous_page`'s `alloc_hugepage_vma`) served or failed through [`Zone::alloc_pages_gfp`](crate::Zone::alloc_pages_gfp) and friends |
//! | `cma_alloc_success` / `cma_alloc_fail` | zone events, **appended** after 3.17's last line (the names of later kernels; 3.17 has no CMA events) |
//! | everything else (`nr_alloc_batch`, LRU, dirty, the other THP lines, ...) | 0: not modelled (no khugepaged, so no `thp_collapse_alloc*`; no huge page is split or mapped from the huge zero page) |
//!
//! The kernel's `zone_page_state()` / `global_page_state()` clamp a negative counter at 0 on SMP
//! (per-cpu deltas can make it transiently negative). Here a negative `NR_FREE_PAGES` or
//! `NR_FREE_CMA_PAGES` can only mean accounting drift (see [`Zone::audit`](crate::Zone::audit));
//! the renderers clamp it at 0 the same way, so use the audit, not this text, to see drift.
//!
//! # Locks
//! `buddyinfo` takes the zone lock once (3.17's `walk_zones_in_node` holds `zone->lock` around
//! each zone's print callback). `zoneinfo` and `vmstat` take the pcp registry, every pcp lock
//! and then the zone lock (the crate's order: registry → pcp → zone), so pcp counts and zone
//! counters are one snapshot. The text is formatted after the locks are dropped.
//!
//! `pagetypeinfo` does **not** follow 3.17 here. In 3.17 (`mm/vmstat.c`, unchanged since
//! `467c996c1e19`, 2.6.24) `walk_zones_in_node` takes `zone->lock` with interrupts off around
//! `pagetypeinfo_showfree_print`, which walks every free list of every order to its end, and
//! again around `pagetypeinfo_showblockcount_print`, which reads every pageblock's type: on a
//! big, fragmented zone that is one long hold stalling every allocation that needs the lock.
//! This renderer follows the later kernel instead:
//! - the free counts take the lock once per `(migratetype, order)` list and drop it after that
//!   list, and stop counting a list at [`FREE_COUNT_CAP`] blocks, printing `>100000`
//!   (`93b3a674485f`, "mm,vmstat: reduce zone->lock holding time by /proc/pagetypeinfo",
//!   Linux 5.4: `spin_unlock_irq(&zone->lock); cond_resched(); spin_lock_irq(&zone->lock)`
//!   after each order's list, and the 100000 cap). One hold is thus bounded by one capped
//!   list walk, not by the zone;
//! - the block counts take no zone lock: each pageblock's type is one atomic load, as
//!   `get_pageblock_migratetype` is a lockless read everywhere in the kernel (3.17's
//!   `free_hot_cold_page` reads it without the lock; race R2 is that read going stale).
//!   Upstream still runs `pagetypeinfo_showblockcount_print` under the lock: the lock-free walk
//!   is the `nolock` mode Linux 4.13 added to `walk_zones_in_node` for
//!   `pagetypeinfo_showmixedcount_print` ("mm: avoid taking zone lock in
//!   pagetypeinfo_showmixed()", Vinayak Menon,
//!   `<1498045643-12257-1-git-send-email-vinmenon@codeaurora.org>`), applied to the block
//!   counts, whose per-block reads need no lock either.
//!
//! The price is the one upstream pays: on a zone that is changing, the counts are no longer
//! one snapshot (a block that moves between two lists while the lock is dropped can be counted
//! on both or on neither). On a quiescent zone the text is the one the single-hold walk
//! prints, byte for byte (`tests/procfs_golden.rs`).
//!
//! # Kernel functions mirrored (3.17 `mm/vmstat.c`)
//! | here | kernel |
//! | --- | --- |
//! | [`Zone::buddyinfo`](crate::Zone::buddyinfo) | `frag_show_print` |
//! | [`Zone::pagetypeinfo`](crate::Zone::pagetypeinfo) | `pagetypeinfo_show`, `pagetypeinfo_showfree_print`, `pagetypeinfo_showblockcount_print` |
//! | [`Zone::zoneinfo`](crate::Zone::zoneinfo) | `zoneinfo_show_print` |
//! | [`Zone::vmstat`](crate::Zone::vmstat) | `vmstat_show` over `vmstat_text[]` |
//! | `inactive_ratio` | `calculate_zone_inactive_ratio` (`mm/page_alloc.c`) |
//!
//! [`Geometry`]: crate::Geometry

use crate::types::{MIGRATE_TYPES, Migratetype, Order, PAGE_SHIFT, PageblockIdx};
use crate::vmstat::ZoneStatItem;
use crate::zone::{ZoneEvents, ZoneInner};
use core::fmt::{self, Write};

/// `pgdat->node_id` of the only node.
const NODE_ID: u32 = 0;

/// `zone->name` of the only populated zone (`zone_names[ZONE_NORMAL]`).
const ZONE_NAME: &str = "Normal";

/// `MAX_NR_ZONES` on x86-64: DMA, DMA32, Normal, Movable (`lowmem_reserve[]` length).
const MAX_NR_ZONES: usize = 4;

/// `vmstat_text[0..NR_VM_ZONE_STAT_ITEMS]`: the `enum zone_stat_item` names, `CONFIG_NUMA=n`.
const ZONE_STAT_TEXT: [&str; NR_VM_ZONE_STAT_ITEMS] = [
    "nr_free_pages",
    "nr_alloc_batch",
    "nr_inactive_anon",
    "nr_active_anon",
    "nr_inactive_file",
    "nr_active_file",
    "nr_unevictable",
    "nr_mlock",
    "nr_anon_pages",
    "nr_mapped",
    "nr_file_pages",
    "nr_dirty",
    "nr_writeback",
    "nr_slab_reclaimable",
    "nr_slab_unreclaimable",
    "nr_page_table_pages",
    "nr_kernel_stack",
    "nr_unstable",
    "nr_bounce",
    "nr_vmscan_write",
    "nr_vmscan_immediate_reclaim",
    "nr_writeback_temp",
    "nr_isolated_anon",
    "nr_isolated_file",
    "nr_shmem",
    "nr_dirtied",
    "nr_written",
    "nr_pages_scanned",
    "workingset_refault",
    "workingset_activate",
    "workingset_nodereclaim",
    "nr_anon_transparent_hugepages",
    "nr_free_cma",
];

/// `NR_VM_ZONE_STAT_ITEMS` with `CONFIG_NUMA=n`.
const NR_VM_ZONE_STAT_ITEMS: usize = 33;
/// `NR_FREE_PAGES`.
const NR_FREE_PAGES: usize = 0;
/// `NR_FREE_CMA_PAGES`.
const NR_FREE_CMA_PAGES: usize = 32;

/// The rest of 3.17's `vmstat_text[]` after the zone stat items: the two writeback items and
/// the `enum vm_event_item` names, expanded for the configuration in the module docs.
const VMSTAT_REST_TEXT: [&str; 70] = [
    "nr_dirty_threshold",
    "nr_dirty_background_threshold",
    "pgpgin",
    "pgpgout",
    "pswpin",
    "pswpout",
    "pgalloc_dma",
    "pgalloc_dma32",
    "pgalloc_normal",
    "pgalloc_movable",
    "pgfree",
    "pgactivate",
    "pgdeactivate",
    "pgfault",
    "pgmajfault",
    "pgrefill_dma",
    "pgrefill_dma32",
    "pgrefill_normal",
    "pgrefill_movable",
    "pgsteal_kswapd_dma",
    "pgsteal_kswapd_dma32",
    "pgsteal_kswapd_normal",
    "pgsteal_kswapd_movable",
    "pgsteal_direct_dma",
    "pgsteal_direct_dma32",
    "pgsteal_direct_normal",
    "pgsteal_direct_movable",
    "pgscan_kswapd_dma",
    "pgscan_kswapd_dma32",
    "pgscan_kswapd_normal",
    "pgscan_kswapd_movable",
    "pgscan_direct_dma",
    "pgscan_direct_dma32",
    "pgscan_direct_normal",
    "pgscan_direct_movable",
    "pgscan_direct_throttle",
    "pginodesteal",
    "slabs_scanned",
    "kswapd_inodesteal",
    "kswapd_low_wmark_hit_quickly",
    "kswapd_high_wmark_hit_quickly",
    "pageoutrun",
    "allocstall",
    "pgrotated",
    "drop_pagecache",
    "drop_slab",
    "pgmigrate_success",
    "pgmigrate_fail",
    "compact_migrate_scanned",
    "compact_free_scanned",
    "compact_isolated",
    "compact_stall",
    "compact_fail",
    "compact_success",
    "htlb_buddy_alloc_success",
    "htlb_buddy_alloc_fail",
    "unevictable_pgs_culled",
    "unevictable_pgs_scanned",
    "unevictable_pgs_rescued",
    "unevictable_pgs_mlocked",
    "unevictable_pgs_munlocked",
    "unevictable_pgs_cleared",
    "unevictable_pgs_stranded",
    "thp_fault_alloc",
    "thp_fault_fallback",
    "thp_collapse_alloc",
    "thp_collapse_alloc_failed",
    "thp_split",
    "thp_zero_page_alloc",
    "thp_zero_page_alloc_failed",
];

/// The most blocks `pagetypeinfo` counts on one free list; a longer list prints as
/// `>100000` (Linux 5.4's cap, `93b3a674485f`; 3.17 counted to the end under the lock).
pub(crate) const FREE_COUNT_CAP: u64 = 100_000;

/// Lines appended after 3.17's `vmstat_text[]`: the CMA events of later kernels.
const VMSTAT_APPENDED_TEXT: [&str; 2] = ["cma_alloc_success", "cma_alloc_fail"];

/// `zone_page_state()`: a signed counter read as the kernel's `unsigned long`, clamped at 0
/// as `CONFIG_SMP` does.
#[inline]
fn zone_page_state(v: i64) -> u64 {
    v.max(0) as u64
}

/// 3.17's `calculate_zone_inactive_ratio(zone)`.
fn inactive_ratio(managed_pages: u64) -> u64 {
    let gb = managed_pages >> (30 - PAGE_SHIFT);
    if gb > 0 { (10 * gb).isqrt() } else { 1 }
}

/// Run a renderer into a new `String`.
fn render(f: impl FnOnce(&mut String) -> fmt::Result) -> String {
    let mut s = String::new();
    f(&mut s).expect("formatting into a String cannot fail");
    s
}

// ---- the renderers: plain data in, the kernel's text out ----

/// One zone's `/proc/buddyinfo` data.
struct FragZone<'a> {
    name: &'a str,
    /// `free_area[order].nr_free`, per order.
    nr_free: Vec<u64>,
}

/// `frag_show` over a node's populated zones.
fn render_buddyinfo(out: &mut impl Write, node: u32, zones: &[FragZone<'_>]) -> fmt::Result {
    for z in zones {
        write!(out, "Node {}, zone {:>8} ", node, z.name)?;
        for n in &z.nr_free {
            write!(out, "{n:>6} ")?;
        }
        out.write_char('\n')?;
    }
    Ok(())
}

/// One zone's `/proc/pagetypeinfo` data.
struct PagetypeZone<'a> {
    name: &'a str,
    /// Blocks on `free_area[order].free_list[mt]`, per order then migratetype.
    free: Vec<[u64; MIGRATE_TYPES]>,
    /// Pageblocks per migratetype.
    blocks: [u64; MIGRATE_TYPES],
}

/// `pagetypeinfo_show` for one node.
fn render_pagetypeinfo(
    out: &mut impl Write,
    node: u32,
    pageblock_order: u32,
    pageblock_nr_pages: u64,
    max_order: u32,
    zones: &[PagetypeZone<'_>],
) -> fmt::Result {
    writeln!(out, "Page block order: {pageblock_order}")?;
    writeln!(out, "Pages per block:  {pageblock_nr_pages}")?;
    out.write_char('\n')?;

    // pagetypeinfo_showfree
    write!(out, "{:<43} ", "Free pages count per migrate type at order")?;
    for order in 0..max_order {
        write!(out, "{order:>6} ")?;
    }
    out.write_char('\n')?;
    for z in zones {
        for mt in Migratetype::ALL {
            write!(
                out,
                "Node {:>4}, zone {:>8}, type {:>12} ",
                node,
                z.name,
                mt.name()
            )?;
            for per_type in &z.free {
                // `"%s%6lu "` with `overflow ? ">" : ""` (5.4).
                let n = per_type[mt.idx()];
                let over = if n >= FREE_COUNT_CAP { ">" } else { "" };
                write!(out, "{over}{n:>6} ")?;
            }
            out.write_char('\n')?;
        }
    }

    // pagetypeinfo_showblockcount
    write!(out, "\n{:<23}", "Number of blocks type ")?;
    for mt in Migratetype::ALL {
        write!(out, "{:>12} ", mt.name())?;
    }
    out.write_char('\n')?;
    for z in zones {
        write!(out, "Node {}, zone {:>8} ", node, z.name)?;
        for n in z.blocks {
            write!(out, "{n:>12} ")?;
        }
        out.write_char('\n')?;
    }
    Ok(())
}

/// One cpu's pageset in `/proc/zoneinfo`.
struct Pageset {
    count: u64,
    high: u64,
    batch: u64,
    stat_threshold: u64,
}

/// One zone's `/proc/zoneinfo` data.
struct ZoneinfoZone<'a> {
    name: &'a str,
    free: u64,
    min: u64,
    low: u64,
    high: u64,
    scanned: u64,
    spanned: u64,
    present: u64,
    managed: u64,
    /// `zone_page_state(zone, i)` for each `enum zone_stat_item`.
    stats: [u64; NR_VM_ZONE_STAT_ITEMS],
    /// `lowmem_reserve[]`.
    protection: [i64; MAX_NR_ZONES],
    pagesets: Vec<Pageset>,
    all_unreclaimable: bool,
    start_pfn: u64,
    inactive_ratio: u64,
}

/// `zoneinfo_show_print` for each of a node's populated zones.
fn render_zoneinfo(out: &mut impl Write, node: u32, zones: &[ZoneinfoZone<'_>]) -> fmt::Result {
    for z in zones {
        write!(out, "Node {}, zone {:>8}", node, z.name)?;
        write!(
            out,
            "\n  pages free     {}\
             \n        min      {}\
             \n        low      {}\
             \n        high     {}\
             \n        scanned  {}\
             \n        spanned  {}\
             \n        present  {}\
             \n        managed  {}",
            z.free, z.min, z.low, z.high, z.scanned, z.spanned, z.present, z.managed
        )?;
        for (name, v) in ZONE_STAT_TEXT.iter().zip(z.stats) {
            write!(out, "\n    {name:<12} {v}")?;
        }
        write!(out, "\n        protection: ({}", z.protection[0])?;
        for p in &z.protection[1..] {
            write!(out, ", {p}")?;
        }
        write!(out, ")\n  pagesets")?;
        for (cpu, p) in z.pagesets.iter().enumerate() {
            write!(
                out,
                "\n    cpu: {}\
                 \n              count: {}\
                 \n              high:  {}\
                 \n              batch: {}",
                cpu, p.count, p.high, p.batch
            )?;
            write!(out, "\n  vm stats threshold: {}", p.stat_threshold)?;
        }
        write!(
            out,
            "\n  all_unreclaimable: {}\
             \n  start_pfn:         {}\
             \n  inactive_ratio:    {}",
            u32::from(z.all_unreclaimable),
            z.start_pfn,
            z.inactive_ratio
        )?;
        out.write_char('\n')?;
    }
    Ok(())
}

/// `vmstat_show` over every line of `vmstat_text[]`, then the appended lines, with `value`
/// giving each named counter.
fn render_vmstat(out: &mut impl Write, value: impl Fn(&str) -> u64) -> fmt::Result {
    let names = ZONE_STAT_TEXT
        .iter()
        .chain(&VMSTAT_REST_TEXT)
        .chain(&VMSTAT_APPENDED_TEXT);
    for name in names {
        writeln!(out, "{} {}", name, value(name))?;
    }
    Ok(())
}

// ---- snapshots of the zone ----

/// Counters read with the registry, every pcp lock and the zone lock held.
struct Counters {
    /// The folded vmstat values (`zone->vm_stat[]`), by [`ZoneStatItem`].
    folded: [i64; 2],
    events: ZoneEvents,
    /// Per pcp, in registry order: `count`, pages allocated, pages freed.
    pcps: Vec<(u32, u64, u64)>,
    wmark: crate::Watermarks,
}

impl Counters {
    /// `zone_page_state(zone, i)` for each zone stat item.
    fn zone_stats(&self) -> [u64; NR_VM_ZONE_STAT_ITEMS] {
        let mut stats = [0; NR_VM_ZONE_STAT_ITEMS];
        stats[NR_FREE_PAGES] = zone_page_state(self.folded[0]);
        stats[NR_FREE_CMA_PAGES] = zone_page_state(self.folded[1]);
        stats
    }
}

impl ZoneInner {
    /// Snapshot the counters: registry → every pcp → zone lock.
    fn counters(&self) -> Counters {
        self.pcps.with_all_locked(|pcps| {
            let pcps = pcps
                .iter_mut()
                .map(|s| s.with(|l| (l.count, l.pgalloc(), l.events.pgfree)))
                .collect();
            let zf = self.lock();
            Counters {
                folded: ZoneStatItem::ALL.map(|item| self.vm_stat.read(item)),
                events: *zf.events(),
                pcps,
                wmark: zf.watermarks(),
            }
        })
    }

    /// `pagetypeinfo_showfree_print` + `pagetypeinfo_showblockcount_print` data, the way
    /// Linux 5.4+ gathers them (module docs, Locks): the zone lock for one capped free-list
    /// walk at a time, none for the pageblock table.
    fn pagetype_zone(&self) -> PagetypeZone<'static> {
        let g = &self.geo;
        let mut free = vec![[0; MIGRATE_TYPES]; g.max_order as usize];
        for mt in Migratetype::ALL {
            for (order, per_type) in free.iter_mut().enumerate() {
                let zf = self.lock();
                per_type[mt.idx()] = zf.list_count(Order(order as u32), mt, FREE_COUNT_CAP);
            }
        }
        let mut blocks = [0; MIGRATE_TYPES];
        for b in 0..g.nr_pageblocks {
            blocks[self.pageblock.get_block(PageblockIdx(b)).idx()] += 1;
        }
        PagetypeZone {
            name: ZONE_NAME,
            free,
            blocks,
        }
    }
}

impl crate::Zone {
    /// `/proc/buddyinfo`: one line, `free_area[order].nr_free` (free **blocks**, not pages)
    /// for each order, exactly as 3.17's `frag_show_print` prints it (note the trailing space
    /// before the newline).
    ///
    /// ```
    /// use pagealloc::{Zone, ZoneConfig};
    /// // 64 MiB: sixteen free order-10 blocks.
    /// let zone = Zone::new(ZoneConfig { size: 64 << 20, ..ZoneConfig::default() })?;
    /// assert_eq!(
    ///     zone.buddyinfo(),
    ///     "Node 0, zone   Normal      0      0      0      0      0      0      0      0      0      0     16 \n"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn buddyinfo(&self) -> String {
        let nr_free = self.inner.lock().nr_free().to_vec();
        let zones = [FragZone {
            name: ZONE_NAME,
            nr_free,
        }];
        render(|s| render_buddyinfo(s, NODE_ID, &zones))
    }

    /// `/proc/pagetypeinfo`: free blocks per order and migratetype, counted by walking every
    /// free list, then pageblocks per migratetype, as 3.17's `pagetypeinfo_show` prints them.
    /// All six migratetypes are listed (`CONFIG_CMA`, `CONFIG_MEMORY_ISOLATION`). As Linux 5.4+
    /// (not 3.17, which held the zone lock for the whole walk), the zone lock is held for one
    /// free list at a time (`93b3a674485f`), a list is counted up to 100000 blocks and printed
    /// `>100000` past that, and the pageblock counts are read without the lock (each type is
    /// one atomic load). On a quiescent zone the text is what 3.17 prints; on a zone that
    /// changes meanwhile the counts are not one snapshot (a block moving between two lists
    /// can be counted on both or on neither), as upstream's since 5.4.
    ///
    /// ```
    /// use pagealloc::{Zone, ZoneConfig};
    /// let zone = Zone::new(ZoneConfig { size: 64 << 20, ..ZoneConfig::default() })?;
    /// let text = zone.pagetypeinfo();
    /// assert!(text.starts_with("Page block order: 9\nPages per block:  512\n\n"));
    /// // One Reserve pageblock at the bottom; it heads the first order-10 block.
    /// assert!(text.contains(
    ///     "Node    0, zone   Normal, type      Reserve      0      0      0      0      0      0      0      0      0      0      1 \n"
    /// ));
    /// assert!(text.ends_with(
    ///     "Node 0, zone   Normal            0            0           31            1            0            0 \n"
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pagetypeinfo(&self) -> String {
        let g = &self.inner.geo;
        let zones = [self.inner.pagetype_zone()];
        render(|s| {
            render_pagetypeinfo(
                s,
                NODE_ID,
                g.pageblock_order,
                g.pageblock_nr_pages,
                g.max_order,
                &zones,
            )
        })
    }

    /// `/proc/zoneinfo` for the zone, as 3.17's `zoneinfo_show_print` prints it.
    ///
    /// `pages free` and the `nr_free_pages` / `nr_free_cma` items are
    /// [`zone_page_state`](Self::zone_page_state) as the kernel prints it: the folded vmstat
    /// values, without the per-CPU diffs not yet folded ([`vmstat_update`](Self::vmstat_update)
    /// folds them), **clamped at 0** (a negative value means drift: ask
    /// [`audit`](Self::audit)); the other stat items are not modelled and print 0.
    /// `protection` is `(0, 0, 0, 0)` (nothing above `Normal`). There is one `cpu: i` pageset
    /// per CPU in [`PcpMode::PerCpu`](crate::PcpMode::PerCpu); in
    /// [`PcpMode::PerThread`](crate::PcpMode::PerThread) one per thread that ever used the
    /// zone, in the order the threads first did (a zone no thread has allocated or freed
    /// order-0 pages on prints `pagesets` with no cpu under it). `vm stats threshold` is the
    /// zone's `stat_threshold`; `all_unreclaimable` is 1 (no LRU pages); `start_pfn` is 0.
    ///
    /// ```
    /// use pagealloc::{Migratetype, Order, PcpMode, Zone, ZoneConfig};
    /// // 1 GiB, one CPU.
    /// let zone = Zone::new(ZoneConfig { pcp_mode: PcpMode::PerCpu(1), ..ZoneConfig::default() })?;
    /// let page = zone.alloc_pages(Order(0), Migratetype::Movable)?; // refills CPU 0's pcp
    /// drop(page);
    /// let text = zone.zoneinfo();
    /// assert!(text.starts_with("Node 0, zone   Normal\n  pages free     "));
    /// assert!(text.contains("\n        min      1024\n        low      1280\n        high     1536\n"));
    /// assert!(text.contains("\n    cpu: 0\n              count: 31\n              high:  186\n              batch: 31\n  vm stats threshold: 10\n"));
    /// assert!(text.ends_with("\n  all_unreclaimable: 1\n  start_pfn:         0\n  inactive_ratio:    3\n"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn zoneinfo(&self) -> String {
        let g = &self.inner.geo;
        let c = self.inner.counters();
        let zones = [ZoneinfoZone {
            name: ZONE_NAME,
            free: zone_page_state(c.folded[0]),
            min: c.wmark.min,
            low: c.wmark.low,
            high: c.wmark.high,
            scanned: 0,
            spanned: g.nr_pages,
            present: g.nr_pages,
            managed: g.nr_pages,
            stats: c.zone_stats(),
            protection: [0; MAX_NR_ZONES],
            pagesets: c
                .pcps
                .iter()
                .map(|&(count, _, _)| Pageset {
                    count: u64::from(count),
                    high: u64::from(g.pcp_high),
                    batch: u64::from(g.pcp_batch),
                    stat_threshold: u64::from(g.stat_threshold),
                })
                .collect(),
            all_unreclaimable: true,
            start_pfn: 0,
            inactive_ratio: inactive_ratio(g.nr_pages),
        }];
        render(|s| render_zoneinfo(s, NODE_ID, &zones))
    }

    /// `/proc/vmstat`: every line of 3.17's `vmstat_text[]` (103 lines for the configuration
    /// in the module docs), then two lines **appended** that 3.17 does not have:
    /// `cma_alloc_success` and `cma_alloc_fail` (the names later kernels use).
    ///
    /// Real values: `nr_free_pages` and `nr_free_cma` (the folded values, clamped at 0, as
    /// 3.17's `global_page_state()` reads them), `pgalloc_normal` and `pgfree` (pages, summed over every pcp and the zone path),
    /// `pgmigrate_success`, `pgmigrate_fail`, `thp_fault_alloc` / `thp_fault_fallback` (THP-fault
    /// requests, [`Gfp::is_thp_fault`](crate::Gfp::is_thp_fault), served / failed) and the two
    /// CMA lines. Everything else prints 0.
    ///
    /// ```
    /// use pagealloc::{Zone, ZoneConfig};
    /// let zone = Zone::new(ZoneConfig { size: 64 << 20, cma_size: 16 << 20, ..ZoneConfig::default() })?;
    /// let text = zone.vmstat();
    /// assert!(text.starts_with("nr_free_pages 16384\nnr_alloc_batch 0\n"));
    /// assert!(text.contains("\nnr_free_cma 4096\n"));
    /// assert!(text.ends_with("\nthp_zero_page_alloc_failed 0\ncma_alloc_success 0\ncma_alloc_fail 0\n"));
    /// assert_eq!(text.lines().count(), 103 + 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn vmstat(&self) -> String {
        let c = self.inner.counters();
        let stats = c.zone_stats();
        let pcp_pgalloc: u64 = c.pcps.iter().map(|&(_, a, _)| a).sum();
        let pcp_pgfree: u64 = c.pcps.iter().map(|&(_, _, f)| f).sum();
        let e = c.events;
        let rs = &self.inner.reclaim.stats;
        let get = crate::zone::shrinker::ReclaimStats::get;
        let value = |name: &str| match name {
            "pgalloc_normal" => pcp_pgalloc + e.pgalloc,
            "pgfree" => pcp_pgfree + e.pgfree,
            "pgmigrate_success" => e.pgmigrate_success,
            "pgmigrate_fail" => e.pgmigrate_fail,
            "cma_alloc_success" => e.cma_alloc_success,
            "cma_alloc_fail" => e.cma_alloc_fail,
            "thp_fault_alloc" => e.thp_fault_alloc,
            "thp_fault_fallback" => e.thp_fault_fallback,
            "pgsteal_kswapd_normal" => get(&rs.pgsteal_kswapd),
            "pgsteal_direct_normal" => get(&rs.pgsteal_direct),
            "pgscan_kswapd_normal" => get(&rs.pgscan_kswapd),
            "pgscan_direct_normal" => get(&rs.pgscan_direct),
            "pageoutrun" => get(&rs.pageoutrun),
            "allocstall" => get(&rs.allocstall),
            "compact_migrate_scanned" => get(&rs.compact_migrate_scanned),
            "compact_free_scanned" => get(&rs.compact_free_scanned),
            "compact_isolated" => get(&rs.compact_isolated),
            "compact_stall" => get(&rs.compact_stall),
            "compact_fail" => get(&rs.compact_fail),
            "compact_success" => get(&rs.compact_success),
            _ => ZONE_STAT_TEXT
                .iter()
                .position(|n| *n == name)
                .map_or(0, |i| stats[i]),
        };
        render(|s| render_vmstat(s, value))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn negative_counters_clamp_at_zero() {
        assert_eq!(zone_page_state(-5), 0);
        assert_eq!(zone_page_state(0), 0);
        assert_eq!(zone_page_state(7), 7);
    }

    #[test]
    fn inactive_ratios_match_3_17_arithmetic() {
        // procfs317_calc.py: a 1 GiB zone has inactive_ratio 3; a small zone has ratio 1.
        // (Its stat_threshold figures are checked in `vmstat`.)
        assert_eq!(inactive_ratio(262_144), 3);
        assert_eq!(inactive_ratio(236_000), 1);
        assert_eq!(inactive_ratio(16 * 262_144), 12);
    }

    #[test]
    fn vmstat_text_has_3_17_length() {
        // 103 lines for x86-64 NUMA=n with MIGRATION, COMPACTION, HUGETLB_PAGE and THP.
        assert_eq!(ZONE_STAT_TEXT.len() + VMSTAT_REST_TEXT.len(), 103);
        assert_eq!(ZONE_STAT_TEXT[NR_FREE_PAGES], "nr_free_pages");
        assert_eq!(ZONE_STAT_TEXT[NR_FREE_CMA_PAGES], "nr_free_cma");
    }

    // The expected texts below are the examples in the research notes (rendered there from
    // the C format strings), not output of this code.

    #[test]
    fn buddyinfo_matches_kernel_example() {
        let zones = [
            FragZone {
                name: "DMA",
                nr_free: vec![1, 1, 0, 0, 2, 1, 1, 0, 1, 1, 3],
            },
            FragZone {
                name: "DMA32",
                nr_free: vec![5, 3, 4, 2, 1, 2, 2, 1, 1, 2, 55],
            },
        ];
        let expected = "Node 0, zone      DMA      1      1      0      0      2      1      1      0      1      1      3 \n\
                        Node 0, zone    DMA32      5      3      4      2      1      2      2      1      1      2     55 \n";
        assert_eq!(render(|s| render_buddyinfo(s, 0, &zones)), expected);
    }

    #[test]
    fn pagetypeinfo_matches_kernel_example() {
        let mut free = vec![[0; MIGRATE_TYPES]; 11];
        for per_type in &mut free {
            per_type[Migratetype::Movable.idx()] = 1;
        }
        let zones = [PagetypeZone {
            name: "DMA",
            free,
            blocks: [1, 0, 6, 1, 0, 0],
        }];
        let expected = "\
Page block order: 9
Pages per block:  512

Free pages count per migrate type at order       0      1      2      3      4      5      6      7      8      9     10 
Node    0, zone      DMA, type    Unmovable      0      0      0      0      0      0      0      0      0      0      0 
Node    0, zone      DMA, type  Reclaimable      0      0      0      0      0      0      0      0      0      0      0 
Node    0, zone      DMA, type      Movable      1      1      1      1      1      1      1      1      1      1      1 
Node    0, zone      DMA, type      Reserve      0      0      0      0      0      0      0      0      0      0      0 
Node    0, zone      DMA, type          CMA      0      0      0      0      0      0      0      0      0      0      0 
Node    0, zone      DMA, type      Isolate      0      0      0      0      0      0      0      0      0      0      0 

Number of blocks type     Unmovable  Reclaimable      Movable      Reserve          CMA      Isolate 
Node 0, zone      DMA            1            0            6            1            0            0 
";
        assert_eq!(
            render(|s| render_pagetypeinfo(s, 0, 9, 512, 11, &zones)),
            expected
        );
    }

    #[test]
    fn free_counts_stop_at_the_cap() {
        // 5.4's `"%s%6lu "` with `overflow ? ">" : ""`: a list of 100000 or more blocks.
        let mut free = vec![[0; MIGRATE_TYPES]; 2];
        free[0][Migratetype::Movable.idx()] = FREE_COUNT_CAP;
        free[1][Migratetype::Movable.idx()] = FREE_COUNT_CAP - 1;
        let zones = [PagetypeZone {
            name: "Normal",
            free,
            blocks: [0; MIGRATE_TYPES],
        }];
        let text = render(|s| render_pagetypeinfo(s, 0, 1, 2, 2, &zones));
        assert!(
            text.contains("type      Movable >100000  99999 \n"),
            "{text}"
        );
    }

    #[test]
    fn list_count_walks_to_the_end_or_the_cap() {
        let z = crate::Zone::new(crate::ZoneConfig::tiny(16)).unwrap();
        let zf = z.inner.lock();
        assert_eq!(zf.list_count(Order(2), Migratetype::Movable, 100), 4);
        assert_eq!(zf.list_count(Order(2), Migratetype::Movable, 3), 3);
        assert_eq!(zf.list_count(Order(1), Migratetype::Movable, 100), 0);
    }

    #[test]
    fn counts_wider_than_the_field_grow_it() {
        let zones = [FragZone {
            name: "Normal",
            nr_free: vec![1_234_567, 0],
        }];
        assert_eq!(
            render(|s| render_buddyinfo(s, 0, &zones)),
            "Node 0, zone   Normal 1234567      0 \n"
        );
    }

    #[test]
    fn zoneinfo_matches_kernel_example() {
        let mut stats = [0; NR_VM_ZONE_STAT_ITEMS];
        stats[NR_FREE_PAGES] = 3957;
        let cpu = || Pageset {
            count: 0,
            high: 0,
            batch: 1,
            stat_threshold: 4,
        };
        let zones = [ZoneinfoZone {
            name: "DMA",
            free: 3957,
            min: 16,
            low: 20,
            high: 24,
            scanned: 0,
            spanned: 4095,
            present: 3998,
            managed: 3977,
            stats,
            protection: [0, 921, 921, 921],
            pagesets: vec![cpu(), cpu()],
            all_unreclaimable: false,
            start_pfn: 1,
            inactive_ratio: 1,
        }];
        let expected = "\
Node 0, zone      DMA
  pages free     3957
        min      16
        low      20
        high     24
        scanned  0
        spanned  4095
        present  3998
        managed  3977
    nr_free_pages 3957
    nr_alloc_batch 0
    nr_inactive_anon 0
    nr_active_anon 0
    nr_inactive_file 0
    nr_active_file 0
    nr_unevictable 0
    nr_mlock     0
    nr_anon_pages 0
    nr_mapped    0
    nr_file_pages 0
    nr_dirty     0
    nr_writeback 0
    nr_slab_reclaimable 0
    nr_slab_unreclaimable 0
    nr_page_table_pages 0
    nr_kernel_stack 0
    nr_unstable  0
    nr_bounce    0
    nr_vmscan_write 0
    nr_vmscan_immediate_reclaim 0
    nr_writeback_temp 0
    nr_isolated_anon 0
    nr_isolated_file 0
    nr_shmem     0
    nr_dirtied   0
    nr_written   0
    nr_pages_scanned 0
    workingset_refault 0
    workingset_activate 0
    workingset_nodereclaim 0
    nr_anon_transparent_hugepages 0
    nr_free_cma  0
        protection: (0, 921, 921, 921)
  pagesets
    cpu: 0
              count: 0
              high:  0
              batch: 1
  vm stats threshold: 4
    cpu: 1
              count: 0
              high:  0
              batch: 1
  vm stats threshold: 4
  all_unreclaimable: 0
  start_pfn:         1
  inactive_ratio:    1
";
        assert_eq!(render(|s| render_zoneinfo(s, 0, &zones)), expected);
    }

    #[test]
    fn negative_free_counter_renders_as_zero() {
        let z = crate::Zone::new(crate::ZoneConfig::tiny(16)).unwrap();
        {
            let mut zf = z.inner.lock();
            let (f, c) = (zf.nr_free_pages(), zf.nr_free_cma_pages());
            zf.skew_for_test(-3 - f, -1 - c, None);
        }
        assert!(z.zoneinfo().contains("\n  pages free     0\n"));
        assert!(z.zoneinfo().contains("\n    nr_free_pages 0\n"));
        assert!(z.vmstat().starts_with("nr_free_pages 0\n"));
        assert!(z.vmstat().contains("\nnr_free_cma 0\n"));
    }
}
