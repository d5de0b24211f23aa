// The benchmark harness: `npm run bench` (full run, writes BENCHMARKS.md,
// bench/chart.svg and bench/results.json) or `node bench/run.js --quick`
// (a smoke run with tiny sizes that writes to a temporary folder).
//
// Every implementation is measured in the same run:
//   captoken (wasm) from Node, and again in headless Chromium;
//   the native core in Rust (criterion, benches/core.rs);
//   a pure-JavaScript peer store (bench/peers/) on node:crypto and on @noble/hashes;
//   jose verifying an HS256 JWT.
// Each Node-side workload runs in a fresh child process (clean heap, clean
// linear memory, no JIT state shared between implementations).
//
// A CPU profile of verify and check says where their time goes (bench/profile.js).
//
// captoken/redis is measured by bench/redis.js on its own redis-server.
//
// Flags: --quick, --out DIR, --no-native, --no-browser, --no-redis, --no-build, --strict
// (exit 1 when a budget fails), --render [results.json] (rewrite the outputs
// from saved results, measuring nothing). Sizes: BENCH_TOKENS, BENCH_RECORDS, BENCH_RUNS.
// Native optimisation level: CAPTOKEN_BENCH_NATIVE_OPT_LEVEL (default 3).

import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { extname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { measure, measureEach, median } from './measure.js';
import { buildNamed, profileCaptoken } from './profile.js';
import { IMPLS, budgets, chart, fmtTime, markdown, textReport } from './report.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const envInt = (name, fallback) => {
  const n = Number(process.env[name]);
  return Number.isInteger(n) && n > 0 ? n : fallback;
};

function config(quick) {
  return {
    quick,
    tokens: envInt('BENCH_TOKENS', quick ? 1000 : 100_000),
    records: envInt('BENCH_RECORDS', quick ? 2000 : 1_000_000),
    runs: envInt('BENCH_RUNS', quick ? 3 : 7),
    minRunMs: quick ? 5 : 100,
    loads: quick ? 2 : 11, // fresh processes per load-time measurement
    inits: quick ? 1 : 5, // fresh browser contexts per init() measurement
  };
}

const log = (...parts) => process.stderr.write(`bench: ${parts.join(' ')}\n`);

// ───────────────────────── child processes ─────────────────────────

const MICRO_OPS = ['verify', 'check', 'check_hmac', 'consume', 'mint'];

async function loadPeer(which) {
  const store = await import('./peers/js-store.js');
  const crypto = which === 'peer-node'
    ? (await import('./peers/node-crypto.js')).nodeCrypto
    : (await import('./peers/noble.js')).nobleCrypto;
  return { store, crypto };
}

const gc = () => {
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
    globalThis.gc();
  }
};

