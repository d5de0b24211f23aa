// docs/protocol.md "Deciding a call": the seven steps, their order, the error codes
// with their details, the ownership gate, the default and custom gate, and
// check() deciding the same way while spending nothing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  TokenStore, CapTokenError, SECRET, OTHER_SECRET, T0, ROLES, VERBS, DEFAULT_GATE,
  OWNERSHIP_VERBS, ERROR_CODES, makeStore, makeWorld, makeClock, b64url, decodeBearer,
  toBearer, throwsCap, assertNoNonce, fingerprintOf,
} from './helpers.js';
import { stateOf } from './helpers.js';

describe('step 1: decoding the bearer', () => {
  const { store, op } = makeWorld();
  const good = decodeBearer(op.bearer);
  const malformed = {
    'empty string': '',
    'not base64url': '!!!not-base64!!!',
    'standard base64 with padding': (() => {
      const json = JSON.stringify(good);
      const text = Buffer.from(json.length % 3 === 0 ? `${json} ` : json).toString('base64');
      assert.ok(text.endsWith('='));
      return text;
    })(),
    'trailing =': `${op.bearer}=`,
    'base64url of non-JSON': b64url('hello world'),
    'base64url of null': b64url('null'),
    'base64url of an array': b64url('[]'),
    'base64url of {}': b64url('{}'),
    'missing nonce': b64url({ ...good, nonce: undefined }),
    'extra field': b64url({ ...good, extra: true }),
    'unknown role': b64url({ ...good, role: 'admin' }),
    'uppercase nonce': b64url({ ...good, nonce: good.nonce.toUpperCase() }),
    'short sig_hex': b64url({ ...good, sig_hex: 'abcd' }),
    'negative time': b64url({ ...good, issued_at: -1 }),
    'time beyond 2^53': b64url({ ...good, expire_at: 2 ** 60 }),
    'fractional max_uses': b64url({ ...good, max_uses: 1.5 }),
    'scopes not an array': b64url({ ...good, scopes: '*' }),
    'unknown version': b64url({ ...good, v: 3 }),
    'over the size limit': `${op.bearer}${'A'.repeat(9000)}`,
    'huge': 'A'.repeat(1 << 20),
  };
  for (const [name, bearer] of Object.entries(malformed)) {
    it(`refuses ${name} with ERR_MALFORMED_TOKEN`, () => {
      const before = stateOf(store);
      throwsCap(() => store.verify(bearer, 'heartbeat'), 'ERR_MALFORMED_TOKEN');
      const decision = store.check(bearer, 'heartbeat');
      assert.equal(decision.allowed, false);
      assert.equal(decision.code, 'ERR_MALFORMED_TOKEN');
      assert.equal(stateOf(store), before);
    });
  }
});

