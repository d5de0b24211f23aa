// docs/protocol.md "Tasks and spawn depth": root tasks, child tasks, maxSpawnDepth,
// dispatch_attempt, and Workers bound to tasks the store does not track.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { T0, makeStore, throwsCap, decodeBearer } from './helpers.js';
import { stateOf } from './helpers.js';

/**
 * Build a chain root -> ... as deep as allowed; return the Workers per depth.
 * Each Worker starts the next task itself; its id is made by the store.
 */
function chain(store, op, depths) {
  const root = store.startTask(op.bearer, { taskId: 'd0' });
  assert.deepEqual(root, { taskId: 'd0', parentId: null, spawnDepth: 0 });
  const workers = [store.dispatchAttempt(op.bearer, 'd0')];
  let parent = 'd0';
  for (let d = 1; d < depths; d++) {
    const task = store.startTask(workers[d - 1].bearer);
    assert.match(task.taskId, /^task-[0-9a-f]{12}$/);
    assert.deepEqual(task, { taskId: task.taskId, parentId: parent, spawnDepth: d });
    workers.push(store.dispatchAttempt(op.bearer, task.taskId));
    parent = task.taskId;
  }
  return workers;
}

describe('spawn depth', () => {
  it('depths 0 to 3 exist by default and depth 4 is refused', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    const workers = chain(store, op, 4);
    throwsCap(() => store.startTask(workers[3].bearer), 'ERR_SPAWN_DEPTH_EXCEEDED', { current: 4, max: 4 });
    assert.deepEqual(store.tasks().map((t) => t.spawnDepth), [0, 1, 2, 3]);
    // A Worker at a shallower depth can still spawn siblings.
    assert.equal(store.startTask(workers[2].bearer).spawnDepth, 3);
    assert.equal(store.startTask(workers[0].bearer).spawnDepth, 1);
  });

  it('an Operator always starts root tasks at depth 0', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    const t = store.startTask(op.bearer);
    assert.equal(t.parentId, null);
    assert.equal(t.spawnDepth, 0);
    assert.match(t.taskId, /^.+$/);
    assert.deepEqual(store.task(t.taskId), t);
    const t2 = store.startTask(op.bearer);
    assert.notEqual(t2.taskId, t.taskId, 'generated ids are unique');
  });

  for (const max of [1, 2, 3, 6]) {
    it(`maxSpawnDepth ${max}: depths 0..${max - 1} exist, depth ${max} is refused`, () => {
      const { store } = makeStore({ maxSpawnDepth: max });
      const op = store.attachOperator('op');
      const workers = chain(store, op, max);
      throwsCap(() => store.startTask(workers[max - 1].bearer), 'ERR_SPAWN_DEPTH_EXCEEDED', { current: max, max });
      assert.equal(store.tasks().length, max);
    });
  }

  it('a refused spawn spends nothing and creates nothing', () => {
    const { store } = makeStore({ maxSpawnDepth: 2 });
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'a' });
    const w = store.dispatchAttempt(op.bearer, 'a', { maxUses: 3 });
    const b = store.startTask(w.bearer);
    const wb = store.dispatchAttempt(op.bearer, b.taskId, { maxUses: 3 });
    const before = stateOf(store);
    throwsCap(() => store.startTask(wb.bearer), 'ERR_SPAWN_DEPTH_EXCEEDED', { current: 2, max: 2 });
    assert.equal(stateOf(store), before);
    assert.equal(store.tasks().length, 2);
    assert.equal(store.record(wb.fingerprint).usesLeft, 3);
    assert.equal(store.record(w.fingerprint).usesLeft, 2);
  });

  it('a Worker bound to an untracked task, or to none, cannot spawn: its depth is unknown', () => {
    const { store } = makeStore();
    const external = store.mint('w', 'worker', { taskId: 'outside' });
    throwsCap(() => store.startTask(external.bearer), 'ERR_TASK_NOT_FOUND');
    const unbound = store.mint('w', 'worker');
    throwsCap(() => store.startTask(unbound.bearer), 'ERR_TASK_NOT_FOUND');
    assert.deepEqual(store.tasks(), []);
    // but it can act on its own task
    assert.equal(store.verify(external.bearer, 'post_result', 'outside').taskId, 'outside');
  });

  it('a Worker adopted with a bound tracked task spawns below it', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'R' });
    const peer = makeStore().store; // same secret, same start time
    const w = peer.mint('remote', 'worker');
    store.adopt(w.bearer, 'R');
    const r1 = store.startTask(w.bearer);
    assert.deepEqual(r1, { taskId: r1.taskId, parentId: 'R', spawnDepth: 1 });
    assert.deepEqual(store.task(r1.taskId), r1);
  });

  it('a Worker may not name its child task: the store makes the id (refused, nothing spent)', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'R' });
    const w = store.dispatchAttempt(op.bearer, 'R', { maxUses: 3 });
    const before = stateOf(store);
    throwsCap(() => store.startTask(w.bearer, { taskId: 'R1' }), 'ERR_INVALID_ARGUMENT');
    assert.equal(stateOf(store), before);
    assert.equal(store.task('R1'), undefined);
    assert.equal(store.record(w.fingerprint).usesLeft, 3);
  });

  it('an Operator may start a named child under any tracked task; a Worker under a task below its own', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'R' });
    assert.deepEqual(store.startTask(op.bearer, { parentId: 'R', taskId: 'R.a' }), { taskId: 'R.a', parentId: 'R', spawnDepth: 1 });
    const w = store.dispatchAttempt(op.bearer, 'R');
    const below = store.startTask(w.bearer, { parentId: 'R.a' });
    assert.deepEqual(below, { taskId: below.taskId, parentId: 'R.a', spawnDepth: 2 });
    store.startTask(op.bearer, { taskId: 'S' });
    throwsCap(() => store.startTask(w.bearer, { parentId: 'S' }), 'ERR_TOKEN_TASK_MISMATCH', { bound: 'R', arg: 'S' });
    throwsCap(() => store.startTask(op.bearer, { parentId: 'ghost', taskId: 'g' }), 'ERR_TASK_NOT_FOUND');
  });
});

