// CapTokenRecord: the seed type. Constructors, getters, consume semantics,
// JSON shapes (with and without fingerprint), and never handing back a nonce.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CapTokenRecord, T0, makeStore, throwsCap, fingerprintOf } from './helpers.js';

function minted(options = {}) {
  const { store } = makeStore();
  return store.mint('agent-7', 'worker', options);
}

describe('CapTokenRecord.fromToken / fromWorkerToken', () => {
  it('fromToken: uses_left = max_uses, not revoked, no task, fingerprint of the nonce', () => {
    const m = minted({ maxUses: 3 });
    const r = CapTokenRecord.fromToken(m.token);
    assert.ok(r instanceof CapTokenRecord);
    assert.equal(r.usesLeft, 3);
    assert.equal(r.revoked, false);
    assert.equal(r.taskId, null);
    assert.equal(r.fingerprint, m.fingerprint);
    assert.equal(r.fingerprint, fingerprintOf(m.token.nonce));
    assert.deepEqual(r.token, { ...m.token, nonce: '' }, 'the nonce is never handed back');
    const u = CapTokenRecord.fromToken(minted().token);
    assert.equal(u.usesLeft, null);
  });

  it('fromWorkerToken binds the task', () => {
    const m = minted({ maxUses: 1 });
    const r = CapTokenRecord.fromWorkerToken(m.token, 'task-9');
    assert.equal(r.taskId, 'task-9');
    assert.equal(r.usesLeft, 1);
    assert.equal(r.revoked, false);
    assert.equal(r.fingerprint, m.fingerprint);
  });

  it('accepts a hand-built token of either format', () => {
    const base = {
      agent_id: 'a', role: 'senior', scopes: ['*'], issued_at: T0, expire_at: T0 + 1,
      max_uses: 0, nonce: '0123456789abcdef0123456789abcdef', sig_hex: 'ab'.repeat(32),
    };
    assert.equal(CapTokenRecord.fromToken(base).usesLeft, 0);
    assert.equal(CapTokenRecord.fromToken({ v: 2, ...base }).token.v, 2);
    assert.equal('v' in CapTokenRecord.fromToken(base).token, false);
  });

  it('refuses what is not a CapToken', () => {
    const m = minted();
    const bad = [
      {}, { ...m.token, role: 'admin' }, { ...m.token, nonce: 'short' }, { ...m.token, sig_hex: 'x' },
      { ...m.token, max_uses: -1 }, { ...m.token, max_uses: 1.5 }, { ...m.token, issued_at: 2 ** 53 },
      { ...m.token, scopes: 'a' }, { ...m.token, agent_id: 5 }, { ...m.token, extra: 1 }, { ...m.token, v: 3 },
      { ...m.token, nonce: '' },
    ];
    for (const t of bad) throwsCap(() => CapTokenRecord.fromToken(t), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => CapTokenRecord.fromWorkerToken(m.token, ''), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => CapTokenRecord.fromWorkerToken(m.token), 'ERR_INVALID_ARGUMENT');
  });
});

describe('consume / canConsume / revoke', () => {
  it('a limited record counts down to ERR_TOKEN_USES_EXHAUSTED', () => {
    const m = minted({ maxUses: 2 });
    const r = CapTokenRecord.fromToken(m.token);
    assert.equal(r.canConsume(), true);
    assert.equal(r.consume(), undefined);
    assert.equal(r.usesLeft, 1);
    r.consume();
    assert.equal(r.usesLeft, 0);
    assert.equal(r.canConsume(), false);
    throwsCap(() => r.consume(), 'ERR_TOKEN_USES_EXHAUSTED', { fingerprint: m.fingerprint });
    assert.equal(r.usesLeft, 0);
  });

  it('a one-time record consumes once', () => {
    const r = CapTokenRecord.fromToken(minted({ maxUses: 1 }).token);
    r.consume();
    throwsCap(() => r.consume(), 'ERR_TOKEN_USES_EXHAUSTED');
  });

  it('an unlimited record always consumes', () => {
    const r = CapTokenRecord.fromToken(minted().token);
    for (let i = 0; i < 1000; i++) r.consume();
    assert.equal(r.usesLeft, null);
    assert.equal(r.canConsume(), true);
  });

  it('revoked fails with ERR_TOKEN_REVOKED whatever the uses left', () => {
    for (const maxUses of [null, 0, 5]) {
      const m = minted({ maxUses });
      const r = CapTokenRecord.fromToken(m.token);
      assert.equal(r.revoke(), undefined);
      assert.equal(r.revoked, true);
      assert.equal(r.canConsume(), false);
      throwsCap(() => r.consume(), 'ERR_TOKEN_REVOKED', { fingerprint: m.fingerprint });
      assert.equal(r.usesLeft, maxUses, 'nothing spent');
      r.revoke(); // idempotent
      assert.equal(r.revoked, true);
    }
  });

  it('canConsume spends nothing', () => {
    const r = CapTokenRecord.fromToken(minted({ maxUses: 1 }).token);
    for (let i = 0; i < 10; i++) assert.equal(r.canConsume(), true);
    assert.equal(r.usesLeft, 1);
  });
});