const CHILD = {
  // verify, check, check_hmac, consume and mint on a store of `tokens` live tokens.
  async 'micro:captoken'(cfg) {
    const { captokenCases } = await import('./cases.js');
    const cases = captokenCases(createRequire(import.meta.url)('captoken'), cfg);
    const out = {};
    for (const op of MICRO_OPS) out[op] = await measure(cases[op], cfg);
    return out;
  },
  async 'micro:peer'(cfg) {
    const { peerCases } = await import('./cases.js');
    const { store, crypto } = await loadPeer(cfg.impl);
    const cases = peerCases(store, crypto, cfg);
    const out = {};
    for (const op of MICRO_OPS) out[op] = await measure(cases[op], cfg);
    return out;
  },
  // jose's HS256 verify, in the variants that matter; the fastest is reported.
  async 'micro:jose'(cfg) {
    const { SignJWT, jwtVerify, compactVerify } = await import('jose');
    const { SECRET } = await import('./cases.js');
    const { webcrypto } = await import('node:crypto');
    const key = await webcrypto.subtle.importKey('raw', SECRET, { name: 'HMAC', hash: 'SHA-256' }, false,
      ['sign', 'verify']);
    const jwts = [];
    for (let i = 0; i < Math.min(cfg.tokens, 1000); i++) {
      jwts.push(await new SignJWT({ role: 'worker', scopes: ['*'], task_id: 'task-bench' })
        .setProtectedHeader({ alg: 'HS256' }).setSubject('worker-of-task-bench')
        .setJti(webcrypto.randomUUID()).setIssuedAt().setExpirationTime('30m').sign(SECRET));
    }
    const options = { algorithms: ['HS256'] };
    if ((await jwtVerify(jwts[0], SECRET, options)).payload.role !== 'worker') throw new Error('jose sanity check');
    await compactVerify(jwts[0], key, options);
    const variant = (fn) => {
      let i = 0;
      return async (k) => {
        for (let j = 0; j < k; j++) {
          await fn(jwts[i]);
          i = i + 1 === jwts.length ? 0 : i + 1;
        }
      };
    };
    const variants = {
      'jwtVerify (Uint8Array secret)': variant((jwt) => jwtVerify(jwt, SECRET, options)),
      'jwtVerify (CryptoKey)': variant((jwt) => jwtVerify(jwt, key, options)),
      'compactVerify (CryptoKey)': variant((jwt) => compactVerify(jwt, key, options)),
    };
    const all = {};
    for (const [name, batch] of Object.entries(variants)) all[name] = await measure(batch, cfg);
    const [best, result] = Object.entries(all).sort((a, b) => a[1].median - b[1].median)[0];
    return { verify: { ...result, note: best, variants: Object.fromEntries(
      Object.entries(all).map(([name, r]) => [name, r.median])) } };
  },
  // Where verify's and check's time goes (bench/profile.js).
  'profile:captoken': profileCaptoken,
  // Memory per live record, snapshot and restore, at `records` records.
  async 'big:captoken'(cfg) {
    const captoken = createRequire(import.meta.url)('captoken');
    const { SECRET, T0, TASK } = await import('./cases.js');
    const options = () => ({ secret: SECRET, now: () => T0 });
    const store = new captoken.TokenStore(options());
    const operator = store.attachOperator('op-bench').bearer;
    store.startTask(operator, { taskId: TASK });
    gc();
    const before = captoken.__memoryBytes();
    const t0 = performance.now();
    for (let i = 0; i < cfg.records; i++) store.dispatchAttempt(operator, TASK);
    const mintMs = performance.now() - t0;
    const after = captoken.__memoryBytes();
    if (store.size !== cfg.records + 1) throw new Error('captoken store size');
    let text;
    const snapshot = await measureEach(() => store.snapshot(), {
      runs: cfg.runs, before: () => { text = undefined; gc(); }, after: (t) => { text = t; },
    });
    const restore = await measureEach(() => captoken.TokenStore.restore(text, options()), {
      runs: cfg.runs, before: gc, after: (s) => {
        if (s.size !== cfg.records + 1) throw new Error('captoken restore size');
        s.free();
      },
    });
    return {
      memory: { median: (after - before) / cfg.records, runs: [(after - before) / cfg.records], iters: 1,
        note: `wasm linear memory ${before} -> ${after} bytes; minting took ${(mintMs / 1000).toFixed(1)} s` },
      snapshot, restore,
      snapshotBytes: text.length,
      peakMemoryBytes: captoken.__memoryBytes(),
    };
  },
  async 'big:peer'(cfg) {
    const { store: peer, crypto } = await loadPeer(cfg.impl);
    const { SECRET, T0, TASK } = await import('./cases.js');
    const store = new peer.PeerStore(crypto, SECRET, () => T0);
    store.mint('op-bench', 'operator');
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < cfg.records; i++) store.mint(`worker-of-${TASK}`, 'worker', { taskId: TASK });
    gc();
    const after = process.memoryUsage().heapUsed;
    let text;
    const snapshot = await measureEach(() => store.snapshot(), {
      runs: cfg.runs, before: () => { text = undefined; gc(); }, after: (t) => { text = t; },
    });
    const restore = await measureEach(() => peer.PeerStore.restore(crypto, SECRET, text), {
      runs: cfg.runs, before: gc, after: (s) => {
        if (s.records.size !== cfg.records + 1) throw new Error('peer restore size');
      },
    });
    return {
      memory: { median: (after - before) / cfg.records, runs: [(after - before) / cfg.records], iters: 1,
        note: `V8 heapUsed after gc ${before} -> ${after} bytes` },
      snapshot, restore,
    };
  },
};

