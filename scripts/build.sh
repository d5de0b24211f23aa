#!/usr/bin/env bash
# Build the npm package into pkg/: a Node (CommonJS) and a browser (ES module)
# flavour of the same release .wasm, each shrunk with binaryen's wasm-opt.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# CAPTOKEN_PKG_DIR builds elsewhere than pkg/; CAPTOKEN_KEEP_NAMES=1 keeps
# function names in the .wasm (bench/profile.js profiles such a build of the
# very same code).
pkg=${CAPTOKEN_PKG_DIR:-pkg}
if [ "${CAPTOKEN_KEEP_NAMES:-}" = 1 ]; then
  bindgen_debug=(--keep-debug)
  opt_debug=-g
else
  bindgen_debug=()
  opt_debug=--strip-debug
fi

# A fresh clone has none of the tools below; without the wasm32 target cargo
# fails with "can't find crate for `core`". Run the set-up for what is
# missing (it installs only that), or say what to run when it cannot.
missing=()
command -v cargo >/dev/null || { echo "build: Rust is needed to build the package: install rustup (https://rustup.rs), then run: npm run build" >&2; exit 1; }
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || missing+=("the wasm32-unknown-unknown target")
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" = "$wb_version" ] || missing+=("wasm-bindgen-cli $wb_version")
[ -x node_modules/.bin/wasm-opt ] || missing+=("the npm dependencies")
if [ ${#missing[@]} -gt 0 ]; then
  echo "build: missing $(IFS=,; echo "${missing[*]}" | sed 's/,/, /g'); running scripts/setup.sh first"
  bash scripts/setup.sh || { echo "build: the set-up failed (output above); fix it, then run: npm run setup && npm run build" >&2; exit 1; }
fi

# Two builds of the same code: the Node flavour with the `remote` feature
# (captoken/redis's __RemoteCore), the browser flavour without it (a browser
# cannot reach Redis, so it does not carry those bytes).
release=target/wasm32-unknown-unknown/release
# Build beside pkg/ and swap it in at the end, so a test running meanwhile
# never sees a half-built package.
tmp=$(mktemp -d pkg.tmp.XXXXXX)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
for target in nodejs web; do
  out=$tmp/${target/nodejs/node}
  if [ "$target" = nodejs ]; then features=(--features remote); else features=(); fi
  cargo build --release --target wasm32-unknown-unknown --lib --quiet "${features[@]}"
  # A copy, so the other build cannot replace it; wasm-bindgen names its
  # output after the file (captoken.js, captoken_bg.wasm).
  mkdir "$tmp/$target.in"
  wasm=$tmp/$target.in/captoken.wasm
  cp "$release/captoken.wasm" "$wasm"
  wasm-bindgen --target "$target" --out-dir "$out" --no-typescript "${bindgen_debug[@]}" "$wasm"
  rm -r "$tmp/$target.in"
  node_modules/.bin/wasm-opt -Os "$opt_debug" --strip-producers \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$out/captoken_bg.wasm" -o "$out/captoken_bg.wasm"
done
# The package is "type": "module"; the Node flavour is CommonJS.
printf '{ "type": "commonjs" }\n' > "$tmp/node/package.json"
printf '{ "type": "module" }\n' > "$tmp/web/package.json"
rm -rf "$pkg.old"
[ -d "$pkg" ] && mv "$pkg" "$pkg.old"
mv "$tmp" "$pkg"
rm -rf "$pkg.old"
for flavour in web node; do
  raw=$(wc -c < "$pkg/$flavour/captoken_bg.wasm")
  gz=$(gzip -9 -c "$pkg/$flavour/captoken_bg.wasm" | wc -c)
  sizes="${sizes:+$sizes, }$flavour $raw bytes ($gz gzipped)"
done
echo "build: $pkg/ ready (captoken_bg.wasm: $sizes)"
