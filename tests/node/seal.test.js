// Issue 10, through the package: sealed snapshots and chained journal lines
// (docs/snapshot-and-journal.md). Each attack below revived a spent or
// revoked token, or was accepted, before snapshots and lines were sealed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { TokenStore, SECRET, OTHER_SECRET, makeStore, throwsCap } from './helpers.js';

/** RFC 8439's Poly1305, written out with BigInt: an implementation of the doc, not of the crate. */
function poly1305(key, message) {
  const le = (bytes) => bytes.reduceRight((acc, byte) => (acc << 8n) | BigInt(byte), 0n);
  const r = le(key.subarray(0, 16)) & 0x0ffffffc0ffffffc0ffffffc0fffffffn;
  const s = le(key.subarray(16, 32));
  const p = (1n << 130n) - 5n;
  let acc = 0n;
  for (let i = 0; i < message.length; i += 16) {
    const block = message.subarray(i, i + 16);
    acc = ((acc + (le(block) | (1n << BigInt(8 * block.length)))) * r) % p;
  }
  acc = (acc + s) & ((1n << 128n) - 1n);
  return Buffer.from(Array.from({ length: 16 }, (_, i) => Number((acc >> BigInt(8 * i)) & 0xffn)));
}

const sealError = (pattern) => (e) => e?.code === 'ERR_SNAPSHOT_INVALID' && pattern.test(e.message);

