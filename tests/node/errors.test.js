// Bad input: every argument of every method probed with wrong types and
// garbage. Each probe must throw a CapTokenError (ERR_INVALID_ARGUMENT, or
// ERR_MALFORMED_TOKEN for a string bearer that is not a token, or
// ERR_SNAPSHOT_INVALID for a string snapshot that is not one), never a
// TypeError or a wasm RuntimeError, and leave the store's snapshot()
// byte-identical and the store working.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  TokenStore, CapTokenRecord, CapTokenError, SECRET, T0, BAD_VALUES, HUGE, makeWorld, makeStore,
} from './helpers.js';
import { stateOf, withoutSeal } from './helpers.js';

const INVALID = ['ERR_INVALID_ARGUMENT'];
const BEARER = ['ERR_INVALID_ARGUMENT', 'ERR_MALFORMED_TOKEN'];
const SNAPSHOT = ['ERR_INVALID_ARGUMENT', 'ERR_SNAPSHOT_INVALID'];

const world = makeWorld();
const { store, op, worker } = world;
// A token of the same secret that `store` has not recorded: adopting it by
// mistake would show in the snapshot.
const peerToken = makeStore().store.mint('peer', 'worker', { maxUses: 3 });

function stillWorks() {
  assert.equal(store.verify(op.bearer, 'heartbeat').role, 'operator');
  assert.equal(store.check(worker.bearer, 'fetch_prompt', 'root').allowed, true);
}

/**
 * Probe one argument position with every bad value except those in `ok`
 * (legitimate for that position, e.g. undefined for an optional argument).
 */
function probe(position, call, { codes = INVALID, ok = [], check = false } = {}) {
  it(position, () => {
    let probed = 0;
    for (const [label, value] of BAD_VALUES) {
      if (ok.includes(label)) continue;
      probed++;
      const what = `${position} with ${label}`;
      const before = stateOf(store);
      const sizeBefore = store.size;
      if (check) {
        let decision;
        assert.doesNotThrow(() => { decision = call(value); }, what);
        assert.equal(decision.allowed, false, what);
        assert.ok(codes.includes(decision.code), `${what}: ${decision.code}`);
        assert.equal(typeof decision.message, 'string');
      } else {
        let thrown;
        let threw = false;
        try {
          call(value);
        } catch (e) {
          threw = true;
          thrown = e;
        }
        assert.ok(threw, `${what}: nothing was thrown`);
        assert.ok(thrown instanceof CapTokenError,
          `${what}: ${thrown?.constructor?.name} ${thrown?.message ?? String(thrown)}`);
        assert.ok(!(thrown instanceof TypeError) && !(thrown instanceof WebAssembly.RuntimeError), what);
        assert.ok(codes.includes(thrown.code), `${what}: ${thrown.code} ${thrown.message}`);
        assert.ok(thrown.message.length > 0 && thrown.message.length < 1000, `${what}: the message echoes input`);
        if (typeof value === 'string' && value.length > 1) {
          assert.ok(!thrown.message.includes(value), `${what}: the message quotes the input`);
        }
      }
      assert.equal(stateOf(store), before, `${what}: the store changed`);
      assert.equal(store.size, sizeBefore);
      stillWorks();
    }
    assert.ok(probed > 0);
  });
}

const mintOptionPositions = (name, call) => {
  probe(`${name} options`, (v) => call(v), { ok: ['undefined', 'null', 'object'] });
  probe(`${name} options.scopes`, (v) => call({ scopes: v }), { ok: ['undefined', 'array'] });
  probe(`${name} options.scopes[0]`, (v) => call({ scopes: [v] }));
  probe(`${name} options.scopes[1]`, (v) => call({ scopes: ['ok', v] }));
  probe(`${name} options.ttlSecs`, (v) => call({ ttlSecs: v }), { ok: ['undefined', 'number'] });
  probe(`${name} options.maxUses`, (v) => call({ maxUses: v }), { ok: ['undefined', 'null', 'number'] });
  probe(`${name} options.taskId`, (v) => call({ taskId: v }), { ok: ['undefined', 'null'] });
};

