// Misuse of the classes themselves — a freed object, a foreign `this`, a
// double free, a callback re-entering a busy store — is a CapTokenError in
// both the Node entry and the browser entry, never a glue error or a
// mistyped pointer reaching Rust.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import * as node from 'captoken';
import * as web from 'captoken/web';

await web.default(await readFile(new URL('../../pkg/web/captoken_bg.wasm', import.meta.url)));
const secret = new Uint8Array(32).fill(5);

for (const [name, api] of [['node', node], ['web', web]]) {
  const { TokenStore, CapTokenRecord, CapTokenError } = api;
  const misuse = (e) => e instanceof CapTokenError && e.code === 'ERR_INVALID_ARGUMENT' && /not a live/.test(e.message);

  test(`${name}: a freed store or record refuses every call; a second free is a no-op`, () => {
    const store = new TokenStore({ secret });
    const op = store.attachOperator('op');
    const record = store.record(op.fingerprint);
    store.free();
    store.free();
    assert.throws(() => store.verify(op.bearer, 'heartbeat'), misuse);
    assert.throws(() => store.check(op.bearer, 'heartbeat'), misuse);
    assert.throws(() => store.size, misuse);
    assert.throws(() => store.snapshot(), misuse);
    // The record is its own object and outlives the store.
    assert.equal(record.usesLeft, null);
    record.free();
    record.free();
    assert.throws(() => record.consume(), misuse);
    assert.throws(() => record.fingerprint, misuse);
  });

  test(`${name}: a method called on another object is refused before Rust sees it`, () => {
    const store = new TokenStore({ secret });
    const op = store.attachOperator('op');
    const record = store.record(op.fingerprint);
    assert.throws(() => TokenStore.prototype.verify.call(record, op.bearer, 'heartbeat'), misuse);
    assert.throws(() => CapTokenRecord.prototype.consume.call(store), misuse);
    assert.throws(() => TokenStore.prototype.snapshot.call({ __wbg_ptr: 8 }), misuse);
    const getter = Object.getOwnPropertyDescriptor(TokenStore.prototype, 'size').get;
    assert.throws(() => getter.call(null), misuse);
    assert.equal(store.verify(op.bearer, 'heartbeat').role, 'operator', 'the store still works');
  });

  test(`${name}: a clock that calls back into the busy store gets a CapTokenError`, () => {
    let store;
    let inner;
    store = new TokenStore({
      secret,
      now: () => {
        try {
          store.size;
        } catch (e) {
          inner = e;
        }
        return 1_764_150_000;
      },
    });
    const op = store.attachOperator('op');
    assert.ok(inner instanceof CapTokenError, String(inner));
    assert.equal(inner.code, 'ERR_INVALID_ARGUMENT');
    assert.equal(store.verify(op.bearer, 'heartbeat').agentId, 'op');
  });
}

// A module instance interrupted in the middle of a call (a trap, or the call
// stack running out inside WebAssembly, as here) must not be used again:
// before, the interrupted call left its borrow held and every later verify
// failed with ERR_INVALID_ARGUMENT "recursive use of an object". Run in a
// child process: the instance it breaks is its own.
test('a trapped instance: every later call of every store is ERR_STORE_UNAVAILABLE', () => {
  const child = `
    const { TokenStore, CapTokenRecord, CapTokenError } = require('captoken');
    const secret = new Uint8Array(32).fill(5);
    const store = new TokenStore({ secret });
    const other = new TokenStore({ secret });
    const op = store.attachOperator('op');
    const w = store.mint('w', 'worker', { maxUses: 1000000, taskId: 't' });
    const snapshot = other.snapshot();
    const seen = new Set();
    // Run out of stack at every depth on the way back up, so that some call
    // runs out inside the module.
    function dive(n) {
      try { dive(n + 1); } catch {}
      try { store.verify(w.bearer, 'fetch_prompt', 't'); } catch (e) { seen.add(e instanceof CapTokenError ? e.code : e.name); }
    }
    for (let i = 0; i < 20 && !seen.has('ERR_STORE_UNAVAILABLE'); i++) dive(0);
    const after = [
      () => store.verify(op.bearer, 'heartbeat'),
      () => store.check(op.bearer, 'heartbeat'),
      () => store.size,
      () => other.verify(op.bearer, 'heartbeat'),
      () => other.snapshot(),
      () => new TokenStore({ secret }),
      () => TokenStore.restore(snapshot, { secret }),
      () => CapTokenRecord.fromToken(w.token),
    ].map((f) => { try { f(); return 'returned'; } catch (e) { return (e instanceof CapTokenError ? e.code : e.name) + ' ' + e.message; } });
    store.free();
    console.log(JSON.stringify({ seen: [...seen], after }));
  `;
  const result = spawnSync(process.execPath, ['-e', child], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(result.status, 0, result.stderr);
  const { seen, after } = JSON.parse(result.stdout);
  assert.ok(seen.includes('ERR_STORE_UNAVAILABLE'), `the trap was not seen: ${seen}`);
  for (const outcome of after) {
    assert.match(outcome, /^ERR_STORE_UNAVAILABLE store unavailable: the WebAssembly instance trapped .*reload/);
  }
});