describe('steps 2 to 7 one by one', () => {
  it('step 2: a changed field or a foreign secret is ERR_BAD_SIGNATURE', () => {
    const { store, worker } = makeWorld();
    const token = decodeBearer(worker.bearer);
    const changes = {
      agent_id: 'someone-else', role: 'operator', scopes: ['read'], issued_at: token.issued_at - 1,
      expire_at: token.expire_at + 3600, max_uses: null,
      nonce: 'ab'.repeat(16), sig_hex: token.sig_hex.replace(/.$/, (c) => (c === '0' ? '1' : '0')),
    };
    for (const [field, value] of Object.entries(changes)) {
      const forged = toBearer({ ...token, [field]: value });
      throwsCap(() => store.verify(forged, 'fetch_data'), 'ERR_BAD_SIGNATURE');
    }
    const foreign = new TokenStore({ secret: OTHER_SECRET, now: () => T0 }).mint('x', 'worker');
    throwsCap(() => store.verify(foreign.bearer, 'fetch_data'), 'ERR_BAD_SIGNATURE');
  });

  it('step 3: now >= expire_at is ERR_TOKEN_EXPIRED with the fingerprint; Operators are exempt', () => {
    const { store, clock } = makeStore();
    const op = store.attachOperator('op', { ttlSecs: 60 });
    const roles = {
      worker: store.mint('w', 'worker', { ttlSecs: 60 }),
      observer: store.mint('o', 'observer', { ttlSecs: 60 }),
      senior: store.mint('s', 'senior', { ttlSecs: 60 }),
    };
    const verbOf = { worker: 'fetch_data', observer: 'read_trace', senior: 'pause_loop' };
    clock.t = T0 + 59;
    for (const [role, m] of Object.entries(roles)) {
      assert.equal(store.verify(m.bearer, verbOf[role]).role, role);
    }
    clock.t = T0 + 60;
    for (const [role, m] of Object.entries(roles)) {
      throwsCap(() => store.verify(m.bearer, verbOf[role]), 'ERR_TOKEN_EXPIRED', { fingerprint: m.fingerprint });
    }
    clock.t = T0 + 10 * 365 * 86400;
    assert.equal(store.verify(op.bearer, 'heartbeat').role, 'operator');
    assert.equal(store.startTask(op.bearer).spawnDepth, 0);
  });

  it('step 4: a verb outside the role\'s row is ERR_ROLE_VIOLATION with role and verb', () => {
    const { store, observer, senior, worker, op } = makeWorld();
    throwsCap(() => store.verify(observer.bearer, 'start_task'), 'ERR_ROLE_VIOLATION', { role: 'observer', verb: 'start_task' });
    throwsCap(() => store.verify(senior.bearer, 'heartbeat'), 'ERR_ROLE_VIOLATION', { role: 'senior', verb: 'heartbeat' });
    throwsCap(() => store.verify(worker.bearer, 'mint_worker_token', 'root'), 'ERR_ROLE_VIOLATION', { role: 'worker', verb: 'mint_worker_token' });
    throwsCap(() => store.verify(op.bearer, 'answer_query'), 'ERR_ROLE_VIOLATION', { role: 'operator', verb: 'answer_query' });
  });

  it('step 5: a well-signed token without a record is ERR_TOKEN_NOT_FOUND with the fingerprint', () => {
    const { store } = makeWorld();
    const elsewhere = new TokenStore({ secret: SECRET, now: () => T0 }).mint('w', 'worker');
    throwsCap(() => store.verify(elsewhere.bearer, 'fetch_data'), 'ERR_TOKEN_NOT_FOUND', { fingerprint: elsewhere.fingerprint });
  });

  it('step 6: ownership mismatch is ERR_TOKEN_TASK_MISMATCH with bound and arg', () => {
    const { store, worker } = makeWorld();
    throwsCap(() => store.verify(worker.bearer, 'fetch_prompt', 'child'), 'ERR_TOKEN_TASK_MISMATCH',
      { fingerprint: worker.fingerprint, bound: 'root', arg: 'child' });
    const e = throwsCap(() => store.verify(worker.bearer, 'post_result'), 'ERR_TOKEN_TASK_MISMATCH',
      { fingerprint: worker.fingerprint, bound: 'root' });
    assert.equal(e.arg, undefined);
  });

  it('step 7: revoked is ERR_TOKEN_REVOKED, no uses left is ERR_TOKEN_USES_EXHAUSTED', () => {
    const { store, revoked, exhausted } = makeWorld();
    throwsCap(() => store.verify(revoked.bearer, 'fetch_data'), 'ERR_TOKEN_REVOKED', { fingerprint: revoked.fingerprint });
    throwsCap(() => store.verify(exhausted.bearer, 'fetch_data'), 'ERR_TOKEN_USES_EXHAUSTED', { fingerprint: exhausted.fingerprint });
  });

  it('step 7: otherwise exactly one use is spent', () => {
    const { store } = makeStore();
    const w = store.mint('w', 'worker', { maxUses: 3, taskId: 't' });
    assert.equal(store.verify(w.bearer, 'fetch_data').usesLeft, 2);
    assert.equal(store.verify(w.bearer, 'emit_output', 't').usesLeft, 1);
    assert.equal(store.verify(w.bearer, 'verify_token').usesLeft, 0);
    throwsCap(() => store.verify(w.bearer, 'fetch_data'), 'ERR_TOKEN_USES_EXHAUSTED');
    assert.equal(store.record(w.fingerprint).usesLeft, 0);
    const one = store.mint('w1', 'worker', { maxUses: 1 });
    assert.equal(store.verify(one.bearer, 'fetch_data').usesLeft, 0);
    throwsCap(() => store.verify(one.bearer, 'fetch_data'), 'ERR_TOKEN_USES_EXHAUSTED');
  });
});

