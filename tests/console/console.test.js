// End-to-end tests of the operator console (www/) in real Chromium:
// playwright-core drives Debian's /usr/bin/chromium headless against the page
// served on loopback by scripts/serve.js. Each test gets a fresh browser
// context (so a fresh IndexedDB). Screenshots go to tests/output/console/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from '../../scripts/serve.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHOTS = fileURLToPath(new URL('../output/console/', import.meta.url));
const WIDE = { width: 1280, height: 800 };
// A phone held upright (the size of a current iPhone's viewport).
const PHONE = { width: 390, height: 844 };
const T = { timeout: 45_000 };

let server;
let browser;
let origin;

before(async () => {
  if (!existsSync(`${ROOT}pkg/web/captoken_bg.wasm`)) {
    execFileSync('bash', ['scripts/build.sh'], { cwd: ROOT, stdio: 'inherit' });
  }
  await mkdir(SHOTS, { recursive: true });
  server = await startServer(0);
  origin = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
});

// ───────────────────────── helpers ─────────────────────────

/** A fresh context and page on the console; page errors fail the test at `done()`. */
async function openConsole(t, { viewport = WIDE, permissions } = {}) {
  const context = await browser.newContext({ viewport, colorScheme: 'light', acceptDownloads: true });
  if (permissions) await context.grantPermissions(permissions, { origin });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const errors = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console.error: ${msg.text()}`);
  });
  page.on('requestfailed', (req) => errors.push(`request failed: ${req.url()}`));
  t.after(() => context.close());
  await page.goto(`${origin}/`);
  await ready(page);
  return {
    page,
    context,
    done() {
      assert.deepEqual(errors, [], 'no page errors');
    },
  };
}

async function ready(page) {
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  await idle(page);
}

/** Every action handled and every IndexedDB write committed. */
async function idle(page) {
  await page.waitForFunction(() => document.body.dataset.busy === '0');
}

async function createStore(page, { format = 'v2', depth = 4, ttl = 1800 } = {}) {
  await page.selectOption('#store-format', format);
  await page.fill('#store-depth', String(depth));
  await page.fill('#store-ttl', String(ttl));
  await page.click('#store-create');
  await idle(page);
  assert.equal(await page.textContent('#sum-state'), 'live');
}

async function attachOperator(page, agent = 'operator-1') {
  await page.fill('#operator-agent', agent);
  await page.click('#operator-attach');
  await idle(page);
  const fp = await page.$eval('#acting-operator', (s) => s.value);
  assert.match(fp, /^[0-9a-f]{64}$/);
  return fp;
}

async function startRoot(page, taskId) {
  await page.fill('#root-task-id', taskId);
  await page.click('#root-start');
  await idle(page);
  await page.waitForSelector(`#tree li.task[data-task-id="${taskId}"]`);
}

const taskSel = (id) => `#tree li.task[data-task-id="${id}"]`;
const rowSel = (fp) => `#tokens tbody tr[data-fingerprint="${fp}"]`;

/** The acting operator dispatches a worker to a task; returns the new worker's fingerprint. */
async function dispatch(page, taskId, { uses = '', ttl = '' } = {}) {
  await page.fill('#dispatch-uses', String(uses));
  await page.fill('#dispatch-ttl', String(ttl));
  const before = await workersOf(page, taskId);
  await page.click(`${taskSel(taskId)} > .task-row button[data-action="dispatch"]`);
  await idle(page);
  const after = await workersOf(page, taskId);
  const added = after.filter((fp) => !before.includes(fp));
  assert.equal(added.length, 1, `one worker dispatched to ${taskId}`);
  return added[0];
}

function workersOf(page, taskId) {
  return page.$$eval(`${taskSel(taskId)} > ul.workers > li.worker`, (els) => els.map((e) => e.dataset.fingerprint));
}

function childTasksOf(page, taskId) {
  return page.$$eval(`${taskSel(taskId)} > ul.children > li.task`, (els) => els.map((e) => e.dataset.taskId));
}

/** A worker (by fingerprint, listed under its task) starts a child task. */
async function spawn(page, taskId, workerFp) {
  await page.click(`${taskSel(taskId)} > ul.workers > li.worker[data-fingerprint="${workerFp}"] button[data-action="spawn"]`);
  await idle(page);
}

async function cell(page, fp, col) {
  return (await page.textContent(`${rowSel(fp)} td[data-col="${col}"]`)).trim();
}

async function decide(page, mode, { verb, task } = {}) {
  if (verb) await page.selectOption('#verb', verb);
  if (task !== undefined) await page.fill('#verify-task', task);
  await page.click(mode === 'check' ? '#check-btn' : '#verify-btn');
  await idle(page);
  return page.$eval('#decision', (el) => ({
    state: el.dataset.state,
    mode: el.dataset.mode,
    code: el.dataset.code,
    text: el.innerText,
    uses: el.querySelector('[data-testid="decision-uses"]')?.textContent ?? null,
  }));
}

