#!/usr/bin/env bash
# CI for pagealloc (.ci/run calls this): runs on a clean clone. Fails when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n=== %s ===\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  step "installing rust"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
for c in clippy:clippy fmt:rustfmt; do
  if ! cargo "${c%%:*}" --version >/dev/null 2>&1; then
    step "installing ${c#*:}"
    rustup component add "${c#*:}"
  fi
done

step "tests (the README's test command)"
cargo test --release

step "tests with debug assertions (internal invariant checks)"
cargo test --lib --tests

step "the race tests again with per-CPU pcps (PcpMode::PerCpu(2))"
PAGEALLOC_TEST_CPUS=2 cargo test --release --test 'race_*' --test coalescing --test isolate_undo_keeps_type

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "fmt"
cargo fmt --all -- --check

step "doc"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib --examples

step "benches compile"
cargo bench --no-run

step "the README's demo command builds (demo/: the examples as binaries, no dev-dependencies)"
cargo build --release -p pagealloc-demo

step "memcheck: the stress example under valgrind (small zone)"
if ! command -v valgrind >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null 2>&1 || sudo apt-get install -y -qq valgrind
fi
cargo build --release --example stress --example cma_stress
valgrind --tool=memcheck --error-exitcode=99 --quiet \
  target/release/examples/stress --seconds 3 --threads 2 --size-mib 16 --seed 1 --json | tail -1

step "short soak: stress --soak for 20 s with all fixes"
target/release/examples/stress --soak --seconds 20 --audit-secs 5 --size-mib 256 --json | tail -1

step "the seed's experiment, short: all fixes must stay exact with every CMA allocation served"
target/release/examples/cma_stress --fixes all --allocs 10 --interval-ms 50 --seed 1 --json | tail -1
target/release/examples/cma_stress --fixes all --allocs 10 --interval-ms 50 --seed 2 --race-window park --json | tail -1

step "the seed's experiment in the seed's shape, --quick (30 s of CMA allocations under a make -j16 model): all fixes exact, clean audit, every CMA allocation served or -EBUSY at every position (a THP there, as 3.17)"
target/release/examples/cma_stress --seed-shape --quick --fixes all --seed 1 --json | tail -1

step "isolation races under real threads: all fixes must stay exact"
RUNS=2 SECONDS_PER_RUN=4 PRESETS=all scripts/isolate_race_acceptance.sh

if [ -x scripts/loom.sh ]; then
  step "loom models"
  scripts/loom.sh
fi

# Miri and AddressSanitizer need a nightly toolchain with miri and rust-src. `rustup component
# add` is a no-op when they are there; a missing nightly is installed (an existing one is not
# updated, so runs stay reproducible on one machine).
if ! rustup toolchain list | grep '^nightly-' >/dev/null; then
  step "installing nightly (miri, rust-src)"
  rustup toolchain install nightly --profile minimal --component miri,rust-src
else
  rustup component add --toolchain nightly miri rust-src
fi
cargo +nightly miri setup

# Under Miri: tests/miri.rs (every handle kind on both backends, threads, drains, migration),
# tests/soundness_config.rs, the race regression tests and isolate_undo_keeps_type (16- and
# 32-page zones, parked threads), and the unit tests but for the one that takes ~80% of their
# Miri time (zone::tests::aggressive_policy_uses_cma_while_normal_pages_are_free, ~1 min
# alone). The other integration tests use 16 MiB-1 GiB zones or 10^4+ operations: far too slow
# for Miri. No -Zmiri-disable-isolation: nothing here needs the host. About 2.5 min per borrow
# model on this 2-core machine once built (the first build ~1 min more).
miri_tests=(--lib --test miri --test soundness_config --test 'race_*' --test isolate_undo_keeps_type
  -- --skip zone::tests::aggressive_policy)
t0=$SECONDS
step "miri, Stacked Borrows"
MIRIFLAGS="" cargo +nightly miri test "${miri_tests[@]}"
t1=$SECONDS
step "miri, Tree Borrows"
MIRIFLAGS="-Zmiri-tree-borrows" cargo +nightly miri test "${miri_tests[@]}"
t2=$SECONDS
echo "miri: Stacked Borrows $((t1 - t0)) s (with the build), Tree Borrows $((t2 - t1)) s"

# AddressSanitizer on the whole suite, debug build: about 2.5 min to build and 10 s to run
# here, so no subset. std is not rebuilt with the sanitizer (no -Zbuild-std): the crate's own
# accesses are instrumented and every heap block comes from ASan's malloc. --target keeps the
# sanitizer off build scripts and proc macros; its own target directory keeps the normal
# build's artifacts. allocator_may_return_null: the arena unit test asks for 2^62 bytes and
# expects null, as glibc returns. tests/threads.rs leaks one zone on purpose (suppressed).
step "AddressSanitizer: lib and integration tests"
t0=$SECONDS
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
ASAN_OPTIONS=allocator_may_return_null=1 \
  LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-suppressions.txt" \
  RUSTFLAGS="-Zsanitizer=address" CARGO_TARGET_DIR=target/asan \
  cargo +nightly test --target "$host" --lib --tests
echo "AddressSanitizer: $((SECONDS - t0)) s (with the build)"

step "ok"