describe('Grants and Decisions', () => {
  it('are plain objects: Object.prototype, keys in order, their own scopes array each time', () => {
    const { store } = makeStore();
    const w = store.mint('w', 'worker', { taskId: 't' });
    const scoped = store.mint('s', 'observer', { scopes: ['read', 'trace'] });
    const grants = [store.verify(w.bearer, 'fetch_data'), store.check(w.bearer, 'fetch_data'), store.verify(scoped.bearer, 'read_trace')];
    for (const grant of grants) {
      assert.equal(Object.getPrototypeOf(grant), Object.prototype);
      assert.equal(grant.constructor, Object);
      assert.equal(Object.getOwnPropertyNames(grant).length, Object.keys(grant).length);
    }
    assert.deepEqual(Object.keys(grants[0]), ['fingerprint', 'agentId', 'role', 'scopes', 'taskId', 'usesLeft']);
    assert.deepEqual(Object.keys(grants[1]), ['allowed', 'fingerprint', 'agentId', 'role', 'scopes', 'taskId', 'usesLeft']);
    assert.deepEqual(grants[0], { fingerprint: w.fingerprint, agentId: 'w', role: 'worker', scopes: ['*'], taskId: 't', usesLeft: null });
    assert.deepEqual(grants[2].scopes, ['read', 'trace']);
    // Each Grant has its own array: changing one changes no later Grant.
    grants[0].scopes.push('changed');
    grants[2].scopes.push('changed');
    assert.deepEqual(store.verify(w.bearer, 'fetch_data').scopes, ['*']);
    assert.deepEqual(store.check(scoped.bearer, 'read_trace').scopes, ['read', 'trace']);
  });

  it('a read-only property on Object.prototype does not break the store (found by an attacker\'s review)', () => {
    const { store } = makeStore();
    const w = store.mint('w', 'worker', { taskId: 't' });
    for (const name of ['usesLeft', 'taskId', 'scopes', 'allowed', 'fingerprint']) {
      Object.defineProperty(Object.prototype, name, { value: 'polluted', writable: false, configurable: true });
      try {
        const grant = store.verify(w.bearer, 'fetch_data');
        const decision = store.check(w.bearer, 'fetch_data');
        for (const result of [grant, decision]) {
          assert.ok(Object.hasOwn(result, name) || name === 'allowed', `${name} is not its own`);
          assert.equal(result.taskId, 't');
          assert.deepEqual([...result.scopes], ['*']);
        }
        assert.equal(decision.allowed, true);
      } finally {
        delete Object.prototype[name];
      }
      // And the store goes on deciding after the pollution is gone.
      assert.equal(store.check(w.bearer, 'fetch_data').allowed, true);
    }
  });
});

describe('the first failing step decides', () => {
  // Tokens that fail at step k and would also fail at every later step.
  function setup() {
    const clock = makeClock();
    const store = new TokenStore({ secret: SECRET, now: clock.now });
    const elsewhere = new TokenStore({ secret: SECRET, now: clock.now });
    const foreign = new TokenStore({ secret: OTHER_SECRET, now: clock.now });
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'root' });
    return { clock, store, elsewhere, foreign, op };
  }

  const cases = [
    ['1 before 2..7: malformed', () => ['%%%', 'start_task'], 'ERR_MALFORMED_TOKEN'],
    ['2 before 3..7: forged, expired, wrong role, unrecorded', ({ foreign, clock }) => {
      const m = foreign.mint('o', 'observer', { ttlSecs: 1 });
      clock.t += 5;
      return [m.bearer, 'start_task'];
    }, 'ERR_BAD_SIGNATURE'],
    ['3 before 4..7: expired, wrong role, unrecorded', ({ elsewhere, clock }) => {
      const m = elsewhere.mint('o', 'observer', { ttlSecs: 1 });
      clock.t += 5;
      return [m.bearer, 'start_task'];
    }, 'ERR_TOKEN_EXPIRED'],
    ['3 before 7: expired and revoked', ({ store, clock }) => {
      const m = store.mint('w', 'worker', { ttlSecs: 1, maxUses: 0 });
      store.revoke(m.fingerprint);
      clock.t += 5;
      return [m.bearer, 'fetch_data'];
    }, 'ERR_TOKEN_EXPIRED'],
    ['4 before 5..7: wrong role, unrecorded', ({ elsewhere }) => [elsewhere.mint('o', 'observer').bearer, 'start_task'], 'ERR_ROLE_VIOLATION'],
    ['4 before 6..7: wrong role, revoked, bound elsewhere', ({ store }) => {
      const m = store.mint('w', 'worker', { taskId: 'root', maxUses: 0 });
      store.revoke(m.fingerprint);
      return [m.bearer, 'answer_query', 'other'];
    }, 'ERR_ROLE_VIOLATION'],
    ['5 before 6..7: unrecorded, task mismatch', ({ elsewhere }) =>
      [elsewhere.mint('w', 'worker', { taskId: 'root' }).bearer, 'fetch_prompt', 'other'], 'ERR_TOKEN_NOT_FOUND'],
    ['6 before 7: task mismatch, revoked and exhausted', ({ store }) => {
      const m = store.mint('w', 'worker', { taskId: 'root', maxUses: 0 });
      store.revoke(m.fingerprint);
      return [m.bearer, 'read_task_state', 'other'];
    }, 'ERR_TOKEN_TASK_MISMATCH'],
    ['revoked before exhausted', ({ store }) => {
      const m = store.mint('w', 'worker', { maxUses: 1 });
      store.verify(m.bearer, 'fetch_data');
      store.revoke(m.fingerprint);
      return [m.bearer, 'fetch_data'];
    }, 'ERR_TOKEN_REVOKED'],
  ];
  for (const [name, build, code] of cases) {
    it(name, () => {
      const world = setup();
      const args = build(world);
      const before = stateOf(world.store);
      assert.equal(world.store.check(...args).code, code, 'check');
      throwsCap(() => world.store.verify(...args), code);
      assert.equal(stateOf(world.store), before, 'a denied call changes nothing');
    });
  }
});