/** The record saved in IndexedDB, summarised (the secret as hex, to prove where it lives). */
function saved(page) {
  return page.evaluate(() => new Promise((resolve, reject) => {
    const req = indexedDB.open('captoken-console');
    req.onerror = () => reject(req.error);
    req.onsuccess = () => {
      const tx = req.result.transaction('state', 'readonly');
      const get = tx.objectStore('state').get('current');
      get.onsuccess = () => {
        const s = get.result;
        req.result.close();
        if (!s) return resolve(null);
        resolve({
          secretIsBytes: s.secret instanceof Uint8Array,
          secretHex: Array.from(s.secret, (b) => b.toString(16).padStart(2, '0')).join(''),
          settings: s.settings,
          snapshot: JSON.parse(s.snapshot),
          bearers: s.bearers.length,
          audit: s.audit.length,
        });
      };
      get.onerror = () => reject(get.error);
    };
  }));
}

/** What the engine holds, as saved after the last change (records by fingerprint, tasks). */
async function engineState(page) {
  await idle(page);
  const s = await saved(page);
  const records = Object.fromEntries(s.snapshot.records.map((r) => [r.fingerprint, r]));
  return { records, tasks: s.snapshot.tasks };
}

async function notice(page) {
  return page.$eval('#notice', (el) => ({ hidden: el.hidden, kind: el.dataset.kind, code: el.dataset.code, text: el.innerText }));
}

async function shot(target, name, options = {}) {
  await target.screenshot({ path: `${SHOTS}${name}.png`, animations: 'disabled', ...options });
}

// ───────────────────────── tests ─────────────────────────

test('creates a store: a Web Crypto secret kept only in this browser, the chosen format and spawn depth', T, async (t) => {
  const { page, done } = await openConsole(t);
  assert.equal(await page.textContent('#sum-state'), 'none');
  assert.match(await page.textContent('#tokens tbody'), /No store yet/);
  assert.equal(await page.isDisabled('#operator-attach'), true, 'nothing to attach to without a store');
  assert.equal(await saved(page), null, 'nothing saved before a store exists');
  await shot(page, '01-empty-1280');

  await createStore(page, { format: 'mlua-swarm', depth: 3 });
  assert.equal(await page.textContent('#sum-format'), 'mlua-swarm');
  assert.equal(await page.textContent('#sum-depth'), '3');
  assert.equal((await notice(page)).kind, 'ok');

  const s = await saved(page);
  assert.equal(s.secretIsBytes, true);
  assert.match(s.secretHex, /^[0-9a-f]{64}$/, '32 random bytes');
  assert.notEqual(s.secretHex, '00'.repeat(32));
  assert.deepEqual(s.settings, { format: 'mlua-swarm', maxSpawnDepth: 3, workerTokenTtlSecs: 1800 });
  assert.equal(s.snapshot.format, 'mlua-swarm');
  const html = await page.content();
  assert.ok(!html.includes(s.secretHex), 'the secret is never shown');

  // A token minted in the mlua-swarm format carries no "v".
  const fp = await attachOperator(page, 'op-7');
  const rec = (await engineState(page)).records[fp];
  assert.equal(rec.token.agent_id, 'op-7');
  assert.equal(rec.token.v, undefined);

  // Replacing a non-empty store asks first; then a fresh secret and an empty table.
  await page.selectOption('#store-format', 'v2');
  await page.fill('#store-depth', '5');
  await page.click('#store-create');
  assert.equal(await page.isVisible('#store-confirm'), true);
  assert.match(await page.textContent('#store-confirm'), /1 token\(s\) and 0 task\(s\)/);
  await page.click('#store-confirm-yes');
  await idle(page);
  assert.equal(await page.textContent('#sum-tokens'), '0');
  assert.equal(await page.textContent('#sum-format'), 'v2');
  assert.equal(await page.textContent('#sum-depth'), '5');
  const s2 = await saved(page);
  assert.notEqual(s2.secretHex, s.secretHex, 'a new store gets a new secret');
  done();
});

