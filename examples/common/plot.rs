//! `--plot DIR` of `cma_stress` and `isolate_race`: SVG pictures of each run, drawn by the
//! `pagealloc-plot` crate (`demo/plot`, `plotters`' SVG backend) from what this module records.
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
use pagealloc_plot::{Cell, DriftPoint, DriftRun, LedgerBar};
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
        let worse =
            st.1.as_ref()
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

// ---- the pictures ----

/// The races in the ledger's order (the index is the colour, `pagealloc_plot::race_colour`).
pub(crate) const RACES: [Race; 10] = [
    Race::R1a,
    Race::R1b,
    Race::R2,
    Race::R3a,
    Race::R3b,
    Race::R3c,
    Race::R4,
    Race::Undo,
    Race::Stranded,
    Race::Unclassified,
];

/// The pageblock types the map colours (every type but `Isolate`, which it draws as an
/// outline; the index is the colour, `pagealloc_plot::kind_colour`).
pub(crate) fn kinds() -> Vec<Migratetype> {
    Migratetype::ALL
        .into_iter()
        .filter(|mt| !mt.is_isolate())
        .collect()
}

/// The ledger of `r` summed by race: `(race, free, cma)` in [`RACES`] order, races with no
/// pages left out.
pub(crate) fn by_race(r: &RunPlot) -> Vec<(Race, i64, i64)> {
    RACES
        .iter()
        .map(|&race| {
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

/// An error drawing `path`, with its name.
fn in_file(path: &Path) -> impl Fn(String) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// A fix set's name as part of a file name.
fn file_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn point(s: &Sample) -> DriftPoint {
    DriftPoint {
        t: s.t,
        free: s.drift.free,
        cma: s.drift.cma,
        vmstat_free: s.drift.vmstat_free,
        vmstat_cma: s.drift.vmstat_cma,
    }
}

/// Write every picture of `runs` of `example` into `dir` (created if missing); the files
/// written, in order: drift, ledger, then one pageblock map per run that has one.
pub(crate) fn write_all(
    dir: &Path,
    example: &str,
    runs: &[RunPlot],
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--plot {}: {e}", dir.display()))?;
    let mut out = Vec::new();

    let path = dir.join(format!("{example}-drift.svg"));
    let drift: Vec<DriftRun> = runs
        .iter()
        .map(|r| DriftRun {
            name: r.name.clone(),
            points: r.samples.iter().map(point).collect(),
        })
        .collect();
    pagealloc_plot::drift_svg(&path, example, &drift).map_err(in_file(&path))?;
    out.push(path);

    let path = dir.join(format!("{example}-ledger.svg"));
    let bars: Vec<LedgerBar> = runs
        .iter()
        .map(|r| LedgerBar {
            name: r.name.clone(),
            segments: by_race(r)
                .into_iter()
                .map(|(race, f, c)| (RACES.iter().position(|&x| x == race).unwrap_or(0), f, c))
                .collect(),
        })
        .collect();
    let race_names: Vec<&str> = RACES.iter().map(|r| r.name()).collect();
    pagealloc_plot::ledger_svg(&path, example, &bars, &race_names).map_err(in_file(&path))?;
    out.push(path);

    let kinds = kinds();
    let kind_names: Vec<&str> = kinds.iter().map(|mt| mt.name()).collect();
    for (i, r) in runs.iter().enumerate() {
        let Some(w) = &r.worst else { continue };
        let path = dir.join(format!(
            "{example}-pageblocks-{}-{}.svg",
            i + 1,
            file_part(&r.name)
        ));
        let cells: Vec<Cell> = w
            .map
            .iter()
            .map(|b| Cell {
                kind: kinds.iter().position(|&k| k == b.migratetype).unwrap_or(0),
                isolated: b.isolated,
                misplaced: b.misplaced_pages > 0,
            })
            .collect();
        let d = &w.at.drift;
        let title = format!(
            "{example} [{}]: pageblocks at {:.1} s, the worst drift",
            r.name, w.at.t
        );
        let subtitle = format!(
            "drift {:+}/{:+} (free/CMA), as zone_page_state showed it {:+}/{:+}; {} isolated, \
             {} with misplaced free pages",
            d.free,
            d.cma,
            d.vmstat_free,
            d.vmstat_cma,
            cells.iter().filter(|c| c.isolated).count(),
            cells.iter().filter(|c| c.misplaced).count()
        );
        pagealloc_plot::pageblocks_svg(&path, &title, &subtitle, &cells, &kind_names)
            .map_err(in_file(&path))?;
        out.push(path);
    }
    Ok(out)
}
