//! The examples' `--plot` pictures (`examples/common/plot.rs`): from a real zone's drift
//! samples, pageblock maps and ledger to SVG files that parse as XML and hold one cell per
//! pageblock, one bar segment per race and one line per run.
#![allow(clippy::disallowed_types)] // tests are outside the loom shim rule

use pagealloc::*;
use pagealloc_plot::{hex, kind_colour, race_colour, run_colour};
use std::path::{Path, PathBuf};

#[path = "../examples/common/mod.rs"]
mod shared;
use shared::plot::{self, Recorder, RunPlot};

/// A fresh directory for one test's files.
fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pagealloc-plot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The elements named `tag` of the SVG file at `path` (which must parse as XML), as their
/// attribute lists.
fn elements(path: &Path, tag: &str) -> Vec<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.tag_name().name() == tag)
        .map(|n| {
            n.attributes()
                .map(|a| (a.name().to_string(), a.value().to_string()))
                .collect()
        })
        .collect()
}

fn attr<'a>(e: &'a [(String, String)], name: &str) -> Option<&'a str> {
    e.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn count(es: &[Vec<(String, String)>], pairs: &[(&str, &str)]) -> usize {
    es.iter()
        .filter(|e| pairs.iter().all(|&(k, v)| attr(e, k) == Some(v)))
        .count()
}

/// 8 MiB (four pageblocks of 512 pages), 3.17, the ledger on, every pageblock allocated as
/// one order-9 block (as in tests/ledger.rs).
fn zone() -> Zone {
    let z = Zone::new(ZoneConfig {
        size: 8 << 20,
        fixes: Fixes::NONE,
        reserve_pageblocks: Some(0),
        ledger: true,
        ..ZoneConfig::default()
    })
    .unwrap();
    for _ in 0..4 {
        z.alloc_pfn(Order(9), Migratetype::Movable).unwrap();
    }
    z
}

/// A run of `zone()` with R3a's drift (+512) and pageblock 1 isolated, recorded.
fn r3a_run(name: &str) -> (RunPlot, Vec<PageblockState>) {
    let z = zone();
    let rec = Recorder::new();
    rec.sample(&z); // drift 0: the first map
    z.free_pfn(Pfn(0), Order(9)).unwrap();
    z.set_migratetype_isolate(Pfn(512)).unwrap();
    // R3a: the Isolate free merges past pageblock_order with counted pageblock 0.
    z.free_pfn(Pfn(512), Order(9)).unwrap();
    rec.sample(&z); // +512: the worst, a new map
    let map = z.pageblock_map();
    z.drain_all_pages();
    let ledger = z.ledger().unwrap();
    (rec.finish(name.into(), Some(&ledger)), map)
}

#[test]
fn recorder_keeps_the_map_of_the_worst_drift() {
    let (run, map) = r3a_run("none");
    assert_eq!(run.samples.len(), 2);
    assert_eq!(run.samples[0].drift.free, 0);
    assert_eq!(run.samples[1].drift.free, 512);
    let w = run.worst.as_ref().unwrap();
    assert_eq!(w.at.drift.free, 512);
    assert_eq!(w.map, map);
    // Pageblock 1 isolated; the merged order-10 block is on the Isolate list and covers
    // pageblock 0 too, which is not isolated: its 512 free pages are misplaced.
    assert!(w.map[1].isolated && !w.map[0].isolated);
    assert_eq!(w.map[0].misplaced_pages, 512);
    assert_eq!(w.map[1].misplaced_pages, 0);
    assert_eq!(plot::by_race(&run), [(Race::R3a, 512, 0)]);
}

#[test]
fn pageblock_map_svg_has_one_cell_per_pageblock() {
    let (run, map) = r3a_run("none");
    let dir = out_dir("map");
    let files = plot::write_all(&dir, "test", std::slice::from_ref(&run)).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "test-drift.svg",
            "test-ledger.svg",
            "test-pageblocks-1-none.svg"
        ]
    );
    let rects = elements(&files[2], "rect");
    // One filled cell per pageblock in its type's colour, plus one swatch per type in the key.
    let kinds = plot::kinds();
    assert_eq!(kinds.len(), 5);
    for (i, &mt) in kinds.iter().enumerate() {
        let blocks = map.iter().filter(|b| b.migratetype == mt).count();
        assert_eq!(
            count(&rects, &[("fill", &hex(kind_colour(i)))]),
            blocks + 1,
            "{mt}"
        );
    }
    // One black outline per isolated pageblock, plus the key's.
    assert_eq!(
        count(&rects, &[("fill", "none"), ("stroke", "#000000")]),
        map.iter().filter(|b| b.isolated).count() + 1
    );
    assert_eq!(count(&rects, &[("fill", "none"), ("stroke", "#000000")]), 2);
    // One red dot per pageblock with misplaced pages, plus the key's.
    let circles = elements(&files[2], "circle");
    assert_eq!(
        count(&circles, &[("fill", &hex(pagealloc_plot::MISPLACED))]),
        2
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ledger_and_drift_svgs_have_a_bar_per_race_and_a_line_per_run() {
    let (a, _) = r3a_run("none");
    // A second run with nothing in its ledger and no drift.
    let clean = {
        let z = zone();
        let rec = Recorder::new();
        rec.sample(&z);
        rec.sample(&z);
        rec.finish("all".into(), z.ledger().as_deref())
    };
    assert!(clean.ledger.is_empty());
    let dir = out_dir("ledger");
    let files = plot::write_all(&dir, "test", &[a, clean]).unwrap();
    assert_eq!(files.len(), 4, "{files:?}");
    // R3a: one segment (NR_FREE_PAGES +512; NR_FREE_CMA_PAGES has none), one legend swatch.
    let rects = elements(&files[1], "rect");
    for (i, race) in plot::RACES.into_iter().enumerate() {
        let segments = usize::from(race == Race::R3a) * 2;
        assert_eq!(
            count(&rects, &[("fill", &hex(race_colour(i)))]),
            segments,
            "{race}"
        );
    }
    // Drift: per run, one solid line per panel and its legend line (2 panels).
    let lines = elements(&files[0], "polyline");
    for i in 0..2 {
        let colour = hex(run_colour(i));
        assert_eq!(
            count(&lines, &[("stroke", &colour), ("stroke-width", "2")]),
            4,
            "run {i}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