describe('every error code, with its details', () => {
  it('raises every code a TokenStore can raise through the JavaScript API, never leaking a nonce', () => {
    const seen = new Set();
    const minted = [];
    const note = (error) => {
      seen.add(error.code);
      assertNoNonce(error.message, minted);
      assertNoNonce(JSON.stringify(error), minted);
      return error;
    };
    const { store, clock } = makeStore({ maxChildrenPerTask: 3 });
    const op = store.attachOperator('op');
    minted.push(op);
    store.startTask(op.bearer, { taskId: 't0' });
    const w = store.dispatchAttempt(op.bearer, 't0', { maxUses: 1, ttlSecs: 100 });
    minted.push(w);

    note(throwsCap(() => store.verify('garbage', 'heartbeat'), 'ERR_MALFORMED_TOKEN'));
    const forged = toBearer({ ...decodeBearer(w.bearer), agent_id: 'evil' });
    note(throwsCap(() => store.verify(forged, 'fetch_data'), 'ERR_BAD_SIGNATURE'));
    note(throwsCap(() => store.verify(w.bearer, 'heartbeat'), 'ERR_ROLE_VIOLATION', { role: 'worker', verb: 'heartbeat' }));
    const other = new TokenStore({ secret: SECRET, now: clock.now }).mint('x', 'worker');
    minted.push(other);
    note(throwsCap(() => store.verify(other.bearer, 'fetch_data'), 'ERR_TOKEN_NOT_FOUND', { fingerprint: other.fingerprint }));
    note(throwsCap(() => store.verify(w.bearer, 'poll_task', 'nope'), 'ERR_TOKEN_TASK_MISMATCH',
      { fingerprint: w.fingerprint, bound: 't0', arg: 'nope' }));
    note(throwsCap(() => store.dispatchAttempt(op.bearer, 'nope'), 'ERR_TASK_NOT_FOUND'));
    const d1 = store.startTask(w.bearer);
    assert.deepEqual(d1, { taskId: d1.taskId, parentId: 't0', spawnDepth: 1 });
    note(throwsCap(() => store.verify(w.bearer, 'fetch_data'), 'ERR_TOKEN_USES_EXHAUSTED', { fingerprint: w.fingerprint }));
    store.revoke(w.fingerprint);
    note(throwsCap(() => store.verify(w.bearer, 'fetch_data'), 'ERR_TOKEN_REVOKED', { fingerprint: w.fingerprint }));
    store.startTask(op.bearer, { parentId: 't0' });
    store.startTask(op.bearer, { parentId: 't0' });
    note(throwsCap(() => store.startTask(op.bearer, { parentId: 't0' }), 'ERR_LIMIT_EXCEEDED',
      { limit: 'maxChildrenPerTask', max: 3 }));
    const w1 = store.dispatchAttempt(op.bearer, d1.taskId, { ttlSecs: 100 });
    minted.push(w1);
    const t2 = store.startTask(w1.bearer);
    const w2 = store.dispatchAttempt(op.bearer, t2.taskId, { ttlSecs: 100 });
    minted.push(w2);
    const t3 = store.startTask(w2.bearer);
    assert.equal(t3.spawnDepth, 3);
    const w3 = store.dispatchAttempt(op.bearer, t3.taskId, { ttlSecs: 100 });
    minted.push(w3);
    note(throwsCap(() => store.startTask(w3.bearer), 'ERR_SPAWN_DEPTH_EXCEEDED', { current: 4, max: 4 }));
    note(throwsCap(() => store.mint('', 'worker'), 'ERR_INVALID_ARGUMENT'));
    note(throwsCap(() => TokenStore.restore('{"version":1}', { secret: SECRET }), 'ERR_SNAPSHOT_INVALID'));
    clock.t += 100;
    note(throwsCap(() => store.verify(w1.bearer, 'fetch_data'), 'ERR_TOKEN_EXPIRED', { fingerprint: w1.fingerprint }));

    // ERR_STORE_UNAVAILABLE is for stores that cannot answer (closed, a failed
    // disk write, a server that timed out, a trapped instance): no input to a
    // healthy TokenStore raises it.
    assert.deepEqual([...seen].sort(), ERROR_CODES.filter((c) => c !== 'ERR_STORE_UNAVAILABLE').sort());
  });

  it('errors are Error instances with a stack, a name and enumerable details', () => {
    const { store } = makeStore();
    const e = throwsCap(() => store.verify('x', 'heartbeat'), 'ERR_MALFORMED_TOKEN');
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'CapTokenError');
    assert.equal(typeof e.stack, 'string');
    assert.equal(Object.getPrototypeOf(e), CapTokenError.prototype);
    assert.ok(Object.keys(e).includes('code'));
  });
});

