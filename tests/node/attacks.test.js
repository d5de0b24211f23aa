// The attacks of the security issue, each played through the package as an
// untrusted token holder would: every one succeeded under the old rules (a
// Worker could name its tasks anything, dispatch to any task, mint itself
// wider or unlimited tokens, fill the store without bound, and re-spell its
// bearer), and every one is refused now, spending and changing nothing.
//
// docs/protocol.md: "Signing" (the separator rule), "Deciding a call" (step 6),
// "Tasks and spawn depth" (a minted token is never wider than its minter;
// budgets are transferred), "Lifecycle" (remint), "Limits", "Token"
// (one canonical bearer).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  TokenStore, SECRET, T0, makeStore, makeClock, throwsCap, hmacHex, mluaSigningText, toBearer,
  decodeBearer, canonical, fingerprintOf,
} from './helpers.js';
import { stateOf } from './helpers.js';

const YEAR = 365 * 86400;

/** `call` is refused with `code` and leaves the store exactly as it was. */
function refusedUnchanged(store, call, code, details) {
  const before = stateOf(store);
  const size = store.size;
  const error = throwsCap(call, code, details);
  assert.equal(stateOf(store), before, `a refused call (${error.code}) changed the store`);
  assert.equal(store.size, size);
  return error;
}

/** The store still works: a snapshot restores, and a fresh Operator starts a root task. */
function assertStoreWorks(store, options) {
  const doc = JSON.parse(store.snapshot());
  assert.equal(doc.version, 1);
  const restored = TokenStore.restore(store.snapshot(), { secret: SECRET, ...options });
  assert.equal(restored.size, store.size);
  assert.equal(restored.tasks().length, store.tasks().length);
  restored.free();
}

describe('a forged mlua-swarm Operator', () => {
  // The reference engine signs `agent_id|Role|scopes|issued_at|expire_at|max_uses|nonce`.
  // A Worker of task `x|Operator|*` is the agent `worker-of-x|Operator|*`, and its
  // signing text `worker-of-x|Operator|*|Worker|*|…` is, byte for byte, that of
  // an Operator `worker-of-x` with the scope `*|Worker|*`.

  it('a task named x|Operator|* is never started, so its Worker is never minted', () => {
    const { store } = makeStore({ format: 'mlua-swarm' });
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'job' });
    const worker = store.dispatchAttempt(op.bearer, 'job');
    // The Worker asks for a child task of that name (the old rules let it).
    refusedUnchanged(store, () => store.startTask(worker.bearer, { taskId: 'x|Operator|*' }), 'ERR_INVALID_ARGUMENT');
    // Nor can an Operator start it, anywhere, or mint its agent by hand.
    refusedUnchanged(store, () => store.startTask(op.bearer, { taskId: 'x|Operator|*' }), 'ERR_INVALID_ARGUMENT');
    refusedUnchanged(store, () => store.startTask(op.bearer, { parentId: 'job', taskId: 'x|Operator|*' }), 'ERR_INVALID_ARGUMENT');
    refusedUnchanged(store, () => store.mint('worker-of-x|Operator|*', 'worker'), 'ERR_INVALID_ARGUMENT');
    refusedUnchanged(store, () => store.mint('w', 'worker', { scopes: ['*|Worker|*'] }), 'ERR_INVALID_ARGUMENT');
    refusedUnchanged(store, () => store.mint('w', 'worker', { scopes: ['read,write'] }), 'ERR_INVALID_ARGUMENT');
    refusedUnchanged(store, () => store.dispatchAttempt(op.bearer, 'x|Operator|*'), 'ERR_TASK_NOT_FOUND');
    assert.deepEqual(store.tasks().map((t) => t.taskId), ['job']);
    // The Worker's own work goes on.
    assert.equal(store.verify(worker.bearer, 'fetch_prompt', 'job').taskId, 'job');
  });

  it('a hand-forged Operator signed in the mlua-swarm text is refused by a second store with the same secret', () => {
    const nonce = randomBytes(16).toString('hex');
    const iat = T0;
    const exp = T0 + 1800;
    const text = `worker-of-x|Operator|*|Worker|*|${iat}|${exp}|None|${nonce}`;
    const sig = hmacHex(SECRET, text);
    const forged = {
      agent_id: 'worker-of-x', role: 'operator', scopes: ['*|Worker|*'],
      issued_at: iat, expire_at: exp, max_uses: null, nonce, sig_hex: sig,
    };
    // The same signature is a Worker's (agent worker-of-x|Operator|*, scopes ["*"]):
    // the two tokens have one signing text.
    const asWorker = { ...forged, agent_id: 'worker-of-x|Operator|*', role: 'worker', scopes: ['*'] };
    assert.equal(mluaSigningText(forged), text);
    assert.equal(mluaSigningText(asWorker), text);
    const bearers = [toBearer(forged), toBearer(asWorker)];
    // Both are spelled canonically: what is refused is the separator, not the spelling.
    for (const bearer of bearers) assert.equal(bearer, toBearer(canonical(decodeBearer(bearer))));

    const clock = makeClock();
    const second = new TokenStore({ secret: SECRET, format: 'mlua-swarm', now: clock.now });
    const op = second.attachOperator('op');
    second.startTask(op.bearer, { taskId: 'victim' });
    for (const t of [T0, T0 + 10 * YEAR]) {
      // Operators are exempt from expiry: a forged one would work for ever.
      clock.t = t;
      for (const bearer of bearers) {
        refusedUnchanged(second, () => second.adopt(bearer), 'ERR_MALFORMED_TOKEN');
        refusedUnchanged(second, () => second.adopt(bearer, 'victim'), 'ERR_MALFORMED_TOKEN');
        refusedUnchanged(second, () => second.startTask(bearer), 'ERR_MALFORMED_TOKEN');
        refusedUnchanged(second, () => second.startTask(bearer, { taskId: 'mine' }), 'ERR_MALFORMED_TOKEN');
        refusedUnchanged(second, () => second.dispatchAttempt(bearer, 'victim'), 'ERR_MALFORMED_TOKEN');
        for (const verb of ['start_task', 'heartbeat', 'cancel_task', 'mark_pass', 'fetch_prompt']) {
          refusedUnchanged(second, () => second.verify(bearer, verb, 'victim'), 'ERR_MALFORMED_TOKEN');
          assert.equal(second.check(bearer, verb, 'victim').code, 'ERR_MALFORMED_TOKEN');
        }
        refusedUnchanged(second, () => second.remint(bearer), 'ERR_MALFORMED_TOKEN');
      }
    }
    assert.equal(second.size, 1);
    assert.deepEqual(second.tasks().map((t) => t.taskId), ['victim']);
  });
});

