// scripts/build.sh on a machine that was never set up: without Rust it stops
// with one line saying what to install; with Rust but without the wasm32
// target (rustc's "can't find crate for `core`") it runs the set-up first.
// Both run a copy of scripts/ against fake tools, so nothing is installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** A checkout with scripts/build.sh, Cargo.lock and a fake set-up that logs its call and fails. */
function fakeCheckout(t) {
  const dir = mkdtempSync(join(tmpdir(), 'captoken-build-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'scripts'));
  copyFileSync(join(root, 'scripts/build.sh'), join(dir, 'scripts/build.sh'));
  copyFileSync(join(root, 'Cargo.lock'), join(dir, 'Cargo.lock'));
  writeFileSync(join(dir, 'scripts/setup.sh'), 'echo called >> "$(dirname "$0")/../setup-called"\necho "setup: (fake) no network" >&2\nexit 1\n');
  return dir;
}

function tool(dir, name, script) {
  const file = join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${script}\n`);
  chmodSync(file, 0o755);
}

const env = (home, path) => ({ HOME: home, PATH: path });
const systemPath = `${dirname(process.execPath)}:/usr/bin:/bin`;

test('without Rust: one line saying to install rustup, exit 1', (t) => {
  if (existsSync('/usr/bin/cargo')) return t.skip('a system cargo is installed');
  const dir = fakeCheckout(t);
  const r = spawnSync('bash', ['scripts/build.sh'], { cwd: dir, env: env(dir, systemPath), encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^build: Rust is needed to build the package: install rustup \(https:\/\/rustup\.rs\), then run: npm run build\n$/);
  assert.equal(existsSync(join(dir, 'setup-called')), false);
});

test('without the wasm32 target, wasm-bindgen-cli or npm deps: the set-up runs first, and its failure says what to run', (t) => {
  const dir = fakeCheckout(t);
  const bin = join(dir, '.cargo/bin');
  mkdirSync(bin, { recursive: true });
  tool(bin, 'cargo', 'echo "cargo: must not be reached" >&2; exit 99');
  tool(bin, 'rustup', 'echo x86_64-unknown-linux-gnu'); // only the host target
  const r = spawnSync('bash', ['scripts/build.sh'], { cwd: dir, env: env(dir, systemPath), encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stdout, /^build: missing the wasm32-unknown-unknown target, wasm-bindgen-cli [\d.]+, the npm dependencies; running scripts\/setup\.sh first\n$/);
  assert.equal(readFileSync(join(dir, 'setup-called'), 'utf8'), 'called\n');
  assert.match(r.stderr, /build: the set-up failed \(output above\); fix it, then run: npm run setup && npm run build\n$/);
  assert.doesNotMatch(r.stderr, /must not be reached/);
});
