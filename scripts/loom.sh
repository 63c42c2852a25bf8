#!/usr/bin/env bash
# The loom models (tests/loom_*.rs): the crate's own zone, pcp and isolation code under
# `--cfg loom`, on tiny zones. The one way to run them.
#
#   scripts/loom.sh                           # every model at its own preemption bound (all 3)
#   LOOM_MAX_PREEMPTIONS=2 scripts/loom.sh    # one bound for every model, e.g. 2 for a quick run
#   LOOM_MAX_PREEMPTIONS=6 scripts/loom.sh --skip conservation   # a deeper run, ~8 min, < 100 MB
#   scripts/loom.sh r3                        # extra arguments go to the test harness (filters)
#
# Release build with debug assertions on, so every debug_assert! is an oracle inside the
# models, in its own target directory (LOOM_TARGET_DIR, default ${CARGO_TARGET_DIR:-target}/loom)
# so the different RUSTFLAGS do not invalidate the normal build. loom's own variables
# (LOOM_LOG, LOOM_LOCATION, LOOM_CHECKPOINT_FILE, LOOM_MAX_BRANCHES, ...) pass through.
#
# Prints one line per model (iterations explored, to the failure for the models that must
# fail; bound; time), the build and run times, and writes the lines to loom-report.txt in the
# target directory. No model needs an opt-in flag: at the default bounds the models take about
# 2 minutes on 2 cores (the two conservation models are most of it), plus the build.
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="${RUSTFLAGS:-} --cfg loom -C debug-assertions=on"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-${CARGO_TARGET_DIR:-target}/loom}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

t0=$SECONDS
cargo test --release --test 'loom_*' --no-run
t1=$SECONDS

log="$CARGO_TARGET_DIR/loom-output.txt"
report="$CARGO_TARGET_DIR/loom-report.txt"
status=0
cargo test --release --test 'loom_*' -- --nocapture "$@" >"$log" 2>&1 || status=$?
t2=$SECONDS

{
    echo "loom models (LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-per model}):"
    grep -o 'loom model .*' "$log" | sed 's/^loom model /  /' | sort || true
    grep -E '^test result:' "$log" || true
    echo "build $((t1 - t0)) s, models $((t2 - t1)) s, total $((t2 - t0)) s"
} | tee "$report"

if [ "$status" -ne 0 ]; then
    echo "--- loom models FAILED; full output ($log):"
    cat "$log"
fi
exit "$status"