describe('a Worker cannot escalate through dispatchAttempt', () => {
  /** An Operator's task `mine` with a Worker of 1 use, scopes ["read"], 60 s; another Operator's task `theirs`. */
  function setup(workerOptions = { maxUses: 1, scopes: ['read'], ttlSecs: 60 }) {
    const { store, clock } = makeStore();
    const op = store.attachOperator('op-1');
    const other = store.attachOperator('op-2');
    store.startTask(op.bearer, { taskId: 'mine' });
    store.startTask(other.bearer, { taskId: 'theirs' });
    const worker = store.dispatchAttempt(op.bearer, 'mine', workerOptions);
    return { store, clock, op, other, worker };
  }

  it('a dispatch to another Operator\'s task is a mismatch and spends nothing', () => {
    const { store, worker } = setup();
    for (const options of [undefined, { maxUses: 1 }, { scopes: ['read'], ttlSecs: 10 }]) {
      const e = refusedUnchanged(store, () => store.dispatchAttempt(worker.bearer, 'theirs', options), 'ERR_TOKEN_TASK_MISMATCH',
        { fingerprint: worker.fingerprint, bound: 'mine', arg: 'theirs' });
      assert.equal(e.arg, 'theirs');
    }
    assert.equal(store.record(worker.fingerprint).usesLeft, 1, 'nothing spent');
    // With its one use left it cannot dispatch at all (nothing to transfer) …
    refusedUnchanged(store, () => store.dispatchAttempt(worker.bearer, 'mine', { maxUses: 1 }), 'ERR_TOKEN_USES_EXHAUSTED');
    refusedUnchanged(store, () => store.dispatchAttempt(worker.bearer, 'mine'), ['ERR_TOKEN_USES_EXHAUSTED', 'ERR_INVALID_ARGUMENT']);
    // … and that use is still its own.
    assert.equal(store.verify(worker.bearer, 'fetch_prompt', 'mine').usesLeft, 0);
    assert.equal(store.records().filter((r) => r.task_id === 'theirs').length, 0);
  });

  it('cannot get ["*"] or any scope it does not hold', () => {
    const { store, worker } = setup({ maxUses: 5, scopes: ['read'], ttlSecs: 60 });
    for (const scopes of [['*'], ['write'], ['read', 'write'], ['read', '*'], ['READ']]) {
      refusedUnchanged(store, () => store.dispatchAttempt(worker.bearer, 'mine', { maxUses: 1, scopes }), 'ERR_INVALID_ARGUMENT');
    }
    assert.equal(store.record(worker.fingerprint).usesLeft, 5);
    // Left out, the scopes are its own.
    const child = store.dispatchAttempt(worker.bearer, 'mine', { maxUses: 1 });
    assert.deepEqual(child.token.scopes, ['read']);
    assert.deepEqual(store.check(child.bearer, 'fetch_prompt', 'mine').scopes, ['read']);
  });

  it('cannot outlive itself', () => {
    const { store, clock, worker } = setup({ maxUses: 20, scopes: ['read'], ttlSecs: 60 });
    const expiry = worker.token.expire_at;
    assert.equal(expiry, T0 + 60);
    for (const ttlSecs of [61, 1800, 3600, 10 * YEAR]) {
      refusedUnchanged(store, () => store.dispatchAttempt(worker.bearer, 'mine', { maxUses: 1, ttlSecs }), 'ERR_INVALID_ARGUMENT');
    }
    // Left out, the expiry is the narrower of the store's ttl and its own.
    assert.equal(store.dispatchAttempt(worker.bearer, 'mine', { maxUses: 1 }).token.expire_at, expiry);
    clock.t = T0 + 30;
    refusedUnchanged(store, () => store.dispatchAttempt(worker.bearer, 'mine', { maxUses: 1, ttlSecs: 31 }), 'ERR_INVALID_ARGUMENT');
    assert.equal(store.dispatchAttempt(worker.bearer, 'mine', { maxUses: 1, ttlSecs: 30 }).token.expire_at, expiry);
    const late = store.dispatchAttempt(worker.bearer, 'mine', { maxUses: 3 });
    assert.equal(late.token.expire_at, expiry);
    // A grandchild cannot stretch it either.
    const grand = store.dispatchAttempt(late.bearer, 'mine', { maxUses: 1 });
    assert.ok(grand.token.expire_at <= expiry);
    clock.t = expiry;
    for (const m of [worker, late, grand]) {
      throwsCap(() => store.verify(m.bearer, 'fetch_prompt', 'mine'), ['ERR_TOKEN_EXPIRED', 'ERR_TOKEN_USES_EXHAUSTED']);
    }
  });

  /**
   * An adversarial subtree: every token asks for an unlimited child, then for
   * a huge one, then for as much as it may, recursively, and then verifies
   * until refused. Returns the successful calls of the whole subtree.
   */
  function exploit(store, minted, taskId, depth = 0, total = { calls: 0 }) {
    let calls = 0;
    let verifies = 0;
    const left = () => store.check(minted.bearer, 'fetch_data').usesLeft;
    const asks = [{}, { maxUses: null }, { maxUses: 0 }, { maxUses: 2 ** 32 - 1 }, { maxUses: 1000 }];
    // (`total` bounds the run when budgets are copied, as the old rules did.)
    for (let round = 0; round < 3 && depth < 4 && total.calls < 1000; round++) {
      const l = left();
      const tries = [...asks];
      if (typeof l === 'number') tries.push({ maxUses: l }, { maxUses: l - 1 }, { maxUses: Math.ceil(l / 2) });
      for (const ask of tries) {
        let child;
        try {
          child = store.dispatchAttempt(minted.bearer, taskId, ask);
        } catch {
          continue;
        }
        calls++;
        total.calls++;
        const below = exploit(store, child, taskId, depth + 1, total);
        calls += below.calls;
        verifies += below.verifies;
      }
    }
    for (let i = 0; i < 1000; i++) {
      try {
        store.verify(minted.bearer, 'fetch_prompt', taskId);
      } catch {
        break;
      }
      calls++;
      verifies++;
      total.calls++;
    }
    return { calls, verifies };
  }

  it('cannot multiply a budget down the tree: a subtree never makes more calls than its root token', () => {
    const { store, worker } = setup({ maxUses: 10, scopes: ['read'], ttlSecs: 60 });
    const { calls, verifies } = exploit(store, worker, 'mine');
    assert.ok(calls <= 10, `the subtree made ${calls} calls on a budget of 10`);
    assert.ok(verifies <= 10, `the subtree verified ${verifies} times on a budget of 10`);
    assert.ok(verifies >= 1);
    // Every token of the subtree is spent; none is unlimited.
    for (const r of store.records().filter((rec) => rec.task_id === 'mine')) {
      assert.notEqual(r.uses_left, null, 'an unlimited token was minted below a limited Worker');
      assert.equal(r.uses_left, 0);
    }
  });

  it('fanning out costs the same: each child\'s uses come out of the parent\'s', () => {
    const { store, worker } = setup({ maxUses: 10, scopes: ['read'], ttlSecs: 60 });
    const children = [];
    for (let i = 0; i < 100; i++) {
      try {
        children.push(store.dispatchAttempt(worker.bearer, 'mine', { maxUses: 1 }));
      } catch (e) {
        assert.equal(e.code, 'ERR_TOKEN_USES_EXHAUSTED');
        break;
      }
    }
    // Each dispatch costs the Worker 1 + 1 uses: five of them spend its 10, and
    // each child has its one use: 5 dispatches + 5 verifies.
    let verifies = 0;
    for (const m of [worker, ...children]) {
      while (store.check(m.bearer, 'fetch_prompt', 'mine').allowed) {
        store.verify(m.bearer, 'fetch_prompt', 'mine');
        verifies++;
      }
    }
    assert.equal(children.length + verifies, 10, `${children.length} dispatches and ${verifies} verifies`);
  });

  it('a limited Worker must name a budget it has; a refusal spends nothing', () => {
    const { store, worker } = setup({ maxUses: 4, scopes: ['read'], ttlSecs: 60 });
    for (const options of [undefined, {}, { maxUses: null }, { maxUses: 0 }, { maxUses: 4 }, { maxUses: 2 ** 32 - 1 }]) {
      refusedUnchanged(store, () => store.dispatchAttempt(worker.bearer, 'mine', options), 'ERR_INVALID_ARGUMENT');
    }
    assert.equal(store.record(worker.fingerprint).usesLeft, 4);
    assert.equal(store.dispatchAttempt(worker.bearer, 'mine', { maxUses: 3 }).token.max_uses, 3);
    assert.equal(store.record(worker.fingerprint).usesLeft, 0);
  });
});

