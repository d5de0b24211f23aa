// TokenStore: every method and getter of js/types.d.cts with good input,
// and the lifecycle of docs/protocol.md (adopt, revoke, revokeTask, remint, purge),
// on an injected clock.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  TokenStore, CapTokenRecord, CapTokenError, SECRET, OTHER_SECRET, T0, makeStore, makeWorld,
  makeClock, throwsCap, decodeBearer, toBearer, fingerprintOf,
} from './helpers.js';
import { stateOf } from './helpers.js';

describe('constructor', () => {
  it('builds an empty store with the documented defaults', () => {
    const store = new TokenStore({ secret: SECRET });
    assert.ok(store instanceof TokenStore);
    assert.equal(store.size, 0);
    assert.deepEqual(store.records(), []);
    assert.deepEqual(store.tasks(), []);
    const { key_id: keyId, mac, ...rest } = JSON.parse(store.snapshot());
    assert.match(keyId, /^[0-9a-f]{16}$/);
    assert.match(mac, /^[0-9a-f]{64}$/);
    assert.deepEqual(rest, { version: 1, format: 'v2', records: [], tasks: [] });
  });

  it('defaults now to the wall clock, in unix seconds', () => {
    const store = new TokenStore({ secret: SECRET });
    const before = Math.floor(Date.now() / 1000);
    const m = store.mint('a', 'worker');
    const after = Math.floor(Date.now() / 1000);
    assert.ok(m.token.issued_at >= before && m.token.issued_at <= after);
    assert.equal(m.token.expire_at - m.token.issued_at, 1800);
  });

  it('accepts every documented option', () => {
    let calls = 0;
    const store = new TokenStore({
      secret: new Uint8Array(64).fill(9),
      format: 'mlua-swarm',
      maxSpawnDepth: 2,
      workerTokenTtlSecs: 60,
      now: () => { calls++; return T0; },
      gate: { observer: ['read_trace'] },
    });
    const m = store.mint('a', 'observer');
    assert.ok(calls > 0, 'now() was called');
    assert.equal(m.token.issued_at, T0);
    assert.equal(m.token.expire_at, T0 + 60);
    assert.equal('v' in m.token, false);
    assert.equal(store.check(m.bearer, 'read_task_state').code, 'ERR_ROLE_VIOLATION');
  });

  it('accepts any Uint8Array view of at least 32 bytes (Buffer included)', () => {
    assert.equal(new TokenStore({ secret: Buffer.alloc(32, 1) }).size, 0);
    const big = new Uint8Array(100).fill(3);
    const a = new TokenStore({ secret: big.subarray(10, 42), now: () => T0 });
    const b = new TokenStore({ secret: new Uint8Array(32).fill(3), now: () => T0 });
    const m = a.mint('x', 'worker');
    assert.equal(b.adopt(m.bearer), m.fingerprint, 'a subarray secret means exactly its bytes');
  });

  it('refuses a secret shorter than 32 bytes, and other bad options', () => {
    throwsCap(() => new TokenStore({ secret: new Uint8Array(31) }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({ secret: new Uint8Array(0) }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({}), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({ secret: 'x'.repeat(32) }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({ secret: new ArrayBuffer(32) }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({ secret: Array(32).fill(1) }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({ secret: new Uint16Array(32) }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({ secret: SECRET, format: 'V2' }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({ secret: SECRET, maxSpawnDepth: 0 }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({ secret: SECRET, workerTokenTtlSecs: 0 }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({ secret: SECRET, now: 5 }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({ secret: SECRET, gate: { admin: ['heartbeat'] } }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({ secret: SECRET, gate: { worker: ['fly'] } }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => new TokenStore({ secret: SECRET, gate: { worker: 'heartbeat' } }), 'ERR_INVALID_ARGUMENT');
  });

  it('reads the secret once: changing the array afterwards changes nothing', () => {
    const secret = new Uint8Array(32).fill(5);
    const store = new TokenStore({ secret, now: () => T0 });
    const m = store.mint('a', 'worker');
    secret.fill(6);
    assert.equal(store.verify(m.bearer, 'fetch_data').fingerprint, m.fingerprint);
  });
});

describe('attachOperator() and mint()', () => {
  it('attachOperator mints an unbound Operator session token', () => {
    const { store } = makeStore();
    const op = store.attachOperator('orchestrator');
    assert.deepEqual(Object.keys(op).sort(), ['bearer', 'fingerprint', 'token']);
    assert.equal(op.token.role, 'operator');
    assert.equal(op.token.agent_id, 'orchestrator');
    assert.deepEqual(op.token.scopes, ['*']);
    assert.equal(op.token.max_uses, null);
    assert.equal(op.token.issued_at, T0);
    assert.equal(op.token.expire_at, T0 + 1800);
    assert.equal(op.fingerprint, fingerprintOf(op.token.nonce));
    assert.deepEqual(decodeBearer(op.bearer), op.token);
    const rec = store.record(op.fingerprint);
    assert.equal(rec.taskId, null);
    assert.equal(rec.usesLeft, null);
    assert.equal(store.size, 1);
  });

  it('attachOperator honours its options', () => {
    const { store } = makeStore();
    const op = store.attachOperator('o', { scopes: ['tasks'], ttlSecs: 5, maxUses: 2, taskId: 'T' });
    assert.deepEqual(op.token.scopes, ['tasks']);
    assert.equal(op.token.expire_at, T0 + 5);
    assert.equal(op.token.max_uses, 2);
    assert.equal(store.record(op.fingerprint).taskId, 'T');
    assert.equal(store.record(op.fingerprint).usesLeft, 2);
  });

  it('mint makes tokens of every role, with options', () => {
    const { store } = makeStore();
    for (const role of ['operator', 'worker', 'observer', 'senior']) {
      const m = store.mint(`${role}-1`, role, { maxUses: 3, scopes: ['a', 'b'], ttlSecs: 100 });
      assert.equal(m.token.role, role);
      assert.equal(m.token.max_uses, 3);
      assert.deepEqual(m.token.scopes, ['a', 'b']);
      assert.equal(m.token.expire_at, T0 + 100);
      assert.equal(store.record(m.fingerprint).usesLeft, 3);
    }
    assert.equal(store.size, 4);
    const unlimited = store.mint('u', 'worker', { maxUses: null, scopes: [] });
    assert.equal(unlimited.token.max_uses, null);
    assert.deepEqual(unlimited.token.scopes, []);
    const bound = store.mint('b', 'worker', { taskId: 'anywhere' });
    assert.equal(store.record(bound.fingerprint).taskId, 'anywhere');
  });

  it('limits: agent id, scopes and their lengths', () => {
    const { store } = makeStore();
    assert.equal(store.mint('a'.repeat(256), 'worker').token.agent_id.length, 256);
    throwsCap(() => store.mint('a'.repeat(257), 'worker'), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => store.mint('', 'worker'), 'ERR_INVALID_ARGUMENT');
    assert.equal(store.mint('a', 'worker', { scopes: Array(32).fill('s') }).token.scopes.length, 32);
    throwsCap(() => store.mint('a', 'worker', { scopes: Array(33).fill('s') }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => store.mint('a', 'worker', { scopes: ['s'.repeat(129)] }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => store.mint('a', 'worker', { scopes: [''] }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => store.mint('a', 'worker', { taskId: '' }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => store.mint('a', 'admin'), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => store.mint('a', 'Worker'), 'ERR_INVALID_ARGUMENT');
    assert.equal(store.mint('a', 'worker', { maxUses: 4294967295 }).token.max_uses, 4294967295);
    throwsCap(() => store.mint('a', 'worker', { maxUses: 4294967296 }), 'ERR_INVALID_ARGUMENT');
  });
});

describe('adopt()', () => {
  it('records a token minted elsewhere with the same secret', () => {
    const clock = makeClock();
    const a = new TokenStore({ secret: SECRET, now: clock.now });
    const b = new TokenStore({ secret: SECRET, now: clock.now });
    const m = a.mint('w', 'worker', { maxUses: 3 });
    throwsCap(() => b.verify(m.bearer, 'fetch_data'), 'ERR_TOKEN_NOT_FOUND', { fingerprint: m.fingerprint });
    assert.equal(b.adopt(m.bearer), m.fingerprint);
    assert.equal(b.size, 1);
    assert.equal(b.record(m.fingerprint).usesLeft, 3);
    assert.equal(b.record(m.fingerprint).taskId, null);
    assert.equal(b.verify(m.bearer, 'fetch_data').usesLeft, 2);
  });

  it('binds to a task when given one', () => {
    const { store } = makeStore();
    const m = makeStore().store.mint('w', 'worker');
    store.adopt(m.bearer, 'T1');
    assert.equal(store.record(m.fingerprint).taskId, 'T1');
    assert.equal(store.verify(m.bearer, 'post_result', 'T1').taskId, 'T1');
  });

  it('adopting a recorded token changes nothing: a spent budget is never reset', () => {
    const { store } = makeStore();
    const m = store.mint('w', 'worker', { maxUses: 2, taskId: 'T' });
    store.verify(m.bearer, 'fetch_data');
    store.revoke(m.fingerprint);
    const before = stateOf(store);
    assert.equal(store.adopt(m.bearer), m.fingerprint);
    assert.equal(store.adopt(m.bearer, 'other'), m.fingerprint);
    assert.equal(stateOf(store), before);
    const rec = store.record(m.fingerprint);
    assert.equal(rec.usesLeft, 1);
    assert.equal(rec.revoked, true);
    assert.equal(rec.taskId, 'T');
  });

  it('refuses what fails steps 1 to 3', () => {
    const { store, clock } = makeStore();
    throwsCap(() => store.adopt('nope'), 'ERR_MALFORMED_TOKEN');
    const foreign = new TokenStore({ secret: OTHER_SECRET, now: clock.now }).mint('w', 'worker');
    throwsCap(() => store.adopt(foreign.bearer), 'ERR_BAD_SIGNATURE');
    const short = makeStore().store.mint('w', 'worker', { ttlSecs: 5 });
    clock.t += 5;
    throwsCap(() => store.adopt(short.bearer), 'ERR_TOKEN_EXPIRED', { fingerprint: short.fingerprint });
    throwsCap(() => store.adopt(foreign.bearer, ''), ['ERR_BAD_SIGNATURE', 'ERR_INVALID_ARGUMENT']);
    assert.equal(store.size, 0);
    // an Operator token is exempt from expiry, so it is adopted however old
    const oldOp = makeStore().store.attachOperator('op', { ttlSecs: 1 });
    clock.t += 1e6;
    assert.equal(store.adopt(oldOp.bearer), oldOp.fingerprint);
  });

  it('adopting does not need the verb gate: any role is recorded', () => {
    const { store } = makeStore();
    const peer = makeStore().store;
    for (const role of ['operator', 'worker', 'observer', 'senior']) {
      const m = peer.mint(role, role);
      assert.equal(store.adopt(m.bearer), m.fingerprint);
    }
    assert.equal(store.size, 4);
  });
});

describe('startTask(), verify(), check()', () => {
  it('startTask with a chosen id, and with a generated one', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    assert.deepEqual(store.startTask(op.bearer, { taskId: 'mine' }), { taskId: 'mine', parentId: null, spawnDepth: 0 });
    const gen = store.startTask(op.bearer, {});
    const gen2 = store.startTask(op.bearer, { taskId: undefined });
    const gen3 = store.startTask(op.bearer, null);
    for (const t of [gen, gen2, gen3]) {
      assert.equal(typeof t.taskId, 'string');
      assert.ok(t.taskId.length > 0);
      assert.deepEqual(store.task(t.taskId), t);
    }
    assert.equal(new Set([gen.taskId, gen2.taskId, gen3.taskId]).size, 3);
    throwsCap(() => store.startTask(op.bearer, { taskId: 'mine' }), 'ERR_INVALID_ARGUMENT');
  });

  it('verify returns a Grant and spends one use', () => {
    const { store } = makeStore();
    const m = store.mint('agent', 'worker', { maxUses: 2, scopes: ['s1'], taskId: 'T' });
    const g = store.verify(m.bearer, 'fetch_prompt', 'T');
    assert.deepEqual(g, { fingerprint: m.fingerprint, agentId: 'agent', role: 'worker', scopes: ['s1'], taskId: 'T', usesLeft: 1 });
    assert.equal(store.record(m.fingerprint).usesLeft, 1);
  });

  it('verify on an unlimited token reports usesLeft null and changes nothing', () => {
    const { store, op } = makeWorld();
    const before = stateOf(store);
    for (let i = 0; i < 100; i++) assert.equal(store.verify(op.bearer, 'heartbeat').usesLeft, null);
    assert.equal(stateOf(store), before);
  });
});

describe('revoke() and revokeTask()', () => {
  it('revoke: true when live, false when already revoked or unknown', () => {
    const { store } = makeStore();
    const m = store.mint('w', 'worker');
    assert.equal(store.revoke(m.fingerprint), true);
    assert.equal(store.revoke(m.fingerprint), false);
    assert.equal(store.revoke('0'.repeat(64)), false);
    assert.equal(store.record(m.fingerprint).revoked, true);
    throwsCap(() => store.verify(m.bearer, 'fetch_data'), 'ERR_TOKEN_REVOKED', { fingerprint: m.fingerprint });
    throwsCap(() => store.revoke(m.fingerprint.toUpperCase()), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => store.revoke(m.fingerprint.slice(1)), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => store.revoke(m.token.nonce), 'ERR_INVALID_ARGUMENT');
  });

  it('revokeTask revokes every token bound to the task and its descendants only', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'A' });
    store.startTask(op.bearer, { taskId: 'B' });
    const wa = store.dispatchAttempt(op.bearer, 'A');
    const wa2 = store.dispatchAttempt(op.bearer, 'A');
    const a1 = store.startTask(wa.bearer).taskId; // a Worker's child: its id is made by the store
    const wa1 = store.dispatchAttempt(op.bearer, a1);
    const a11 = store.startTask(wa1.bearer).taskId;
    const wa11 = store.dispatchAttempt(op.bearer, a11);
    const wb = store.dispatchAttempt(op.bearer, 'B');
    const already = store.dispatchAttempt(op.bearer, a1);
    store.revoke(already.fingerprint);

    assert.equal(store.revokeTask(a1), 2, 'A1 and A11, minus the one already revoked');
    assert.equal(store.record(wa1.fingerprint).revoked, true);
    assert.equal(store.record(wa11.fingerprint).revoked, true);
    assert.equal(store.record(wa.fingerprint).revoked, false, 'the parent task is untouched');
    assert.equal(store.revokeTask('A'), 2);
    assert.equal(store.record(wa2.fingerprint).revoked, true);
    assert.equal(store.record(wb.fingerprint).revoked, false, 'a sibling tree is untouched');
    assert.equal(store.record(op.fingerprint).revoked, false, 'unbound tokens are untouched');
    assert.equal(store.revokeTask('A'), 0);
    assert.equal(store.revokeTask('unknown'), 0);
    // tasks themselves stay
    assert.equal(store.tasks().length, 4);
  });

  it('revokeTask reaches tokens bound to a task the store does not track', () => {
    const { store } = makeStore();
    const a = store.mint('w', 'worker', { taskId: 'ext' });
    const b = store.mint('w', 'worker', { taskId: 'ext' });
    assert.equal(store.revokeTask('ext'), 2);
    throwsCap(() => store.verify(a.bearer, 'fetch_prompt', 'ext'), 'ERR_TOKEN_REVOKED');
    throwsCap(() => store.verify(b.bearer, 'fetch_prompt', 'ext'), 'ERR_TOKEN_REVOKED');
  });
});

describe('remint()', () => {
  it('replaces an expired Worker token: same agent, scopes and task, max_uses = uses left, fresh expiry', () => {
    const { store, clock } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'T' });
    const late = store.dispatchAttempt(op.bearer, 'T', { maxUses: 5, scopes: ['read'], ttlSecs: 30 });
    store.verify(late.bearer, 'fetch_prompt', 'T');
    store.verify(late.bearer, 'fetch_prompt', 'T');
    clock.t = T0 + 50; // expired 20 s ago, within one lifetime (30 s)
    throwsCap(() => store.verify(late.bearer, 'fetch_prompt', 'T'), 'ERR_TOKEN_EXPIRED');
    const fresh = store.remint(late.bearer);
    assert.equal(fresh.token.role, 'worker');
    assert.equal(fresh.token.agent_id, late.token.agent_id);
    assert.deepEqual(fresh.token.scopes, ['read']);
    assert.equal(fresh.token.max_uses, 3);
    assert.equal(fresh.token.issued_at, T0 + 50);
    assert.equal(fresh.token.expire_at, T0 + 50 + 30, 'the same lifetime, counted from now');
    assert.notEqual(fresh.fingerprint, late.fingerprint);
    assert.notEqual(fresh.token.nonce, late.token.nonce);
    const rec = store.record(fresh.fingerprint);
    assert.equal(rec.taskId, 'T');
    assert.equal(rec.usesLeft, 3);
    assert.equal(store.verify(fresh.bearer, 'fetch_prompt', 'T').usesLeft, 2);
    throwsCap(() => store.verify(fresh.bearer, 'fetch_prompt', 'U'), 'ERR_TOKEN_TASK_MISMATCH');
    // the old record is retired, so its power is not doubled
    assert.equal(store.record(late.fingerprint).revoked, true);
    throwsCap(() => store.remint(late.bearer), 'ERR_TOKEN_REVOKED');
  });

  it('refuses a token expired more than one lifetime ago, changing nothing', () => {
    const { store, clock } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'T' });
    const a = store.dispatchAttempt(op.bearer, 'T', { maxUses: 5, ttlSecs: 30 });
    const b = store.dispatchAttempt(op.bearer, 'T', { maxUses: 5, ttlSecs: 30 });
    clock.t = T0 + 30 + 31; // expired 31 s ago: more than its 30 s lifetime
    const before = stateOf(store);
    throwsCap(() => store.remint(a.bearer), 'ERR_TOKEN_EXPIRED', { fingerprint: a.fingerprint });
    assert.equal(stateOf(store), before);
    assert.equal(store.record(a.fingerprint).revoked, false);
    clock.t = T0 + 30 + 30; // exactly one lifetime ago: still reminted
    const fresh = store.remint(b.bearer);
    assert.equal(fresh.token.expire_at - fresh.token.issued_at, 30);
    clock.t = T0 + 1000; // long expired
    throwsCap(() => store.remint(a.bearer), 'ERR_TOKEN_EXPIRED');
  });

  it('works on a live token too, and an unlimited one stays unlimited', () => {
    const { store } = makeStore();
    const w = store.mint('w', 'worker', { taskId: 'X' });
    const again = store.remint(w.bearer);
    assert.equal(again.token.max_uses, null);
    assert.equal(store.record(again.fingerprint).taskId, 'X');
    throwsCap(() => store.verify(w.bearer, 'fetch_data'), 'ERR_TOKEN_REVOKED');
  });

  it('refuses a bad signature, no record, a revoked or exhausted record, and non-Workers', () => {
    const { store, clock } = makeStore();
    const foreign = new TokenStore({ secret: OTHER_SECRET, now: clock.now }).mint('w', 'worker');
    throwsCap(() => store.remint(foreign.bearer), 'ERR_BAD_SIGNATURE');
    const forged = toBearer({ ...decodeBearer(store.mint('w', 'worker').bearer), max_uses: 100 });
    throwsCap(() => store.remint(forged), 'ERR_BAD_SIGNATURE');
    throwsCap(() => store.remint('garbage'), 'ERR_MALFORMED_TOKEN');
    const elsewhere = makeStore().store.mint('w', 'worker');
    throwsCap(() => store.remint(elsewhere.bearer), 'ERR_TOKEN_NOT_FOUND', { fingerprint: elsewhere.fingerprint });
    const rev = store.mint('w', 'worker');
    store.revoke(rev.fingerprint);
    throwsCap(() => store.remint(rev.bearer), 'ERR_TOKEN_REVOKED');
    const ex = store.mint('w', 'worker', { maxUses: 1 });
    store.verify(ex.bearer, 'fetch_data');
    throwsCap(() => store.remint(ex.bearer), 'ERR_TOKEN_USES_EXHAUSTED');
    for (const role of ['operator', 'observer', 'senior']) {
      throwsCap(() => store.remint(store.mint('x', role).bearer), 'ERR_INVALID_ARGUMENT');
    }
  });

  it('a purged expired token cannot be reminted', () => {
    const { store, clock } = makeStore();
    const w = store.mint('w', 'worker', { ttlSecs: 10 });
    clock.t += 10;
    assert.equal(store.purgeExpired(), 1);
    throwsCap(() => store.remint(w.bearer), 'ERR_TOKEN_NOT_FOUND');
  });
});

describe('purgeExpired()', () => {
  it('removes the records of expired tokens; Operators stay', () => {
    const { store, clock } = makeStore();
    const op = store.attachOperator('op', { ttlSecs: 10 });
    const w10 = store.mint('w', 'worker', { ttlSecs: 10 });
    const o20 = store.mint('o', 'observer', { ttlSecs: 20 });
    const s30 = store.mint('s', 'senior', { ttlSecs: 30 });
    assert.equal(store.purgeExpired(), 0);
    clock.t = T0 + 9;
    assert.equal(store.purgeExpired(), 0);
    clock.t = T0 + 10; // now >= expire_at is expired
    assert.equal(store.purgeExpired(), 1);
    assert.equal(store.record(w10.fingerprint), undefined);
    assert.equal(store.size, 3);
    clock.t = T0 + 1e9;
    assert.equal(store.purgeExpired(), 2);
    assert.equal(store.record(o20.fingerprint), undefined);
    assert.equal(store.record(s30.fingerprint), undefined);
    assert.equal(store.size, 1);
    assert.ok(store.record(op.fingerprint) instanceof CapTokenRecord);
    assert.equal(store.verify(op.bearer, 'heartbeat').role, 'operator');
    assert.equal(store.purgeExpired(), 0);
    throwsCap(() => store.verify(w10.bearer, 'fetch_data'), 'ERR_TOKEN_EXPIRED');
  });

  it('purging revoked or exhausted tokens only when expired; tasks stay', () => {
    const { store, clock } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'T' });
    const w = store.dispatchAttempt(op.bearer, 'T', { maxUses: 1 });
    store.verify(w.bearer, 'fetch_data');
    assert.equal(store.purgeExpired(), 0);
    clock.t += 1800;
    assert.equal(store.purgeExpired(), 1);
    assert.deepEqual(store.tasks(), [{ taskId: 'T', parentId: null, spawnDepth: 0 }]);
  });
});

describe('reading: record(), task(), records(), tasks(), size', () => {
  it('record gives a CapTokenRecord or undefined', () => {
    const { store, worker, revoked, exhausted } = makeWorld();
    const r = store.record(worker.fingerprint);
    assert.ok(r instanceof CapTokenRecord);
    assert.equal(r.fingerprint, worker.fingerprint);
    assert.equal(r.usesLeft, 10);
    assert.equal(r.revoked, false);
    assert.equal(r.taskId, 'root');
    assert.deepEqual(r.token, { ...worker.token, nonce: '' });
    assert.equal(store.record(revoked.fingerprint).revoked, true);
    assert.equal(store.record(exhausted.fingerprint).usesLeft, 0);
    assert.equal(store.record('f'.repeat(64)), undefined);
  });

  it('a record is a copy: spending or revoking it leaves the store alone', () => {
    const { store, worker } = makeWorld();
    const before = stateOf(store);
    const r = store.record(worker.fingerprint);
    r.consume();
    r.revoke();
    assert.equal(r.usesLeft, 9);
    assert.equal(stateOf(store), before);
    assert.equal(store.record(worker.fingerprint).usesLeft, 10);
    assert.equal(store.record(worker.fingerprint).revoked, false);
    r.free();
  });

  it('task gives a TaskInfo or undefined', () => {
    const { store } = makeWorld();
    assert.deepEqual(store.task('root'), { taskId: 'root', parentId: null, spawnDepth: 0 });
    assert.deepEqual(store.task('child'), { taskId: 'child', parentId: 'root', spawnDepth: 1 });
    assert.equal(store.task('nope'), undefined);
  });

  it('records lists CapTokenRecordJSON in fingerprint order; tasks in depth then id order', () => {
    const world = makeWorld();
    const { store } = world;
    const records = store.records();
    assert.equal(records.length, store.size);
    assert.equal(store.size, 8);
    const fps = records.map((r) => r.fingerprint);
    assert.deepEqual(fps, [...fps].sort());
    for (const r of records) {
      assert.deepEqual(Object.keys(r).sort(), ['fingerprint', 'revoked', 'task_id', 'token', 'uses_left']);
      assert.equal(r.token.nonce, '');
      assert.deepEqual(r, store.record(r.fingerprint).toJSON());
    }
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'a-root' });
    store.startTask(op.bearer, { taskId: 'z-root' });
    assert.deepEqual(store.tasks().map((t) => [t.spawnDepth, t.taskId]), [
      [0, 'a-root'], [0, 'root'], [0, 'z-root'], [1, 'child'],
    ]);
  });

  it('size counts records', () => {
    const { store } = makeStore();
    assert.equal(store.size, 0);
    store.mint('a', 'worker');
    store.mint('b', 'worker');
    assert.equal(store.size, 2);
    assert.equal(typeof store.size, 'number');
  });
});

describe('the injected clock', () => {
  it('is read on every decision', () => {
    const { store, clock } = makeStore();
    const w = store.mint('w', 'worker', { ttlSecs: 100 });
    for (const [t, ok] of [[T0 + 99, true], [T0 + 100, false], [T0 + 50, true], [T0 + 1e6, false], [T0 - 1e6, true]]) {
      clock.t = t;
      assert.equal(store.check(w.bearer, 'fetch_data').allowed, ok, `at ${t}`);
    }
  });

  it('fractional seconds are truncated', () => {
    const { store, clock } = makeStore({ start: T0 + 0.9 });
    const w = store.mint('w', 'worker', { ttlSecs: 10 });
    assert.equal(w.token.issued_at, T0);
    clock.t = T0 + 9.99;
    assert.equal(store.check(w.bearer, 'fetch_data').allowed, true);
  });

  it('a clock that throws or returns garbage fails closed, with CapTokenErrors only', () => {
    let mode = 'ok';
    const bad = {
      throws: () => { throw new Error('clock broke'); },
      nan: () => NaN,
      negative: () => -1,
      string: () => '1764150000',
      bigint: () => 1764150000n,
      symbol: () => Symbol('t'),
      undef: () => undefined,
      huge: () => 2 ** 60,
    };
    const store = new TokenStore({ secret: SECRET, now: () => (mode === 'ok' ? T0 : bad[mode]()) });
    const op = store.attachOperator('op');
    const w = store.mint('w', 'worker');
    for (const name of Object.keys(bad)) {
      mode = name;
      const before = stateOf(store);
      throwsCap(() => store.verify(w.bearer, 'fetch_data'), 'ERR_TOKEN_EXPIRED');
      throwsCap(() => store.mint('x', 'worker'), 'ERR_INVALID_ARGUMENT');
      assert.equal(store.verify(op.bearer, 'heartbeat').role, 'operator', 'Operators are exempt');
      assert.equal(stateOf(store), before);
    }
    mode = 'ok';
    assert.equal(store.verify(w.bearer, 'fetch_data').role, 'worker');
  });

  it('a clock that calls back into the store does not break it', () => {
    let store;
    let reentered = 0;
    store = new TokenStore({
      secret: SECRET,
      now: () => {
        try {
          reentered++;
          store.size; // re-entrant use while the store is busy
        } catch (e) {
          // a re-entrant call may be refused; it must not corrupt anything
        }
        return T0;
      },
    });
    let op;
    try {
      op = store.attachOperator('op');
    } catch (e) {
      assert.ok(e instanceof CapTokenError, `${e?.constructor?.name}: ${e?.message}`);
    }
    assert.ok(reentered > 0);
    const plain = new TokenStore({ secret: SECRET, now: () => T0 });
    assert.equal(plain.attachOperator('ok').token.role, 'operator');
    if (op) assert.equal(store.verify(op.bearer, 'heartbeat').role, 'operator');
  });

  it('a clock whose re-entrant call throws makes the outer call fail closed', () => {
    let reenter = false;
    let store;
    store = new TokenStore({
      secret: SECRET,
      now: () => {
        if (reenter) store.mint('inner', 'worker'); // throws: the store is busy
        return T0;
      },
    });
    const op = store.attachOperator('op');
    const w = store.mint('w', 'worker', { maxUses: 2 });
    const before = stateOf(store);
    reenter = true;
    throwsCap(() => store.mint('outer', 'worker'), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => store.verify(w.bearer, 'fetch_data'), 'ERR_TOKEN_EXPIRED');
    reenter = false;
    assert.equal(stateOf(store), before);
    assert.equal(store.verify(w.bearer, 'fetch_data').usesLeft, 1);
    assert.equal(store.verify(op.bearer, 'heartbeat').role, 'operator');
  });
});

describe('free()', () => {
  it('releases a store; other stores keep working', () => {
    const a = new TokenStore({ secret: SECRET, now: () => T0 });
    const b = new TokenStore({ secret: SECRET, now: () => T0 });
    const m = a.mint('w', 'worker');
    b.adopt(m.bearer);
    assert.equal(a.free(), undefined);
    assert.equal(b.verify(m.bearer, 'fetch_data').fingerprint, m.fingerprint);
    // Use after free is refused with an exception, not a crash.
    assert.throws(() => a.verify(m.bearer, 'fetch_data'));
    assert.throws(() => a.size);
    const c = new TokenStore({ secret: SECRET, now: () => T0 });
    assert.equal(c.size, 0);
    b.free();
    c.free();
  });

  it('many stores can be built and freed', () => {
    for (let i = 0; i < 200; i++) {
      const s = new TokenStore({ secret: SECRET, now: () => T0 });
      s.attachOperator('op');
      s.free();
    }
  });
});
