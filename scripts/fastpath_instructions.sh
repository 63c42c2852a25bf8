#!/usr/bin/env bash
# Instructions per operation on the fast paths, counted by callgrind (deterministic, unlike
# timings on a shared 2-core machine): the order-0 pcp alloc+free pair (per-thread and per-CPU
# pcps), the order-3 pair through a high-order pcp (ZoneConfig::pcp_high_order), and the cost of the
# fixes (Fixes::ALL against Fixes::NONE) on bench_report's mixed workload, with no isolation
# and with one top-order block isolated elsewhere in the zone.
#
#   scripts/fastpath_instructions.sh            # OPS=100000 by default
#
# Each figure is (I(2·OPS) − I(OPS)) / OPS, so the zone set-up and process start cancel out.
set -euo pipefail
cd "$(dirname "$0")/.."
OPS="${OPS:-100000}"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --example bench_report >/dev/null 2>&1
bin=target/release/examples/bench_report

count() { # args: bench_report workload arguments; prints the instruction count
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 2>&1 |
    awk '/Collected/ {gsub(",", "", $4); print $4}'
}
per_op() { # args: workload arguments; prints instructions per op
  local a b
  a=$(count --ops "$OPS" "$@")
  b=$(count --ops $((2 * OPS)) "$@")
  echo $(((b - a) / OPS))
}

pair=$(per_op --workload pcp --fixes all)
cpupair=$(per_op --workload pcp --fixes all --cpus 2)
odr3pair=$(per_op --workload order3-pcp --fixes all)
none=$(per_op --workload mixed --fixes none)
all=$(per_op --workload mixed --fixes all)
inone=$(per_op --workload mixed --fixes none --isolated)
iall=$(per_op --workload mixed --fixes all --isolated)
printf '%-52s %8s\n' "figure" "instr/op"
printf '%-52s %8d\n' "order-0 alloc+free pair through the pcp" "$pair"
printf '%-52s %8d\n' "order-0 pair through a per-CPU pcp (PerCpu(2))" "$cpupair"
printf '%-52s %8d\n' "order-3 pair through a high-order pcp" "$odr3pair"
printf '%-52s %8d\n' "mixed workload, NONE" "$none"
printf '%-52s %8d\n' "mixed workload, ALL" "$all"
printf '%-52s %8d\n' "mixed workload, one block isolated, NONE" "$inone"
printf '%-52s %8d\n' "mixed workload, one block isolated, ALL" "$iall"
awk -v a="$all" -v n="$none" -v ia="$iall" -v in_="$inone" 'BEGIN {
  printf "%-52s %8.4f\n", "fixes overhead ALL/NONE (instructions)", a / n
  printf "%-52s %8.4f\n", "  same, one block isolated", ia / in_
}'
