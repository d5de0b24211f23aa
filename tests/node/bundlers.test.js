// README's "Bundlers" section, done as written for esbuild: bundle a page
// that imports captoken/web, copy the .wasm beside the bundle, pass its URL to
// init(), and run the page in headless Chromium. esbuild does not copy assets
// named by `new URL(..., import.meta.url)`, which is why the copy step exists.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };

const APP = `
import init, { TokenStore, CapTokenError } from 'captoken/web';
try {
  // The documented call: the .wasm was copied beside this bundle.
  await init(new URL('./captoken_bg.wasm', import.meta.url));
  const store = new TokenStore({ secret: new Uint8Array(32).fill(7) });
  const op = store.attachOperator('op');
  store.startTask(op.bearer, { taskId: 'job' });
  const worker = store.dispatchAttempt(op.bearer, 'job', { maxUses: 1 });
  const grant = store.verify(worker.bearer, 'fetch_prompt', 'job');
  let code;
  try { store.verify(worker.bearer, 'fetch_prompt', 'job'); } catch (e) { code = e instanceof CapTokenError && e.code; }
  window.__result = { usesLeft: grant.usesLeft, code };
} catch (e) {
  window.__result = { failure: String(e && e.stack || e) };
}
`;

/** Serve dir on a free loopback port; returns the server and the paths asked for. */
async function serve(dir) {
  const asked = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    asked.push(path);
    const file = resolve(dir, `.${path === '/' ? '/index.html' : path}`);
    if (!file.startsWith(dir + sep) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, asked };
}

describe('bundlers', { timeout: 90000 }, () => {
  let project;
  let browser;
  let server;

  before(() => {
    project = mkdtempSync(join(tmpdir(), 'captoken-esbuild-'));
    mkdirSync(join(project, 'node_modules'));
    symlinkSync(root, join(project, 'node_modules/captoken'), 'dir');
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    writeFileSync(join(project, 'app.js'), APP);
  });

  after(async () => {
    await browser?.close();
    if (server) await new Promise((ok) => server.close(ok));
    if (project) rmSync(project, { recursive: true, force: true });
  });

  it('esbuild: bundle, copy the .wasm, init(url); the page decides calls in Chromium', async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`${CHROMIUM} is not installed`);
      return;
    }
    const dist = join(project, 'dist');
    // npx esbuild app.js --bundle --format=esm --outdir=dist
    await esbuild.build({ absWorkingDir: project, entryPoints: ['app.js'], bundle: true, format: 'esm', outdir: 'dist', logLevel: 'silent' });
    // cp node_modules/captoken/pkg/web/captoken_bg.wasm dist/
    copyFileSync(join(project, 'node_modules/captoken/pkg/web/captoken_bg.wasm'), join(dist, 'captoken_bg.wasm'));
    writeFileSync(join(dist, 'index.html'), '<!doctype html><meta charset="utf-8"><title>app</title><link rel="icon" href="data:,"><script type="module" src="./app.js"></script>');
    const bundle = readFileSync(join(dist, 'app.js'), 'utf8');
    assert.doesNotMatch(bundle, /from\s*['"]captoken/, 'the package is bundled in');

    let asked;
    ({ server, asked } = await serve(dist));
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 30000 });
    const result = await page.evaluate(() => window.__result);
    assert.equal(result.failure, undefined, result.failure);
    assert.deepEqual(result, { usesLeft: 0, code: 'ERR_TOKEN_USES_EXHAUSTED' });
    assert.deepEqual(errors, []);
    assert.deepEqual(asked.sort(), ['/', '/app.js', '/captoken_bg.wasm'], 'everything came from dist/');
  });
});
