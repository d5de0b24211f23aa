// verify and check take the bearer through the module's inbox (written with
// TextEncoder.encodeInto). The inbox must survive memory growth and re-entry,
// and decide every odd string exactly as the ordinary path does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { SECRET, T0, signToken, toBearer } from './helpers.js';
import * as node from 'captoken';
import * as web from 'captoken/web';

await web.default(await readFile(new URL('../../pkg/web/captoken_bg.wasm', import.meta.url)));
const secret = new Uint8Array(32).fill(6);

for (const [name, { TokenStore, __memoryBytes }] of [['node', node], ['web', web]]) {
  test(`${name}: decisions stay right after linear memory grows`, () => {
    const store = new TokenStore({ secret });
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 't' });
    const first = store.dispatchAttempt(op.bearer, 't', { maxUses: 2 });
    assert.equal(store.verify(first.bearer, 'fetch_prompt', 't').usesLeft, 1);
    const before = __memoryBytes?.();
    for (let i = 0; i < 20000; i++) store.dispatchAttempt(op.bearer, 't');
    if (before !== undefined) assert.ok(node.__memoryBytes() > before, 'memory grew');
    assert.equal(store.verify(first.bearer, 'fetch_prompt', 't').usesLeft, 0);
    assert.equal(store.check(first.bearer, 'fetch_prompt', 't').code, 'ERR_TOKEN_USES_EXHAUSTED');
  });

  test(`${name}: odd strings are decided as malformed, never misread`, () => {
    const store = new TokenStore({ secret });
    const op = store.attachOperator('op');
    const cases = ['', 'é'.repeat(10), '\uD800', `${op.bearer}\uD800`, 'a'.repeat(8192), '€'.repeat(8192),
      `${op.bearer}=`, op.bearer.slice(0, -1)];
    for (const bearer of cases) {
      const decision = store.check(bearer, 'heartbeat');
      assert.equal(decision.allowed, false, JSON.stringify(bearer.slice(0, 20)));
      assert.equal(decision.code, 'ERR_MALFORMED_TOKEN');
      assert.throws(() => store.verify(bearer, 'heartbeat'), { code: 'ERR_MALFORMED_TOKEN' });
    }
    assert.equal(store.check('a'.repeat(8193), 'heartbeat').code, 'ERR_MALFORMED_TOKEN');
    assert.equal(store.verify(op.bearer, 'heartbeat').agentId, 'op');
  });

  test(`${name}: a clock that verifies another bearer mid-call cannot swap the inbox`, () => {
    let store;
    let other;
    let inner;
    store = new TokenStore({
      secret,
      now: () => {
        if (other) {
          try {
            store.check(other, 'heartbeat');
          } catch (e) {
            inner = e;
          }
        }
        return 1_764_150_000;
      },
    });
    const op = store.attachOperator('op');
    const w = store.mint('w', 'worker', { taskId: 't', maxUses: 3 });
    other = op.bearer;
    const grant = store.verify(w.bearer, 'fetch_prompt', 't');
    assert.equal(grant.agentId, 'w');
    assert.equal(grant.usesLeft, 2);
    assert.equal(inner?.code, 'ERR_INVALID_ARGUMENT', 're-entry is refused, not served');
  });
}

