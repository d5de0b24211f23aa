// The published package: `npm pack`, the tarball's contents, an install into
// an empty project (offline: the package has no runtime dependencies), a
// CommonJS and an ES module consumer in child processes, and `captoken/web`
// loaded in headless Chromium from the installed files.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync, realpathSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TokenStore } from 'captoken';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const SECRET_BYTE = 1;
const NOW = 1764150000;

const npmEnv = (cache) => ({
  ...process.env,
  npm_config_cache: cache,
  npm_config_update_notifier: 'false',
  npm_config_fund: 'false',
  npm_config_audit: 'false',
  npm_config_loglevel: 'error',
});

function npm(args, cwd, cache) {
  return execFileSync('npm', args, { cwd, env: npmEnv(cache), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60000 });
}

const CONSUMER = `
  const secret = new Uint8Array(32).fill(${SECRET_BYTE});
  const store = new TokenStore({ secret, now: () => ${NOW} });
  const op = store.attachOperator('op');
  const task = store.startTask(op.bearer, { taskId: 'job' });
  const worker = store.dispatchAttempt(op.bearer, 'job', { maxUses: 2 });
  const grant = store.verify(worker.bearer, 'fetch_prompt', 'job');
  let error;
  try { store.verify(worker.bearer, 'fetch_prompt', 'other'); } catch (e) {
    error = { instance: e instanceof CapTokenError, code: e.code, bound: e.bound, arg: e.arg };
  }
  const record = CapTokenRecord.fromJSON(store.record(worker.fingerprint).toJSON());
  console.log(JSON.stringify({ resolved, task, grant, error, usesLeft: record.usesLeft, bearer: worker.bearer }));
`;

function checkConsumerOutput(out, projectDir) {
  const result = JSON.parse(out);
  assert.ok(realpathSync(result.resolved).startsWith(realpathSync(projectDir) + sep), `resolved ${result.resolved}`);
  assert.deepEqual(result.task, { taskId: 'job', parentId: null, spawnDepth: 0 });
  assert.equal(result.grant.role, 'worker');
  assert.equal(result.grant.agentId, 'worker-of-job');
  assert.equal(result.grant.taskId, 'job');
  assert.equal(result.grant.usesLeft, 1);
  assert.deepEqual(result.error, { instance: true, code: 'ERR_TOKEN_TASK_MISMATCH', bound: 'job', arg: 'other' });
  assert.equal(result.usesLeft, 1);
  // the token minted by the installed package verifies here
  const here = new TokenStore({ secret: new Uint8Array(32).fill(SECRET_BYTE), now: () => NOW });
  assert.match(here.adopt(result.bearer), /^[0-9a-f]{64}$/);
  return result;
}