describe('the gate', () => {
  it('the default table decides every role x verb exactly as docs/protocol.md says', () => {
    const { store, op } = makeWorld();
    store.startTask(op.bearer, { taskId: 'bound' });
    for (const role of ROLES) {
      const m = store.mint(`${role}-agent`, role, { taskId: role === 'worker' ? 'bound' : undefined });
      for (const verb of VERBS) {
        const taskArg = role === 'worker' ? 'bound' : undefined;
        const decision = store.check(m.bearer, verb, taskArg);
        if (DEFAULT_GATE[role].includes(verb)) {
          assert.equal(decision.allowed, true, `${role} ${verb}: ${decision.message}`);
          assert.equal(store.verify(m.bearer, verb, taskArg).role, role);
        } else {
          assert.equal(decision.allowed, false, `${role} ${verb}`);
          assert.equal(decision.code, 'ERR_ROLE_VIOLATION');
          throwsCap(() => store.verify(m.bearer, verb, taskArg), 'ERR_ROLE_VIOLATION', { role, verb });
        }
      }
    }
  });

  it('a custom gate replaces the rows it names and keeps the others', () => {
    const { store } = makeStore({ gate: { observer: ['read_trace'], senior: ['start_task', 'heartbeat'], worker: [] } });
    const obs = store.mint('o', 'observer');
    const sen = store.mint('s', 'senior');
    const wrk = store.mint('w', 'worker', { taskId: 'x' });
    const op = store.attachOperator('op');
    assert.equal(store.verify(obs.bearer, 'read_trace').role, 'observer');
    throwsCap(() => store.verify(obs.bearer, 'read_task_state'), 'ERR_ROLE_VIOLATION', { role: 'observer', verb: 'read_task_state' });
    throwsCap(() => store.verify(obs.bearer, 'subscribe_events'), 'ERR_ROLE_VIOLATION');
    assert.equal(store.verify(sen.bearer, 'heartbeat').role, 'senior');
    throwsCap(() => store.verify(sen.bearer, 'answer_query'), 'ERR_ROLE_VIOLATION', { role: 'senior', verb: 'answer_query' });
    // A non-Worker role allowed start_task starts a root task.
    assert.equal(store.startTask(sen.bearer).spawnDepth, 0);
    for (const verb of VERBS) {
      throwsCap(() => store.verify(wrk.bearer, verb, 'x'), 'ERR_ROLE_VIOLATION');
    }
    // Operator row untouched.
    for (const verb of DEFAULT_GATE.operator) assert.equal(store.check(op.bearer, verb).allowed, true, verb);
    assert.equal(store.check(op.bearer, 'fetch_prompt').code, 'ERR_ROLE_VIOLATION');
  });

  it('a gate that lets an Observer dispatch still mints bound Workers', () => {
    const { store } = makeStore({ gate: { observer: ['dispatch_attempt'] } });
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'T' });
    const obs = store.mint('o', 'observer');
    const w = store.dispatchAttempt(obs.bearer, 'T');
    assert.equal(w.token.role, 'worker');
    assert.equal(store.record(w.fingerprint).taskId, 'T');
  });
});