test('operators start root tasks, dispatch workers, workers start child tasks; the depth cap refuses with its reason', T, async (t) => {
  const { page, done } = await openConsole(t);
  await createStore(page, { depth: 3 });
  const op = await attachOperator(page, 'op-1');
  assert.match(await page.textContent('#acting-operator option:checked'), /^op-1 · [0-9a-f]{12}$/);
  // A second operator becomes the acting one; "Act as" switches back.
  const op2 = await attachOperator(page, 'op-2');
  assert.notEqual(op2, op);
  assert.deepEqual(await page.$$eval('#operator-list li.op', (lis) => lis.map((li) => li.innerText.split('\n')[0])), ['op-1', 'op-2']);
  assert.match(await page.textContent(`#operator-list li[data-fingerprint="${op2}"]`), /acting/);
  await page.click('#operator-list button[aria-label="Act as op-1"]');
  await idle(page);
  assert.equal(await page.inputValue('#acting-operator'), op);
  await startRoot(page, 'root-a');
  await startRoot(page, 'root-b');
  assert.equal(await page.getAttribute(taskSel('root-a'), 'data-depth'), '0');
  assert.match(await page.textContent(`${taskSel('root-a')} .depth`), /depth 0/);
  assert.match(await page.textContent(taskSel('root-a')), /No worker dispatched yet/);

  // depth 0 -> 1 -> 2; a spawn from depth 2 would reach the max of 3.
  const w0 = await dispatch(page, 'root-a');
  assert.equal(await cell(page, w0, 'role'), 'worker');
  assert.equal(await cell(page, w0, 'task'), 'root-a');
  await spawn(page, 'root-a', w0);
  const [child] = await childTasksOf(page, 'root-a');
  assert.ok(child, 'a child task under root-a');
  assert.equal(await page.getAttribute(taskSel(child), 'data-depth'), '1');
  assert.match(await page.textContent(`${taskSel(child)} > .task-row .depth`), /depth 1/);

  const w1 = await dispatch(page, child);
  await spawn(page, child, w1);
  const [grandchild] = await childTasksOf(page, child);
  assert.equal(await page.getAttribute(taskSel(grandchild), 'data-depth'), '2');
  const w2 = await dispatch(page, grandchild);
  const tasksBefore = (await engineState(page)).tasks.length;

  await spawn(page, grandchild, w2);
  const refusal = `${taskSel(grandchild)} > [data-testid="refusal"]`;
  await page.waitForSelector(refusal);
  assert.equal(await page.getAttribute(refusal, 'data-code'), 'ERR_SPAWN_DEPTH_EXCEEDED');
  assert.match(await page.textContent(refusal), /Spawn refused\s*ERR_SPAWN_DEPTH_EXCEEDED\s*spawn depth 3 would reach the maximum of 3/);
  const n = await notice(page);
  assert.equal(n.kind, 'error');
  assert.equal(n.code, 'ERR_SPAWN_DEPTH_EXCEEDED');
  assert.deepEqual(await childTasksOf(page, grandchild), [], 'no task created');
  assert.equal((await engineState(page)).tasks.length, tasksBefore);
  assert.equal(await page.textContent('#sum-tasks'), '4');
  assert.match(await page.textContent(`#operator-list li[data-fingerprint="${op}"]`), /2 root task\(s\)/);
  // The operator's token is untouched and exempt from expiry.
  assert.equal(await cell(page, op, 'expiry'), 'exempt');

  await shot(page.locator('#panel-swarm'), '02-task-tree-depth-cap-1280');
  done();
});

test('token table: short fingerprint (full on hover), role, agent, scopes, uses left of max, status, bound task, live expiry', T, async (t) => {
  const { page, done } = await openConsole(t);
  await createStore(page);
  const op = await attachOperator(page, 'op-1');
  await startRoot(page, 't1');
  const w = await dispatch(page, 't1', { uses: 3, ttl: 120 });

  const fpCell = page.locator(`${rowSel(w)} td[data-col="fingerprint"] code.fp`);
  assert.equal(await fpCell.getAttribute('title'), w, 'the full fingerprint on hover');
  assert.equal((await fpCell.textContent()).trim(), `${w.slice(0, 12)}…`);
  assert.equal(await cell(page, w, 'role'), 'worker');
  assert.equal(await cell(page, w, 'agent'), 'worker-of-t1');
  assert.equal(await cell(page, w, 'scopes'), '*');
  assert.equal(await cell(page, w, 'uses'), '3 / 3');
  assert.equal(await cell(page, w, 'status'), 'live');
  assert.equal(await cell(page, w, 'task'), 't1');
  assert.equal(await cell(page, op, 'uses'), '∞');
  assert.equal(await cell(page, op, 'task'), '—');
  assert.equal(await cell(page, op, 'expiry'), 'exempt');

  const first = await cell(page, w, 'expiry');
  assert.match(first, /^(1m \d\ds|2m 00s)$/);
  await page.waitForFunction(
    ([sel, text]) => document.querySelector(sel)?.textContent !== text,
    [`${rowSel(w)} td[data-col="expiry"]`, first],
    { timeout: 3000 },
  );
  const later = await cell(page, w, 'expiry');
  assert.notEqual(later, first, 'time to expiry refreshes as time passes');
  assert.match(later, /^1m \d\ds$/);
  assert.equal(await page.textContent('#sum-tokens'), '2');
  done();
});

