// scripts/serve.js as `npm start` runs it: a busy port is one line of advice
// (not a stack), the server stops with the process that started it, and
// every response carries the security headers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const SERVE = 'scripts/serve.js';

/** Run a command; its process group is killed when the test ends, passed or not. */
function run(t, command, args, env = {}) {
  const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, detached: true });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  t.after(() => {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
  });
  return { child, exited, output: () => out };
}

async function waitFor(read, pattern, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const m = read().match(pattern);
    if (m) return m;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${pattern}; got: ${read()}`);
}

async function listening(port) {
  try {
    await fetch(`http://127.0.0.1:${port}/`);
    return true;
  } catch {
    return false;
  }
}

test('a busy port gets one line saying what to do, and exit 1, before any set-up', async (t) => {
  const blocker = createServer();
  await new Promise((ok) => blocker.listen(0, '127.0.0.1', ok));
  t.after(() => blocker.close());
  const { port } = blocker.address();
  for (const [args, env] of [[['--check-port', '--port', String(port)], {}], [[], { PORT: String(port) }]]) {
    const p = run(t, process.execPath, [SERVE, ...args], env);
    assert.deepEqual(await p.exited, { code: 1, signal: null });
    const lines = p.output().trim().split('\n');
    assert.equal(lines.length, 1, p.output());
    assert.match(lines[0], new RegExp(`port ${port} is already in use.*PORT=${port + 1} npm start`));
  }
});

test('--check-port on a free port exits 0 and leaves nothing listening', async (t) => {
  const p = run(t, process.execPath, [SERVE, '--check-port', '--port', '0']);
  assert.deepEqual(await p.exited, { code: 0, signal: null });
  assert.equal(p.output(), '');
});

test('SIGTERM stops the server', async (t) => {
  const p = run(t, process.execPath, [SERVE, '--port', '0']);
  const [, port] = await waitFor(p.output, /127\.0\.0\.1:(\d+)\//);
  assert.ok(await listening(port));
  p.child.kill('SIGTERM');
  assert.equal((await p.exited).code, 0);
  assert.equal(await listening(port), false);
});

test('the server stops when the process that started it is killed outright', async (t) => {
  // As scripts/start.sh does: the parent's pid in CAPTOKEN_PARENT_PID.
  const p = run(t, 'bash', ['-c', `CAPTOKEN_PARENT_PID=$$ "${process.execPath}" ${SERVE} --port 0 & wait`]);
  const [, port] = await waitFor(p.output, /127\.0\.0\.1:(\d+)\//);
  assert.ok(await listening(port));
  process.kill(p.child.pid, 'SIGKILL'); // the parent only; the server is left orphaned
  const end = Date.now() + 5000;
  while ((await listening(port)) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await listening(port), false, 'the orphaned server stopped');
});

test('every response carries the CSP, nosniff and no-referrer headers', async (t) => {
  const p = run(t, process.execPath, [SERVE, '--port', '0']);
  const [, port] = await waitFor(p.output, /127\.0\.0\.1:(\d+)\//);
  for (const [path, status, type] of [
    ['/', 200, 'text/html; charset=utf-8'],
    ['/pkg/web/captoken_bg.wasm', 200, 'application/wasm'],
    ['/www/console.js', 200, 'text/javascript; charset=utf-8'],
    ['/src/lib.rs', 404, 'text/plain; charset=utf-8'],
  ]) {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    assert.equal(res.status, status, path);
    assert.equal(res.headers.get('content-type'), type, path);
    const csp = res.headers.get('content-security-policy') ?? '';
    for (const directive of ["default-src 'self'", "frame-ancestors 'none'", "script-src 'self' 'wasm-unsafe-eval'"]) {
      assert.ok(csp.split(/;\s*/).includes(directive), `${path}: ${directive} in ${csp}`);
    }
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path);
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer', path);
  }
});