describe('the ownership gate (step 6)', () => {
  it('a Worker\'s task-state verbs must name its bound task', () => {
    const { store, worker } = makeWorld();
    for (const verb of OWNERSHIP_VERBS) {
      assert.equal(store.verify(worker.bearer, verb, 'root').taskId, 'root', verb);
      throwsCap(() => store.verify(worker.bearer, verb, 'child'), 'ERR_TOKEN_TASK_MISMATCH', { bound: 'root', arg: 'child' });
      throwsCap(() => store.verify(worker.bearer, verb), 'ERR_TOKEN_TASK_MISMATCH', { bound: 'root' });
      throwsCap(() => store.verify(worker.bearer, verb, null), 'ERR_TOKEN_TASK_MISMATCH', { bound: 'root' });
      // Task ids are compared exactly.
      throwsCap(() => store.verify(worker.bearer, verb, 'ROOT'), 'ERR_TOKEN_TASK_MISMATCH');
      throwsCap(() => store.verify(worker.bearer, verb, 'root '), 'ERR_TOKEN_TASK_MISMATCH');
    }
  });

  it('start_task and dispatch_attempt may name the bound task or a task below it, nothing else', () => {
    const { store, op, worker } = makeWorld();
    store.startTask(op.bearer, { taskId: 'sibling' });
    // dispatch_attempt for a task outside the Worker's subtree: refused, nothing spent
    // (the reference engine exempts these two verbs; this package does not).
    const before = stateOf(store);
    throwsCap(() => store.dispatchAttempt(worker.bearer, 'sibling', { maxUses: 1 }), 'ERR_TOKEN_TASK_MISMATCH',
      { fingerprint: worker.fingerprint, bound: 'root', arg: 'sibling' });
    throwsCap(() => store.startTask(worker.bearer, { parentId: 'sibling' }), 'ERR_TOKEN_TASK_MISMATCH',
      { bound: 'root', arg: 'sibling' });
    assert.equal(stateOf(store), before);
    for (const verb of ['start_task', 'dispatch_attempt']) {
      assert.equal(store.check(worker.bearer, verb, 'sibling').code, 'ERR_TOKEN_TASK_MISMATCH', verb);
      assert.equal(store.check(worker.bearer, verb, 'root').allowed, true, verb);
      assert.equal(store.check(worker.bearer, verb, 'child').allowed, true, verb);
    }
    // With no task named, start_task means a child of its own task.
    assert.equal(store.check(worker.bearer, 'start_task').allowed, true);
    // Recursive swarming below its own task works.
    const sub = store.dispatchAttempt(worker.bearer, 'child', { maxUses: 1 });
    assert.equal(store.record(sub.fingerprint).taskId, 'child');
    // The ungated worker verbs name any task, or none.
    for (const verb of ['fetch_data', 'verify_token']) {
      assert.equal(store.check(worker.bearer, verb, 'sibling').allowed, true, verb);
      assert.equal(store.check(worker.bearer, verb).allowed, true, verb);
    }
  });

  it('Operators and Observers may name any task', () => {
    const { store, op, observer } = makeWorld();
    for (const task of ['root', 'child', 'anything', undefined]) {
      assert.equal(store.verify(op.bearer, 'read_task_state', task).role, 'operator');
      assert.equal(store.check(observer.bearer, 'read_task_state', task).allowed, true);
    }
  });

  it('an unbound Worker fails every ownership-gated verb', () => {
    const { store } = makeStore();
    const w = store.mint('w', 'worker');
    for (const verb of OWNERSHIP_VERBS) {
      const e = throwsCap(() => store.verify(w.bearer, verb, 'any'), 'ERR_TOKEN_TASK_MISMATCH', { arg: 'any' });
      assert.equal(e.bound, undefined);
    }
    assert.equal(store.verify(w.bearer, 'fetch_data').taskId, null);
  });

  it('a Worker bound to a task the store does not track can act on that task', () => {
    const { store } = makeStore();
    const w = store.mint('w', 'worker', { taskId: 'external-7' });
    for (const verb of OWNERSHIP_VERBS) {
      assert.equal(store.verify(w.bearer, verb, 'external-7').taskId, 'external-7');
    }
    throwsCap(() => store.verify(w.bearer, 'poll_task', 'external-8'), 'ERR_TOKEN_TASK_MISMATCH');
  });

  it('task ids that differ only in a lone surrogate are refused, not confused', () => {
    const { store } = makeStore();
    throwsCap(() => store.mint('w', 'worker', { taskId: '\uD800' }), 'ERR_INVALID_ARGUMENT');
    const w = store.mint('w', 'worker', { taskId: '\uFFFD' });
    throwsCap(() => store.verify(w.bearer, 'read_task_state', '\uDC00'), 'ERR_INVALID_ARGUMENT');
    assert.equal(store.check(w.bearer, 'read_task_state', '\uDC00').allowed, false);
    assert.equal(store.verify(w.bearer, 'read_task_state', '\uFFFD').taskId, '\uFFFD');
    // Well-formed non-ASCII ids are fine.
    const w2 = store.mint('w2', 'worker', { taskId: 'tâche-😀' });
    assert.equal(store.verify(w2.bearer, 'read_task_state', 'tâche-😀').taskId, 'tâche-😀');
  });
});

