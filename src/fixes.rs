//! [`Fixes`]: which of the 2014 fixes (and the kernel's later ones) are on, one flag per
//! decision point, selectable at run time. The tables are on [`Fixes`], where rustdoc shows
//! them.

use core::fmt;

/// A set of fixes (a bit set): one flag per decision point of the free-page accounting, so the
/// same binary runs Linux 3.17's code paths, the patchset as posted, as merged, and the later
/// fixes the kernel needed.
///
/// "Seed" in [`SEED`](Self::SEED) means the seed document of this project, Joonsoo Kim's
/// patchset "fix freepage count problems in memory isolation" as posted (v3, 26 Aug 2014), not
/// a PRNG seed.
///
/// # The flags
/// | flag | kernel change | decision point |
/// | --- | --- | --- |
/// | [`RECHECK_FREE_ONE_PAGE`](Self::RECHECK_FREE_ONE_PAGE) | patch 1 (v3) | `free_one_page` re-reads the pageblock type under the zone lock when `nr_isolate_pageblock > 0`; the count (and patch 4's cap) skip only a free this recheck found `Isolate`, so with no pageblock isolated a stale `Isolate` free is counted and uncapped |
/// | [`RECHECK_ISOLATE_MT`](Self::RECHECK_ISOLATE_MT) | patch 1 (v4+, merged as ad53f92eb416) | ... and also when the caller's type is `Isolate`; an `Isolate` free is then never counted, and always capped |
/// | [`RECHECK_PCP_BULK`](Self::RECHECK_PCP_BULK) | patch 2 (merged as 51bb1a4093cc) | `free_pcppages_bulk` re-reads the pageblock type when `nr_isolate_pageblock > 0`, and frees and counts by it |
/// | [`COUNT_AT_ENTRY`](Self::COUNT_AT_ENTRY) | patch 3 | the freed block is counted once, by its chosen type, at entry to `__free_one_page` |
/// | [`ISOLATE_MERGE_LIMIT`](Self::ISOLATE_MERGE_LIMIT) | patch 4 (v3) | a free into an isolated pageblock merges at most up to `pageblock_order` (as posted in v3, like the count, only a free the recheck found `Isolate`) |
/// | [`UNSET_REFREE`](Self::UNSET_REFREE) | patch 4 (v5, merged as 3c605096d315) | un-isolation pulls off a free block of order ≥ `pageblock_order` whose buddy is not isolated and re-frees it so it merges |
/// | [`NO_ISOLATE_MERGE`](Self::NO_ISOLATE_MERGE) | d9dddbf55667 (2016, v4.6) | above `pageblock_order`, merge only when the types match or neither is `Isolate` |
/// | [`NO_RESERVE`](Self::NO_RESERVE) | 974a786e63c9 (v4.4) | no static `Reserve` pageblocks |
/// | [`NO_MIXED_MERGE`](Self::NO_MIXED_MERGE) | 1dd214b8f21c (2022) | above `pageblock_order`, blocks of different types merge only when both are pcp types (CMA, Reserve, Isolate merge only with their own kind) |
/// | [`ISOLATE_HYGIENE`](Self::ISOLATE_HYGIENE) | "freelist migratetype hygiene" (2024, v6.10) | isolation changes split a free block that straddles the pageblock (`move_freepages_block_isolate`), and blocks leaving or moving between free lists outside the alloc/free paths are counted by the list they were on (`account_freepages`) |
/// | [`ISOLATE_KEEPS_TYPE`](Self::ISOLATE_KEEPS_TYPE) | "Make MIGRATE_ISOLATE a standalone bit" (2025) | isolation keeps the pageblock's type and un-isolation restores it, whatever type the caller passes |
///
/// Presets: [`NONE`](Self::NONE) (linux-next-20140826, i.e. 3.17), [`SEED`](Self::SEED)
/// (the four patches as posted in v3), [`V3_18`](Self::V3_18) (as merged),
/// [`V4_6`](Self::V4_6) (3.18 + 2016, and 4.4's removal of `MIGRATE_RESERVE`),
/// [`ALL`](Self::ALL) (+ 2022, 2024, 2025). Patch 3's mainline commit id is not confirmed here.
///
/// # The races
/// The names the rest of the documentation uses. `NR_FREE_PAGES` should equal the pages on the
/// free lists other than `Isolate`'s, `NR_FREE_CMA_PAGES` the pages on the CMA lists; each race
/// makes one of them drift (signs: counter minus truth).
///
/// | race | interleaving | closed by |
/// | --- | --- | --- |
/// | R1a | a free reads its pageblock type as `Isolate` without the zone lock; the pageblock is un-isolated before the free takes the lock; the page, with the counted buddies it merges, lands on the `Isolate` list of a normal pageblock, uncounted (3.17). Under v3 as posted ([`SEED`](Self::SEED)), once no pageblock is isolated, the page is also *counted*, and merges past `pageblock_order` | [`RECHECK_FREE_ONE_PAGE`](Self::RECHECK_FREE_ONE_PAGE) + [`RECHECK_ISOLATE_MT`](Self::RECHECK_ISOLATE_MT) |
/// | R1b | a free reads a normal type; the pageblock is isolated before the free takes the lock; the block merges onto a counted list inside the isolated pageblock | [`RECHECK_FREE_ONE_PAGE`](Self::RECHECK_FREE_ONE_PAGE) |
/// | R2 | a page on a pcp caches a normal type; its pageblock is isolated; the drain frees it by the cached type onto a counted list | [`RECHECK_PCP_BULK`](Self::RECHECK_PCP_BULK) |
/// | R3a | a free into an isolated pageblock merges past `pageblock_order` with a free block of the normal neighbour pageblock | [`ISOLATE_MERGE_LIMIT`](Self::ISOLATE_MERGE_LIMIT) + [`UNSET_REFREE`](Self::UNSET_REFREE) |
/// | R3b | a free into a normal pageblock merges with the isolated neighbour's free block | [`NO_ISOLATE_MERGE`](Self::NO_ISOLATE_MERGE) |
/// | R3c | a free block straddles two pageblocks of which only one changes isolation state: it stays on a counted list in an isolated pageblock, and `__isolate_free_page` later takes it off uncounted | [`ISOLATE_HYGIENE`](Self::ISOLATE_HYGIENE) |
/// | R4 | `test_pages_isolated` "repairs" a misplaced block by moving it to the `Isolate` list without accounting | harmless once R1 cannot misplace blocks ([`V3_18`](Self::V3_18)) |
///
/// Why [`ALL`](Self::ALL) needs the later fixes: 3.18 + 2016 still double-counts a pageblock in
/// R3c; and an isolation undone with the caller's type can retype a CMA pageblock Movable,
/// after which a CMA block merges with it onto the CMA list (`NR_FREE_CMA_PAGES` drifts) unless
/// 2022's merge rule stops it (2025's type-keeping isolation stops the retyping itself).
///
/// # v3 as posted and as merged
/// [`SEED`](Self::SEED) does what the v3 patches do, where they differ from the merged ones:
///
/// - **Where the count is decided (patches 1 and 3).** v3 counts the freed block unless the
///   recheck found `Isolate`, and the recheck runs only while `nr_isolate_pageblock > 0`:
///   `if (unlikely(has_isolate_pageblock(zone))) { migratetype = get_pfnblock_migratetype(page,
///   pfn); if (is_migrate_isolate(migratetype)) goto skip_counting; }
///   __mod_zone_freepage_state(zone, 1 << order, migratetype);` (in `free_one_page` in 1/4,
///   moved into `__free_one_page` in 3/4). With no pageblock isolated, a free carrying a stale
///   `Isolate` type (R1a, after the un-isolation brought the count to 0) is therefore counted,
///   by that type (`NR_FREE_PAGES` only, not `NR_FREE_CMA_PAGES`), *and* put on the `Isolate`
///   list: `NR_FREE_PAGES` drifts up by the block's pages on top of 3.17's merged buddies.
///   v4 widened the condition to `has_isolate_pageblock(zone) ||
///   is_migrate_isolate(migratetype)` ([`RECHECK_ISOLATE_MT`](Self::RECHECK_ISOLATE_MT));
///   v5, as merged, keeps the rechecks in the callers and counts in `__free_one_page` `if
///   (!is_migrate_isolate(migratetype))`. Once the type is rechecked whenever it is `Isolate`,
///   the two rules count the same frees.
/// - **The merge cap (patch 4).** v3 sets `max_order = pageblock_order + 1` inside the same
///   `is_migrate_isolate` branch, so the stale `Isolate` free above is not capped: it merges
///   up to the top order, across the pageblock boundary, taking the neighbour's counted free
///   block onto the `Isolate` list. v4 wrote `min(MAX_ORDER, pageblock_order + 1)` (the same
///   here: the configuration requires `pageblock_order < max_order`); as merged, the cap
///   applies whenever the type handed to `__free_one_page` is `Isolate`.
/// - **Un-isolation (patch 4).** v3 only moves the free blocks back, leaving a capped block
///   split from its buddy; v5 re-frees it ([`UNSET_REFREE`](Self::UNSET_REFREE)).
/// - v3's patch 3 moved the recheck itself into `__free_one_page`, so it also ran for
///   `free_pcppages_bulk`'s pages; v5 moved only the counting. The same here, since the
///   callers recheck under the same zone lock and a pcp page never caches `Isolate`.
///
/// The flags model this without a flag of its own: [`RECHECK_FREE_ONE_PAGE`](Self::RECHECK_FREE_ONE_PAGE)
/// without [`RECHECK_ISOLATE_MT`](Self::RECHECK_ISOLATE_MT) decides "a free into an isolated
/// pageblock" (not counted; capped with [`ISOLATE_MERGE_LIMIT`](Self::ISOLATE_MERGE_LIMIT)) as
/// v3 does, by the recheck; with both, or with neither (3.17), by the type handed in.
/// [`V3_18`](Self::V3_18), [`V4_6`](Self::V4_6) and [`ALL`](Self::ALL) contain both, so
/// they decide it as merged.
///
/// # Sources
/// The v3 postings (linux-mm and lkml, 26 Aug 2014: `[RFC PATCH v3 0/4] fix freepage count
/// problems in memory isolation`, Message-Id
/// `<1409040498-10148-1-git-send-email-iamjoonsoo.kim@lge.com>`, and its four patches, `-2`
/// to `-5` of the same id; 1/4's text is also quoted in full in Naoya Horiguchi's review
/// `<20140829174641.GB27127@nhori.bos.redhat.com>`), v4 (23 Oct 2014,
/// `<1414051821-12769-1-git-send-email-iamjoonsoo.kim@lge.com>`), v5 (31 Oct 2014,
/// `<1414740330-4086-1-git-send-email-iamjoonsoo.kim@lge.com>`), the merged commits named in
/// the table, and `mm/page_alloc.c` / `mm/page_isolation.c` of linux-next-20140826 and v3.18.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fixes(u16);