async function childMain(task, params) {
  const handler = CHILD[task];
  if (!handler) throw new Error(`unknown child task ${task}`);
  const result = await handler(params);
  process.stdout.write(`\nBENCH_RESULT ${JSON.stringify(result)}\n`);
}

/** Run a child task of this script in a fresh Node process; its parsed result. */
function runChild(task, params) {
  const child = spawnSync(process.execPath,
    ['--expose-gc', '--max-old-space-size=12288', SELF, '--child', task, JSON.stringify(params)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 << 20 });
  const line = child.stdout?.split('\n').find((l) => l.startsWith('BENCH_RESULT '));
  if (child.status !== 0 || !line) {
    throw new Error(`child ${task} failed (status ${child.status}, signal ${child.signal})\n${child.stdout ?? ''}`);
  }
  return JSON.parse(line.slice('BENCH_RESULT '.length));
}

// ───────────────────────── load and instantiate ─────────────────────────

// Each snippet runs in a fresh process and prints milliseconds.
const LOADS = {
  captoken: ['cjs', "const t=performance.now(); require('captoken'); console.log(performance.now()-t);"],
  'peer-node': ['esm', "const t=performance.now(); await import('./bench/peers/js-store.js'); "
    + "await import('./bench/peers/node-crypto.js'); console.log(performance.now()-t);"],
  'peer-noble': ['esm', "const t=performance.now(); await import('./bench/peers/js-store.js'); "
    + "await import('./bench/peers/noble.js'); console.log(performance.now()-t);"],
  jose: ['esm', "const t=performance.now(); await import('jose'); console.log(performance.now()-t);"],
};

// WebAssembly.compile + instantiate of the release bytes, with stub imports
// (no import is called while instantiating). Prints "compile instantiate" ms.
const COMPILE = `
const bytes = require('node:fs').readFileSync('pkg/node/captoken_bg.wasm');
(async () => {
  const t0 = performance.now();
  const module = await WebAssembly.compile(bytes);
  const t1 = performance.now();
  const imports = {};
  for (const { module: m, name, kind } of WebAssembly.Module.imports(module)) {
    imports[m] ??= {};
    if (kind === 'function') imports[m][name] = () => {};
    else throw new Error('unexpected import kind ' + kind);
  }
  await WebAssembly.instantiate(module, imports);
  const t2 = performance.now();
  console.log(t1 - t0, t2 - t1);
})();`;

function freshProcess(kind, code) {
  const argv = kind === 'esm' ? ['--input-type=module', '-e', code] : ['-e', code];
  const child = spawnSync(process.execPath, argv, { cwd: ROOT, encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`fresh process failed: ${child.stderr}`);
  return child.stdout.trim().split(/\s+/).map(Number);
}

function measureLoads(cfg) {
  const out = {};
  for (const [impl, [kind, code]] of Object.entries(LOADS)) {
    const runs = [];
    for (let i = 0; i < cfg.loads; i++) runs.push(freshProcess(kind, code)[0] * 1e6);
    out[impl] = { median: median(runs), runs, iters: 1 };
  }
  const compile = [];
  const instantiate = [];
  const total = [];
  for (let i = 0; i < cfg.loads; i++) {
    const [c, n] = freshProcess('cjs', COMPILE);
    compile.push(c * 1e6);
    instantiate.push(n * 1e6);
    total.push((c + n) * 1e6);
  }
  return {
    load: out,
    instantiate: {
      captoken: { median: median(total), runs: total, iters: 1,
        note: `compile ${fmtTime(median(compile))} + instantiate ${fmtTime(median(instantiate))}` },
    },
  };
}

// ───────────────────────── size ─────────────────────────

function wasmSize() {
  const file = join(ROOT, 'pkg/web/captoken_bg.wasm');
  const raw = statSync(file).size;
  const gzip = spawnSync('gzip', ['-9', '-c', file], { maxBuffer: 64 << 20 });
  const gz = gzip.status === 0 ? gzip.stdout.length : gzipSync(readFileSync(file), { level: 9 }).length;
  return { raw, gzip: gz, tool: gzip.status === 0 ? 'gzip -9' : 'zlib level 9' };
}

// ───────────────────────── native (criterion) ─────────────────────────

function findEstimates(dir, found = {}, base = dir) {
  if (!existsSync(dir)) return found;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) findEstimates(path, found, base);
    else if (entry.name === 'estimates.json' && path.endsWith(join('new', 'estimates.json'))) {
      const id = relative(base, path).split(sep).slice(0, -2).join('/');
      found[id] = JSON.parse(readFileSync(path, 'utf8'));
    }
  }
  return found;
}

