// Hostile options objects through captoken/redis: getters and Proxy traps
// that throw or lie are refused with ERR_INVALID_ARGUMENT (the options are
// copied to plain data first, js/args.js, as for TokenStore), nothing is
// written to Redis, and the store and the module instance keep working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RedisTokenStore, CapTokenError } from 'captoken/redis';
import { SECRET, T0 } from '../node/helpers.js';
import { serverWithClient } from './server.js';
import { freshNamespace } from './stores.js';

const redis = serverWithClient();

const THROWING_PROXY = () => new Proxy({}, { get() { throw new Error('trap'); } });
const REVOKED_PROXY = () => {
  const p = Proxy.revocable({}, {});
  p.revoke();
  return p.proxy;
};
const invalid = (what) => (error) => {
  assert.ok(error instanceof CapTokenError, `${what}: threw ${error?.constructor?.name}: ${error?.message}`);
  assert.equal(error.code, 'ERR_INVALID_ARGUMENT', `${what}: ${error.message}`);
  return true;
};

async function keys(namespace) {
  const out = [];
  for await (const batch of redis.client.scanIterator({ MATCH: `ct:{${namespace}}:*`, COUNT: 1000 })) out.push(...batch);
  return out.sort();
}

test('hostile mint, dispatch and startTask options: refused, nothing written, the store keeps working', async () => {
  const namespace = freshNamespace();
  const store = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace, now: () => T0 });
  const op = await store.attachOperator('op');
  await store.startTask(op.bearer, { taskId: 'root' });
  const before = await keys(namespace);
  const getterThrows = ['x'];
  Object.defineProperty(getterThrows, 0, { get() { throw new Error('trap'); } });
  const hostile = [
    ['getter throws', { get scopes() { throw new Error('trap'); } }],
    ['throwing proxy', THROWING_PROXY()],
    ['revoked proxy', REVOKED_PROXY()],
    ['scopes: element getter throws', { scopes: getterThrows }],
    ['scopes: length trap lies', { scopes: new Proxy(['a'], { get(t, k) { return k === 'length' ? 1e9 : Reflect.get(t, k); } }) }],
  ];
  for (const [what, options] of hostile) {
    await assert.rejects(store.mint('a', 'worker', options), invalid(`mint with ${what}`));
    await assert.rejects(store.attachOperator('a', options), invalid(`attachOperator with ${what}`));
    await assert.rejects(store.dispatchAttempt(op.bearer, 'root', options), invalid(`dispatchAttempt with ${what}`));
  }
  for (const options of [THROWING_PROXY(), REVOKED_PROXY(), { get parentId() { throw new Error('trap'); } }]) {
    await assert.rejects(store.startTask(op.bearer, options), invalid('startTask'));
  }
  assert.deepEqual(await keys(namespace), before);
  assert.equal((await store.verify(op.bearer, 'heartbeat')).agentId, 'op');
  await store.mint('a', 'worker');
  assert.equal(await store.size(), 2);
  await store.close();
});

test('hostile store options: refused by open and import, nothing written', async () => {
  const namespace = freshNamespace();
  const withOption = (key, value) => ({ secret: SECRET, namespace, now: () => T0, [key]: value });
  const bad = [
    ['options: throwing proxy', THROWING_PROXY()],
    ['options: revoked proxy', REVOKED_PROXY()],
    ['namespace: getter throws', { secret: SECRET, get namespace() { throw new Error('trap'); } }],
    ['secret: getter throws', { namespace, get secret() { throw new Error('trap'); } }],
    ['secret: proxy of a Uint8Array', withOption('secret', new Proxy(new Uint8Array(32), {}))],
    ['secret: fake inheriting from Uint8Array', withOption('secret', Object.create(Uint8Array.prototype))],
    ['gate: throwing proxy', withOption('gate', new Proxy({ operator: [] }, { get() { throw new Error('trap'); } }))],
    ['gate: revoked proxy', withOption('gate', REVOKED_PROXY())],
  ];
  for (const [what, options] of bad) {
    await assert.rejects(RedisTokenStore.open(redis.client, options), invalid(`open with ${what}`));
    await assert.rejects(RedisTokenStore.import(redis.client, '{}', options), invalid(`import with ${what}`));
  }
  assert.deepEqual(await keys(namespace), []);
  const store = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace, now: () => T0 });
  const op = await store.attachOperator('op');
  assert.equal((await store.verify(op.bearer, 'heartbeat')).agentId, 'op');
  await store.close();
});