describe('dispatch_attempt', () => {
  it('mints a Worker bound to the task with the documented defaults', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'job-1' });
    const w = store.dispatchAttempt(op.bearer, 'job-1');
    assert.deepEqual(Object.keys(w).sort(), ['bearer', 'fingerprint', 'token']);
    assert.equal(w.token.agent_id, 'worker-of-job-1');
    assert.equal(w.token.role, 'worker');
    assert.deepEqual(w.token.scopes, ['*']);
    assert.equal(w.token.max_uses, null);
    assert.equal(w.token.issued_at, T0);
    assert.equal(w.token.expire_at, T0 + 1800);
    assert.deepEqual(decodeBearer(w.bearer), w.token);
    const rec = store.record(w.fingerprint);
    assert.equal(rec.taskId, 'job-1');
    assert.equal(rec.usesLeft, null);
  });

  it('honours maxUses, ttlSecs, scopes and a matching taskId; the store ttl sets the default', () => {
    const { store } = makeStore({ workerTokenTtlSecs: 90 });
    const op = store.attachOperator('op');
    assert.equal(op.token.expire_at, T0 + 90);
    store.startTask(op.bearer, { taskId: 'J' });
    const w = store.dispatchAttempt(op.bearer, 'J', { maxUses: 2, ttlSecs: 30, scopes: ['read', 'write'], taskId: 'J' });
    assert.equal(w.token.max_uses, 2);
    assert.equal(w.token.expire_at, T0 + 30);
    assert.deepEqual(w.token.scopes, ['read', 'write']);
    const d = store.dispatchAttempt(op.bearer, 'J');
    assert.equal(d.token.expire_at, T0 + 90);
  });

  it('an unknown task is ERR_TASK_NOT_FOUND; an options.taskId that differs is refused', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op', { maxUses: 10 });
    throwsCap(() => store.dispatchAttempt(op.bearer, 'ghost'), 'ERR_TASK_NOT_FOUND');
    store.startTask(op.bearer, { taskId: 'A' });
    store.startTask(op.bearer, { taskId: 'B' });
    throwsCap(() => store.dispatchAttempt(op.bearer, 'A', { taskId: 'B' }), 'ERR_INVALID_ARGUMENT');
    assert.equal(store.record(op.fingerprint).usesLeft, 8);
  });

  it('spends one use of the dispatching token', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op', { maxUses: 3 });
    store.startTask(op.bearer, { taskId: 'A' });
    store.dispatchAttempt(op.bearer, 'A');
    assert.equal(store.record(op.fingerprint).usesLeft, 1);
    store.dispatchAttempt(op.bearer, 'A');
    throwsCap(() => store.dispatchAttempt(op.bearer, 'A'), 'ERR_TOKEN_USES_EXHAUSTED');
    throwsCap(() => store.startTask(op.bearer), 'ERR_TOKEN_USES_EXHAUSTED');
  });

  it('is gated like any verb: an Observer or Senior may not dispatch', () => {
    const { store } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'A' });
    const obs = store.mint('o', 'observer');
    const sen = store.mint('s', 'senior');
    throwsCap(() => store.dispatchAttempt(obs.bearer, 'A'), 'ERR_ROLE_VIOLATION', { role: 'observer', verb: 'dispatch_attempt' });
    throwsCap(() => store.startTask(sen.bearer), 'ERR_ROLE_VIOLATION', { role: 'senior', verb: 'start_task' });
  });
});