describe('a Worker cannot spawn past its depth cap', () => {
  it('the deepest Worker cannot dispatch to a root task, nor start a task under one', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'root' });
    store.startTask(op.bearer, { taskId: 'other-root' });
    let worker = store.dispatchAttempt(op.bearer, 'root');
    const chain = ['root'];
    for (let depth = 1; depth < 4; depth++) {
      const t = store.startTask(worker.bearer);
      assert.equal(t.spawnDepth, depth);
      chain.push(t.taskId);
      worker = store.dispatchAttempt(worker.bearer, t.taskId);
    }
    refusedUnchanged(store, () => store.startTask(worker.bearer), 'ERR_SPAWN_DEPTH_EXCEEDED', { current: 4, max: 4 });
    // The way around the cap: a fresh depth-0 Worker from a dispatch to a root task.
    for (const target of ['root', 'other-root', chain[1], chain[2]]) {
      refusedUnchanged(store, () => store.dispatchAttempt(worker.bearer, target), 'ERR_TOKEN_TASK_MISMATCH',
        { bound: chain[3], arg: target });
      refusedUnchanged(store, () => store.startTask(worker.bearer, { parentId: target }), 'ERR_TOKEN_TASK_MISMATCH',
        { bound: chain[3], arg: target });
    }
    // Only the Operator's own dispatch is bound to a root task.
    assert.equal(store.records().filter((r) => r.task_id === 'root').length, 1);
    assert.equal(store.records().filter((r) => r.task_id === 'other-root').length, 0);
    assert.ok(store.tasks().every((t) => t.spawnDepth < 4));
  });
});

