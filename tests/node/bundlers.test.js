// README's "Bundlers" section, done as written, each page run in headless
// Chromium: Vite as it is (`await init()`; Vite emits the .wasm that js/web.js
// names with `new URL(..., import.meta.url)`), and esbuild with the copy step
// and init(url) (esbuild does not copy such assets).
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

/** A page that decides two calls; `load` is how it calls init. */
const app = (load) => `
import init, { TokenStore, CapTokenError } from 'captoken/web';
try {
  await ${load};
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

const INDEX = (src) => `<!doctype html><meta charset="utf-8"><title>app</title><link rel="icon" href="data:,"><script type="module" src="${src}"></script>`;

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

/** Serve dist, open it in Chromium, return what the page reports and what it fetched. */
async function runPage(browser, dist) {
  const { server, asked } = await serve(dist);
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 30000 });
    const result = await page.evaluate(() => window.__result);
    await page.close();
    assert.equal(result.failure, undefined, result.failure);
    assert.deepEqual(errors, []);
    return { result, asked };
  } finally {
    await new Promise((ok) => server.close(ok));
  }
}

describe('bundlers', { timeout: 120000 }, () => {
  let project;
  let browser;

  before(async () => {
    project = mkdtempSync(join(tmpdir(), 'captoken-bundlers-'));
    mkdirSync(join(project, 'node_modules'));
    symlinkSync(root, join(project, 'node_modules/captoken'), 'dir');
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    if (existsSync(CHROMIUM)) {
      const { chromium } = await import('playwright-core');
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
          '--disable-component-update', '--disable-sync', '--no-first-run'],
      });
    }
  });

  after(async () => {
    await browser?.close();
    if (project) rmSync(project, { recursive: true, force: true });
  });

  it('Vite: `await init()` as it is; the build emits the .wasm and the page decides calls in Chromium', async (t) => {
    if (!browser) return t.skip(`${CHROMIUM} is not installed`);
    const { build } = await import('vite');
    const dir = join(project, 'vite');
    mkdirSync(dir);
    writeFileSync(join(dir, 'index.html'), INDEX('./main.js'));
    writeFileSync(join(dir, 'main.js'), app('init()'));
    // npx vite build
    await build({ root: dir, logLevel: 'silent', configFile: false, build: { outDir: 'dist' } });
    const { result, asked } = await runPage(browser, join(dir, 'dist'));
    assert.deepEqual(result, { usesLeft: 0, code: 'ERR_TOKEN_USES_EXHAUSTED' });
    assert.ok(asked.some((p) => /^\/assets\/captoken_bg-[\w-]+\.wasm$/.test(p)), `the emitted .wasm was loaded: ${asked}`);
  });

  it('esbuild: bundle, copy the .wasm, init(url); the page decides calls in Chromium', async (t) => {
    if (!browser) return t.skip(`${CHROMIUM} is not installed`);
    const dir = join(project, 'esbuild');
    mkdirSync(dir);
    // The documented call: the .wasm is copied beside the bundle.
    writeFileSync(join(dir, 'app.js'), app("init(new URL('./captoken_bg.wasm', import.meta.url))"));
    const dist = join(dir, 'dist');
    // npx esbuild app.js --bundle --format=esm --outdir=dist
    await esbuild.build({ absWorkingDir: dir, entryPoints: ['app.js'], bundle: true, format: 'esm', outdir: 'dist', logLevel: 'silent' });
    // cp node_modules/captoken/pkg/web/captoken_bg.wasm dist/
    copyFileSync(join(project, 'node_modules/captoken/pkg/web/captoken_bg.wasm'), join(dist, 'captoken_bg.wasm'));
    writeFileSync(join(dist, 'index.html'), INDEX('./app.js'));
    assert.doesNotMatch(readFileSync(join(dist, 'app.js'), 'utf8'), /from\s*['"]captoken/, 'the package is bundled in');
    const { result, asked } = await runPage(browser, dist);
    assert.deepEqual(result, { usesLeft: 0, code: 'ERR_TOKEN_USES_EXHAUSTED' });
    assert.deepEqual(asked.sort(), ['/', '/app.js', '/captoken_bg.wasm'], 'everything came from dist/');
  });
});
