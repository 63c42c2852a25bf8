#!/usr/bin/env bash
# The README's pictures, generated: runs the seed's experiment (cma_stress) and isolate_race
# with `--plot` and writes their SVG files into docs/img/ (drift over time, the drift ledger by
# race, and each run's pageblock map at its worst drift; see examples/common/plot.rs).
#
#   scripts/readme_plots.sh               # into docs/img/
#   OUT=/tmp/img scripts/readme_plots.sh  # somewhere else
#
# Threaded runs are not repeatable (a seed fixes the workload's choices, not the
# interleaving): the pictures show one run each, with the seeds below.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-docs/img}"
cargo build --release -q -p pagealloc-demo
bin=target/release
mkdir -p "$OUT"
rm -f "$OUT"/cma_stress-*.svg "$OUT"/isolate_race-*.svg
# The programs exit 1 when a run without the fixes drifts (as expected): check the files.
"$bin/cma_stress" --fixes 'none;all' --seed 101 --plot "$OUT" >/dev/null || true
"$bin/isolate_race" --fixes 'none;all' --seed 2 --seconds 5 --plot "$OUT" >/dev/null || true
for f in cma_stress-drift cma_stress-ledger cma_stress-pageblocks-1-none \
  isolate_race-drift isolate_race-ledger isolate_race-pageblocks-1-none; do
  test -s "$OUT/$f.svg" || { echo "missing: $OUT/$f.svg" >&2; exit 1; }
done
ls -l "$OUT"
