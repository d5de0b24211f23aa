// Options objects whose reading runs caller code that throws or lies:
// throwing getters, Proxies (throwing and revoked), arrays with throwing or
// lying elements and lengths, fakes of Uint8Array. The package entry copies
// options into plain data (js/args.js) before the module sees them, so each
// call fails with ERR_INVALID_ARGUMENT, changes nothing, and the store keeps
// working. (These were tests/wasm.rs's direct calls before the copy moved to
// JavaScript.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenStore, CapTokenError } from 'captoken';

const SECRET = new Uint8Array(32).fill(7);
const T0 = 1_764_150_000;
const THROWING_PROXY = () => new Proxy({}, { get() { throw new Error('trap'); } });
const REVOKED_PROXY = () => {
  const p = Proxy.revocable({}, {});
  p.revoke();
  return p.proxy;
};

/** Arrays whose reading runs caller code that throws or lies. */
function hostileArrays() {
  const getterThrows = ['x'];
  Object.defineProperty(getterThrows, 0, { get() { throw new Error('trap'); } });
  return [
    ['element getter throws', getterThrows],
    ['length trap throws', new Proxy([], { get(t, k) { if (k === 'length') throw new Error('trap'); return Reflect.get(t, k); } })],
    ['length trap lies', new Proxy(['a'], { get(t, k) { return k === 'length' ? 1e9 : Reflect.get(t, k); } })],
    ['length trap answers NaN', new Proxy(['a'], { get(t, k) { return k === 'length' ? NaN : Reflect.get(t, k); } })],
    ['throwing proxy', THROWING_PROXY()],
    ['revoked proxy', REVOKED_PROXY()],
  ];
}

const invalid = (what) => (error) => {
  assert.ok(error instanceof CapTokenError, `${what}: threw ${error?.constructor?.name}: ${error?.message}`);
  assert.equal(error.code, 'ERR_INVALID_ARGUMENT', `${what}: ${error.message}`);
  return true;
};

test('mint options that run throwing code: refused, nothing changed, the store keeps working', () => {
  const store = new TokenStore({ secret: SECRET, now: () => T0 });
  const op = store.attachOperator('op');
  store.startTask(op.bearer, { taskId: 'root' });
  const state = () => JSON.stringify([store.records(), store.tasks()]);
  const before = state();
  const hostile = [
    ['getter throws', { get scopes() { throw new Error('trap'); } }],
    ['throwing proxy', THROWING_PROXY()],
    ['revoked proxy', REVOKED_PROXY()],
    ...hostileArrays().map(([what, list]) => [`scopes: ${what}`, { scopes: list }]),
  ];
  for (const [what, options] of hostile) {
    assert.throws(() => store.mint('a', 'worker', options), invalid(`mint with ${what}`));
    assert.throws(() => store.attachOperator('a', options), invalid(`attachOperator with ${what}`));
    assert.throws(() => store.dispatchAttempt(op.bearer, 'root', options), invalid(`dispatchAttempt with ${what}`));
    assert.equal(store.size, 1, what);
  }
  for (const options of [THROWING_PROXY(), REVOKED_PROXY(), { get taskId() { throw new Error('trap'); } }]) {
    assert.throws(() => store.startTask(op.bearer, options), invalid('startTask'));
  }
  assert.equal(state(), before);
  store.verify(op.bearer, 'heartbeat');
  store.mint('a', 'worker');
  assert.equal(store.size, 2);
});

test('store options that run throwing code or lie: refused by new and restore', () => {
  const text = new TokenStore({ secret: SECRET }).snapshot();
  const withOption = (key, value) => ({ secret: SECRET, now: () => T0, [key]: value });
  const lying = new Uint8Array(4);
  Object.defineProperty(lying, 'length', { get() { return 32; } });
  const bad = [
    ['gate: throwing ownKeys', withOption('gate', new Proxy({}, { ownKeys() { throw new Error('trap'); } }))],
    ['gate: throwing proxy', withOption('gate', new Proxy({ operator: [] }, { get() { throw new Error('trap'); } }))],
    ['gate: revoked proxy', withOption('gate', REVOKED_PROXY())],
    ['secret: proxy of a Uint8Array', withOption('secret', new Proxy(new Uint8Array(32), {}))],
    ['secret: proxy lying about its length', withOption('secret', new Proxy(new Uint8Array(4), { get(t, k) { return k === 'length' ? 32 : Reflect.get(t, k); } }))],
    ['secret: fake inheriting from Uint8Array', withOption('secret', Object.create(Uint8Array.prototype))],
    ['secret: genuine array lying about its length', withOption('secret', lying)],
    ['secret: revoked proxy', withOption('secret', REVOKED_PROXY())],
    ['secret: getter throws', { get secret() { throw new Error('trap'); } }],
    ['now: getter throws', { secret: SECRET, get now() { throw new Error('trap'); } }],
    ['options: throwing proxy', THROWING_PROXY()],
    ['options: revoked proxy', REVOKED_PROXY()],
    ...hostileArrays().map(([what, list]) => [`gate row: ${what}`, withOption('gate', { operator: list })]),
  ];
  for (const [what, options] of bad) {
    assert.throws(() => new TokenStore(options), invalid(`new with ${what}`));
    assert.throws(() => TokenStore.restore(text, options), invalid(`restore with ${what}`));
  }
  // The module instance is unharmed.
  const store = new TokenStore({ secret: SECRET, now: () => T0 });
  const op = store.attachOperator('op');
  assert.equal(store.verify(op.bearer, 'heartbeat').agentId, 'op');
});