impl Fixes {
    /// Patch 1 as posted in v3: recheck in `free_one_page` when `nr_isolate_pageblock > 0`,
    /// and count the block unless that recheck found `Isolate` (with no pageblock isolated, a
    /// stale `Isolate` free is counted: see [v3 as posted and as merged](Self#v3-as-posted-and-as-merged)).
    pub const RECHECK_FREE_ONE_PAGE: Fixes = Fixes(1 << 0);
    /// Patch 1 as merged adds: recheck also when the caller's type is `Isolate` (closes R1a
    /// when the un-isolation brought `nr_isolate_pageblock` back to zero). With it an
    /// `Isolate` type reaching `__free_one_page` is always a free into an isolated pageblock:
    /// never counted, and capped with [`ISOLATE_MERGE_LIMIT`](Self::ISOLATE_MERGE_LIMIT).
    pub const RECHECK_ISOLATE_MT: Fixes = Fixes(1 << 1);
    /// Patch 2: in `free_pcppages_bulk`, re-read the pageblock type when
    /// `nr_isolate_pageblock > 0`.
    pub const RECHECK_PCP_BULK: Fixes = Fixes(1 << 2);
    /// Patch 3: count the freed block at entry to `__free_one_page`, by the chosen type.
    pub const COUNT_AT_ENTRY: Fixes = Fixes(1 << 3);
    /// Patch 4 (v3 part): a free into an isolated pageblock merges at most to
    /// `pageblock_order`. As posted in v3 (without [`RECHECK_ISOLATE_MT`](Self::RECHECK_ISOLATE_MT))
    /// that is a free the recheck found `Isolate` while `nr_isolate_pageblock > 0`; a stale
    /// `Isolate` free with no pageblock isolated is not capped.
    pub const ISOLATE_MERGE_LIMIT: Fixes = Fixes(1 << 4);
    /// Patch 4 (v5 part, merged): re-free a whole free block of order ≥ `pageblock_order` on
    /// un-isolation when its buddy is not isolated.
    pub const UNSET_REFREE: Fixes = Fixes(1 << 5);
    /// 2016, d9dddbf55667: no merge above `pageblock_order` between an `Isolate` and a
    /// non-`Isolate` pageblock.
    pub const NO_ISOLATE_MERGE: Fixes = Fixes(1 << 6);
    /// 2024 (Johannes Weiner, "mm: page_alloc: freelist migratetype hygiene", v6.10): split
    /// free blocks straddling a pageblock whose isolation changes, and account free pages at
    /// the freelist boundary (by the list a block leaves or joins) in the isolation, offline
    /// and CMA-grab paths.
    pub const ISOLATE_HYGIENE: Fixes = Fixes(1 << 7);
    /// 2022, 1dd214b8f21c "avoid merging non-fallbackable pageblocks with others": above
    /// `pageblock_order`, merge different types only if both are pcp types.
    pub const NO_MIXED_MERGE: Fixes = Fixes(1 << 8);
    /// 2025 (Zi Yan, "Make MIGRATE_ISOLATE a standalone bit"): isolating keeps the pageblock's
    /// type, and un-isolating restores it instead of the caller's type (an undo after a failed
    /// isolation no longer turns CMA pageblocks Movable).
    pub const ISOLATE_KEEPS_TYPE: Fixes = Fixes(1 << 9);
    /// 4.4, 974a786e63c9 "mm, page_alloc: remove MIGRATE_RESERVE": no `Reserve` pageblocks.
    ///
    /// 3.17 keeps up to two pageblocks typed `Reserve` (`setup_zone_migrate_reserve`, sized
    /// from the min watermark), handed out only when everything else is exhausted. 4.4 removed
    /// them in favour of high-order atomic reserves, taken on demand by high-order atomic
    /// allocations and given back under pressure (0aaa29a56e4f,
    /// `unreserve_highatomic_pageblock`). The presets that model kernels from 4.4 on
    /// ([`V4_6`](Self::V4_6), [`ALL`](Self::ALL)) include this flag: no pageblock is ever
    /// `Reserve`, and [`ZoneConfig::reserve_pageblocks`](crate::ZoneConfig::reserve_pageblocks)
    /// must be `None` or `Some(0)`. It matters beyond fidelity: the 2022 merge rule
    /// ([`NO_MIXED_MERGE`](Self::NO_MIXED_MERGE)) never lets a `Reserve` pageblock merge with a
    /// `Movable` one above `pageblock_order`, so a static reserve of one pageblock beside a
    /// `Movable` one would split its top-order block for good the first time it was split;
    /// the kernel never ran the two together. This library has no atomic allocations, so no
    /// high-atomic reserve is ever taken (and none needs giving back).
    pub const NO_RESERVE: Fixes = Fixes(1 << 10);