describe('sealed snapshots', () => {
  it('are sealed exactly as docs/snapshot-and-journal.md says (nonce, HMAC-derived key, Poly1305)', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'a' });
    store.dispatchAttempt(op.bearer, 'a', { maxUses: 3 });
    const seals = new Set();
    for (let i = 0; i < 3; i++) {
      const text = Buffer.from(store.snapshot());
      const seal = Buffer.from(text.subarray(48, 112).toString(), 'hex');
      const sealKey = createHmac('sha256', SECRET).update('captoken-seal-v1').digest();
      const nonce = seal.subarray(0, 16);
      const key = createHmac('sha256', sealKey).update('captoken-snapshot-key-v1').update(nonce).digest();
      const message = Buffer.concat([text.subarray(0, 48), text.subarray(112)]);
      assert.equal(poly1305(key, message).toString('hex'), seal.subarray(16).toString('hex'));
      seals.add(nonce.toString('hex'));
    }
    assert.equal(seals.size, 3, 'every snapshot has its own nonce');
  });

  it('an edited snapshot (uses_left, revoked, task_id) is refused: no revived, moved token', () => {
    const { store, clock } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'a' });
    store.startTask(op.bearer, { taskId: 'b' });
    const w = store.dispatchAttempt(op.bearer, 'a', { maxUses: 1 });
    store.verify(w.bearer, 'fetch_prompt', 'a');
    store.revoke(w.fingerprint);
    const text = store.snapshot();
    const doc = JSON.parse(text);
    const record = doc.records.find((r) => r.fingerprint === w.fingerprint);
    assert.equal(record.uses_left, 0);
    for (const edit of [
      (r) => { r.uses_left = 1; },
      (r) => { r.revoked = false; },
      (r) => { r.task_id = 'b'; },
      (r) => { r.uses_left = 1; r.revoked = false; r.task_id = 'b'; },
    ]) {
      const edited = structuredClone(doc);
      edit(edited.records.find((r) => r.fingerprint === w.fingerprint));
      let created;
      assert.throws(() => { created = TokenStore.restore(JSON.stringify(edited), { secret: SECRET, now: clock.now }); },
        sealError(/the snapshot was edited/));
      assert.equal(created, undefined);
    }
    // The same edit in place, keeping every other byte (the text as written).
    const flipped = text.replace('"uses_left":0,"revoked":true', '"uses_left":1,"revoked":false');
    assert.notEqual(flipped, text);
    assert.throws(() => TokenStore.restore(flipped, { secret: SECRET }), sealError(/edited/));
    // The untouched text restores, and the token stays spent and revoked.
    const back = TokenStore.restore(text, { secret: SECRET, now: clock.now });
    throwsCap(() => back.verify(w.bearer, 'fetch_prompt', 'b'), 'ERR_TOKEN_TASK_MISMATCH');
    throwsCap(() => back.verify(w.bearer, 'fetch_prompt', 'a'), 'ERR_TOKEN_REVOKED');
  });

  it('every single byte changed anywhere in the text is refused', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op', { maxUses: 3 });
    store.startTask(op.bearer, { taskId: 't' });
    const text = store.snapshot();
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      const other = String.fromCharCode(c === 0x30 ? 0x31 : c ^ 1);
      const edited = text.slice(0, i) + other + text.slice(i + 1);
      assert.throws(() => TokenStore.restore(edited, { secret: SECRET }), { code: 'ERR_SNAPSHOT_INVALID' }, `byte ${i}`);
    }
  });

  it('another secret: "the secret does not match"', () => {
    const { store } = makeStore();
    store.attachOperator('op');
    assert.throws(() => TokenStore.restore(store.snapshot(), { secret: OTHER_SECRET }),
      sealError(/sealed under another secret: the secret does not match/));
  });

  it('an unsealed (old-shape) snapshot restores only with allowUnsealed: true', () => {
    const { store, clock } = makeStore();
    const op = store.attachOperator('op', { maxUses: 4 });
    const { key_id: _k, mac: _m, ...body } = JSON.parse(store.snapshot());
    const old = JSON.stringify(body);
    assert.throws(() => TokenStore.restore(old, { secret: SECRET }), sealError(/not sealed.*allowUnsealed/));
    assert.throws(() => TokenStore.restore(old, { secret: SECRET, allowUnsealed: false }), sealError(/not sealed/));
    throwsCap(() => TokenStore.restore(old, { secret: SECRET, allowUnsealed: 'yes' }), 'ERR_INVALID_ARGUMENT');
    const back = TokenStore.restore(old, { secret: SECRET, now: clock.now, allowUnsealed: true });
    assert.equal(back.verify(op.bearer, 'heartbeat').usesLeft, 3);
    // A sealed text is checked even when unsealed text is allowed.
    const edited = store.snapshot().replace('"uses_left":4', '"uses_left":9');
    assert.throws(() => TokenStore.restore(edited, { secret: SECRET, allowUnsealed: true }), sealError(/edited/));
    // Re-sealing: snapshot() of the opted-in store is sealed.
    assert.equal(TokenStore.restore(back.snapshot(), { secret: SECRET }).size, 1);
  });

  it('a task at depth >= maxSpawnDepth is refused, sealed or not', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'd0' });
    let parent = 'd0';
    for (let depth = 1; depth < 4; depth++) {
      const w = store.dispatchAttempt(op.bearer, parent);
      parent = store.startTask(w.bearer).taskId;
    }
    const text = store.snapshot();
    assert.equal(TokenStore.restore(text, { secret: SECRET }).tasks().length, 4);
    for (const maxSpawnDepth of [1, 2, 3]) {
      let created;
      assert.throws(() => { created = TokenStore.restore(text, { secret: SECRET, maxSpawnDepth }); },
        sealError(new RegExp(`at depth ${maxSpawnDepth}, but maxSpawnDepth is ${maxSpawnDepth}`)));
      assert.equal(created, undefined);
    }
    // Unsealed and deeper than the default.
    const { key_id: _k, mac: _m, ...body } = JSON.parse(text);
    body.tasks.push({ task_id: 'd4', parent_id: parent, spawn_depth: 4 });
    assert.throws(() => TokenStore.restore(JSON.stringify(body), { secret: SECRET, allowUnsealed: true }),
      sealError(/maxSpawnDepth is 4/));
  });
});