describe('new TokenStore(options)', () => {
  probe('options', (v) => new TokenStore(v));
  probe('options.secret', (v) => new TokenStore({ secret: v }));
  probe('options.format', (v) => new TokenStore({ secret: SECRET, format: v }), { ok: ['undefined'] });
  probe('options.maxSpawnDepth', (v) => new TokenStore({ secret: SECRET, maxSpawnDepth: v }), { ok: ['undefined', 'number'] });
  probe('options.workerTokenTtlSecs', (v) => new TokenStore({ secret: SECRET, workerTokenTtlSecs: v }), { ok: ['undefined', 'number'] });
  probe('options.now', (v) => new TokenStore({ secret: SECRET, now: v }), { ok: ['undefined', 'function'] });
  for (const limit of ['maxRecords', 'maxTasks', 'maxTasksPerTree', 'maxChildrenPerTask', 'maxMadePerWorkerToken']) {
    probe(`options.${limit}`, (v) => new TokenStore({ secret: SECRET, [limit]: v }), { ok: ['undefined', 'number'] });
  }
  probe('options.gate', (v) => new TokenStore({ secret: SECRET, gate: v }), { ok: ['undefined'] });
  probe('options.gate.worker', (v) => new TokenStore({ secret: SECRET, gate: { worker: v } }));
  probe('options.gate.worker[0]', (v) => new TokenStore({ secret: SECRET, gate: { worker: [v] } }));
  probe('options.journal', (v) => new TokenStore({ secret: SECRET, journal: v }), { ok: ['undefined'] });
  it('no argument at all', () => {
    assert.throws(() => new TokenStore(), (e) => e instanceof CapTokenError && e.code === 'ERR_INVALID_ARGUMENT');
  });
  it('a throwing getter or a Proxy as options', () => {
    const trap = new Proxy({}, { get() { throw new Error('trap'); } });
    assert.throws(() => new TokenStore(trap), CapTokenError);
    assert.throws(() => new TokenStore({ get secret() { throw new Error('x'); } }), CapTokenError);
    assert.throws(() => new TokenStore({ secret: SECRET, get now() { throw new Error('x'); } }), CapTokenError);
    assert.throws(() => store.mint('a', 'worker', trap), CapTokenError);
    assert.throws(() => store.mint('a', 'worker', { get scopes() { throw new Error('x'); } }), CapTokenError);
    assert.throws(() => store.startTask(op.bearer, { get taskId() { throw new Error('x'); } }), CapTokenError);
  });
});

describe('TokenStore.restore(snapshot, options)', () => {
  const text = store.snapshot();
  probe('snapshot', (v) => TokenStore.restore(v, { secret: SECRET }), { codes: SNAPSHOT });
  probe('options', (v) => TokenStore.restore(text, v));
  probe('options.secret', (v) => TokenStore.restore(text, { secret: v }));
  probe('journal', (v) => TokenStore.restore(text, { secret: SECRET }, v), { codes: SNAPSHOT, ok: ['undefined'] });
});

describe('attachOperator(agentId, options)', () => {
  probe('agentId', (v) => store.attachOperator(v));
  mintOptionPositions('attachOperator', (o) => store.attachOperator('op-x', o));
});

describe('mint(agentId, role, options)', () => {
  probe('agentId', (v) => store.mint(v, 'worker'));
  probe('role', (v) => store.mint('a', v));
  mintOptionPositions('mint', (o) => store.mint('a', 'worker', o));
});

describe('adopt(bearer, taskId)', () => {
  probe('bearer', (v) => store.adopt(v), { codes: BEARER });
  probe('taskId', (v) => store.adopt(peerToken.bearer, v), { ok: ['undefined', 'null'] });
});

describe('startTask(bearer, options)', () => {
  probe('bearer', (v) => store.startTask(v, { taskId: 'fresh' }), { codes: BEARER });
  probe('options', (v) => store.startTask(op.bearer, v), { ok: ['undefined', 'null', 'object'] });
  probe('options.taskId', (v) => store.startTask(op.bearer, { taskId: v }), { ok: ['undefined', 'null'] });
  probe('options.parentId', (v) => store.startTask(op.bearer, { parentId: v }), { ok: ['undefined', 'null'] });
  // A Worker names no taskId at all; its parentId is probed like an Operator's.
  probe('a Worker\'s options.taskId', (v) => store.startTask(worker.bearer, { taskId: v }), { ok: ['undefined', 'null'] });
  probe('a Worker\'s options.parentId', (v) => store.startTask(worker.bearer, { parentId: v }),
    { ok: ['undefined', 'null'], codes: ['ERR_INVALID_ARGUMENT', 'ERR_TOKEN_TASK_MISMATCH'] });
});

