// verify and check take the bearer through the module's inbox (written with
// TextEncoder.encodeInto). The inbox must survive memory growth and re-entry,
// and decide every odd string exactly as the ordinary path does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
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