test('check spends nothing, verify spends a use; decisions and codes are shown; bad bearers change nothing; the audit log records each decision', T, async (t) => {
  const { page, done } = await openConsole(t);
  await createStore(page);
  const op = await attachOperator(page, 'op-1');
  await startRoot(page, 't1');
  const w = await dispatch(page, 't1', { uses: 2 });
  assert.equal(await page.getAttribute('#decision', 'aria-live'), 'polite');

  // "Use" puts the bearer and its bound task into the verifier.
  await page.click(`${rowSel(w)} button[data-action="use"]`);
  assert.equal(await page.inputValue('#bearer-pick'), w);
  assert.match(await page.inputValue('#bearer-input'), /^[A-Za-z0-9_-]{100,}$/);
  assert.equal(await page.inputValue('#verify-task'), 't1');

  let d = await decide(page, 'check', { verb: 'fetch_prompt' });
  assert.equal(d.state, 'allowed');
  assert.equal(d.mode, 'check');
  assert.equal(d.uses, '2');
  assert.match(d.text, /Allowed/);
  assert.equal(await cell(page, w, 'uses'), '2 / 2', 'check spends nothing');

  d = await decide(page, 'verify');
  assert.deepEqual([d.state, d.mode, d.uses], ['allowed', 'verify', '1']);
  assert.equal(await cell(page, w, 'uses'), '1 / 2');
  d = await decide(page, 'verify', { verb: 'post_result' });
  assert.equal(d.uses, '0');
  assert.equal(await cell(page, w, 'uses'), '0 / 2');
  assert.equal(await cell(page, w, 'status'), 'exhausted');
  d = await decide(page, 'verify');
  assert.deepEqual([d.state, d.code], ['denied', 'ERR_TOKEN_USES_EXHAUSTED']);
  assert.match(d.text, /Denied[\s\S]*ERR_TOKEN_USES_EXHAUSTED[\s\S]*has no uses left[\s\S]*Nothing was spent/);

  // Pick a bearer from the list: an operator may not fetch a prompt.
  await page.selectOption('#bearer-pick', op);
  d = await decide(page, 'check', { verb: 'fetch_prompt', task: '' });
  assert.deepEqual([d.state, d.code], ['denied', 'ERR_ROLE_VIOLATION']);
  assert.match(d.text, /role operator may not call fetch_prompt/);

  // A worker naming another task.
  const w2 = await dispatch(page, 't1');
  await page.selectOption('#bearer-pick', w2);
  d = await decide(page, 'verify', { verb: 'read_task_state', task: 'other-task' });
  assert.deepEqual([d.state, d.code], ['denied', 'ERR_TOKEN_TASK_MISMATCH']);

  // Garbage and forged bearers: the error is shown and nothing changes.
  const before = await engineState(page);
  await page.fill('#bearer-input', 'this is not a bearer!');
  d = await decide(page, 'verify', { verb: 'fetch_prompt', task: 't1' });
  assert.deepEqual([d.state, d.code], ['denied', 'ERR_MALFORMED_TOKEN']);
  assert.match(d.text, /malformed token/);
  assert.equal(await page.inputValue('#bearer-pick'), '', 'a pasted bearer is no picked one');

  await page.selectOption('#bearer-pick', w2);
  const good = await page.inputValue('#bearer-input');
  const json = JSON.parse(Buffer.from(good, 'base64url').toString('utf8'));
  json.scopes = ['root'];
  await page.fill('#bearer-input', Buffer.from(JSON.stringify(json)).toString('base64url'));
  d = await decide(page, 'verify', { verb: 'fetch_prompt', task: 't1' });
  assert.deepEqual([d.state, d.code], ['denied', 'ERR_BAD_SIGNATURE']);
  assert.deepEqual(await engineState(page), before, 'denied calls change nothing');
  await shot(page.locator('#panel-verify'), '03-verify-denied-1280');

  // The audit log: newest first, time, call, fingerprint, verb, task, decision.
  const rows = await page.$$eval('#audit tbody tr', (trs) => trs.map((tr) => ({
    cells: [...tr.cells].map((c) => c.innerText.trim()),
    fp: tr.querySelector('code.fp')?.title ?? null,
    allowed: tr.dataset.allowed,
    code: tr.dataset.code,
  })));
  const [forged, garbage] = rows;
  assert.match(garbage.cells[0], /^\d\d:\d\d:\d\d$/);
  assert.deepEqual(garbage.cells.slice(1, 5), ['verify', '—', 'fetch_prompt', 't1']);
  assert.equal(garbage.code, 'ERR_MALFORMED_TOKEN');
  assert.equal(forged.code, 'ERR_BAD_SIGNATURE');
  assert.equal(forged.fp, w2, 'a forged bearer is logged under the fingerprint of its nonce');
  const checks = rows.filter((r) => r.cells[1] === 'check');
  assert.equal(checks.length, 2);
  assert.ok(checks.some((r) => r.allowed === 'true' && r.fp === w && r.cells[3] === 'fetch_prompt'));
  assert.ok(rows.some((r) => r.code === 'ERR_TOKEN_USES_EXHAUSTED' && r.fp === w));
  assert.ok(rows.some((r) => r.code === 'ERR_ROLE_VIOLATION' && r.fp === op));
  assert.ok(rows.some((r) => r.code === 'ERR_TOKEN_TASK_MISMATCH' && r.fp === w2 && r.cells[4] === 'other-task'));
  assert.ok(rows.some((r) => r.cells[3] === 'dispatch_attempt' && r.allowed === 'true' && r.fp === op));
  assert.match(rows.find((r) => r.code === 'ERR_TOKEN_USES_EXHAUSTED').cells[5], /ERR_TOKEN_USES_EXHAUSTED/);

  await page.check('#audit-denied-only');
  const denied = await page.$$eval('#audit tbody tr', (trs) => trs.map((tr) => tr.dataset.allowed));
  assert.equal(denied.length, 5, 'five denials');
  assert.ok(denied.every((a) => a === 'false'));
  await page.uncheck('#audit-denied-only');
  await page.click('#audit-clear');
  assert.match(await page.textContent('#audit tbody'), /No decisions yet/);
  done();
});

