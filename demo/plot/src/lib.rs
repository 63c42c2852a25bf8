//! The SVG pictures of pagealloc's stress programs (`cma_stress --plot DIR`,
//! `isolate_race --plot DIR`), drawn with `plotters`' SVG backend. Plain data in (numbers and
//! names; the examples' `common/plot.rs` turns the library's drift samples, ledger and
//! pageblock maps into it), one SVG file out per call:
//!
//! - [`drift_svg`]: drift over time, one colour per run, exact (solid) and as
//!   `zone_page_state` showed it (dashed), `NR_FREE_PAGES` above and `NR_FREE_CMA_PAGES` below;
//! - [`ledger_svg`]: one stacked bar per run and counter, one segment per race (positive
//!   segments stack up from 0, negative ones down);
//! - [`pageblocks_svg`]: one cell per pageblock in pfn order, coloured by type, isolated
//!   pageblocks outlined in black, those with misplaced free pages marked with a red dot.
//!
//! Colours are `#RRGGBB` in the files: [`run_colour`], [`race_colour`], [`kind_colour`] and
//! [`MISPLACED`] say which, so tests can find each element.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// A colour as `(r, g, b)`.
pub type Rgb = (u8, u8, u8);

/// `#RRGGBB`, as the SVG backend writes a colour.
pub fn hex((r, g, b): Rgb) -> String {
    format!("#{r:02X}{g:02X}{b:02X}")
}

fn rgb((r, g, b): Rgb) -> RGBColor {
    RGBColor(r, g, b)
}

/// One drift reading, `t` seconds into a run (pages, counter minus the pages on the lists).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DriftPoint {
    /// Seconds into the run.
    pub t: f64,
    /// `NR_FREE_PAGES` drift, exact.
    pub free: i64,
    /// `NR_FREE_CMA_PAGES` drift, exact.
    pub cma: i64,
    /// `NR_FREE_PAGES` drift as `zone_page_state` showed it.
    pub vmstat_free: i64,
    /// `NR_FREE_CMA_PAGES` drift as `zone_page_state` showed it.
    pub vmstat_cma: i64,
}

/// One run's drift over time.
#[derive(Clone, Debug, Default)]
pub struct DriftRun {
    /// The run's name (its fix set).
    pub name: String,
    /// Its readings, in time order.
    pub points: Vec<DriftPoint>,
}

/// One run's ledger, summed by race.
#[derive(Clone, Debug, Default)]
pub struct LedgerBar {
    /// The run's name (its fix set).
    pub name: String,
    /// `(race index into the `races` of [`ledger_svg`], NR_FREE_PAGES pages, NR_FREE_CMA_PAGES
    /// pages)`.
    pub segments: Vec<(usize, i64, i64)>,
}

/// One pageblock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    /// Its type, an index into the `kinds` of [`pageblocks_svg`].
    pub kind: usize,
    /// Isolated: outlined.
    pub isolated: bool,
    /// Has misplaced free pages: a red dot.
    pub misplaced: bool,
}

/// What a drawing call returns: plotters' error as text.
pub type DrawResult = Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Run `i`'s colour in the drift chart.
pub fn run_colour(i: usize) -> Rgb {
    let c = Palette99::pick(i).to_rgba();
    (c.0, c.1, c.2)
}

/// Race `i`'s colour in the ledger chart (the ledger's race order; a tenth and later race
/// wrap around).
pub fn race_colour(i: usize) -> Rgb {
    const C: [Rgb; 10] = [
        (0x1f, 0x77, 0xb4),
        (0xae, 0xc7, 0xe8),
        (0xff, 0x7f, 0x0e),
        (0x2c, 0xa0, 0x2c),
        (0x98, 0xdf, 0x8a),
        (0x94, 0x67, 0xbd),
        (0x8c, 0x56, 0x4b),
        (0xe3, 0x77, 0xc2),
        (0xbc, 0xbd, 0x22),
        (0x00, 0x00, 0x00),
    ];
    C[i % C.len()]
}