    /// Linux 3.17 (linux-next-20140826): none of the fixes.
    pub const NONE: Fixes = Fixes(0);
    /// The v3 patchset as posted (26 Aug 2014).
    ///
    /// Where v3 differs from the merged patches, this does what v3 does ([v3 as posted and as
    /// merged](Self#v3-as-posted-and-as-merged)): R1a stays open, and once the un-isolation
    /// has brought `nr_isolate_pageblock` to 0 the stale `Isolate` free is counted as well as
    /// stranded on the `Isolate` list, and merges past `pageblock_order`, so `NR_FREE_PAGES`
    /// drifts further up than under [`NONE`](Self::NONE).
    ///
    /// The one preset that does not always coalesce fully: a free capped at
    /// `pageblock_order` while its pageblock is isolated ([`ISOLATE_MERGE_LIMIT`](Self::ISOLATE_MERGE_LIMIT))
    /// stays split from its buddy after the isolation is undone, as v3 had no re-free (v5's
    /// [`UNSET_REFREE`](Self::UNSET_REFREE) added it);
    /// [`Zone::audit_coalescing`](crate::Zone::audit_coalescing) reports such blocks.
    pub const SEED: Fixes = Fixes(
        Self::RECHECK_FREE_ONE_PAGE.0
            | Self::RECHECK_PCP_BULK.0
            | Self::COUNT_AT_ENTRY.0
            | Self::ISOLATE_MERGE_LIMIT.0,
    );
    /// The patches as merged for v3.18 (v5 plus review fixes).
    pub const V3_18: Fixes =
        Fixes(Self::SEED.0 | Self::RECHECK_ISOLATE_MT.0 | Self::UNSET_REFREE.0);
    /// v3.18 plus the 2016 merge fix and 4.4's removal of `MIGRATE_RESERVE` (what v4.6
    /// shipped).
    pub const V4_6: Fixes = Fixes(Self::V3_18.0 | Self::NO_ISOLATE_MERGE.0 | Self::NO_RESERVE.0);
    /// Every fix: v4.6 plus the later isolation fixes (2022 merge rule, 2024 hygiene, 2025
    /// type-preserving isolation).
    pub const ALL: Fixes = Fixes(
        Self::V4_6.0
            | Self::NO_MIXED_MERGE.0
            | Self::ISOLATE_HYGIENE.0
            | Self::ISOLATE_KEEPS_TYPE.0,
    );