test('revokes one token, then a whole task tree', T, async (t) => {
  const { page, done } = await openConsole(t);
  await createStore(page);
  const op = await attachOperator(page);
  await startRoot(page, 'r');
  await startRoot(page, 's');
  const w1 = await dispatch(page, 'r');
  await spawn(page, 'r', w1);
  const [c] = await childTasksOf(page, 'r');
  const w2 = await dispatch(page, c);
  const w3 = await dispatch(page, 's');
  const w4 = await dispatch(page, 's');

  await page.click(`${rowSel(w3)} button[data-action="revoke"]`);
  await idle(page);
  assert.equal(await cell(page, w3, 'status'), 'revoked');
  assert.equal(await page.getAttribute(rowSel(w3), 'data-revoked'), 'true');
  assert.equal(await page.isDisabled(`${rowSel(w3)} button[data-action="revoke"]`), true);
  await page.selectOption('#bearer-pick', w3);
  const d = await decide(page, 'check', { verb: 'post_result', task: 's' });
  assert.deepEqual([d.state, d.code], ['denied', 'ERR_TOKEN_REVOKED']);
  assert.equal(await cell(page, w4, 'status'), 'live', 'only that token');

  await page.click(`${taskSel('r')} > .task-row button[data-action="revoke-tree"]`);
  await idle(page);
  assert.match((await notice(page)).text, /Revoked 2 token\(s\) in the tree of r/);
  assert.equal(await cell(page, w1, 'status'), 'revoked');
  assert.equal(await cell(page, w2, 'status'), 'revoked', 'descendant tasks too');
  assert.equal(await cell(page, w4, 'status'), 'live', 'other trees untouched');
  assert.equal(await cell(page, op, 'status'), 'live');
  const { records } = await engineState(page);
  assert.deepEqual([w1, w2, w3, w4].map((fp) => records[fp].revoked), [true, true, true, false]);
  done();
});

test('remints a late worker token and purges expired ones', T, async (t) => {
  const { page, done } = await openConsole(t);
  await createStore(page);
  await attachOperator(page);
  await startRoot(page, 'slow');
  // A remint comes at most one lifetime late and lives as long as the old
  // token did: 4 s leaves room for the page to notice the expiry and act.
  const late = await dispatch(page, 'slow', { uses: 5, ttl: 4 });
  await page.click(`${rowSel(late)} button[data-action="use"]`);
  await decide(page, 'verify', { verb: 'fetch_prompt' });
  assert.equal(await cell(page, late, 'uses'), '4 / 5');

  // The page notices the expiry on its own.
  await page.waitForSelector(`${rowSel(late)} [data-status="expired"]`, { timeout: 8000 });
  assert.match(await cell(page, late, 'expiry'), /^expired \d+s ago$/);
  const d = await decide(page, 'check', { verb: 'fetch_prompt' });
  assert.deepEqual([d.state, d.code], ['denied', 'ERR_TOKEN_EXPIRED']);

  const rowsBefore = await page.$$eval('#tokens tbody tr', (trs) => trs.map((tr) => tr.dataset.fingerprint));
  await page.click(`${rowSel(late)} button[data-action="remint"]`);
  await idle(page);
  const rows = await page.$$eval('#tokens tbody tr', (trs) => trs.map((tr) => tr.dataset.fingerprint));
  const [fresh] = rows.filter((fp) => !rowsBefore.includes(fp));
  assert.ok(fresh, 'a new token');
  assert.match((await notice(page)).text, /Reminted [0-9a-f]{12} as [0-9a-f]{12} \(uses 4, the same 4s lifetime from now\)/);
  assert.equal(await cell(page, fresh, 'uses'), '4 / 4', 'max uses = the uses left');
  assert.equal(await cell(page, fresh, 'task'), 'slow');
  assert.equal(await cell(page, fresh, 'agent'), 'worker-of-slow');
  assert.equal(await cell(page, fresh, 'status'), 'live');
  assert.match(await cell(page, fresh, 'expiry'), /^[1-4]s$/);
  assert.match(await cell(page, late, 'status'), /revoked/);
  await page.click(`${rowSel(fresh)} button[data-action="use"]`);
  const ok = await decide(page, 'verify', { verb: 'post_result' });
  assert.deepEqual([ok.state, ok.uses], ['allowed', '3']);

  await page.click('#purge-btn');
  await idle(page);
  assert.match((await notice(page)).text, /Purged 1 expired token/);
  assert.equal(await page.locator(rowSel(late)).count(), 0, 'the expired record is gone');
  assert.equal(await page.locator(rowSel(fresh)).count(), 1);
  assert.equal(await page.textContent('#sum-tokens'), '2');
  assert.equal(await page.locator(`#bearer-pick option[value="${late}"]`).count(), 0, 'its bearer is forgotten');
  done();
});

