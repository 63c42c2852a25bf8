//! `--plot DIR` of `cma_stress` and `isolate_race`: SVG pictures of each run, drawn with
//! `plotters` (its SVG backend only).
//!
//! - `EXAMPLE-drift.svg`: the drift over time of every run (one colour per fix set), exactly
//!   (solid) and as `zone_page_state` showed it (dashed: the folded counters a 3.17 reader
//!   sees, lagging by the per-CPU diffs not folded yet), `NR_FREE_PAGES` above,
//!   `NR_FREE_CMA_PAGES` below. Sampled every [`SAMPLE_PERIOD`] by [`Zone::drift_sample`]
//!   (one short zone-lock hold, no walk).
//! - `EXAMPLE-ledger.svg`: the drift ledger at the end of each run as one stacked bar per run,
//!   one segment per race (pages; positive segments stack up from 0, negative ones down), for
//!   both counters.
//! - `EXAMPLE-pageblocks-N-FIXES.svg`: run N's pageblocks at the moment of its worst drift
//!   (largest |drift| of `NR_FREE_PAGES`, then of `NR_FREE_CMA_PAGES`; the first sample when
//!   it never drifted), one cell per pageblock in pfn order, coloured by migratetype (an
//!   isolated pageblock by the type it had before), isolated pageblocks outlined in black,
//!   pageblocks with misplaced free pages marked with a red dot ([`Zone::pageblock_map`]).
//!   The map walks every free list under the zone lock, so the sampler takes one only when
//!   the drift reaches a new worst.

use super::Periodic;
use pagealloc::{DriftSample, LedgerEntry, Migratetype, PageblockState, Race, Zone};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::Scope;
use std::time::{Duration, Instant};

/// How often the sampler reads the drift.
pub(crate) const SAMPLE_PERIOD: Duration = Duration::from_millis(100);

/// `--plot DIR`, flattened into each example's arguments.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct PlotOpts {
    /// Write SVG pictures of the runs into DIR (created if missing): drift
    /// over time, the ledger per race, the pageblocks at the worst drift
    #[arg(long, value_name = "DIR", verbatim_doc_comment)]
    pub(crate) plot: Option<PathBuf>,
}

/// One drift reading, `t` seconds into the run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub(crate) t: f64,
    pub(crate) drift: DriftSample,
}

/// The pageblock map taken at the worst drift of a run.
#[derive(Clone, Debug)]
pub(crate) struct WorstMap {
    pub(crate) at: Sample,
    pub(crate) map: Vec<PageblockState>,
}

/// What the pictures show of one run.
#[derive(Clone, Debug)]
pub(crate) struct RunPlot {
    /// The fix set's name (`none`, `all`, ...).
    pub(crate) name: String,
    pub(crate) samples: Vec<Sample>,
    pub(crate) worst: Option<WorstMap>,
    /// The ledger at the end of the run.
    pub(crate) ledger: Vec<LedgerEntry>,
}

/// Collects a run's drift samples and its worst-moment pageblock map.
#[derive(Debug)]
pub(crate) struct Recorder {
    t0: Instant,
    state: Mutex<(Vec<Sample>, Option<WorstMap>)>,
}

/// The order "worse drift" follows: |free|, then |cma|.
fn badness(d: &DriftSample) -> (u64, u64) {
    (d.free.unsigned_abs(), d.cma.unsigned_abs())
}

impl Recorder {
    /// A recorder whose time 0 is now.
    pub(crate) fn new() -> Recorder {
        Recorder {
            t0: Instant::now(),
            state: Mutex::new((Vec::new(), None)),
        }
    }

    /// Read the drift now; take the pageblock map too if it is the worst so far (or the
    /// first). A no-op on a zone without the ledger.
    pub(crate) fn sample(&self, zone: &Zone) {
        let Some(drift) = zone.drift_sample() else {
            return;
        };
        let at = Sample {
            t: self.t0.elapsed().as_secs_f64(),
            drift,
        };
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0.push(at);
        let worse = st
            .1
            .as_ref()
            .is_none_or(|w| badness(&drift) > badness(&w.at.drift));
        if worse {
            st.1 = Some(WorstMap {
                at,
                map: zone.pageblock_map(),
            });
        }
    }