describe('a Worker cannot write into another task', () => {
  it('post_result, cancel_task, emit_output (and the other task-state verbs) must name its own task exactly', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'mine' });
    store.startTask(op.bearer, { taskId: 'theirs' });
    store.startTask(op.bearer, { parentId: 'mine', taskId: 'mine-child' });
    const worker = store.dispatchAttempt(op.bearer, 'mine', { maxUses: 20 });
    for (const verb of ['post_result', 'cancel_task', 'emit_output', 'fetch_prompt', 'read_task_state', 'poll_task']) {
      for (const target of ['theirs', 'mine-child', 'nobody', 'MINE']) {
        refusedUnchanged(store, () => store.verify(worker.bearer, verb, target), 'ERR_TOKEN_TASK_MISMATCH',
          { fingerprint: worker.fingerprint, bound: 'mine', arg: target });
        assert.equal(store.check(worker.bearer, verb, target).code, 'ERR_TOKEN_TASK_MISMATCH');
      }
      refusedUnchanged(store, () => store.verify(worker.bearer, verb), 'ERR_TOKEN_TASK_MISMATCH', { bound: 'mine' });
    }
    assert.equal(store.record(worker.fingerprint).usesLeft, 20);
    assert.equal(store.verify(worker.bearer, 'emit_output', 'mine').usesLeft, 19);
    assert.equal(store.verify(worker.bearer, 'post_result', 'mine').usesLeft, 18);
  });
});

