#!/usr/bin/env bash
# Install what the build and the tests need, once; quick when all is there.
# Usage: scripts/setup.sh [--browser] [--fuzz]
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
want_fuzz=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    --fuzz) want_fuzz=1 ;;
    *) echo "setup: unknown flag $arg" >&2; exit 2 ;;
  esac
done

say() { printf 'setup: %s\n' "$*"; }
export PATH="$HOME/.cargo/bin:$PATH"

command -v cargo >/dev/null || { echo "setup: the Rust toolchain (cargo) is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup: Node.js and npm are required" >&2; exit 1; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen's CLI must match the library version in Cargo.lock exactly.
if [ ! -f Cargo.lock ]; then cargo generate-lockfile; fi
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wb_version" ]; then
  say "installing wasm-bindgen-cli $wb_version (a few minutes)"
  # Not --locked: the registry lacks one of its locked dependencies.
  cargo install wasm-bindgen-cli --version "$wb_version" --force
fi
if ! command -v wasm-pack >/dev/null; then
  say "installing wasm-pack (a few minutes)"
  cargo install wasm-pack
fi

# npm dependencies (binaryen's wasm-opt, TypeScript, playwright-core, bench peers).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Debian packages: the package lists are updated once per run, before the
# first install.
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
}

if [ "$want_browser" = 1 ]; then
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    say "installing Debian's chromium and chromium-driver"
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
fi

# redis-server and redis-cli for the captoken/redis tests (tests/redis/ start
# their own servers on free loopback ports; never a Redis already running).
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  say "installing Debian's redis-server"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

if [ "$want_fuzz" = 1 ]; then
  if ! rustup toolchain list | grep -q '^nightly'; then
    say "installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
  fi
  if ! command -v cargo-fuzz >/dev/null; then
    say "installing cargo-fuzz"
    cargo install cargo-fuzz
  fi
fi
exit 0