async function runNative(cfg, criterionHome) {
  const env = {
    ...process.env,
    PATH: `${os.homedir()}/.cargo/bin${os.platform() === 'win32' ? ';' : ':'}${process.env.PATH}`,
    CRITERION_HOME: criterionHome,
    CAPTOKEN_BENCH_TOKENS: String(cfg.tokens),
    CAPTOKEN_BENCH_RECORDS: String(cfg.records),
    CAPTOKEN_BENCH_QUICK: cfg.quick ? '1' : '0',
    CARGO_TERM_COLOR: 'never',
  };
  // The ceiling: the bench profile inherits the release profile's opt-level "s"
  // (chosen for the .wasm size); natively the fastest code is opt-level 3.
  const optLevel = process.env.CAPTOKEN_BENCH_NATIVE_OPT_LEVEL ?? '3';
  if (!cfg.quick) env.CARGO_PROFILE_BENCH_OPT_LEVEL = optLevel;
  // The smoke run builds in the dev profile (the test run already compiled
  // its dependencies there): it exercises the path, its times mean nothing.
  const cargoArgs = ['bench', '--bench', 'core', ...(cfg.quick ? ['--profile', 'dev'] : []), '--', '--noplot'];
  log(`native: cargo ${cargoArgs.join(' ')}${cfg.quick ? ' (smoke: dev profile)' : ` (opt-level ${optLevel})`}`);
  const code = await new Promise((resolve) => {
    // Its own process group, so a timeout ends cargo and the bench it runs.
    const child = spawn('cargo', cargoArgs, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const collect = (chunk) => {
      if (cfg.quick) output += chunk;
      else process.stderr.write(chunk);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = cfg.quick ? setTimeout(() => {
      output += '\nbench: cargo bench timed out (150 s)\n';
      process.kill(-child.pid, 'SIGTERM');
    }, 150_000) : null;
    child.on('error', (error) => {
      output += String(error);
      resolve(-1);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      if (status !== 0) process.stderr.write(output);
      resolve(status);
    });
  });
  if (code !== 0) throw new Error(`cargo bench exited with ${code}`);
  const estimates = findEstimates(criterionHome);
  const ids = { verify: 'verify', check: 'check', check_hmac: 'check_hmac', consume: 'consume', mint: 'mint',
    snapshot: 'store/snapshot', restore: 'store/restore' };
  const out = {};
  for (const [op, id] of Object.entries(ids)) {
    const e = estimates[id];
    if (!e) throw new Error(`criterion wrote no estimates for ${id}`);
    out[op] = { median: e.median.point_estimate, runs: [e.median.confidence_interval.lower_bound,
      e.median.confidence_interval.upper_bound], iters: 1,
    note: cfg.quick ? 'dev profile (smoke)' : `criterion median, opt-level ${optLevel}` };
  }
  return { ops: out, profile: cfg.quick ? 'dev profile (smoke run)' : `bench profile, opt-level ${optLevel}` };
}

// ───────────────────────── Chromium ─────────────────────────

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm', '.json': 'application/json' };

/** A loopback server for /bench/, /js/ and /pkg/ (scripts/serve.js serves www/, js/ and pkg/ only). */
function startBenchServer() {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://localhost').pathname)).replace(/^[/\\]+/, '');
    const top = path.split(sep)[0];
    const file = join(ROOT, path);
    if (!['bench', 'js', 'pkg'].includes(top) || path.split(sep).includes('..') || !existsSync(file)
      || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    const body = readFileSync(file);
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': body.length, 'cache-control': 'no-store' });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function runChromium(cfg) {
  const { chromium } = await import('playwright-core');
  const server = await startBenchServer();
  const url = `http://127.0.0.1:${server.address().port}/bench/browser.html`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  try {
    const version = browser.version();
    const open = async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      const errors = [];
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(url);
      await page.waitForFunction(() => window.bench || window.benchError, null, { timeout: 60_000 });
      const failed = await page.evaluate(() => window.benchError);
      if (failed || errors.length) throw new Error(`bench page failed: ${failed ?? errors.join('; ')}`);
      return { context, page };
    };
    const inits = [];
    for (let i = 0; i < cfg.inits; i++) {
      const { context, page } = await open();
      inits.push((await page.evaluate(() => window.bench.initMs)) * 1e6);
      await context.close();
    }
    const { context, page } = await open();
    const ops = await page.evaluate((params) => window.bench.run(params),
      { tokens: cfg.tokens, runs: cfg.runs, minRunMs: cfg.minRunMs, ops: MICRO_OPS });
    await context.close();
    ops.instantiate = { median: median(inits), runs: inits, iters: 1,
      note: 'await init(): fetch + compile + instantiate, fresh context, no cache' };
    return { ops, version };
  } finally {
    await browser.close();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** bench/redis.js in a child process (it starts and stops its own redis-server); its results. */
function runRedis(quick) {
  const dir = mkdtempSync(join(os.tmpdir(), 'captoken-bench-redis-'));
  try {
    const out = join(dir, 'redis-results.json');
    const sizes = quick ? { BENCH_REDIS_N: '2000', BENCH_REDIS_LAT_N: '200', BENCH_REDIS_DISTINCT: '300' } : {};
    const child = spawnSync(process.execPath, [join(ROOT, 'bench/redis.js')],
      { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...sizes, BENCH_REDIS_OUT: out } });
    if (child.status !== 0) throw new Error(`bench/redis.js failed (status ${child.status})\n${child.stdout}${child.stderr}`);
    return JSON.parse(readFileSync(out, 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ───────────────────────── machine ─────────────────────────

function machine() {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const rustc = spawnSync('rustc', ['--version'], { encoding: 'utf8',
    env: { ...process.env, PATH: `${os.homedir()}/.cargo/bin:${process.env.PATH}` } });
  return {
    cpu: model.trim(),
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    rustc: rustc.status === 0 ? rustc.stdout.trim() : 'unavailable',
    date: new Date().toISOString(),
    loadavg: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}

// ───────────────────────── main ─────────────────────────

function writeOutputs(results, outDir) {
  const verdicts = budgets(results);
  process.stdout.write(textReport(results, verdicts));
  const quick = results.config.quick;
  const chartPath = quick ? 'chart.svg' : 'bench/chart.svg';
  writeFileSync(join(outDir, chartPath), chart(results));
  writeFileSync(join(outDir, quick ? 'results.json' : 'bench/results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(outDir, 'BENCHMARKS.md'), markdown(results, verdicts, chartPath));
  process.stdout.write(`\noutputs written to ${outDir}\n`);
  if (flag('--strict') && verdicts.some((b) => b.pass === false)) process.exitCode = 1;
}

async function main() {
  // --render FILE: rewrite the outputs from a results.json, measuring nothing.
  if (flag('--render')) {
    const given = option('--render');
    const file = given && !given.startsWith('--') ? given : join(ROOT, 'bench/results.json');
    const results = JSON.parse(readFileSync(file, 'utf8'));
    writeOutputs(results, option('--out') ?? (results.config.quick ? mkdtempSync(join(os.tmpdir(), 'captoken-bench-')) : ROOT));
    return;
  }
  const quick = flag('--quick');
  const cfg = config(quick);
  const outDir = option('--out') ?? (quick ? mkdtempSync(join(os.tmpdir(), 'captoken-bench-')) : ROOT);
  mkdirSync(outDir, { recursive: true });
  const started = performance.now();
  const results = { config: cfg, machine: machine(), ops: {}, notes: [], skipped: {} };
  const put = (impl, ops) => {
    for (const [op, r] of Object.entries(ops)) (results.ops[op] ??= {})[impl] = r;
  };
  log(`${quick ? 'quick smoke run' : 'full run'}: ${cfg.tokens} tokens, ${cfg.records} records, `
    + `${cfg.runs} runs of >= ${cfg.minRunMs} ms; outputs to ${outDir}`);

  const wasmFile = join(ROOT, 'pkg/web/captoken_bg.wasm');
  if (!flag('--no-build') && (!quick || !existsSync(wasmFile))) {
    log('building pkg/ (bash scripts/build.sh)');
    const built = spawnSync('bash', ['scripts/build.sh'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    if (built.status !== 0) throw new Error('scripts/build.sh failed (run `npm run setup` first?)');
  }
  results.size = wasmSize();

  log('load and instantiate in fresh processes');
  const loads = measureLoads(cfg);
  put('captoken', { instantiate: loads.instantiate.captoken });
  for (const [impl, r] of Object.entries(loads.load)) put(impl, { load: r });

  for (const impl of ['captoken', 'peer-node', 'peer-noble', 'jose']) {
    log(`micro: ${IMPLS[impl]}`);
    const task = impl === 'captoken' ? 'micro:captoken' : impl === 'jose' ? 'micro:jose' : 'micro:peer';
    put(impl, runChild(task, { ...cfg, impl }));
  }
  for (const impl of ['captoken', 'peer-node', 'peer-noble']) {
    log(`${cfg.records} records: ${IMPLS[impl]}`);
    const { snapshotBytes, peakMemoryBytes, ...ops } = runChild(impl === 'captoken' ? 'big:captoken' : 'big:peer',
      { ...cfg, impl });
    put(impl, ops);
    if (snapshotBytes) results.snapshotBytes = snapshotBytes;
    if (peakMemoryBytes) results.peakMemoryBytes = peakMemoryBytes;
  }

  log('profile: verify and check against a build that keeps function names');
  const named = mkdtempSync(join(os.tmpdir(), 'captoken-named-'));
  try {
    const failed = buildNamed(ROOT, named);
    if (failed) results.skipped.profile = `skipped: ${failed}`;
    else results.profile = runChild('profile:captoken', { ...cfg, dir: named, ops: ['verify', 'check'], ms: quick ? 200 : 3000 });
  } finally {
    rmSync(named, { recursive: true, force: true });
  }

  if (flag('--no-native')) {
    results.skipped.native = 'skipped (--no-native)';
  } else {
    // A fresh criterion home, so every estimate read is from this run.
    const home = mkdtempSync(join(os.tmpdir(), 'captoken-criterion-'));
    try {
      const native = await runNative(cfg, home);
      put('native', native.ops);
      results.nativeProfile = native.profile;
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  }
  if (flag('--no-browser')) {
    results.skipped.chromium = 'skipped (--no-browser)';
  } else if (!existsSync(CHROMIUM)) {
    results.skipped.chromium = `skipped: ${CHROMIUM} not found (bash scripts/setup.sh --browser installs it)`;
  } else {
    log('Chromium (headless)');
    const browser = await runChromium(cfg);
    put('chromium', browser.ops);
    results.machine.chromium = browser.version;
  }
  if (flag('--no-redis')) {
    results.skipped.redis = 'skipped (--no-redis)';
  } else if (spawnSync('redis-server', ['--version']).status !== 0) {
    results.skipped.redis = 'skipped: redis-server not found (bash scripts/setup.sh installs it)';
  } else {
    log('captoken/redis on a real redis-server (bench/redis.js)');
    results.redis = runRedis(quick);
  }
  for (const [impl, why] of Object.entries(results.skipped)) log(`${IMPLS[impl] ?? impl}: ${why}`);
  results.machine.loadavgEnd = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  results.elapsedSecs = Math.round((performance.now() - started) / 1000);

  writeOutputs(results, outDir);
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const at = args.indexOf('--child');
  const run = at >= 0 ? childMain(args[at + 1], JSON.parse(args[at + 2])) : main();
  run.catch((error) => {
    process.stderr.write(`bench: ${error.stack ?? error}\n`);
    process.exit(1);
  });
}
