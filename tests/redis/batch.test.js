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
import { asyncAdapter, freshNamespace } from './stores.js';

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

test('more calls than the first batch: the rest follow in order, before any later command', async () => {
  const store = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace: freshNamespace() });
  const op = await store.attachOperator('op');
  await store.startTask(op.bearer, { taskId: 't' });
  const w = await store.dispatchAttempt(op.bearer, 't', { maxUses: 60 });
  const left = (promise) => promise.then((g) => g.usesLeft, (e) => e.code);
  // 40 calls: 32 go at the end of the turn, 8 wait a macrotask; 10 more
  // made after the end of the turn (a microtask later) queue behind them.
  const calls = Array.from({ length: 40 }, () => left(store.verify(w.bearer, 'fetch_prompt', 't')));
  await Promise.resolve();
  await Promise.resolve();
  calls.push(...Array.from({ length: 10 }, () => left(store.verify(w.bearer, 'fetch_prompt', 't'))));
  // A revoke made now is sent after every one of them.
  const revoked = store.revoke(w.fingerprint);
  const after = outcome(store.check(w.bearer, 'fetch_prompt', 't'));
  assert.deepEqual(await Promise.all(calls), Array.from({ length: 50 }, (_, i) => 59 - i));
  assert.deepEqual([await revoked, await after], [true, 'ERR_TOKEN_REVOKED']);
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

test('calls made before close() are sent and decided, the deferred ones too', async () => {
  const namespace = freshNamespace();
  const store = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace });
  const op = await store.attachOperator('op');
  await store.startTask(op.bearer, { taskId: 't' });
  const w = await store.dispatchAttempt(op.bearer, 't', { maxUses: 100 });
  const calls = Array.from({ length: 40 }, () => outcome(store.verify(w.bearer, 'fetch_prompt', 't')));
  await Promise.resolve();
  await Promise.resolve(); // the end of the turn: 32 sent, 8 waiting
  calls.push(outcome(store.verify(w.bearer, 'fetch_prompt', 't')));
  await store.close();
  calls.push(outcome(store.verify(w.bearer, 'fetch_prompt', 't')));
  assert.deepEqual(await Promise.all(calls), [...Array(41).fill('allowed'), 'ERR_STORE_UNAVAILABLE']);
  const other = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace });
  assert.equal((await other.record(w.fingerprint)).uses_left, 59);
  await other.close();
});

test('a batch decides every call as the local store does, whatever its task ids hold', async () => {
  // Task ids with the characters the packed call and reply use (',', '!',
  // ':', '=', '*'), multi-byte UTF-8 (counted in bytes there, in UTF-16
  // units here), and a named task far longer than any tracked id.
  const ids = ['plain', 'a,b', '!x', 'has:colon', '=eq', '*star', ':', 'é-naïve', '😀', '任务', `${'x'.repeat(200)}ü`, ''];
  const now = () => 1_800_000_000;
  const local = asyncAdapter(new TokenStore({ secret: SECRET, now }));
  const remote = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace: freshNamespace(), now });
  const run = async (store) => {
    const op = await store.attachOperator('op');
    const workers = [];
    for (const id of ids.filter(Boolean)) {
      await store.startTask(op.bearer, { taskId: id });
      await store.startTask(op.bearer, { taskId: `${id}/c`, parentId: id });
      workers.push([id, (await store.dispatchAttempt(op.bearer, id, { maxUses: 3 })).bearer]);
    }
    const untracked = (await store.mint('u', 'worker', { taskId: 'untracked,!:=*' })).bearer;
    const calls = [];
    for (const [id, w] of workers) {
      calls.push(
        store.verify(w, 'fetch_prompt', id),
        store.check(w, 'start_task', `${id}/c`),
        store.check(w, 'start_task'),
        store.verify(w, 'fetch_prompt', `other${id}`),
        store.check(op.bearer, 'heartbeat'),
        store.verify(w, 'fetch_prompt', 'é'.repeat(30_000)),
        store.verify(w, 'fetch_prompt', id),
        store.verify(w, 'fetch_prompt', id),
        store.verify(w, 'fetch_prompt', id),
      );
    }
    calls.push(store.verify(untracked, 'fetch_prompt', 'untracked,!:=*'), store.verify(untracked, 'fetch_prompt', ''),
      store.verify(untracked, 'start_task'));
    const settled = await Promise.allSettled(calls);
    return settled.map((s) => JSON.stringify(s.status === 'fulfilled' ? s.value : { code: s.reason.code, message: s.reason.message })
      .replace(/[0-9a-f]{64}/g, 'FP'));
  };
  const expected = await run(local);
  assert.ok(expected.length > 64, 'more calls than one batch holds');
  for (const code of ['ERR_TOKEN_TASK_MISMATCH', 'ERR_TOKEN_USES_EXHAUSTED', '"allowed":true']) {
    assert.ok(expected.some((o) => o.includes(code)), code);
  }
  // Compared call by call: a diff of ~60 KB strings would take assert minutes.
  const actual = await run(remote);
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) assert.fail(`call ${i}: ${actual[i].slice(0, 400)}\n  expected ${expected[i].slice(0, 400)}`);
  }
  await remote.close();
});