/// Pageblock type `i`'s colour in the map (the kernel's migratetype order: Unmovable,
/// Reclaimable, Movable, Reserve, CMA; a sixth and later type wrap around).
pub fn kind_colour(i: usize) -> Rgb {
    const C: [Rgb; 5] = [
        (0x8c, 0x56, 0x4b),
        (0xe3, 0x77, 0xc2),
        (0x2c, 0xa0, 0x2c),
        (0x7f, 0x7f, 0x7f),
        (0x1f, 0x77, 0xb4),
    ];
    C[i % C.len()]
}

/// The misplaced-pages dot.
pub const MISPLACED: Rgb = (0xd6, 0x27, 0x28);

/// `lo..hi` widened to include 0 and padded, never empty.
fn y_range(values: impl Iterator<Item = i64>) -> std::ops::Range<i64> {
    let (lo, hi) = values.fold((0, 0), |(lo, hi), v| (v.min(lo), v.max(hi)));
    let pad = ((hi - lo) / 10).max(1);
    (lo - pad)..(hi + pad)
}

type Panel<'a, 'b> = &'a DrawingArea<SVGBackend<'b>, Shift>;

/// The drift chart of `runs` into `path`, titled `title`.
pub fn drift_svg(path: &Path, title: &str, runs: &[DriftRun]) -> DrawResult {
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            &format!(
                "{title}: drift over time (solid: exact; dashed: as zone_page_state shows it)"
            ),
            ("sans-serif", 18),
        )
        .map_err(err)?;
    let (top, bottom) = root.split_vertically(335);
    let t_max = runs
        .iter()
        .flat_map(|r| r.points.last())
        .map(|p| p.t)
        .fold(1.0f64, f64::max);
    type Pick = fn(&DriftPoint) -> (i64, i64);
    let panels: [(Panel<'_, '_>, &str, Pick); 2] = [
        (&top, "NR_FREE_PAGES drift (pages)", |p| {
            (p.free, p.vmstat_free)
        }),
        (&bottom, "NR_FREE_CMA_PAGES drift (pages)", |p| {
            (p.cma, p.vmstat_cma)
        }),
    ];
    for (area, what, pick) in panels {
        let ys = y_range(runs.iter().flat_map(|r| r.points.iter()).flat_map(|p| {
            let (a, b) = pick(p);
            [a, b]
        }));
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_max, ys)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds into the run")
            .y_desc(what)
            .draw()
            .map_err(err)?;
        for (i, r) in runs.iter().enumerate() {
            let colour = rgb(run_colour(i));
            chart
                .draw_series(LineSeries::new(
                    r.points.iter().map(|p| (p.t, pick(p).0)),
                    colour.stroke_width(2),
                ))
                .map_err(err)?
                .label(r.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(DashedLineSeries::new(
                    r.points.iter().map(|p| (p.t, pick(p).1)),
                    5,
                    4,
                    colour.stroke_width(1),
                ))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// The ledger chart of `bars` into `path`, titled `title`; `races` names the races of the
/// segments (and gives their colours, by index: [`race_colour`]).
pub fn ledger_svg(path: &Path, title: &str, bars: &[LedgerBar], races: &[&str]) -> DrawResult {
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root
        .titled(
            &format!("{title}: the drift ledger at the end of each run, by race"),
            ("sans-serif", 18),
        )
        .map_err(err)?;
    let (top, bottom) = root.split_vertically(335);
    type Pick = fn(&(usize, i64, i64)) -> i64;
    let panels: [(Panel<'_, '_>, &str, Pick); 2] = [
        (&top, "NR_FREE_PAGES drift (pages)", |s| s.1),
        (&bottom, "NR_FREE_CMA_PAGES drift (pages)", |s| s.2),
    ];
    let n = bars.len().max(1);
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-9 && i >= 0.0 {
            bars.get(i as usize)
                .map(|b| b.name.clone())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    for (panel, (area, what, pick)) in panels.into_iter().enumerate() {
        // The stacks' extents.
        let ys = y_range(bars.iter().flat_map(|b| {
            let up: i64 = b.segments.iter().map(pick).filter(|&v| v > 0).sum();
            let down: i64 = b.segments.iter().map(pick).filter(|&v| v < 0).sum();
            [up, down]
        }));
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), ys)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .x_desc("fix set")
            .y_desc(what)
            .draw()
            .map_err(err)?;
        for (i, b) in bars.iter().enumerate() {
            let x = i as f64;
            let (mut up, mut down) = (0i64, 0i64);
            let rects = b.segments.iter().filter(|s| pick(s) != 0).map(|s| {
                let v = pick(s);
                let (from, to) = if v > 0 {
                    up += v;
                    (up - v, up)
                } else {
                    down += v;
                    (down - v, down)
                };
                Rectangle::new(
                    [(x - 0.3, from), (x + 0.3, to)],
                    rgb(race_colour(s.0)).filled(),
                )
            });
            chart.draw_series(rects).map_err(err)?;
        }
        // The legend once, on the first panel: every race any run has.
        if panel == 0 {
            for (r, &name) in races.iter().enumerate() {
                if bars.iter().any(|b| b.segments.iter().any(|s| s.0 == r)) {
                    let colour = rgb(race_colour(r));
                    chart
                        .draw_series(std::iter::empty::<Rectangle<(f64, i64)>>())
                        .map_err(err)?
                        .label(name)
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
                .draw()
                .map_err(err)?;
        }
    }
    root.present().map_err(err)
}

/// Columns of the pageblock map for `n` pageblocks.
pub fn columns(n: usize) -> usize {
    if n >= 256 { 32 } else { 16 }
}

/// The pageblock map of `cells` (pfn order) into `path`: `title` and `subtitle` above, a key
/// of `kinds` (the types' names, by index: [`kind_colour`]) below.
pub fn pageblocks_svg(
    path: &Path,
    title: &str,
    subtitle: &str,
    cells: &[Cell],
    kinds: &[&str],
) -> DrawResult {
    const LEFT: i32 = 20;
    const TOP: i32 = 60;
    let cols = columns(cells.len());
    let rows = cells.len().div_ceil(cols).max(1);
    // About 770 pixels wide whatever the columns, so the titles and the key fit.
    let cell = (770 / cols as i32).clamp(12, 48);
    let width = LEFT * 2 + cell * cols as i32;
    let height = TOP + cell * rows as i32 + 70;
    let root = SVGBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    root.draw(&Text::new(title, (LEFT, 10), ("sans-serif", 16)))
        .map_err(err)?;
    root.draw(&Text::new(subtitle, (LEFT, 32), ("sans-serif", 12)))
        .map_err(err)?;
    let black_outline = BLACK.stroke_width(3);
    let dot = rgb(MISPLACED).filled();
    for (i, c) in cells.iter().enumerate() {
        let (x, y) = (
            LEFT + cell * (i % cols) as i32,
            TOP + cell * (i / cols) as i32,
        );
        root.draw(&Rectangle::new(
            [(x + 1, y + 1), (x + cell - 1, y + cell - 1)],
            rgb(kind_colour(c.kind)).filled(),
        ))
        .map_err(err)?;
        if c.isolated {
            root.draw(&Rectangle::new(
                [(x + 2, y + 2), (x + cell - 2, y + cell - 2)],
                black_outline,
            ))
            .map_err(err)?;
        }
        if c.misplaced {
            root.draw(&Circle::new((x + cell / 2, y + cell / 2), cell / 5, dot))
                .map_err(err)?;
        }
    }
    // The key, under the map.
    let ky = TOP + cell * rows as i32 + 20;
    for (i, name) in kinds.iter().enumerate() {
        let kx = LEFT + 110 * i as i32;
        root.draw(&Rectangle::new(
            [(kx, ky), (kx + 14, ky + 14)],
            rgb(kind_colour(i)).filled(),
        ))
        .map_err(err)?;
        root.draw(&Text::new(*name, (kx + 18, ky + 1), ("sans-serif", 12)))
            .map_err(err)?;
    }
    let ky = ky + 24;
    root.draw(&Rectangle::new(
        [(LEFT, ky), (LEFT + 14, ky + 14)],
        black_outline,
    ))
    .map_err(err)?;
    root.draw(&Text::new(
        "isolated",
        (LEFT + 18, ky + 1),
        ("sans-serif", 12),
    ))
    .map_err(err)?;
    root.draw(&Circle::new((LEFT + 117, ky + 7), 5, dot))
        .map_err(err)?;
    root.draw(&Text::new(
        "free pages on a list of another type (misplaced)",
        (LEFT + 128, ky + 1),
        ("sans-serif", 12),
    ))
    .map_err(err)?;
    root.present().map_err(err)
}