describe('a Worker cannot squat task ids', () => {
  it('it cannot name the tasks it starts; the Operator\'s ids stay free', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'mine' });
    const worker = store.dispatchAttempt(op.bearer, 'mine', { maxUses: 100 });
    for (const taskId of ['job-42', 'root', 'task-000000000000', 'mine']) {
      refusedUnchanged(store, () => store.startTask(worker.bearer, { taskId }), 'ERR_INVALID_ARGUMENT');
      refusedUnchanged(store, () => store.startTask(worker.bearer, { taskId, parentId: 'mine' }), 'ERR_INVALID_ARGUMENT');
    }
    // Nor take an untracked id by dispatching to it.
    refusedUnchanged(store, () => store.dispatchAttempt(worker.bearer, 'job-42', { maxUses: 1 }), 'ERR_TOKEN_TASK_MISMATCH');
    assert.equal(store.record(worker.fingerprint).usesLeft, 100);
    // The ids it does get are made by the store.
    const ids = new Set();
    for (let i = 0; i < 30; i++) {
      const t = store.startTask(worker.bearer);
      assert.match(t.taskId, /^task-[0-9a-f]{12}$/);
      assert.equal(t.parentId, 'mine');
      ids.add(t.taskId);
    }
    assert.equal(ids.size, 30);
    // The Operator's job-42 is its own: a root the Worker cannot touch.
    assert.deepEqual(store.startTask(op.bearer, { taskId: 'job-42' }), { taskId: 'job-42', parentId: null, spawnDepth: 0 });
    const owner = store.dispatchAttempt(op.bearer, 'job-42');
    assert.equal(store.verify(owner.bearer, 'fetch_prompt', 'job-42').taskId, 'job-42');
    refusedUnchanged(store, () => store.verify(worker.bearer, 'post_result', 'job-42'), 'ERR_TOKEN_TASK_MISMATCH');
    refusedUnchanged(store, () => store.startTask(worker.bearer, { parentId: 'job-42' }), 'ERR_TOKEN_TASK_MISMATCH');
  });
});

