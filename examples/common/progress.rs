//! Live progress on a terminal for the long runs (`cma_stress` runs and `--soak`,
//! `isolate_race` runs and `--long`): an `indicatif` bar or spinner on stderr with the drift so
//! far, read every [`TICK`] by [`Zone::drift_sample`] (one short zone-lock hold). Off with
//! `--json` and whenever stdout or stderr is not a terminal: then nothing is drawn and
//! [`Live::println`] is a plain `println!`.

use super::Periodic;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pagealloc::{DriftSample, Zone};
use std::io::IsTerminal;
use std::thread::Scope;
use std::time::Duration;

/// How often the drift in the status line is refreshed.
pub(crate) const TICK: Duration = Duration::from_millis(250);

/// Whether to draw live progress: not with `--json`, and only when both stdout and stderr are
/// terminals (a redirected run keeps its output free of control sequences).
pub(crate) fn wanted(json: bool) -> bool {
    !json && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// `drift -26/-26, zone_page_state -31/-28` (free/CMA).
pub(crate) fn drift_message(d: &DriftSample) -> String {
    format!(
        "drift {:+}/{:+}, zone_page_state {:+}/{:+}",
        d.free, d.cma, d.vmstat_free, d.vmstat_cma
    )
}

/// A progress bar or spinner, or nothing (see [`wanted`]); cleared when dropped.
#[derive(Debug)]
pub(crate) struct Live(Option<ProgressBar>);

impl Live {
    /// Nothing drawn.
    pub(crate) fn off() -> Live {
        Live(None)
    }

    /// A bar of `len` steps (shown as `pos/len`), `prefix` before it, if `on`.
    pub(crate) fn bar(on: bool, len: u64, prefix: String) -> Live {
        Live::new(
            on,
            Some(len),
            prefix,
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} {wide_msg}",
        )
    }

    /// A bar for a run of `total` (shown as a percentage; move it with the milliseconds
    /// elapsed), `prefix` before it, if `on`.
    pub(crate) fn timed(on: bool, total: Duration, prefix: String) -> Live {
        Live::new(
            on,
            Some(total.as_millis() as u64),
            prefix,
            "{prefix} [{elapsed_precise}] {bar:30} {percent:>3}% {wide_msg}",
        )
    }

    /// A spinner (no known length), `prefix` before it, if `on`.
    pub(crate) fn spinner(on: bool, prefix: String) -> Live {
        Live::new(
            on,
            None,
            prefix,
            "{prefix} [{elapsed_precise}] {spinner} {wide_msg}",
        )
    }

    fn new(on: bool, len: Option<u64>, prefix: String, template: &str) -> Live {
        if !on {
            return Live::off();
        }
        let pb = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_prefix(prefix);
        pb.enable_steady_tick(TICK);
        Live(Some(pb))
    }

    /// Whether anything is drawn.
    pub(crate) fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Move the bar to `pos`.
    pub(crate) fn set_position(&self, pos: u64) {
        if let Some(pb) = &self.0 {
            pb.set_position(pos);
        }
    }

    /// The text before the bar.
    pub(crate) fn set_prefix(&self, prefix: String) {
        if let Some(pb) = &self.0 {
            pb.set_prefix(prefix);
        }
    }

    /// The text after the bar.
    pub(crate) fn set_message(&self, msg: String) {
        if let Some(pb) = &self.0 {
            pb.set_message(msg);
        }
    }

    /// Print `line` on stdout, above the bar when there is one.
    pub(crate) fn println(&self, line: impl std::fmt::Display) {
        match &self.0 {
            Some(pb) => pb.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    /// While the bar is drawn, refresh its message with the drift of `zone` every [`TICK`]
    /// (and its position with `pos()`, if that gives one), on a thread of `s`; `None` when
    /// nothing is drawn or the zone has no ledger.
    pub(crate) fn drift_ticker<'scope>(
        &'scope self,
        s: &'scope Scope<'scope, '_>,
        zone: &'scope Zone,
        mut pos: impl FnMut() -> Option<u64> + Send + 'scope,
    ) -> Option<Periodic<'scope>> {
        let pb = self.0.as_ref()?;
        zone.drift_sample()?;
        Some(Periodic::spawn(s, "progress", TICK, move || {
            if let Some(d) = zone.drift_sample() {
                pb.set_message(drift_message(&d));
            }
            if let Some(p) = pos() {
                pb.set_position(p);
            }
        }))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}