test('exports a snapshot file and imports it back; a corrupted snapshot shows the error and changes nothing', T, async (t) => {
  const { page, done } = await openConsole(t);
  await createStore(page);
  const op = await attachOperator(page);
  await startRoot(page, 'keep');
  const w = await dispatch(page, 'keep', { uses: 3 });
  await page.click(`${rowSel(w)} button[data-action="use"]`);
  await decide(page, 'verify', { verb: 'fetch_prompt' });

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-btn')]);
  assert.match(download.suggestedFilename(), /^captoken-snapshot-\d{8}-\d{6}\.json$/);
  const text = await readFile(await download.path(), 'utf8');
  const snap = JSON.parse(text);
  assert.equal(snap.version, 1);
  assert.equal(snap.records.length, 2);
  assert.deepEqual(snap.tasks.map((x) => x.task_id), ['keep']);
  assert.doesNotMatch(text, /"nonce":"[0-9a-f]{32}"/, 'no nonce');
  assert.ok(!text.includes((await saved(page)).secretHex), 'no secret');
  const exported = await engineState(page);

  // Change things, then import the file: the exported state is back.
  await decide(page, 'verify');
  await startRoot(page, 'extra');
  assert.equal(await cell(page, w, 'uses'), '1 / 3');
  await page.setInputFiles('#import-file', { name: 'state.json', mimeType: 'application/json', buffer: Buffer.from(text) });
  await idle(page);
  let n = await notice(page);
  assert.equal(n.kind, 'ok');
  assert.match(n.text, /Imported state\.json: 2 token\(s\), 1 task\(s\)/);
  assert.equal(await cell(page, w, 'uses'), '2 / 3');
  assert.equal(await page.locator(taskSel('extra')).count(), 0);
  assert.deepEqual(await engineState(page), exported);
  // The bearers kept in this browser still work after the import.
  await page.click(`${rowSel(w)} button[data-action="use"]`);
  assert.equal((await decide(page, 'verify', { verb: 'post_result' })).uses, '1');
  assert.equal(await page.inputValue('#acting-operator'), op);

  // Corrupted snapshots: truncated, not a snapshot, a bad field, not JSON at all.
  const current = await engineState(page);
  const tableBefore = await page.$$eval('#tokens tbody tr', (trs) => trs.map((tr) => [tr.dataset.fingerprint, tr.querySelector('[data-col="uses"]').innerText, tr.dataset.revoked]));
  const corrupt = [
    ['truncated.json', text.slice(0, Math.floor(text.length / 2))],
    ['other.json', '{"hello":"world"}'],
    ['bad-field.json', text.replace(/"uses_left":\d+/, '"uses_left":"lots"')],
    ['future.json', text.replace('"version":1', '"version":99')],
    ['photo.json', '\u0089PNG\r\n\u001a\n not json'],
  ];
  for (const [name, body] of corrupt) {
    await page.setInputFiles('#import-file', { name, mimeType: 'application/json', buffer: Buffer.from(body) });
    await idle(page);
    n = await notice(page);
    assert.equal(n.kind, 'error', name);
    assert.equal(n.code, 'ERR_SNAPSHOT_INVALID', name);
    assert.match(n.text, new RegExp(`${name.replace('.', '\\.')} was not imported, nothing changed: invalid snapshot`));
    assert.deepEqual(await engineState(page), current, `${name} changes nothing`);
  }
  const tableAfter = await page.$$eval('#tokens tbody tr', (trs) => trs.map((tr) => [tr.dataset.fingerprint, tr.querySelector('[data-col="uses"]').innerText, tr.dataset.revoked]));
  assert.deepEqual(tableAfter, tableBefore);
  assert.ok(await page.$('#audit tbody tr[data-call="import"][data-code="ERR_SNAPSHOT_INVALID"]'));
  await shot(page, '04-import-corrupted-1280');
  done();
});

test('the state survives a page reload: secret, tokens, tasks, bearers, refusals and the audit log', T, async (t) => {
  const { page, done } = await openConsole(t);
  await createStore(page, { format: 'mlua-swarm', depth: 2, ttl: 900 });
  const op = await attachOperator(page, 'op-reload');
  await startRoot(page, 'persist');
  const w = await dispatch(page, 'persist', { uses: 4 });
  await spawn(page, 'persist', w);
  const [child] = await childTasksOf(page, 'persist');
  const cw = await dispatch(page, child);
  await spawn(page, child, cw); // refused: depth 2 would reach the max of 2
  await page.click(`${rowSel(w)} button[data-action="use"]`);
  await decide(page, 'verify', { verb: 'fetch_prompt' });
  await page.click(`${rowSel(op)} button[data-action="revoke"]`);
  await idle(page);

  const view = () => page.evaluate(() => ({
    summary: ['#sum-format', '#sum-depth', '#sum-tokens', '#sum-tasks'].map((s) => document.querySelector(s).textContent),
    rows: [...document.querySelectorAll('#tokens tbody tr')].map((tr) => [...tr.cells].filter((c) => c.dataset.col !== 'expiry' && c.dataset.col !== 'actions').map((c) => c.innerText.trim())),
    tree: [...document.querySelectorAll('#tree li.task')].map((li) => `${li.dataset.taskId}@${li.dataset.depth}`),
    refusal: document.querySelector('#tree [data-testid="refusal"]')?.innerText ?? null,
    picks: [...document.querySelectorAll('#bearer-pick option')].map((o) => o.value).filter(Boolean),
    audit: document.querySelectorAll('#audit tbody tr').length,
    settings: ['#store-format', '#store-depth', '#store-ttl'].map((s) => document.querySelector(s).value),
  }));
  const before = await view();
  assert.ok(before.refusal?.includes('ERR_SPAWN_DEPTH_EXCEEDED'));
  const engineBefore = await engineState(page);

  await page.reload();
  await ready(page);
  const afterReload = await view();
  assert.deepEqual(afterReload, before);
  assert.deepEqual(await engineState(page), engineBefore);
  assert.match((await notice(page)).text, /Restored the saved store/);
  assert.equal(afterReload.picks.length, 3, 'bearers kept in this browser');

  // The restored store decides with the same secret: the kept bearer still verifies.
  await page.selectOption('#bearer-pick', w);
  const d = await decide(page, 'verify', { verb: 'post_result', task: 'persist' });
  assert.deepEqual([d.state, d.uses], ['allowed', '1']);
  await page.selectOption('#bearer-pick', op);
  assert.equal((await decide(page, 'check', { verb: 'start_task', task: '' })).code, 'ERR_TOKEN_REVOKED');
  done();
});

