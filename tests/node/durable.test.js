// captoken/node: the durable store's journal, torn-tail handling, compaction
// and reopening, in CommonJS and ESM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync, readFileSync, appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DurableTokenStore, CapTokenError, TokenStore } from 'captoken/node';

const require = createRequire(import.meta.url);
const secret = new Uint8Array(32).fill(9);
const fresh = () => mkdtempSync(join(tmpdir(), 'captoken-durable-'));
const journalOf = (dir) => join(dir, readdirSync(dir).find((f) => f.startsWith('journal-')));
/** Open, run `fn` on the store, close it (releasing the directory's lock). */
const withOpen = (dir, options, fn) => {
  const store = DurableTokenStore.open(dir, options);
  try {
    return fn(store);
  } finally {
    store.close();
  }
};

test('require and import give the same classes', () => {
  const cjs = require('captoken/node');
  assert.equal(cjs.DurableTokenStore, DurableTokenStore);
  assert.equal(cjs.CapTokenError, CapTokenError);
  assert.equal(require('captoken').TokenStore, TokenStore);
});

test('every change is on disk before the call returns, and reopens', () => {
  const dir = fresh();
  try {
    const store = DurableTokenStore.open(dir, { secret });
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 't' });
    const w = store.dispatchAttempt(op.bearer, 't', { maxUses: 2 });
    store.verify(w.bearer, 'fetch_prompt', 't');
    const lines = readFileSync(journalOf(dir), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.op), ['record', 'task', 'record', 'consume']);
    const text = readFileSync(journalOf(dir), 'utf8');
    for (const m of [op, w]) assert.ok(!text.includes(m.token.nonce), 'journal holds no nonce');
    // A second open while the first is open is refused (the lock); after a
    // close it reopens. (tests/node/crash.test.js reopens after SIGKILL.)
    assert.throws(() => DurableTokenStore.open(dir, { secret }), { code: 'ERR_STORE_UNAVAILABLE' });
    store.close();
    const again = DurableTokenStore.open(dir, { secret });
    assert.equal(again.size, 2);
    assert.equal(again.verify(w.bearer, 'fetch_prompt', 't').usesLeft, 0);
    assert.throws(() => again.verify(w.bearer, 'fetch_prompt', 't'), { code: 'ERR_TOKEN_USES_EXHAUSTED' });
    again.close();
    assert.equal(withOpen(dir, { secret }, (s) => s.check(w.bearer, 'fetch_prompt', 't').code),
      'ERR_TOKEN_USES_EXHAUSTED');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a torn last line is dropped and cut off; a damaged complete line is refused', () => {
  const dir = fresh();
  try {
    const store = DurableTokenStore.open(dir, { secret });
    const w = store.mint('w', 'worker', { maxUses: 1, taskId: 't' });
    store.close();
    appendFileSync(journalOf(dir), '{"op":"consume","fingerp');
    const reopened = DurableTokenStore.open(dir, { secret });
    assert.equal(reopened.droppedBytes, 24);
    assert.equal(reopened.check(w.bearer, 'fetch_prompt', 't').allowed, true);
    reopened.verify(w.bearer, 'fetch_prompt', 't');
    reopened.close();
    const lines = readFileSync(journalOf(dir), 'utf8').split('\n');
    assert.equal(lines.at(-1), '', 'the journal ends in a newline again');
    assert.equal(withOpen(dir, { secret }, (s) => s.check(w.bearer, 'fetch_prompt', 't').code),
      'ERR_TOKEN_USES_EXHAUSTED');
    appendFileSync(journalOf(dir), 'garbage\n');
    assert.throws(() => DurableTokenStore.open(dir, { secret }),
      (e) => e instanceof CapTokenError && e.code === 'ERR_SNAPSHOT_INVALID');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('compaction folds the journal into a new snapshot generation', () => {
  const dir = fresh();
  try {
    const store = DurableTokenStore.open(dir, { secret, compactBytes: 4096 });
    const minted = [];
    for (let i = 0; i < 40; i++) minted.push(store.mint(`w${i}`, 'worker', { maxUses: 3, taskId: 't' }));
    for (const m of minted) store.verify(m.bearer, 'fetch_prompt', 't');
    const files = readdirSync(dir).filter((f) => f !== 'lock.json').sort();
    assert.equal(files.length, 2, files.join());
    assert.match(files[1], /^snapshot-0{15}[1-9]\.json$|^snapshot-0+\d+\.json$/);
    assert.ok(!files.includes('snapshot-0000000000000000.json'));
    const snapshot = readFileSync(join(dir, files[1]), 'utf8');
    for (const m of minted) assert.ok(!snapshot.includes(m.token.nonce));
    store.compact();
    assert.equal(readFileSync(journalOf(dir), 'utf8'), '');
    store.close();
    const reopened = DurableTokenStore.open(dir, { secret });
    for (const m of minted) assert.equal(reopened.check(m.bearer, 'fetch_prompt', 't').usesLeft, 2);
    reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad arguments throw CapTokenError and a closed store refuses calls', () => {
  assert.throws(() => DurableTokenStore.open('', { secret }), { code: 'ERR_INVALID_ARGUMENT' });
  assert.throws(() => DurableTokenStore.open(fresh(), { secret, compactBytes: -1 }), { code: 'ERR_INVALID_ARGUMENT' });
  const dir = fresh();
  try {
    assert.throws(() => DurableTokenStore.open(dir, { secret: new Uint8Array(8) }), { code: 'ERR_INVALID_ARGUMENT' });
    const store = DurableTokenStore.open(dir, { secret });
    store.close();
    store.close(); // a no-op
    const closed = { code: 'ERR_STORE_UNAVAILABLE', message: 'store unavailable: the store is closed' };
    for (const call of [
      () => store.mint('a', 'worker'),
      () => store.verify('x', 'heartbeat'),
      () => store.check('x', 'heartbeat'),
      () => store.records(),
      () => store.tasks(),
      () => store.snapshot(),
      () => store.compact(),
      () => store.size,
    ]) {
      assert.throws(call, (e) => e instanceof CapTokenError && e.code === closed.code && e.message === closed.message);
    }
    assert.throws(() => DurableTokenStore.prototype.mint.call({}, 'a', 'worker'), { code: 'ERR_INVALID_ARGUMENT' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