describe('sealed, chained journal lines', () => {
  /** A journaled store after its snapshot: a one-time token minted and spent. */
  function spentOneTime() {
    const { store, clock } = makeStore({ journal: true });
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 't' });
    const snapshot = store.snapshot();
    const w = store.dispatchAttempt(op.bearer, 't', { maxUses: 1 });
    store.verify(w.bearer, 'fetch_prompt', 't');
    store.revoke(op.fingerprint);
    store.startTask(store.attachOperator('op2').bearer, { taskId: 'u' });
    const journal = store.takeJournal();
    const lines = journal.split('\n').slice(0, -1);
    return { store, clock, snapshot, w, journal, lines };
  }
  const restore = (snapshot, journal, clock) => TokenStore.restore(snapshot, { secret: SECRET, now: clock.now }, journal);
  const join = (lines) => lines.map((l) => `${l}\n`).join('');

  it('deleting the consume line is refused (the one-time token is not revived)', () => {
    const { snapshot, clock, w, lines } = spentOneTime();
    const consume = lines.findIndex((l) => JSON.parse(l).op === 'consume');
    assert.ok(consume >= 0 && consume < lines.length - 1);
    const without = join(lines.filter((_, i) => i !== consume));
    assert.throws(() => restore(snapshot, without, clock), sealError(/journal line \d+: the seal does not match/));
    const back = restore(snapshot, join(lines), clock);
    throwsCap(() => back.verify(w.bearer, 'fetch_prompt', 't'), 'ERR_TOKEN_USES_EXHAUSTED');
  });

  it('a duplicated line, a swapped pair, a journal replayed twice: refused', () => {
    const { snapshot, clock, lines, journal } = spentOneTime();
    for (let i = 0; i < lines.length; i++) {
      const dup = [...lines.slice(0, i + 1), lines[i], ...lines.slice(i + 1)];
      assert.throws(() => restore(snapshot, join(dup), clock), { code: 'ERR_SNAPSHOT_INVALID' }, `dup ${i}`);
      if (i + 1 < lines.length) {
        const swapped = [...lines];
        [swapped[i], swapped[i + 1]] = [swapped[i + 1], swapped[i]];
        assert.throws(() => restore(snapshot, join(swapped), clock), { code: 'ERR_SNAPSHOT_INVALID' }, `swap ${i}`);
      }
    }
    assert.throws(() => restore(snapshot, journal + journal, clock), { code: 'ERR_SNAPSHOT_INVALID' });
  });

  it('lines of another store, or after another snapshot, are refused', () => {
    const a = spentOneTime();
    const b = spentOneTime();
    assert.throws(() => restore(a.snapshot, b.journal, a.clock), { code: 'ERR_SNAPSHOT_INVALID' });
    const { store } = makeStore({ journal: true, secret: OTHER_SECRET });
    store.attachOperator('x');
    assert.throws(() => restore(a.snapshot, store.takeJournal(), a.clock), { code: 'ERR_SNAPSHOT_INVALID' });
  });

  it('cutting complete lines off the end looks like a crash, and is accepted', () => {
    const { snapshot, clock, lines } = spentOneTime();
    for (let keep = 0; keep <= lines.length; keep++) {
      assert.ok(restore(snapshot, join(lines.slice(0, keep)), clock));
    }
  });

  it('after a restore the chain goes on: new lines append to the same journal', () => {
    const { snapshot, clock, journal } = spentOneTime();
    const back = TokenStore.restore(snapshot, { secret: SECRET, now: clock.now, journal: true }, journal);
    const op3 = back.attachOperator('op3', { maxUses: 2 });
    back.verify(op3.bearer, 'heartbeat');
    const more = back.takeJournal();
    const again = restore(snapshot, journal + more, clock);
    assert.equal(again.verify(op3.bearer, 'heartbeat').usesLeft, 0);
    // A snapshot starts a new chain: the old lines do not follow it.
    const next = back.snapshot();
    assert.throws(() => restore(next, more, clock), { code: 'ERR_SNAPSHOT_INVALID' });
  });
});