for (const [name, { TokenStore }] of [['node', node], ['web', web]]) {
  test(`${name}: task ids and verbs take the inbox or the ordinary path and are decided alike`, () => {
    const store = new TokenStore({ secret });
    const op = store.attachOperator('op');
    // 256 units is the inbox's limit; 257 and ill-formed ones take the ordinary path.
    for (const taskId of ['t', 'é-task-😀', 'x'.repeat(256), '€'.repeat(85)]) {
      const w = store.mint('w', 'worker', { taskId });
      for (const decide of [(...a) => store.verify(...a), (...a) => store.check(...a)]) {
        const grant = decide(w.bearer, 'fetch_prompt', taskId);
        assert.equal(grant.taskId, taskId);
        assert.equal(grant.fingerprint, w.fingerprint);
      }
      assert.equal(store.check(w.bearer, 'fetch_prompt', `${taskId}z`).code, 'ERR_TOKEN_TASK_MISMATCH');
      assert.throws(() => store.verify(w.bearer, 'fetch_prompt', `${taskId}z`), { code: 'ERR_TOKEN_TASK_MISMATCH' });
    }
    // Longer than the inbox takes (256 units): the ordinary path decides.
    const bound = store.mint('w', 'worker', { taskId: '€'.repeat(85) });
    for (const arg of ['y'.repeat(257), '€'.repeat(300), '']) {
      assert.equal(store.check(bound.bearer, 'fetch_prompt', arg).code, 'ERR_TOKEN_TASK_MISMATCH');
    }
    const w = store.mint('w', 'worker', { taskId: 't' });
    for (const [verb, taskId] of [['fetch_prompt', '\uD800'], ['fetch_prompt', 42], ['fetch_prompt', {}],
      ['no_such_verb', 't'], ['FETCH_PROMPT', 't'], [7, 't'], [undefined, 't'], ['__proto__', 't']]) {
      assert.throws(() => store.verify(w.bearer, verb, taskId), { code: 'ERR_INVALID_ARGUMENT' }, `${verb} ${taskId}`);
      assert.equal(store.check(w.bearer, verb, taskId).code, 'ERR_INVALID_ARGUMENT');
    }
    // Arguments are checked before the bearer is decoded, on both paths.
    assert.equal(store.check('%%', 'no_such_verb').code, 'ERR_INVALID_ARGUMENT');
    assert.equal(store.check('%%', 'heartbeat', '\uD800').code, 'ERR_INVALID_ARGUMENT');
    assert.equal(store.check('%%', 'heartbeat', 't').code, 'ERR_MALFORMED_TOKEN');
    assert.equal(store.verify(w.bearer, 'fetch_prompt', 't').usesLeft, null);
  });

  test(`${name}: a grant's strings come back exactly, ASCII or not, short or long`, () => {
    const store = new TokenStore({ secret: SECRET, now: () => T0 });
    const minted = [];
    for (const agentId of ['w', 'agent-é', '😀'.repeat(3), 'a'.repeat(256)]) {
      for (const taskId of [undefined, 't', 'tâche', 'x'.repeat(256)]) {
        const m = store.mint(agentId, taskId ? 'worker' : 'observer', { taskId, scopes: ['read', 'ü'] });
        minted.push({ ...m, agentId, taskId });
      }
    }
    // Minting caps agent ids at 256 bytes; a token minted elsewhere with the
    // same secret may carry more than the outbox holds, and comes back too.
    for (const agentId of ['b'.repeat(5000), 'é'.repeat(2500)]) {
      const token = signToken({
        agent_id: agentId, role: 'worker', scopes: ['read', 'ü'], issued_at: T0, expire_at: T0 + 60,
        max_uses: null, nonce: randomBytes(16).toString('hex'),
      }, 'v2');
      const bearer = toBearer(token);
      const fingerprint = store.adopt(bearer, 't');
      minted.push({ bearer, fingerprint, agentId, taskId: 't' });
    }
    for (const { bearer, fingerprint, agentId, taskId } of minted) {
      const verb = taskId ? 'fetch_prompt' : 'read_trace';
      for (const grant of [store.check(bearer, verb, taskId), store.verify(bearer, verb, taskId)]) {
        assert.equal(grant.fingerprint, fingerprint);
        assert.equal(grant.agentId, agentId);
        assert.equal(grant.taskId, taskId ?? null);
        assert.deepEqual(grant.scopes, ['read', 'ü']);
      }
    }
  });
}

for (const [name, { TokenStore }] of [['node', node], ['web', web]]) {
  test(`${name}: a clock that decides on another store mid-call leaves this call's bearer and task alone`, () => {
    const other = new TokenStore({ secret });
    const otherOp = other.attachOperator('other-op');
    other.startTask(otherOp.bearer, { taskId: 'other-task' });
    const otherWorker = other.dispatchAttempt(otherOp.bearer, 'other-task');
    let inner;
    const store = new TokenStore({
      secret,
      now: () => {
        inner = other.verify(otherWorker.bearer, 'fetch_prompt', 'other-task');
        return 1_764_150_000;
      },
    });
    const w = store.mint('w', 'worker', { taskId: 't', maxUses: 3 });
    const grant = store.verify(w.bearer, 'fetch_prompt', 't');
    assert.deepEqual([grant.agentId, grant.taskId, grant.usesLeft, grant.fingerprint], ['w', 't', 2, w.fingerprint]);
    assert.equal(inner.agentId, 'worker-of-other-task');
    const decision = store.check(w.bearer, 'fetch_prompt', 't');
    assert.deepEqual([decision.allowed, decision.taskId, decision.usesLeft], [true, 't', 2]);
  });
}