    const NAMES: [(&'static str, Fixes); 11] = [
        ("recheck-free-one-page", Self::RECHECK_FREE_ONE_PAGE),
        ("recheck-isolate-mt", Self::RECHECK_ISOLATE_MT),
        ("recheck-pcp-bulk", Self::RECHECK_PCP_BULK),
        ("count-at-entry", Self::COUNT_AT_ENTRY),
        ("isolate-merge-limit", Self::ISOLATE_MERGE_LIMIT),
        ("unset-refree", Self::UNSET_REFREE),
        ("no-isolate-merge", Self::NO_ISOLATE_MERGE),
        ("isolate-hygiene", Self::ISOLATE_HYGIENE),
        ("no-mixed-merge", Self::NO_MIXED_MERGE),
        ("isolate-keeps-type", Self::ISOLATE_KEEPS_TYPE),
        ("no-reserve", Self::NO_RESERVE),
    ];

    const PRESETS: [(&'static str, Fixes); 5] = [
        ("none", Self::NONE),
        ("seed", Self::SEED),
        ("v3.18", Self::V3_18),
        ("v4.6", Self::V4_6),
        ("all", Self::ALL),
    ];

    /// Whether every flag in `other` is set.
    #[inline]
    pub const fn contains(self, other: Fixes) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two sets.
    #[must_use]
    pub const fn union(self, other: Fixes) -> Fixes {
        Fixes(self.0 | other.0)
    }

    /// This set without the flags of `other`.
    #[must_use]
    pub const fn without(self, other: Fixes) -> Fixes {
        Fixes(self.0 & !other.0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// The preset name if this set is one, else the comma list of flags (`none` when empty).
    pub fn name(self) -> String {
        if let Some((n, _)) = Self::PRESETS.iter().find(|(_, f)| *f == self) {
            return (*n).to_string();
        }
        Self::NAMES
            .iter()
            .filter(|(_, f)| self.contains(*f))
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl core::ops::BitOr for Fixes {
    type Output = Fixes;
    fn bitor(self, rhs: Fixes) -> Fixes {
        self.union(rhs)
    }
}

impl fmt::Debug for Fixes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fixes({})", self.name())
    }
}

impl fmt::Display for Fixes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl core::str::FromStr for Fixes {
    type Err = String;

    /// Parse one set: a preset (`none`, `seed`, `v3.18`, `v4.6`, `all`) or presets and flag
    /// names joined by `,` or `+` (`recheck-free-one-page,recheck-pcp-bulk`, `v3.18+no-reserve`),
    /// case-insensitive. The union of the parts. (The examples run several sets with `;` or a
    /// repeated `--fixes`.)
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Fixes::NONE;
        for part in s.split([',', '+']).map(str::trim).filter(|p| !p.is_empty()) {
            let p = part.to_ascii_lowercase().replace('_', "-");
            let found = Self::PRESETS
                .iter()
                .chain(Self::NAMES.iter())
                .find(|(n, _)| {
                    *n == p || (p == "v318" && *n == "v3.18") || (p == "v46" && *n == "v4.6")
                });
            match found {
                Some((_, f)) => out = out.union(*f),
                None => {
                    let all: Vec<&str> = Self::PRESETS
                        .iter()
                        .chain(Self::NAMES.iter())
                        .map(|(n, _)| *n)
                        .collect();
                    return Err(format!(
                        "unknown fix {part:?}; expected one of: {}",
                        all.join(", ")
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn presets_nest() {
        assert!(Fixes::V3_18.contains(Fixes::SEED));
        assert!(Fixes::ALL.contains(Fixes::V3_18));
        assert!(!Fixes::SEED.contains(Fixes::RECHECK_ISOLATE_MT));
        assert!(!Fixes::V3_18.contains(Fixes::NO_ISOLATE_MERGE));
        assert!(Fixes::ALL.contains(Fixes::V4_6) && !Fixes::V4_6.contains(Fixes::ISOLATE_HYGIENE));
    }

    #[test]
    fn parse_round_trips() {
        for s in ["none", "seed", "v3.18", "v4.6", "all"] {
            let f: Fixes = s.parse().unwrap();
            assert_eq!(f.name(), s);
        }
        let f: Fixes = "recheck-pcp-bulk, count-at-entry".parse().unwrap();
        assert_eq!(f, Fixes::RECHECK_PCP_BULK | Fixes::COUNT_AT_ENTRY);
        assert_eq!(
            "recheck-pcp-bulk+count-at-entry".parse::<Fixes>().unwrap(),
            f
        );
        assert_eq!(f.name().parse::<Fixes>().unwrap(), f);
        assert!("bogus".parse::<Fixes>().is_err());
        assert_eq!("".parse::<Fixes>().unwrap(), Fixes::NONE);
    }
}