describe('dispatchAttempt(bearer, taskId, options)', () => {
  probe('bearer', (v) => store.dispatchAttempt(v, 'root'), { codes: BEARER });
  probe('taskId', (v) => store.dispatchAttempt(op.bearer, v));
  mintOptionPositions('dispatchAttempt', (o) => store.dispatchAttempt(op.bearer, 'root', o));
  // A Worker with limited uses must name a budget it has (worker: 10 uses, so 42 is too many).
  probe('a limited Worker\'s options.maxUses', (v) => store.dispatchAttempt(worker.bearer, 'root', { maxUses: v }));
});

describe('verify(bearer, verb, taskId)', () => {
  probe('bearer', (v) => store.verify(v, 'heartbeat'), { codes: BEARER });
  probe('verb', (v) => store.verify(worker.bearer, v, 'root'));
  probe('taskId', (v) => store.verify(worker.bearer, 'fetch_data', v), { ok: ['undefined', 'null'] });
  it('verb names are exact', () => {
    for (const verb of ['HEARTBEAT', 'heartbeat ', 'Heartbeat', '', 'heart_beat']) {
      assert.throws(() => store.verify(op.bearer, verb), (e) => e instanceof CapTokenError && e.code === 'ERR_INVALID_ARGUMENT');
    }
  });
});

describe('check(bearer, verb, taskId) never throws', () => {
  probe('bearer', (v) => store.check(v, 'heartbeat'), { codes: BEARER, check: true });
  probe('verb', (v) => store.check(worker.bearer, v, 'root'), { check: true });
  probe('taskId', (v) => store.check(worker.bearer, 'fetch_data', v), { ok: ['undefined', 'null'], check: true });
});

describe('revoke / revokeTask / remint / record / task', () => {
  probe('revoke(fingerprint)', (v) => store.revoke(v));
  probe('revokeTask(taskId)', (v) => store.revokeTask(v));
  probe('remint(bearer)', (v) => store.remint(v), { codes: BEARER });
  probe('record(fingerprint)', (v) => store.record(v));
  probe('task(taskId)', (v) => store.task(v));
});

describe('methods without arguments ignore extra ones', () => {
  it('purgeExpired, records, tasks, snapshot, takeJournal, size', () => {
    const before = stateOf(store);
    for (const [, v] of BAD_VALUES) {
      assert.equal(store.takeJournal(v), '');
      assert.equal(store.purgeExpired(v), 0);
      assert.equal(store.records(v).length, store.size);
      assert.equal(store.tasks(v).length, 2);
      assert.equal(withoutSeal(store.snapshot(v)), before);
    }
  });
});

describe('CapTokenRecord', () => {
  const token = worker.token;
  probe('fromToken(token)', (v) => CapTokenRecord.fromToken(v));
  probe('fromWorkerToken(token, _)', (v) => CapTokenRecord.fromWorkerToken(v, 'T'));
  probe('fromWorkerToken(_, taskId)', (v) => CapTokenRecord.fromWorkerToken(token, v));
  probe('fromJSON(json)', (v) => CapTokenRecord.fromJSON(v));

  it('token objects with a garbage field give a record or a CapTokenError, nothing else', () => {
    for (const field of Object.keys(token)) {
      for (const [label, value] of BAD_VALUES) {
        try {
          const r = CapTokenRecord.fromToken({ ...token, [field]: value });
          r.free();
        } catch (e) {
          assert.ok(e instanceof CapTokenError, `${field} = ${label}: ${e?.constructor?.name} ${e?.message}`);
          assert.equal(e.code, 'ERR_INVALID_ARGUMENT');
        }
      }
    }
  });

  it('record JSON with a garbage field gives a record or a CapTokenError, nothing else', () => {
    const json = store.record(worker.fingerprint).toJSON();
    for (const field of Object.keys(json)) {
      for (const [label, value] of BAD_VALUES) {
        for (const input of [{ ...json, [field]: value }]) {
          try {
            CapTokenRecord.fromJSON(input).free();
          } catch (e) {
            assert.ok(e instanceof CapTokenError, `${field} = ${label}: ${e?.constructor?.name} ${e?.message}`);
          }
        }
      }
    }
  });

  it('methods ignore extra arguments', () => {
    const r = CapTokenRecord.fromToken({ ...op.token });
    for (const [, v] of BAD_VALUES) {
      assert.equal(r.canConsume(v), true);
      r.consume(v);
      assert.equal(typeof r.toJSON(v), 'object');
    }
    r.revoke(Symbol('x'));
    assert.equal(r.revoked, true);
  });
});