describe('a Worker cannot exhaust the store\'s memory', () => {
  const LOOP = 20_000; // far past every limit below; the old rules never refused

  /** Call `make` until it throws; the refusal must be ERR_LIMIT_EXCEEDED. */
  function fill(store, make) {
    let made = 0;
    for (; made < LOOP; made++) {
      try {
        make(made);
      } catch (e) {
        return { made, error: e };
      }
    }
    assert.fail(`${LOOP} calls and no limit`);
    return { made };
  }

  it('children per task: an unlimited Worker looping startTask is stopped at maxChildrenPerTask', () => {
    const options = { maxChildrenPerTask: 25 };
    const { store } = makeStore(options);
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'mine' });
    const worker = store.dispatchAttempt(op.bearer, 'mine');
    const { made, error } = fill(store, () => store.startTask(worker.bearer));
    assert.equal(made, 25);
    throwsCap(() => { throw error; }, 'ERR_LIMIT_EXCEEDED', { limit: 'maxChildrenPerTask', max: 25 });
    refusedUnchanged(store, () => store.startTask(worker.bearer), 'ERR_LIMIT_EXCEEDED', { limit: 'maxChildrenPerTask', max: 25 });
    assert.equal(store.tasks().length, 26);
    assert.equal(store.verify(worker.bearer, 'fetch_prompt', 'mine').taskId, 'mine');
    assert.equal(store.startTask(op.bearer).spawnDepth, 0);
    assertStoreWorks(store, options);
  });

  it('tasks per tree: spreading children over its subtree is stopped at maxTasksPerTree', () => {
    const options = { maxTasksPerTree: 40 };
    const { store } = makeStore(options);
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'mine' });
    const worker = store.dispatchAttempt(op.bearer, 'mine');
    // Parents spread over the subtree (never past the depth cap, never many children each).
    const parents = ['mine'];
    const { made, error } = fill(store, (i) => {
      const t = store.startTask(worker.bearer, { parentId: parents[i % parents.length] });
      if (t.spawnDepth < 3) parents.push(t.taskId);
    });
    assert.equal(made, 39, 'the root and 39 tasks below it');
    throwsCap(() => { throw error; }, 'ERR_LIMIT_EXCEEDED', { limit: 'maxTasksPerTree', max: 40 });
    assert.equal(store.tasks().length, 40);
    // Another tree is not affected.
    store.startTask(op.bearer, { taskId: 'fresh' });
    assert.equal(store.startTask(store.dispatchAttempt(op.bearer, 'fresh').bearer).parentId, 'fresh');
    assertStoreWorks(store, options);
  });

  it('tasks and tokens per Worker token: stopped at maxMadePerWorkerToken', () => {
    const options = { maxMadePerWorkerToken: 30 };
    const { store } = makeStore(options);
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'mine' });
    const worker = store.dispatchAttempt(op.bearer, 'mine');
    const { made, error } = fill(store, (i) => (i % 2 ? store.dispatchAttempt(worker.bearer, 'mine') : store.startTask(worker.bearer)));
    assert.equal(made, 30);
    throwsCap(() => { throw error; }, 'ERR_LIMIT_EXCEEDED', { limit: 'maxMadePerWorkerToken', max: 30 });
    refusedUnchanged(store, () => store.dispatchAttempt(worker.bearer, 'mine'), 'ERR_LIMIT_EXCEEDED', { limit: 'maxMadePerWorkerToken', max: 30 });
    assert.equal(store.verify(worker.bearer, 'fetch_prompt', 'mine').taskId, 'mine');
    assertStoreWorks(store, options);
  });

  it('tasks and records per store: Workers stop at nine tenths, and an Operator can still start a new root', () => {
    const options = { maxTasks: 60, maxRecords: 80 };
    const { store } = makeStore(options);
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'mine' });
    // Worker after Worker, each making children until the store refuses.
    let worker = store.dispatchAttempt(op.bearer, 'mine');
    const tasks = fill(store, () => store.startTask(worker.bearer));
    throwsCap(() => { throw tasks.error; }, 'ERR_LIMIT_EXCEEDED', { limit: 'maxTasks', max: 60 });
    assert.equal(store.tasks().length, 54, 'Workers fill maxTasks to nine tenths');
    const records = fill(store, () => { worker = store.dispatchAttempt(worker.bearer, 'mine'); });
    throwsCap(() => { throw records.error; }, 'ERR_LIMIT_EXCEEDED', { limit: 'maxRecords', max: 80 });
    assert.equal(store.size, 72, 'Workers fill maxRecords to nine tenths');
    // The store keeps working …
    assert.equal(store.verify(worker.bearer, 'fetch_prompt', 'mine').taskId, 'mine');
    assert.equal(store.check(op.bearer, 'heartbeat').allowed, true);
    // … and the Operator can start a new root task and dispatch to it.
    const fresh = store.startTask(op.bearer);
    assert.equal(fresh.spawnDepth, 0);
    const rescue = store.dispatchAttempt(op.bearer, fresh.taskId, { maxUses: 3 });
    assert.equal(store.verify(rescue.bearer, 'fetch_prompt', fresh.taskId).usesLeft, 2);
    // Workers stay refused.
    refusedUnchanged(store, () => store.startTask(rescue.bearer), 'ERR_LIMIT_EXCEEDED', { limit: 'maxTasks', max: 60 });
    assertStoreWorks(store, options);
  });
});