describe('check()', () => {
  it('never spends', () => {
    const { store } = makeStore();
    const w = store.mint('w', 'worker', { maxUses: 1 });
    const before = stateOf(store);
    for (let i = 0; i < 5; i++) {
      const d = store.check(w.bearer, 'fetch_data');
      assert.equal(d.allowed, true);
      assert.equal(d.usesLeft, 1, 'uses as they stand');
    }
    assert.equal(stateOf(store), before);
    assert.equal(store.verify(w.bearer, 'fetch_data').usesLeft, 0);
    const d = store.check(w.bearer, 'fetch_data');
    assert.deepEqual(Object.keys(d).sort(), ['allowed', 'code', 'message']);
    assert.equal(d.allowed, false);
    assert.equal(d.code, 'ERR_TOKEN_USES_EXHAUSTED');
    assert.match(d.message, new RegExp(w.fingerprint));
  });

  it('an allowed decision is the Grant plus allowed: true', () => {
    const { store, worker } = makeWorld();
    const d = store.check(worker.bearer, 'fetch_prompt', 'root');
    assert.deepEqual(d, {
      allowed: true, fingerprint: worker.fingerprint, agentId: 'worker-of-root', role: 'worker',
      scopes: ['*'], taskId: 'root', usesLeft: 10,
    });
    const g = store.verify(worker.bearer, 'fetch_prompt', 'root');
    assert.deepEqual(g, {
      fingerprint: worker.fingerprint, agentId: 'worker-of-root', role: 'worker',
      scopes: ['*'], taskId: 'root', usesLeft: 9,
    });
    assert.equal('allowed' in g, false);
  });

  it('never throws, whatever it is given', () => {
    const { store, op } = makeWorld();
    const before = stateOf(store);
    const junk = [undefined, null, 0, NaN, 10n, Symbol('s'), {}, [], () => 1, 'x'.repeat(1 << 20), '\uD800', op.bearer];
    for (const a of junk) {
      for (const b of junk) {
        for (const c of [undefined, 5, Symbol('t'), '\uDC00', 'x'.repeat(70000)]) {
          const d = store.check(a, b, c);
          assert.equal(typeof d, 'object');
          assert.equal(d.allowed, false);
          assert.ok(['ERR_INVALID_ARGUMENT', 'ERR_MALFORMED_TOKEN'].includes(d.code), d.code);
          assert.equal(typeof d.message, 'string');
        }
      }
    }
    assert.equal(stateOf(store), before);
  });

  it('decides exactly as verify() does, across a matrix of tokens, verbs and tasks', () => {
    const world = makeWorld();
    const { store } = world;
    const tokens = ['op', 'opLimited', 'worker', 'childWorker', 'observer', 'senior', 'revoked', 'exhausted']
      .map((k) => world[k]);
    const stranger = new TokenStore({ secret: SECRET, now: () => T0 }).mint('s', 'worker');
    tokens.push(stranger);
    let allowed = 0;
    let denied = 0;
    for (const m of tokens) {
      for (const verb of ['heartbeat', 'fetch_prompt', 'fetch_data', 'read_task_state', 'read_trace', 'pause_loop', 'poll_task']) {
        for (const task of [undefined, 'root', 'child', 'elsewhere']) {
          const d = store.check(m.bearer, verb, task);
          if (d.allowed) {
            allowed++;
            const g = store.verify(m.bearer, verb, task);
            assert.equal(g.fingerprint, d.fingerprint);
            assert.equal(g.usesLeft, d.usesLeft === null ? null : d.usesLeft - 1);
          } else {
            denied++;
            throwsCap(() => store.verify(m.bearer, verb, task), d.code);
          }
        }
      }
    }
    assert.ok(allowed > 20 && denied > 20, `${allowed} allowed, ${denied} denied`);
  });
});