test('copies a bearer to the clipboard for handing to a worker', T, async (t) => {
  const { page, done } = await openConsole(t, { permissions: ['clipboard-read', 'clipboard-write'] });
  await createStore(page);
  await attachOperator(page, 'op-clip');
  await startRoot(page, 'job');
  const w = await dispatch(page, 'job', { uses: 1 });
  await page.click(`${rowSel(w)} button[data-action="copy"]`);
  await idle(page);
  const n = await notice(page);
  assert.equal(n.kind, 'ok');
  assert.match(n.text, new RegExp(`Bearer of ${w.slice(0, 12)} copied to the clipboard`));
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  const token = JSON.parse(Buffer.from(copied, 'base64url').toString('utf8'));
  assert.equal(token.agent_id, 'worker-of-job');
  assert.equal(token.role, 'worker');
  assert.equal(token.max_uses, 1);

  // The copied bearer, pasted back, is that worker's token.
  await page.fill('#bearer-input', copied);
  assert.equal(await page.inputValue('#bearer-pick'), w);
  const d = await decide(page, 'verify', { verb: 'fetch_prompt', task: 'job' });
  assert.deepEqual([d.state, d.uses], ['allowed', '0']);
  done();
});

test('runs the demo swarm with one click, animated, at 1280x800 (screenshots)', T, async (t) => {
  const { page, done } = await openConsole(t);
  await page.selectOption('#demo-pace', '40');
  await page.click('#demo-run');
  await page.waitForSelector('#demo-banner[data-state="running"]');
  assert.match(await page.textContent('#demo-step'), /^Demo step \d+ of \d+$/);
  assert.equal(await page.isDisabled('#demo-run'), true, 'one demo at a time');
  await page.waitForSelector('#demo-banner[data-state="done"]', { timeout: 20_000 });
  await idle(page);
  assert.match(await page.textContent('#demo-banner'), /Demo finished/);

  assert.equal(await page.textContent('#sum-state'), 'live', 'the demo creates a store when there is none');
  const roles = await page.$$eval('#tokens tbody tr', (trs) => trs.map((tr) => tr.dataset.role));
  assert.equal(roles.filter((r) => r === 'operator').length, 2);
  assert.ok(roles.filter((r) => r === 'worker').length >= 6);
  assert.ok(roles.includes('observer'));
  const depths = await page.$$eval('#tree li.task', (lis) => lis.map((li) => Number(li.dataset.depth)));
  assert.deepEqual([...new Set(depths)].sort(), [0, 1, 2, 3], 'children down to the depth cap');
  assert.equal(await page.getAttribute('#tree [data-testid="refusal"]', 'data-code'), 'ERR_SPAWN_DEPTH_EXCEEDED');
  assert.ok(await page.locator('#tokens [data-status="exhausted"]').count() >= 2, 'consumed budgets');
  assert.ok(await page.locator('#tokens [data-status="revoked"]').count() >= 2, 'a revoked tree');
  const codes = await page.$$eval('#audit tbody tr', (trs) => trs.map((tr) => tr.dataset.code).filter(Boolean));
  for (const code of ['ERR_TOKEN_USES_EXHAUSTED', 'ERR_TOKEN_REVOKED', 'ERR_TOKEN_TASK_MISMATCH', 'ERR_ROLE_VIOLATION', 'ERR_SPAWN_DEPTH_EXCEEDED']) {
    assert.ok(codes.includes(code), `the audit log shows ${code}`);
  }
  assert.equal(await page.getAttribute('#decision', 'data-code'), 'ERR_TOKEN_REVOKED', 'the last decision is on show');

  await shot(page, '05-demo-1280');
  await shot(page.locator('#panel-swarm'), '06-demo-task-tree-1280');
  await shot(page.locator('#panel-tokens'), '07-demo-tokens-1280');
  await shot(page.locator('#panel-audit'), '08-demo-audit-1280');
  await shot(page, '09-demo-full-1280', { fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await shot(page, '10-demo-dark-1280');
  done();
});

test('works on a phone (390x844): no horizontal scrolling, tables as cards, a bounded audit log, whole-card highlights (screenshots)', T, async (t) => {
  const { page, done } = await openConsole(t, { viewport: PHONE });
  await shot(page, '11-phone-empty-390');
  await page.selectOption('#demo-pace', '40');
  await page.click('#demo-run');
  await page.waitForSelector('#demo-banner[data-state="done"]', { timeout: 20_000 });
  await idle(page);
  const widths = await page.evaluate(() => ({ doc: document.documentElement.scrollWidth, view: innerWidth }));
  assert.ok(widths.doc <= widths.view, `no horizontal scroll (${widths.doc} > ${widths.view})`);
  assert.equal(await page.isVisible('#tokens thead'), false, 'the token table is shown as cards');
  const card = await page.locator('#tokens tbody tr').first().boundingBox();
  assert.ok(card.width <= PHONE.width);
  // The audit log scrolls inside its panel instead of making the page a column of cards.
  const audit = await page.evaluate(() => {
    const wrap = document.querySelector('.audit-wrap');
    return { rows: document.querySelectorAll('#audit tbody tr').length, height: wrap.getBoundingClientRect().height, scroll: wrap.scrollHeight };
  });
  assert.ok(audit.rows >= 10, `${audit.rows} audit entries`);
  assert.ok(audit.height <= PHONE.height, `the audit log is ${audit.height}px high`);
  assert.ok(audit.scroll > audit.height, 'the rest of the log scrolls');
  const entry = await page.locator('#audit tbody tr').first().boundingBox();
  assert.ok(entry.height <= 110, `an audit entry is ${entry.height}px high`);
  // A new token's card is highlighted as a whole, not cell by cell.
  await page.fill('#operator-agent', 'op-phone');
  await page.click('#operator-attach');
  await idle(page);
  const fp = await page.$eval('#acting-operator', (s) => s.value);
  const flash = await page.$eval(rowSel(fp), (tr) => ({
    flash: tr.classList.contains('flash'),
    row: getComputedStyle(tr).animationName,
    cells: [...tr.cells].map((td) => getComputedStyle(td).animationName),
  }));
  assert.deepEqual(flash, { flash: true, row: 'flash-card', cells: flash.cells.map(() => 'none') });
  await shot(page, '12-phone-top-390');
  await page.locator('#panel-swarm').scrollIntoViewIfNeeded();
  await shot(page, '13-phone-tree-390');
  await page.locator('#panel-tokens').scrollIntoViewIfNeeded();
  await shot(page, '14-phone-tokens-390');
  await page.locator('#panel-audit').scrollIntoViewIfNeeded();
  await shot(page, '15-phone-audit-390');
  done();
});

test('a notice speaks of the last action only; the audit log names attach, start task and dispatch as such', T, async (t) => {
  const { page, done } = await openConsole(t);
  await createStore(page);
  await attachOperator(page);
  await startRoot(page, 'job');
  const w = await dispatch(page, 'job');
  const n = await notice(page);
  assert.equal(n.hidden, false, 'the dispatch is announced');
  assert.match(n.text, /dispatched/i);
  await page.selectOption('#bearer-pick', w);
  await decide(page, 'check', { verb: 'fetch_prompt', task: 'job' });
  assert.equal((await notice(page)).hidden, true, 'a later call takes the dispatch notice down');

  const rows = await page.$$eval('#audit tbody tr', (trs) => trs.reverse().map((tr) => ({
    call: tr.dataset.call, label: tr.cells[1].innerText.trim(), fp: tr.cells[2].querySelector('code')?.title ?? '', verb: tr.cells[3].innerText.trim(),
  })));
  const byCall = Object.fromEntries(rows.map((r) => [r.call, r]));
  assert.deepEqual(rows.map((r) => r.call), ['store', 'attach', 'start', 'dispatch', 'check']);
  assert.deepEqual([byCall.attach.label, byCall.attach.verb], ['attach operator', '—'], 'attaching verifies nothing');
  assert.deepEqual([byCall.start.label, byCall.start.verb], ['start task', 'start_task']);
  assert.deepEqual([byCall.dispatch.label, byCall.dispatch.verb], ['dispatch', 'dispatch_attempt']);
  assert.ok(!rows.some((r) => r.call === 'mint' || (r.call === 'verify')), 'no mint or verify the user did not make');
  done();
});

test('served with a CSP (page and wasm), nosniff and no-referrer; the page runs under it with no violation and says what this browser stores', T, async (t) => {
  const context = await browser.newContext({ viewport: WIDE });
  t.after(() => context.close());
  const page = await context.newPage();
  const headers = {};
  page.on('response', (res) => {
    const path = new URL(res.url()).pathname;
    if (path === '/' || path.endsWith('.wasm')) headers[path] = res.headers();
  });
  const messages = [];
  page.on('console', (msg) => messages.push(msg.text()));
  // Violations are reported as events too; collect them from the first script on.
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(`${origin}/`);
  await ready(page);
  // Work the page a little: a store, an operator, a task, a worker, a decision.
  await createStore(page);
  await attachOperator(page);
  await startRoot(page, 'csp');
  await dispatch(page, 'csp', { uses: 3 });
  assert.deepEqual(Object.keys(headers).sort(), ['/', '/pkg/web/captoken_bg.wasm']);
  for (const [path, h] of Object.entries(headers)) {
    const csp = (h['content-security-policy'] ?? '').split(/;\s*/);
    assert.ok(csp.includes("default-src 'self'"), `${path}: ${csp}`);
    assert.ok(csp.includes("frame-ancestors 'none'"), `${path}: ${csp}`);
    assert.equal(h['x-content-type-options'], 'nosniff', path);
    assert.equal(h['referrer-policy'], 'no-referrer', path);
  }
  assert.deepEqual(await page.evaluate(() => window.__violations), []);
  assert.deepEqual(messages.filter((m) => /Content Security Policy|Refused to/i.test(m)), []);
  // An inline script is refused: the policy is in force, so the checks above can fail.
  await page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'window.__inline = true;';
    document.head.append(s);
  });
  await page.waitForFunction(() => window.__violations.length > 0);
  assert.equal(await page.evaluate(() => window.__inline), undefined);
  assert.match(await page.textContent('[data-testid="storage-note"]'), /secret and every bearer.*IndexedDB.*any script running on this origin/s);
});
