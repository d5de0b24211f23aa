// The journal (js/types.d.cts: StoreOptions.journal, takeJournal(), and
// restore's third argument): every state change as NDJSON, no nonce, and a
// snapshot plus the journal written after it rebuilds the store exactly.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TokenStore, SECRET, VERBS, makeStore, throwsCap, assertNoNonce } from './helpers.js';

function canonical(text) {
  const doc = JSON.parse(text);
  // The MAC covers the records in the order they were written.
  delete doc.mac;
  doc.records.sort((a, b) => (a.fingerprint < b.fingerprint ? -1 : 1));
  doc.tasks.sort((a, b) => (a.task_id < b.task_id ? -1 : 1));
  return doc;
}

function lines(journal) {
  return journal.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

describe('journal', () => {
  it('is empty unless the store was made with journal: true', () => {
    for (const journal of [undefined, false]) {
      const { store } = makeStore(journal === undefined ? {} : { journal });
      const op = store.attachOperator('op', { maxUses: 5 });
      store.startTask(op.bearer, { taskId: 'T' });
      assert.equal(store.takeJournal(), '');
    }
  });

  it('records every state change as JSON lines, without nonces, once', () => {
    const { store, clock } = makeStore({ journal: true });
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'T' });
    const w = store.dispatchAttempt(op.bearer, 'T', { maxUses: 3, ttlSecs: 10 });
    store.verify(w.bearer, 'fetch_prompt', 'T');
    store.verify(op.bearer, 'heartbeat'); // unlimited: no state change
    store.revoke(w.fingerprint);
    clock.t += 10;
    store.purgeExpired();
    const text = store.takeJournal();
    assert.equal(typeof text, 'string');
    assertNoNonce(text, [op, w]);
    const events = lines(text);
    assert.ok(events.length >= 5, text);
    for (const e of events) assert.equal(typeof e.op, 'string');
    assert.equal(store.takeJournal(), '', 'taken once');
    // Denied calls write nothing.
    throwsCap(() => store.verify(w.bearer, 'fetch_prompt', 'T'), ['ERR_TOKEN_EXPIRED', 'ERR_TOKEN_NOT_FOUND']);
    throwsCap(() => store.dispatchAttempt(op.bearer, 'missing'), 'ERR_TASK_NOT_FOUND');
    assert.equal(store.takeJournal(), '');
  });

  it('a snapshot plus the journal after it rebuilds the store exactly', () => {
    const { store, clock } = makeStore({ journal: true });
    const op = store.attachOperator('op', { maxUses: 50 });
    store.startTask(op.bearer, { taskId: 'root' });
    const w = store.dispatchAttempt(op.bearer, 'root', { maxUses: 5 });
    const snapshot = store.snapshot();
    store.takeJournal(); // everything so far is in the snapshot
    store.verify(w.bearer, 'fetch_prompt', 'root');
    // A Worker's child task; its id is made by the store, the Operator names this one.
    store.startTask(w.bearer);
    const child = store.startTask(op.bearer, { parentId: 'root', taskId: 'child' });
    const cw = store.dispatchAttempt(op.bearer, child.taskId, { maxUses: 1, ttlSecs: 5 });
    const obs = store.mint('obs', 'observer', { maxUses: 2 });
    store.verify(obs.bearer, 'read_trace');
    const gone = store.mint('gone', 'worker', { taskId: 'child' });
    store.revokeTask('child');
    const peer = makeStore().store.mint('peer', 'senior', { maxUses: 4 });
    store.adopt(peer.bearer);
    store.verify(peer.bearer, 'pause_loop');
    const fresh = store.remint(w.bearer);
    clock.t += 5;
    store.purgeExpired();
    const journal = store.takeJournal();

    const restored = TokenStore.restore(snapshot, { secret: SECRET, now: clock.now }, journal);
    assert.deepEqual(canonical(restored.snapshot()), canonical(store.snapshot()));
    assert.deepEqual(restored.records(), store.records());
    assert.deepEqual(restored.tasks(), store.tasks());
    for (const m of [op, w, cw, obs, gone, peer, fresh]) {
      for (const verb of VERBS) {
        for (const task of [undefined, 'root', 'child']) {
          assert.deepEqual(restored.check(m.bearer, verb, task), store.check(m.bearer, verb, task));
        }
      }
    }
    // An empty journal, or none, is the snapshot alone.
    const plain = TokenStore.restore(snapshot, { secret: SECRET, now: clock.now });
    assert.deepEqual(canonical(TokenStore.restore(snapshot, { secret: SECRET }, '').snapshot()), canonical(plain.snapshot()));
  });

  it('a restored store keeps journaling when asked to', () => {
    const { store, clock } = makeStore();
    const op = store.attachOperator('op', { maxUses: 3 });
    const restored = TokenStore.restore(store.snapshot(), { secret: SECRET, now: clock.now, journal: true });
    restored.verify(op.bearer, 'heartbeat');
    assert.ok(lines(restored.takeJournal()).length >= 1);
  });

  it('a corrupted journal is ERR_SNAPSHOT_INVALID and creates nothing', () => {
    const { store, clock } = makeStore({ journal: true });
    const op = store.attachOperator('op', { maxUses: 3 });
    const snapshot = store.snapshot();
    store.takeJournal();
    store.verify(op.bearer, 'heartbeat');
    const journal = store.takeJournal();
    const unknownFp = JSON.stringify({ op: 'consume', fingerprint: 'e'.repeat(64) });
    // The snapshot without its seal, so that the unsealed lines below are
    // checked for what they say, not only for their missing seal.
    const { key_id: _k, mac: _m, ...body } = JSON.parse(snapshot);
    const unsealed = JSON.stringify(body);
    for (const bad of [
      'garbage',
      '{"op":"explode"}',
      '[]',
      `${journal}{`,
      unknownFp,
      JSON.stringify({ op: 'consume', fingerprint: 'XYZ' }),
      JSON.stringify({ op: 'task', task_id: 'orphan', parent_id: 'ghost', spawn_depth: 1 }),
    ]) {
      let created;
      throwsCap(() => { created = TokenStore.restore(snapshot, { secret: SECRET, now: clock.now }, bad); }, 'ERR_SNAPSHOT_INVALID');
      assert.equal(created, undefined);
      throwsCap(() => {
        created = TokenStore.restore(unsealed, { secret: SECRET, now: clock.now, allowUnsealed: true }, bad);
      }, 'ERR_SNAPSHOT_INVALID');
      assert.equal(created, undefined);
    }
  });
});
