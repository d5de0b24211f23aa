#!/usr/bin/env bash
# A short cargo-fuzz run of every target in fuzz/, one after another, each for
# FUZZ_SECONDS seconds (default 60). Fails if any target crashes, panics or
# breaks an invariant; the reproducer is left in fuzz/artifacts/<target>/.
#
# The seed corpus in fuzz/corpus/<target>/ is only read: new inputs the fuzzer
# finds go to a temporary directory that is removed afterwards, so a run never
# changes the repository. Set FUZZ_KEEP=1 to keep them (their path is printed).
#
# Usage: bash scripts/fuzz.sh [target...]
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh store_ops
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

seconds=${FUZZ_SECONDS:-60}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(bearer_decode snapshot_restore store_ops)
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz and the nightly toolchain are needed (cargo install cargo-fuzz)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/captoken-fuzz.XXXXXX")
if [ "${FUZZ_KEEP:-0}" = 1 ]; then
  echo "fuzz: new inputs are kept in $work"
else
  trap 'rm -rf "$work"' EXIT
fi

cargo +nightly fuzz build
for target in "${targets[@]}"; do
  echo "fuzz: $target for ${seconds}s"
  mkdir -p "$work/$target"
  # The first corpus directory receives new inputs; the seeds are read only.
  cargo +nightly fuzz run "$target" "$work/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=20 -print_final_stats=1 2>"$work/$target.log" || {
    tail -n 60 "$work/$target.log" >&2
    echo "fuzz: $target FAILED (log above; a crashing input is saved in fuzz/artifacts/$target/)" >&2
    exit 1
  }
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$work/$target.log" | sed "s/^/fuzz: $target: /" || true
  echo "fuzz: $target: $(find "$work/$target" -type f | wc -l) new inputs found"
done
echo "fuzz: all targets passed"