describe('npm pack and install', { timeout: 110000 }, () => {
  let packDir;
  let projectDir;
  let cacheDir;
  let tarball;
  let packed;

  before(() => {
    packDir = mkdtempSync(join(tmpdir(), 'captoken-pack-'));
    projectDir = mkdtempSync(join(tmpdir(), 'captoken-consumer-'));
    cacheDir = mkdtempSync(join(tmpdir(), 'captoken-npm-cache-'));
    const out = npm(['pack', '--json', '--pack-destination', packDir], root, cacheDir);
    [packed] = JSON.parse(out.slice(out.indexOf('[')));
    tarball = join(packDir, packed.filename);
    assert.ok(existsSync(tarball), tarball);
    writeFileSync(join(projectDir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    npm(['install', '--offline', '--no-audit', '--no-fund', tarball], projectDir, cacheDir);
  });

  after(() => {
    for (const dir of [packDir, projectDir, cacheDir]) {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the tarball holds the wasm of both flavours, the entries and the types, and no sources or tests', () => {
    const files = packed.files.map((f) => f.path);
    for (const needed of [
      'package.json',
      'pkg/node/captoken.js', 'pkg/node/captoken_bg.wasm', 'pkg/node/package.json',
      'pkg/web/captoken.js', 'pkg/web/captoken_bg.wasm', 'pkg/web/package.json',
      'js/index.js', 'js/index.cjs', 'js/web.js', 'js/common.js', 'js/durable.js', 'js/durable.cjs',
      'js/index.d.ts', 'js/index.d.cts', 'js/web.d.ts', 'js/types.d.cts',
      // the licences package.json names, and the changelog
      'LICENSE-MIT', 'LICENSE-APACHE', 'CHANGELOG.md', 'README.md',
    ]) {
      assert.ok(files.includes(needed), `missing ${needed}`);
    }
    for (const f of files) {
      assert.ok(!/^(src|tests|target|node_modules|scripts|fuzz|\.cargo)\//.test(f), `unexpected ${f}`);
      assert.ok(!f.endsWith('.rs'), `unexpected ${f}`);
      assert.ok(!f.endsWith('.tgz'), `unexpected ${f}`);
    }
    // every declaration file the entries reference is shipped
    for (const dts of files.filter((f) => /\.d\.c?ts$/.test(f))) {
      const text = readFileSync(join(root, dts), 'utf8');
      for (const [, ref] of text.matchAll(/from '(\.[^']+)'/g)) {
        const target = join('js', ref).replace(/\.cjs$/, '.d.cts').replace(/\.js$/, '.d.ts');
        assert.ok(files.includes(target), `${dts} references ${ref}, not shipped`);
      }
    }
    assert.equal(packed.name, 'captoken');
    assert.equal(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).license, 'MIT OR Apache-2.0');
    assert.match(readFileSync(join(root, 'LICENSE-APACHE'), 'utf8'), /Apache License\s+Version 2\.0/);
    assert.match(readFileSync(join(root, 'LICENSE-MIT'), 'utf8'), /^MIT License/);
    assert.match(readFileSync(join(root, 'CHANGELOG.md'), 'utf8'), new RegExp(`^## \\[${packed.version.replace(/\./g, '\\.')}\\]`, 'm'),
      'the changelog has a section for this version');
    assert.ok(packed.size < 1024 * 1024, `tarball of ${packed.size} bytes`);
  });

  it('the installed package has no dependencies to fetch', () => {
    const pkg = JSON.parse(readFileSync(join(projectDir, 'node_modules/captoken/package.json'), 'utf8'));
    assert.equal(pkg.dependencies, undefined);
    assert.ok(existsSync(join(projectDir, 'node_modules/captoken/pkg/node/captoken_bg.wasm')));
    assert.ok(!existsSync(join(projectDir, 'node_modules/captoken/src')));
  });

  it('a CommonJS consumer mints and verifies', () => {
    const file = join(projectDir, 'consumer.cjs');
    writeFileSync(file, `'use strict';
      const { TokenStore, CapTokenRecord, CapTokenError } = require('captoken');
      const resolved = require.resolve('captoken');
      ${CONSUMER}`);
    const out = execFileSync(process.execPath, [file], { cwd: projectDir, encoding: 'utf8', timeout: 30000 });
    checkConsumerOutput(out, projectDir);
  });

  it('an ES module consumer mints and verifies', () => {
    const file = join(projectDir, 'consumer.mjs');
    writeFileSync(file, `
      import { TokenStore, CapTokenRecord, CapTokenError } from 'captoken';
      import { fileURLToPath } from 'node:url';
      const resolved = fileURLToPath(import.meta.resolve('captoken'));
      ${CONSUMER}`);
    const out = execFileSync(process.execPath, [file], { cwd: projectDir, encoding: 'utf8', timeout: 30000 });
    checkConsumerOutput(out, projectDir);
  });

  it('the ESM and CommonJS entries of the installed package share one instance', () => {
    const file = join(projectDir, 'both.mjs');
    writeFileSync(file, `
      import { createRequire } from 'node:module';
      import * as esm from 'captoken';
      const cjs = createRequire(import.meta.url)('captoken');
      let crossed = false;
      try { new cjs.TokenStore({ secret: new Uint8Array(1) }); } catch (e) { crossed = e instanceof esm.CapTokenError; }
      console.log(JSON.stringify({ same: cjs.TokenStore === esm.TokenStore && cjs.CapTokenError === esm.CapTokenError, crossed }));
    `);
    const out = execFileSync(process.execPath, [file], { cwd: projectDir, encoding: 'utf8', timeout: 30000 });
    assert.deepEqual(JSON.parse(out), { same: true, crossed: true });
  });

  it('captoken/web runs in headless Chromium from the installed files', { timeout: 60000 }, async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`${CHROMIUM} is not installed`);
      return;
    }
    const { chromium } = await import('playwright-core');
    writeFileSync(join(projectDir, 'index.html'), `<!doctype html>
<html><head><meta charset="utf-8"><title>captoken</title>
<script type="importmap">{"imports": {"captoken/web": "/node_modules/captoken/js/web.js"}}</script>
<script type="module">
  import init, { TokenStore, CapTokenRecord, CapTokenError } from 'captoken/web';
  try {
    await init();
    const secret = new Uint8Array(32).fill(${SECRET_BYTE});
    const store = new TokenStore({ secret, now: () => ${NOW} });
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'job' });
    const worker = store.dispatchAttempt(op.bearer, 'job', { maxUses: 2 });
    const grant = store.verify(worker.bearer, 'fetch_prompt', 'job');
    const errors = [];
    for (const call of [
      () => store.verify(worker.bearer, 'fetch_prompt', 'other'),
      () => store.verify('garbage', 'heartbeat'),
      () => store.mint(Symbol('x'), 'worker'),
      () => new TokenStore({ secret: new Uint8Array(8) }),
    ]) {
      try { call(); errors.push(null); } catch (e) {
        errors.push({ instance: e instanceof CapTokenError, name: e.name, code: e.code });
      }
    }
    const record = CapTokenRecord.fromJSON(store.record(worker.fingerprint).toJSON());
    window.__result = { grant, errors, usesLeft: record.usesLeft, bearer: worker.bearer, snapshot: store.snapshot() };
  } catch (e) {
    window.__result = { failure: String(e && e.stack || e) };
  }
</script></head><body></body></html>`);

    const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
    const served = [];
    const server = createServer((req, res) => {
      const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      const file = resolve(projectDir, `.${path === '/' ? '/index.html' : path}`);
      if (!file.startsWith(projectDir + sep) || !existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      served.push(path);
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
      res.end(readFileSync(file));
    });
    await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
    const { port } = server.address();
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
      const pageErrors = [];
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 30000 });
      const result = await page.evaluate(() => window.__result);
      assert.equal(result.failure, undefined, result.failure);
      assert.deepEqual(pageErrors, []);
      assert.equal(result.grant.role, 'worker');
      assert.equal(result.grant.taskId, 'job');
      assert.equal(result.grant.usesLeft, 1);
      assert.equal(result.usesLeft, 1);
      assert.deepEqual(result.errors, [
        { instance: true, name: 'CapTokenError', code: 'ERR_TOKEN_TASK_MISMATCH' },
        { instance: true, name: 'CapTokenError', code: 'ERR_MALFORMED_TOKEN' },
        { instance: true, name: 'CapTokenError', code: 'ERR_INVALID_ARGUMENT' },
        { instance: true, name: 'CapTokenError', code: 'ERR_INVALID_ARGUMENT' },
      ]);
      assert.ok(served.includes('/node_modules/captoken/js/web.js'));
      assert.ok(served.includes('/node_modules/captoken/pkg/web/captoken_bg.wasm'));
      // A token minted in the browser verifies in Node with the same secret,
      // and the browser's snapshot restores in Node.
      const here = new TokenStore({ secret: new Uint8Array(32).fill(SECRET_BYTE), now: () => NOW });
      assert.match(here.adopt(result.bearer), /^[0-9a-f]{64}$/);
      const restored = TokenStore.restore(result.snapshot, { secret: new Uint8Array(32).fill(SECRET_BYTE), now: () => NOW });
      assert.equal(restored.verify(result.bearer, 'fetch_prompt', 'job').usesLeft, 0);
    } finally {
      await browser.close();
      await new Promise((ok) => server.close(ok));
    }
  });
});
