// Smoke run of the benchmark harness (`node bench/run.js --quick`): every
// path runs once with tiny sizes (wasm from Node, both JavaScript peers, jose,
// the criterion benches in the dev profile, headless Chromium, captoken/redis
// on its own redis-server), so the bench
// cannot rot. Its timings are not checked: this is not a timed test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IMPLS } from '../../bench/report.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const REPO_OUTPUTS = ['BENCHMARKS.md', 'bench/chart.svg', 'bench/results.json'].map((f) => join(ROOT, f));

const mtimes = () => REPO_OUTPUTS.map((f) => (existsSync(f) ? statSync(f).mtimeMs : null));

function run(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bench/run.js', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => { stdout += chunk; });
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('node bench/run.js --quick runs every implementation and writes outside the repo', { timeout: 240_000 }, async () => {
  const before = mtimes();
  const { code, stdout, stderr } = await run(['--quick']);
  assert.equal(code, 0, `bench exited ${code}\n${stderr.slice(-4000)}`);

  assert.match(stdout, /^\| operation +\|/m, 'the results table header');
  for (const name of Object.values(IMPLS)) assert.ok(stdout.includes(name), `the table names ${name}`);
  assert.match(stdout, /^\| budget +\| limit +\| measured +\| verdict +\|/m, 'the budgets table');
  assert.doesNotMatch(stdout, /\bskipped\b/, 'no implementation was skipped');

  const out = /^outputs written to (.+)$/m.exec(stdout)?.[1];
  assert.ok(out && existsSync(out), 'the outputs folder');
  try {
    assert.notEqual(out, ROOT.replace(/\/$/, ''), 'a quick run writes outside the repo');
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    for (const impl of Object.keys(IMPLS)) {
      const verify = results.ops.verify[impl]?.median;
      assert.ok(Number.isFinite(verify) && verify > 0, `${impl} measured verify`);
    }
    for (const op of ['check', 'check_hmac', 'consume', 'mint']) {
      for (const impl of ['captoken', 'chromium', 'native', 'peer-node', 'peer-noble']) {
        assert.ok(results.ops[op][impl]?.median > 0, `${impl} measured ${op}`);
      }
    }
    for (const op of ['snapshot', 'restore', 'memory']) {
      for (const impl of ['captoken', 'peer-node', 'peer-noble']) {
        assert.ok(results.ops[op][impl]?.median > 0, `${impl} measured ${op}`);
      }
    }
    assert.ok(results.ops.snapshot.native.median > 0 && results.ops.restore.native.median > 0, 'native snapshot/restore');
    assert.ok(results.ops.load.captoken.median > 0 && results.ops.instantiate.captoken.median > 0, 'load times');
    assert.ok(results.ops.instantiate.chromium.median > 0, 'init() in Chromium');
    assert.ok(results.size.raw > 0 && results.size.gzip > 0, 'wasm size');
    assert.deepEqual(results.redis.rows.map((r) => r.client), ['node-redis', 'ioredis'], 'captoken/redis rows');
    for (const r of results.redis.rows) {
      for (const key of ['pingUs', 'verifyUs', 'perSecOne', 'ceiling', 'perSecFour', 'verifyColdUs', 'perSecOneCold']) {
        assert.ok(r[key] > 0, `${r.client} measured ${key}`);
      }
    }

    const svg = readFileSync(join(out, 'chart.svg'), 'utf8');
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\s*$/);
    const md = readFileSync(join(out, 'BENCHMARKS.md'), 'utf8');
    assert.match(md, /## Machine/);
    assert.match(md, /## Budgets/);
    assert.match(md, /!\[chart\]\(chart\.svg\)/);
    assert.match(md, /## captoken\/redis: verify over a real Redis/);
    assert.match(md, /verify over Redis, 64 in flight \(ioredis\)/);
    assert.match(svg, /captoken\/redis: verifies per second/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  assert.deepEqual(mtimes(), before, 'the repo\'s BENCHMARKS.md, bench/chart.svg and bench/results.json are untouched');
});