describe('one token, one bearer', () => {
  it('re-spelled bearers of a valid token are ERR_MALFORMED_TOKEN; the canonical one verifies', () => {
    for (const format of ['v2', 'mlua-swarm']) {
      const { store } = makeStore({ format });
      const op = store.attachOperator('op');
      store.startTask(op.bearer, { taskId: 'w-task' });
      const worker = store.dispatchAttempt(op.bearer, 'w-task', { maxUses: 5 });
      const json = decodeBearer(worker.bearer);
      const text = JSON.stringify(json);
      assert.equal(worker.bearer, Buffer.from(text).toString('base64url'));
      const keys = Object.keys(json);
      const respelled = {
        'spaces': toBearer(JSON.stringify(json, null, ' ')),
        'a space after each colon': toBearer(text.replace(/":/g, '": ')),
        'key order': toBearer(Object.fromEntries([...keys].reverse().map((k) => [k, json[k]]))),
        'nonce first': toBearer({ nonce: json.nonce, ...json }),
        '\\u0077 escapes': toBearer(text.replace(/w/g, '\\u0077')),
        'padding': `${worker.bearer}${'='.repeat((4 - (worker.bearer.length % 4)) % 4 || 4)}`,
        'standard base64 with padding': Buffer.from(`${text}`).toString('base64').replace(/=*$/, '=='),
        'capitalised role': toBearer({ ...json, role: 'Worker' }),
      };
      // A deny-list keyed by bearer text would miss every one of these.
      const denied = new Set([worker.bearer]);
      const other = new TokenStore({ secret: SECRET, format, now: () => T0 });
      for (const [what, bearer] of Object.entries(respelled)) {
        assert.ok(!denied.has(bearer), what);
        refusedUnchanged(store, () => store.verify(bearer, 'fetch_prompt', 'w-task'), 'ERR_MALFORMED_TOKEN');
        assert.equal(store.check(bearer, 'fetch_prompt', 'w-task').code, 'ERR_MALFORMED_TOKEN', what);
        refusedUnchanged(store, () => store.dispatchAttempt(bearer, 'w-task', { maxUses: 1 }), 'ERR_MALFORMED_TOKEN');
        refusedUnchanged(store, () => store.remint(bearer), 'ERR_MALFORMED_TOKEN');
        refusedUnchanged(other, () => other.adopt(bearer, 'w-task'), 'ERR_MALFORMED_TOKEN');
      }
      assert.equal(store.record(worker.fingerprint).usesLeft, 5);
      assert.equal(store.verify(worker.bearer, 'fetch_prompt', 'w-task').usesLeft, 4);
      assert.equal(other.adopt(worker.bearer, 'w-task'), worker.fingerprint);
      assert.equal(fingerprintOf(json.nonce), worker.fingerprint);
    }
  });
});

describe('remint cannot stretch a token', () => {
  it('a 60 s token reminted keeps a 60 s lifetime', () => {
    const { store, clock } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'T' });
    const w = store.dispatchAttempt(op.bearer, 'T', { maxUses: 3, ttlSecs: 60 });
    clock.t = T0 + 90; // delivered late: expired 30 s ago
    const fresh = store.remint(w.bearer);
    assert.equal(fresh.token.issued_at, T0 + 90);
    assert.equal(fresh.token.expire_at, T0 + 90 + 60);
    assert.equal(fresh.token.max_uses, 3);
    // … and again: still 60 s, never the store's 1800.
    clock.t = T0 + 200;
    const again = store.remint(fresh.bearer);
    assert.equal(again.token.expire_at - again.token.issued_at, 60);
  });

  it('a token expired a year ago is refused, and nothing changes', () => {
    const { store, clock } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'T' });
    const w = store.dispatchAttempt(op.bearer, 'T', { maxUses: 3, ttlSecs: 60 });
    clock.t = w.token.expire_at + YEAR;
    refusedUnchanged(store, () => store.remint(w.bearer), 'ERR_TOKEN_EXPIRED', { fingerprint: w.fingerprint });
    assert.equal(store.record(w.fingerprint).revoked, false);
    assert.equal(store.record(w.fingerprint).usesLeft, 3);
    assert.equal(store.size, 2);
  });
});