describe('JSON', () => {
  it('toJSON is the seed shape plus the fingerprint, without the nonce', () => {
    const m = minted({ maxUses: 4 });
    const r = CapTokenRecord.fromWorkerToken(m.token, 'T');
    r.consume();
    const j = r.toJSON();
    assert.deepEqual(j, {
      token: { ...m.token, nonce: '' }, uses_left: 3, revoked: false, task_id: 'T', fingerprint: m.fingerprint,
    });
    assert.deepEqual(JSON.parse(JSON.stringify(r)), j, 'JSON.stringify uses toJSON');
    assert.ok(!JSON.stringify(r).includes(m.token.nonce));
    const unbound = CapTokenRecord.fromToken(minted().token).toJSON();
    assert.equal(unbound.task_id, null);
    assert.equal(unbound.uses_left, null);
  });

  it('fromJSON takes the object, or its text, and round-trips', () => {
    const m = minted({ maxUses: 4 });
    const r = CapTokenRecord.fromWorkerToken(m.token, 'T');
    r.consume();
    r.revoke();
    for (const input of [r.toJSON(), JSON.stringify(r)]) {
      const back = CapTokenRecord.fromJSON(input);
      assert.deepEqual(back.toJSON(), r.toJSON());
      assert.equal(back.fingerprint, m.fingerprint);
      assert.equal(back.usesLeft, 3);
      assert.equal(back.revoked, true);
      assert.equal(back.taskId, 'T');
      throwsCap(() => back.consume(), 'ERR_TOKEN_REVOKED');
    }
  });

  it('fromJSON takes the seed shape: nonce in the token, no fingerprint, task_id missing', () => {
    const m = minted({ maxUses: 2 });
    const seed = { token: m.token, uses_left: 1, revoked: false };
    const r = CapTokenRecord.fromJSON(seed);
    assert.equal(r.fingerprint, m.fingerprint);
    assert.equal(r.taskId, null);
    assert.equal(r.usesLeft, 1);
    assert.equal(r.token.nonce, '', 'the nonce is dropped');
    const fromText = CapTokenRecord.fromJSON(JSON.stringify({ ...seed, task_id: null }));
    assert.equal(fromText.fingerprint, m.fingerprint);
    const withFp = CapTokenRecord.fromJSON({ ...seed, task_id: 'X', fingerprint: m.fingerprint });
    assert.equal(withFp.taskId, 'X');
  });

  it('fromJSON takes records read back from a store', () => {
    const { store } = makeStore();
    const w = store.mint('w', 'worker', { maxUses: 2, taskId: 'T' });
    store.verify(w.bearer, 'fetch_data');
    for (const j of store.records()) {
      const r = CapTokenRecord.fromJSON(j);
      assert.deepEqual(r.toJSON(), j);
    }
  });

  it('fromJSON refuses inconsistent or incomplete records', () => {
    const m = minted({ maxUses: 2 });
    const stored = CapTokenRecord.fromToken(m.token).toJSON();
    const cases = {
      'no fingerprint and no nonce': { ...stored, fingerprint: undefined },
      'fingerprint not matching the nonce': { token: m.token, uses_left: 2, revoked: false, fingerprint: 'a'.repeat(64) },
      'uppercase fingerprint': { ...stored, fingerprint: stored.fingerprint.toUpperCase() },
      'uses_left above max_uses': { ...stored, uses_left: 3 },
      'uses_left null for a limited token': { ...stored, uses_left: null },
      'uses_left negative': { ...stored, uses_left: -1 },
      'revoked missing': { token: stored.token, uses_left: 2, fingerprint: stored.fingerprint },
      'revoked not boolean': { ...stored, revoked: 1 },
      'token missing': { uses_left: 2, revoked: false, fingerprint: stored.fingerprint },
      'token bad': { ...stored, token: { ...stored.token, role: 'root' } },
      'empty task_id': { ...stored, task_id: '' },
      'task_id a number': { ...stored, task_id: 5 },
    };
    for (const [name, value] of Object.entries(cases)) {
      assert.doesNotThrow(() => throwsCap(() => CapTokenRecord.fromJSON(value), 'ERR_INVALID_ARGUMENT'), name);
      throwsCap(() => CapTokenRecord.fromJSON(JSON.stringify(value)), 'ERR_INVALID_ARGUMENT');
    }
    const unlimited = CapTokenRecord.fromToken(minted().token).toJSON();
    throwsCap(() => CapTokenRecord.fromJSON({ ...unlimited, uses_left: 1 }), 'ERR_INVALID_ARGUMENT');
    for (const text of ['', '{', 'null', '[]', '"record"', '42']) {
      throwsCap(() => CapTokenRecord.fromJSON(text), 'ERR_INVALID_ARGUMENT');
    }
  });
});

describe('free()', () => {
  it('releases the record; other records are unaffected', () => {
    const m = minted({ maxUses: 2 });
    const a = CapTokenRecord.fromToken(m.token);
    const b = CapTokenRecord.fromToken(m.token);
    assert.equal(a.free(), undefined);
    b.consume();
    assert.equal(b.usesLeft, 1);
    assert.throws(() => a.consume());
    b.free();
  });
});
