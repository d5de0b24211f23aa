// verify and check calls made in the same turn share one script call
// (js/redis.cjs): each is still decided as if alone, in the order the calls
// were made, also relative to the store's other calls, and every call
// settles, even when the store is closed while the batch is in flight.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'redis';
import { RedisTokenStore, TokenStore } from 'captoken/redis';
import { SECRET } from '../node/helpers.js';
import { serverWithClient } from './server.js';
import { freshNamespace } from './stores.js';

const redis = serverWithClient();

const outcome = (promise) => promise.then(
  (v) => (v.allowed === false ? v.code : 'allowed'),
  (e) => e.code,
);

test('calls are sent in the order they were made, batched or not', async () => {
  const store = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace: freshNamespace() });
  const op = await store.attachOperator('op');
  await store.startTask(op.bearer, { taskId: 't' });
  await store.verify(op.bearer, 'heartbeat'); // the script is cached
  const w = await store.dispatchAttempt(op.bearer, 't', { maxUses: 1 });
  // A verify made before a revoke in the same turn is decided first.
  const [verified, revoked, after] = await Promise.all([
    outcome(store.verify(w.bearer, 'fetch_prompt', 't')),
    store.revoke(w.fingerprint),
    outcome(store.check(w.bearer, 'fetch_prompt', 't')),
  ]);
  assert.deepEqual([verified, revoked, after], ['allowed', true, 'ERR_TOKEN_REVOKED']);
  const v = await store.dispatchAttempt(op.bearer, 't');
  const [checked, count, verifiedAfter] = await Promise.all([
    outcome(store.check(v.bearer, 'fetch_prompt', 't')),
    store.revokeTask('t'),
    outcome(store.verify(v.bearer, 'fetch_prompt', 't')),
  ]);
  assert.deepEqual([checked, count >= 1, verifiedAfter], ['allowed', true, 'ERR_TOKEN_REVOKED']);
  await store.close();
});

test('closing the store while a batch is in flight settles every call', async () => {
  const store = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace: freshNamespace() });
  const known = (await store.mint('k', 'worker')).bearer;
  await store.verify(known, 'fetch_data');
  // Same secret, never recorded here: refused by the script.
  const unknown = new TokenStore({ secret: SECRET }).mint('u', 'worker').bearer;
  const pauser = await createClient({ url: redis.server.url }).connect();
  try {
    await pauser.sendCommand(['CLIENT', 'PAUSE', '300', 'ALL']);
    const calls = [
      outcome(store.verify(unknown, 'fetch_data')),
      outcome(store.verify(known, 'fetch_data')),
      outcome(store.check(unknown, 'fetch_data')),
      outcome(store.check(known, 'fetch_data')),
    ];
    await new Promise((resolve) => setTimeout(resolve, 50)); // the batch is waiting on Redis
    await store.close();
    // Decided in Redis before anyone heard of the close: the allowed ones
    // stand; a refusal needs the freed core and says the store is closed.
    assert.deepEqual(await Promise.all(calls),
      ['ERR_STORE_UNAVAILABLE', 'allowed', 'ERR_STORE_UNAVAILABLE', 'allowed']);
  } finally {
    await pauser.quit();
  }
});