describe('huge and hostile strings', () => {
  it('over-long string arguments are refused before they are used', () => {
    const before = stateOf(store);
    const long = 'a'.repeat(64 * 1024 + 1);
    for (const call of [
      () => store.mint(long, 'worker'),
      () => store.mint('a', 'worker', { taskId: long }),
      () => store.verify(worker.bearer, 'fetch_data', long),
      () => store.revokeTask(long),
      () => store.task(long),
      () => store.startTask(op.bearer, { taskId: long }),
      () => store.dispatchAttempt(op.bearer, long),
      () => CapTokenRecord.fromJSON(long),
    ]) {
      assert.throws(call, (e) => e instanceof CapTokenError && e.code === 'ERR_INVALID_ARGUMENT');
    }
    assert.throws(() => store.verify(HUGE, 'heartbeat'), (e) => e instanceof CapTokenError && e.code === 'ERR_MALFORMED_TOKEN');
    assert.equal(stateOf(store), before);
  });

  it('lone surrogates anywhere in a string argument are refused', () => {
    const before = stateOf(store);
    for (const s of ['\uD800', '\uDFFF', 'ab\uD800', '\uDC00\uD800', 'x\uD83D']) {
      for (const call of [
        () => store.mint(s, 'worker'),
        () => store.mint('a', 'worker', { taskId: s }),
        () => store.mint('a', 'worker', { scopes: [s] }),
        () => store.verify(worker.bearer, 'fetch_data', s),
        () => store.revokeTask(s),
        () => store.task(s),
        () => store.startTask(op.bearer, { taskId: s }),
        () => store.dispatchAttempt(op.bearer, s),
        () => store.adopt(peerToken.bearer, s),
        () => CapTokenRecord.fromWorkerToken(worker.token, s),
        () => CapTokenRecord.fromToken({ ...worker.token, agent_id: s }),
        () => CapTokenRecord.fromJSON({ token: worker.token, uses_left: 1, revoked: false, task_id: s }),
        () => CapTokenRecord.fromJSON(`{"token":${JSON.stringify(worker.token)},"uses_left":1,"revoked":false,"task_id":"${s}"}`),
      ]) {
        assert.throws(call, (e) => e instanceof CapTokenError && e.code === 'ERR_INVALID_ARGUMENT', JSON.stringify(s));
      }
    }
    assert.equal(stateOf(store), before);
    // A real U+FFFD and astral characters are fine.
    const m = store.mint('\uFFFD-😀', 'worker', { taskId: 'ok-\uFFFD', scopes: ['\uD83D\uDE00'] });
    assert.equal(m.token.agent_id, '\uFFFD-😀');
    assert.deepEqual(m.token.scopes, ['😀']);
    store.revoke(m.fingerprint);
  });

  it('a store survives ten thousand bad calls', () => {
    const s = new TokenStore({ secret: SECRET, now: () => T0 });
    const o = s.attachOperator('op');
    const before = stateOf(s);
    for (let i = 0; i < 10000; i++) {
      const [, v] = BAD_VALUES[i % BAD_VALUES.length];
      try {
        s.verify(v, v, v);
      } catch (e) {
        if (!(e instanceof CapTokenError)) throw e;
      }
    }
    assert.equal(stateOf(s), before);
    assert.equal(s.verify(o.bearer, 'heartbeat').role, 'operator');
  });
});
