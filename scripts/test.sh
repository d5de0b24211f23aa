#!/usr/bin/env bash
# Every test of every layer. Exits non-zero as soon as one layer fails.
# Usage: npm test   (or: bash scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

step() { printf '\n==== %s ====\n' "$*"; }

step "setup"
bash scripts/setup.sh --browser --fuzz

step "rustfmt"
cargo fmt --all -- --check

step "layers (src/: model < engine < persist < bindings, no import cycle)"
python3 scripts/check-layers.py

step "cargo test (native core)"
cargo test --quiet

step "clippy (native, all targets; wasm32 library, without and with the remote feature)"
cargo clippy --quiet --all-targets -- -D warnings
cargo clippy --quiet --target wasm32-unknown-unknown --lib --test wasm -- -D warnings
cargo clippy --quiet --target wasm32-unknown-unknown --features remote --lib --test wasm -- -D warnings

step "build pkg/"
bash scripts/build.sh

step "wasm-pack test --node"
wasm-pack test --node -- --test wasm

step "wasm-pack test --headless --chrome"
# Without this the runner defaults to Node and skips every test, exiting 0.
WASM_BINDGEN_USE_BROWSER=1 wasm-pack test --headless --chrome --chromedriver /usr/bin/chromedriver -- --test wasm

step "cargo fuzz (a short run of every target)"
FUZZ_SECONDS=${FUZZ_SECONDS:-60} bash scripts/fuzz.sh

step "node --test (package, examples, console)"
node --test --test-concurrency=1 --test-force-exit tests/node/ tests/examples/ tests/console/

step "node --test (captoken/redis on real redis-server: single node, cluster, outage, crash)"
# --test-force-exit: a failed test that leaves a client reconnecting fails
# the run instead of holding it open until CI's limit.
node --test --test-concurrency=1 --test-force-exit tests/redis/

echo
echo "all layers passed"