describe('denied calls spend nothing and change nothing', () => {
  it('including a later step of start_task and dispatch_attempt', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op', { maxUses: 100 });
    store.startTask(op.bearer, { taskId: 'd0' });
    store.startTask(op.bearer, { taskId: 'elsewhere' });
    const w0 = store.dispatchAttempt(op.bearer, 'd0', { maxUses: 50, scopes: ['read'], ttlSecs: 60 });
    const d1 = store.startTask(w0.bearer).taskId;
    const w1 = store.dispatchAttempt(op.bearer, d1, { maxUses: 50 });
    const d2 = store.startTask(w1.bearer).taskId;
    const w2 = store.dispatchAttempt(op.bearer, d2, { maxUses: 50 });
    const d3 = store.startTask(w2.bearer).taskId;
    const w3 = store.dispatchAttempt(op.bearer, d3, { maxUses: 5 });
    const unboundWorker = store.mint('u', 'worker', { maxUses: 5, taskId: 'untracked' });

    const denials = [
      [() => store.startTask(w3.bearer), 'ERR_SPAWN_DEPTH_EXCEEDED'],
      [() => store.startTask(w3.bearer, { taskId: 'd4' }), ['ERR_SPAWN_DEPTH_EXCEEDED', 'ERR_INVALID_ARGUMENT']],
      [() => store.startTask(unboundWorker.bearer), 'ERR_TASK_NOT_FOUND'],
      [() => store.startTask(op.bearer, { taskId: 'd0' }), 'ERR_INVALID_ARGUMENT'],
      [() => store.startTask(w0.bearer, { taskId: 'd1' }), 'ERR_INVALID_ARGUMENT'],
      [() => store.startTask(w0.bearer, { parentId: 'elsewhere' }), 'ERR_TOKEN_TASK_MISMATCH'],
      [() => store.startTask(w1.bearer, { parentId: 'd0' }), 'ERR_TOKEN_TASK_MISMATCH'],
      [() => store.startTask(op.bearer, { taskId: '' }), 'ERR_INVALID_ARGUMENT'],
      [() => store.startTask(op.bearer, { taskId: 'x'.repeat(70000) }), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(op.bearer, 'missing'), 'ERR_TASK_NOT_FOUND'],
      [() => store.dispatchAttempt(w0.bearer, 'missing', { maxUses: 1 }), 'ERR_TOKEN_TASK_MISMATCH'],
      [() => store.dispatchAttempt(w0.bearer, 'elsewhere', { maxUses: 1 }), 'ERR_TOKEN_TASK_MISMATCH'],
      [() => store.dispatchAttempt(w0.bearer, d1), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(w0.bearer, d1, { maxUses: null }), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(w0.bearer, d1, { maxUses: 0 }), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(w0.bearer, d1, { maxUses: 49 }), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(w0.bearer, d1, { maxUses: 1, scopes: ['*'] }), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(w0.bearer, d1, { maxUses: 1, scopes: ['read', 'write'] }), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(w0.bearer, d1, { maxUses: 1, ttlSecs: 61 }), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(op.bearer, 'd0', { taskId: 'd1' }), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(op.bearer, 'd0', { scopes: Array(33).fill('s') }), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(op.bearer, 'd0', { scopes: [''] }), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(op.bearer, 'd0', { ttlSecs: 2 ** 53 - 1 }), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(op.bearer, 'd0', { maxUses: -1 }), 'ERR_INVALID_ARGUMENT'],
      [() => store.dispatchAttempt(op.bearer, 'd0', { maxUses: 2 ** 32 }), 'ERR_INVALID_ARGUMENT'],
      [() => store.verify(w0.bearer, 'fetch_prompt', d1), 'ERR_TOKEN_TASK_MISMATCH'],
      [() => store.verify(w0.bearer, 'heartbeat'), 'ERR_ROLE_VIOLATION'],
      [() => store.remint(op.bearer), 'ERR_INVALID_ARGUMENT'],
      [() => store.adopt('junk'), 'ERR_MALFORMED_TOKEN'],
    ];
    for (const [call, code] of denials) {
      const before = stateOf(store);
      const sizeBefore = store.size;
      throwsCap(call, code);
      assert.equal(stateOf(store), before, String(call));
      assert.equal(store.size, sizeBefore);
    }
    assert.equal(store.record(op.fingerprint).usesLeft, 100 - 6);
    assert.equal(store.record(w0.fingerprint).usesLeft, 49);
    assert.equal(store.record(w3.fingerprint).usesLeft, 5);
    assert.equal(store.record(unboundWorker.fingerprint).usesLeft, 5);
    // and the store still works
    assert.equal(store.verify(w3.bearer, 'fetch_prompt', d3).usesLeft, 4);
    assert.equal(store.dispatchAttempt(w0.bearer, d1, { maxUses: 48 }).token.max_uses, 48);
    assert.equal(store.record(w0.fingerprint).usesLeft, 0);
  });
});