    /// Sample `zone` every [`SAMPLE_PERIOD`] on a thread of `s` until the returned timer is
    /// stopped.
    pub(crate) fn spawn<'scope>(
        &'scope self,
        s: &'scope Scope<'scope, '_>,
        zone: &'scope Zone,
    ) -> Periodic<'scope> {
        self.sample(zone);
        Periodic::spawn(s, "plot-sampler", SAMPLE_PERIOD, move || self.sample(zone))
    }

    /// The run's pictures' data, with the final ledger (`None` when the ledger is off).
    pub(crate) fn finish(self, name: String, ledger: Option<&[LedgerEntry]>) -> RunPlot {
        let (samples, worst) = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        RunPlot {
            name,
            samples,
            worst,
            ledger: ledger.map(<[_]>::to_vec).unwrap_or_default(),
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

// ---- colours ----

/// One colour per migratetype (kernel order: Unmovable, Reclaimable, Movable, Reserve, CMA,
/// Isolate).
const MT_COLOURS: [RGBColor; 6] = [
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0xff, 0xff),
];

/// The colour of a pageblock of type `mt`.
pub(crate) fn mt_colour(mt: Migratetype) -> RGBColor {
    MT_COLOURS[mt.idx()]
}

/// The misplaced-pages marker.
pub(crate) const MISPLACED: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// The races in the ledger's order, with their colours.
const RACES: [(Race, RGBColor); 9] = [
    (Race::R1a, RGBColor(0x1f, 0x77, 0xb4)),
    (Race::R1b, RGBColor(0xae, 0xc7, 0xe8)),
    (Race::R2, RGBColor(0xff, 0x7f, 0x0e)),
    (Race::R3a, RGBColor(0x2c, 0xa0, 0x2c)),
    (Race::R3b, RGBColor(0x98, 0xdf, 0x8a)),
    (Race::R3c, RGBColor(0x94, 0x67, 0xbd)),
    (Race::R4, RGBColor(0x8c, 0x56, 0x4b)),
    (Race::Undo, RGBColor(0xe3, 0x77, 0xc2)),
    (Race::Unclassified, RGBColor(0x00, 0x00, 0x00)),
];

/// A run's colour in the drift chart.
pub(crate) fn run_colour(i: usize) -> RGBAColor {
    Palette99::pick(i).to_rgba()
}

// ---- files ----

/// A fix set's name as part of a file name.
fn file_part(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' })
        .collect()
}

/// Write every picture of `runs` of `example` into `dir` (created if missing); the files
/// written, in order: drift, ledger, then one pageblock map per run that has one.
pub(crate) fn write_all(dir: &Path, example: &str, runs: &[RunPlot]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--plot {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    let path = dir.join(format!("{example}-drift.svg"));
    drift_svg(&path, example, runs).map_err(|e| format!("{}: {e}", path.display()))?;
    out.push(path);
    let path = dir.join(format!("{example}-ledger.svg"));
    ledger_svg(&path, example, runs).map_err(|e| format!("{}: {e}", path.display()))?;
    out.push(path);
    for (i, r) in runs.iter().enumerate() {
        if let Some(w) = &r.worst {
            let path = dir.join(format!(
                "{example}-pageblocks-{}-{}.svg",
                i + 1,
                file_part(&r.name)
            ));
            let title = format!("{example} [{}]", r.name);
            pageblocks_svg(&path, &title, w).map_err(|e| format!("{}: {e}", path.display()))?;
            out.push(path);
        }
    }
    Ok(out)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// `lo..hi` widened to include 0 and padded, never empty.
fn y_range(values: impl Iterator<Item = i64>) -> std::ops::Range<i64> {
    let (lo, hi) = values.fold((0, 0), |(lo, hi), v| (v.min(lo), v.max(hi)));
    let pad = ((hi - lo) / 10).max(1);
    (lo - pad)..(hi + pad)
}

/// The drift chart: `NR_FREE_PAGES` above, `NR_FREE_CMA_PAGES` below.
pub(crate) fn drift_svg(path: &Path, example: &str, runs: &[RunPlot]) -> DrawResult {
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("{example}: drift over time (solid: exact; dashed: as zone_page_state shows it)"),
        ("sans-serif", 18),
    )?;
    let (top, bottom) = root.split_vertically(335);
    let t_max = runs
        .iter()
        .flat_map(|r| r.samples.last())
        .map(|s| s.t)
        .fold(1.0f64, f64::max);
    type Pick = fn(&DriftSample) -> (i64, i64);
    let panels: [(&DrawingArea<SVGBackend<'_>, Shift>, &str, Pick); 2] = [
        (&top, "NR_FREE_PAGES drift (pages)", |d| (d.free, d.vmstat_free)),
        (&bottom, "NR_FREE_CMA_PAGES drift (pages)", |d| (d.cma, d.vmstat_cma)),
    ];
    for (area, what, pick) in panels {
        let ys = y_range(
            runs.iter()
                .flat_map(|r| r.samples.iter())
                .flat_map(|s| {
                    let (a, b) = pick(&s.drift);
                    [a, b]
                }),
        );
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_max, ys)?;
        chart
            .configure_mesh()
            .x_desc("seconds into the run")
            .y_desc(what)
            .draw()?;
        for (i, r) in runs.iter().enumerate() {
            let colour = run_colour(i);
            chart
                .draw_series(LineSeries::new(
                    r.samples.iter().map(|s| (s.t, pick(&s.drift).0)),
                    colour.stroke_width(2),
                ))?
                .label(r.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart.draw_series(DashedLineSeries::new(
                r.samples.iter().map(|s| (s.t, pick(&s.drift).1)),
                5,
                4,
                colour.stroke_width(1),
            ))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// The ledger of `r` summed by race: `(race, free, cma)` in [`RACES`] order, races with
/// no pages left out.
pub(crate) fn by_race(r: &RunPlot) -> Vec<(Race, i64, i64)> {
    RACES
        .iter()
        .map(|&(race, _)| {
            let (f, c) = r
                .ledger
                .iter()
                .filter(|e| e.race == race)
                .fold((0, 0), |(f, c), e| (f + e.free, c + e.cma));
            (race, f, c)
        })
        .filter(|&(_, f, c)| f != 0 || c != 0)
        .collect()
}

/// The colour of `race`.
pub(crate) fn race_colour(race: Race) -> RGBColor {
    RACES
        .iter()
        .find(|(r, _)| *r == race)
        .map_or(BLACK, |&(_, c)| c)
}

/// The ledger chart: one stacked bar per run and counter, one segment per race.
pub(crate) fn ledger_svg(path: &Path, example: &str, runs: &[RunPlot]) -> DrawResult {
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("{example}: the drift ledger at the end of each run, by race"),
        ("sans-serif", 18),
    )?;
    let (top, bottom) = root.split_vertically(335);
    let sums: Vec<Vec<(Race, i64, i64)>> = runs.iter().map(by_race).collect();
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    type Pick = fn(&(Race, i64, i64)) -> i64;
    let panels: [(&DrawingArea<SVGBackend<'_>, Shift>, &str, Pick); 2] = [
        (&top, "NR_FREE_PAGES drift (pages)", |e| e.1),
        (&bottom, "NR_FREE_CMA_PAGES drift (pages)", |e| e.2),
    ];
    for (panel, (area, what, pick)) in panels.into_iter().enumerate() {
        // The stacks' extents.
        let ys = y_range(sums.iter().flat_map(|s| {
            let up: i64 = s.iter().map(pick).filter(|&v| v > 0).sum();
            let down: i64 = s.iter().map(pick).filter(|&v| v < 0).sum();
            [up, down]
        }));
        let n = runs.len().max(1);
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-9 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), ys)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .x_desc("fix set")
            .y_desc(what)
            .draw()?;
        for (i, s) in sums.iter().enumerate() {
            let x = i as f64;
            let (mut up, mut down) = (0i64, 0i64);
            let bars = s.iter().filter(|e| pick(e) != 0).map(|e| {
                let v = pick(e);
                let (from, to) = if v > 0 {
                    up += v;
                    (up - v, up)
                } else {
                    down += v;
                    (down - v, down)
                };
                Rectangle::new([(x - 0.3, from), (x + 0.3, to)], race_colour(e.0).filled())
            });
            chart.draw_series(bars)?;
        }
        // The legend once, on the first panel: every race any run has.
        if panel == 0 {
            for &(race, colour) in &RACES {
                if sums.iter().any(|s| s.iter().any(|e| e.0 == race)) {
                    chart
                        .draw_series(std::iter::empty::<Rectangle<(f64, i64)>>())?
                        .label(race.name())
                        .legend(move |(x, y)| {
                            Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
                        });
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

/// Columns of the pageblock map.
pub(crate) fn map_columns(nr_pageblocks: usize) -> usize {
    if nr_pageblocks >= 256 { 32 } else { 16 }
}

/// The pageblock map at the worst drift: one cell per pageblock, in pfn order, row by row.
pub(crate) fn pageblocks_svg(path: &Path, title: &str, w: &WorstMap) -> DrawResult {
    const CELL: i32 = 24;
    const LEFT: i32 = 20;
    const TOP: i32 = 60;
    let cols = map_columns(w.map.len());
    let rows = w.map.len().div_ceil(cols);
    let width = LEFT * 2 + CELL * cols as i32;
    let height = TOP + CELL * rows as i32 + 70;
    let root = SVGBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let d = &w.at.drift;
    root.draw(&Text::new(
        format!("{title}: pageblocks at {:.1} s, the worst drift", w.at.t),
        (LEFT, 10),
        ("sans-serif", 16),
    ))?;
    root.draw(&Text::new(
        format!(
            "drift {:+}/{:+} (free/CMA), as zone_page_state showed it {:+}/{:+}; {} isolated, {} with misplaced free pages",
            d.free,
            d.cma,
            d.vmstat_free,
            d.vmstat_cma,
            w.map.iter().filter(|b| b.isolated).count(),
            w.map.iter().filter(|b| b.misplaced_pages > 0).count()
        ),
        (LEFT, 32),
        ("sans-serif", 12),
    ))?;
    for (i, b) in w.map.iter().enumerate() {
        let (x, y) = (
            LEFT + CELL * (i % cols) as i32,
            TOP + CELL * (i / cols) as i32,
        );
        root.draw(&Rectangle::new(
            [(x + 1, y + 1), (x + CELL - 1, y + CELL - 1)],
            mt_colour(b.migratetype).filled(),
        ))?;
        if b.isolated {
            root.draw(&Rectangle::new(
                [(x + 2, y + 2), (x + CELL - 2, y + CELL - 2)],
                BLACK.stroke_width(3),
            ))?;
        }
        if b.misplaced_pages > 0 {
            root.draw(&Circle::new(
                (x + CELL / 2, y + CELL / 2),
                CELL / 5,
                MISPLACED.filled(),
            ))?;
        }
    }
    // The key, under the map.
    let ky = TOP + CELL * rows as i32 + 20;
    let mut kx = LEFT;
    for mt in Migratetype::ALL.into_iter().filter(|mt| !mt.is_isolate()) {
        root.draw(&Rectangle::new(
            [(kx, ky), (kx + 14, ky + 14)],
            mt_colour(mt).filled(),
        ))?;
        root.draw(&Text::new(format!("{mt}"), (kx + 18, ky + 1), ("sans-serif", 12)))?;
        kx += 110;
    }
    let ky = ky + 24;
    root.draw(&Rectangle::new(
        [(LEFT, ky), (LEFT + 14, ky + 14)],
        BLACK.stroke_width(3),
    ))?;
    root.draw(&Text::new("isolated", (LEFT + 18, ky + 1), ("sans-serif", 12)))?;
    root.draw(&Circle::new((LEFT + 117, ky + 7), CELL / 5, MISPLACED.filled()))?;
    root.draw(&Text::new(
        "free pages on a list of another type (misplaced)",
        (LEFT + 128, ky + 1),
        ("sans-serif", 12),
    ))?;
    root.present()?;
    Ok(())
}
