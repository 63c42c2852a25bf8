#!/usr/bin/env bash
# Check a real example's trace against the kernel's formats (tests/trace.rs), and optionally
# feed it to the kernel's own trace-pagealloc-postprocess.pl. Fetches nothing: bring your own
# copy of the GPL script (Documentation/trace/postprocess/ of a kernel tree), e.g.
#
#   scripts/trace_check.sh                                   # cma_stress trace, line check
#   scripts/trace_check.sh ~/linux/Documentation/trace/postprocess/trace-pagealloc-postprocess.pl
#
# A short cma_stress run (fixes none then all, 5 CMA allocations on a 256 MiB arena) writes
# the trace to a temporary file; `a_given_trace_matches_line_for_line` checks every line of
# it, and with a script given, the script runs on the test workload's trace and on this one.
# CI does not run it (it needs the script, which this repository does not carry).
set -euo pipefail
cd "$(dirname "$0")/.."
script="${1:-}"
trace="$(mktemp --suffix=.trace)"
trap 'rm -f "$trace"' EXIT
cargo build --release -p pagealloc-demo --bin cma_stress >/dev/null 2>&1
target/release/cma_stress --fixes 'none;all' --seed 101 --arena-mib 256 --cma-mib 64 \
  --allocs 5 --alloc-mib 4 --threads 4 --trace "$trace" >/dev/null
echo "cma_stress trace: $(wc -l <"$trace") lines"
PAGEALLOC_TRACE_FILE="$trace" cargo test --release --test trace a_given_trace -- --nocapture 2>&1 |
  grep -E 'every line matches|skipped|panicked|test result'
if [ -n "$script" ]; then
  command -v perl >/dev/null || { echo "perl is needed for $script" >&2; exit 1; }
  PAGEALLOC_TRACE_POSTPROCESS="$script" cargo test --release --test trace postprocess -- --nocapture 2>&1 |
    grep -E 'Process|details|under lock|^[^ ]+-[0-9]+ |skipped|panicked|test result'
  echo "--- the cma_stress trace through $script:"
  perl "$script" <"$trace"
fi
