// captoken/node: the durable store's journal, torn-tail handling, compaction
// and reopening, in CommonJS and ESM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { mkdtempSync, rmSync, readdirSync, readFileSync, appendFileSync, existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
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

/** A child process holding `dir` open until killed; resolves once it has it. */
function holder(dir) {
  const code = `
    const { DurableTokenStore } = require('captoken/node');
    const store = DurableTokenStore.open(process.argv[1], { secret: Buffer.alloc(32, 9) });
    process.stdout.write('READY ' + process.pid + '\\n');
    setInterval(() => {}, 1000);`;
  const proc = spawn(process.execPath, ['-e', code, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve(proc);
    });
    proc.stderr.on('data', (chunk) => (err += chunk));
    proc.on('exit', (code) => reject(new Error(`holder exited (${code}): ${err}`)));
  });
}

test('one store at a time: the lock names its holder, a dead holder is taken over, close releases it', async () => {
  const dir = fresh();
  try {
    const store = DurableTokenStore.open(dir, { secret });
    const lock = join(dir, 'lock.json');
    const held = JSON.parse(readFileSync(lock, 'utf8'));
    assert.equal(held.pid, process.pid);
    assert.equal(typeof held.hostname, 'string');
    assert.ok(!Number.isNaN(Date.parse(held.started)));
    // Same process, second open: refused, naming the holder.
    assert.throws(() => DurableTokenStore.open(dir, { secret }),
      (e) => e instanceof CapTokenError && e.code === 'ERR_STORE_UNAVAILABLE' && e.message.includes(`pid ${process.pid}`));
    store.close();
    assert.equal(existsSync(lock), false, 'close removes the lock');

    // Another process holds it: refused while it lives, taken over once it is dead.
    const child = await holder(dir);
    assert.throws(() => DurableTokenStore.open(dir, { secret }),
      (e) => e.code === 'ERR_STORE_UNAVAILABLE' && e.message.includes(`pid ${child.pid}`));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const after = DurableTokenStore.open(dir, { secret });
    assert.equal(JSON.parse(readFileSync(lock, 'utf8')).pid, process.pid);
    after.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const failing of ['writeSync', 'fsyncSync']) {
  test(`a failed journal write (${failing} ENOSPC) stops the store until reopened; the retried revoke is not lost`, () => {
    const dir = fresh();
    try {
      const store = DurableTokenStore.open(dir, { secret });
      const w = store.mint('w', 'worker', { taskId: 't', maxUses: 5 });
      const real = fs[failing];
      fs[failing] = () => {
        const error = new Error('ENOSPC: no space left on device');
        error.code = 'ENOSPC';
        throw error;
      };
      try {
        assert.throws(() => store.revoke(w.fingerprint),
          (e) => e instanceof CapTokenError && e.code === 'ERR_STORE_UNAVAILABLE' && /ENOSPC/.test(e.message));
      } finally {
        fs[failing] = real;
      }
      // Memory says revoked, the disk may not: every call is refused.
      for (const call of [
        () => store.revoke(w.fingerprint),
        () => store.verify(w.bearer, 'fetch_prompt', 't'),
        () => store.check(w.bearer, 'fetch_prompt', 't'),
        () => store.records(),
        () => store.snapshot(),
        () => store.size,
      ]) {
        assert.throws(call, (e) => e instanceof CapTokenError && e.code === 'ERR_STORE_UNAVAILABLE' && /reopen/.test(e.message));
      }
      store.close();
      // Reopening gives what the disk says: without the revoke when the write
      // failed (the retry revokes), with it when only the fsync failed (the
      // bytes reached the file; the retry finds it done).
      const onDisk = readFileSync(journalOf(dir), 'utf8').includes('"op":"revoke"');
      assert.equal(onDisk, failing === 'fsyncSync');
      const again = DurableTokenStore.open(dir, { secret });
      assert.equal(again.check(w.bearer, 'fetch_prompt', 't').allowed, !onDisk);
      assert.equal(again.revoke(w.fingerprint), !onDisk);
      again.close();
      const third = DurableTokenStore.open(dir, { secret });
      assert.equal(third.check(w.bearer, 'fetch_prompt', 't').code, 'ERR_TOKEN_REVOKED');
      third.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('snapshot() is a compaction: the journal on disk stays a chain, and reopens', () => {
  const dir = fresh();
  try {
    const store = DurableTokenStore.open(dir, { secret });
    const w = store.mint('w', 'worker', { taskId: 't', maxUses: 3 });
    store.verify(w.bearer, 'fetch_prompt', 't');
    const text = store.snapshot();
    assert.ok(text.startsWith('{"version":1,"key_id":"'));
    assert.equal(readFileSync(journalOf(dir), 'utf8'), '');
    store.verify(w.bearer, 'fetch_prompt', 't');
    store.close();
    assert.equal(withOpen(dir, { secret }, (s) => s.check(w.bearer, 'fetch_prompt', 't').usesLeft), 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a directory of the old, unsealed format opens with allowUnsealed and is sealed at once', () => {
  const dir = fresh();
  try {
    const plain = new TokenStore({ secret, journal: true });
    const w = plain.mint('w', 'worker', { taskId: 't', maxUses: 3 });
    const { key_id: _k, mac: _m, ...body } = JSON.parse(plain.snapshot());
    fs.writeFileSync(join(dir, 'snapshot-0000000000000004.json'), JSON.stringify(body));
    fs.writeFileSync(join(dir, 'journal-0000000000000004.ndjson'),
      `${JSON.stringify({ op: 'consume', fingerprint: w.fingerprint })}\n`);
    assert.throws(() => DurableTokenStore.open(dir, { secret }), { code: 'ERR_SNAPSHOT_INVALID' });
    const store = DurableTokenStore.open(dir, { secret, allowUnsealed: true });
    assert.equal(store.check(w.bearer, 'fetch_prompt', 't').usesLeft, 2);
    store.close();
    assert.deepEqual(readdirSync(dir).sort(), ['journal-0000000000000005.ndjson', 'snapshot-0000000000000005.json']);
    assert.equal(withOpen(dir, { secret }, (s) => s.check(w.bearer, 'fetch_prompt', 't').usesLeft), 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the journal on disk: a deleted consume line or a duplicated line is refused when opening', () => {
  const dir = fresh();
  try {
    const store = DurableTokenStore.open(dir, { secret });
    const once = store.mint('w', 'worker', { taskId: 't', maxUses: 1 });
    store.verify(once.bearer, 'fetch_prompt', 't');
    store.mint('later', 'observer');
    store.close();
    const file = journalOf(dir);
    const lines = readFileSync(file, 'utf8').split('\n').slice(0, -1);
    const consume = lines.findIndex((l) => JSON.parse(l).op === 'consume');
    assert.ok(consume >= 0 && consume < lines.length - 1);
    const put = (kept) => fs.writeFileSync(file, kept.map((l) => `${l}\n`).join(''));
    put(lines.filter((_, i) => i !== consume));
    assert.throws(() => DurableTokenStore.open(dir, { secret }),
      (e) => e.code === 'ERR_SNAPSHOT_INVALID' && /journal line \d+: the seal does not match/.test(e.message));
    put([...lines.slice(0, 1), lines[0], ...lines.slice(1)]);
    assert.throws(() => DurableTokenStore.open(dir, { secret }), { code: 'ERR_SNAPSHOT_INVALID' });
    // A refused open leaves no lock behind; the real journal opens, spent stays spent.
    assert.equal(existsSync(join(dir, 'lock.json')), false);
    put(lines);
    assert.equal(withOpen(dir, { secret }, (s) => s.check(once.bearer, 'fetch_prompt', 't').code),
      'ERR_TOKEN_USES_EXHAUSTED');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
