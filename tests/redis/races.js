// The multi-process races, on whatever Redis `ports` name (single node or
// cluster): four peer processes share one namespace. Not a test file.
import assert from 'node:assert/strict';
import { RedisTokenStore } from 'captoken/redis';
import { SECRET } from '../node/helpers.js';
import { startPeers } from './peers.js';
import { freshNamespace } from './stores.js';

/** Mint `n` tokens, 64 in flight. */
async function dispatchMany(store, bearer, taskId, n, options) {
  const out = [];
  for (let i = 0; i < n; i += 64) {
    const batch = await Promise.all(Array.from({ length: Math.min(64, n - i) },
      () => store.dispatchAttempt(bearer, taskId, options)));
    out.push(...batch);
  }
  return out;
}

/**
 * Register the race tests under `t`; `client` is a connected client of the
 * same Redis for the orchestrator's own store.
 */
export async function races(t, { client, ports, cluster = false, tokens = 2000 }) {
  const namespace = freshNamespace();
  const store = await RedisTokenStore.open(client, { secret: SECRET, namespace });
  const peers = await startPeers({ ports, cluster, namespace });
  try {
    const op = await store.attachOperator('orchestrator');
    await store.startTask(op.bearer, { taskId: 'race' });

    await t.test(`4 processes race over ${tokens} one-time tokens: each spent exactly once`, async () => {
      const minted = await dispatchMany(store, op.bearer, 'race', tokens, { maxUses: 1 });
      const bearers = minted.map((m) => m.bearer);
      const started = Date.now();
      const results = await Promise.all(peers.map((p) => p.send('verifyAll', { bearers, taskId: 'race' })));
      const ms = Date.now() - started;
      const won = results.flatMap((r) => r.won);
      assert.equal(won.length, tokens, `successes: ${won.length}`);
      assert.equal(new Set(won).size, tokens);
      for (const r of results) {
        assert.deepEqual(Object.keys(r.codes), r.won.length === tokens ? [] : ['ERR_TOKEN_USES_EXHAUSTED']);
      }
      t.diagnostic(`${tokens * 4} verifies over 4 processes in ${ms} ms; wins per process: ${results.map((r) => r.won.length).join(', ')}`);
    });

    await t.test('a 10-use token hammered by 4 processes: exactly 10 successes', async () => {
      const [w] = await dispatchMany(store, op.bearer, 'race', 1, { maxUses: 10 });
      const results = await Promise.all(peers.map((p) => p.send('verifyN', { bearer: w.bearer, taskId: 'race', n: 50 })));
      assert.equal(results.reduce((sum, r) => sum + r.ok, 0), 10);
      assert.equal((await store.record(w.fingerprint)).uses_left, 0);
    });

    await t.test('revokeTask in one process: the next call in every other is refused', async () => {
      await store.startTask(op.bearer, { taskId: 'doomed' });
      const [w] = await dispatchMany(store, op.bearer, 'doomed', 1, {});
      for (const p of peers) assert.equal((await p.send('verify', { bearer: w.bearer, taskId: 'doomed' })).ok, true);
      const revoked = await peers[0].send('revokeTask', { taskId: 'doomed' });
      assert.deepEqual(revoked, { ok: true, value: 1 });
      for (const p of peers) {
        const r = await p.send('verify', { bearer: w.bearer, taskId: 'doomed' });
        assert.equal(r.code, 'ERR_TOKEN_REVOKED');
      }
    });

    await t.test('4 processes start a task with the same explicit id: exactly one succeeds', async () => {
      for (let round = 0; round < 10; round++) {
        const taskId = `same-${round}`;
        const results = await Promise.all(peers.map((p) => p.send('startTask', { bearer: op.bearer, options: { taskId } })));
        assert.equal(results.filter((r) => r.ok).length, 1);
        for (const r of results.filter((x) => !x.ok)) assert.equal(r.code, 'ERR_INVALID_ARGUMENT');
      }
    });

    await t.test('a Worker with one use left spent on start_task by 4 processes at once: exactly one child', async () => {
      for (let round = 0; round < 10; round++) {
        const parent = `parent-${round}`;
        await store.startTask(op.bearer, { taskId: parent });
        const [w] = await dispatchMany(store, op.bearer, parent, 1, { maxUses: 1 });
        const results = await Promise.all(peers.map((p) => p.send('startTask', { bearer: w.bearer })));
        assert.equal(results.filter((r) => r.ok).length, 1);
        for (const r of results.filter((x) => !x.ok)) assert.equal(r.code, 'ERR_TOKEN_USES_EXHAUSTED');
        let children = 0;
        for await (const task of store.tasks()) if (task.parentId === parent) children++;
        assert.equal(children, 1);
      }
    });
    await t.test('4 processes remint one token at once: exactly one new token, the old one revoked', async () => {
      for (let round = 0; round < 10; round++) {
        const [w] = await dispatchMany(store, op.bearer, 'race', 1, { maxUses: 3 });
        const results = await Promise.all(peers.map((p) => p.send('remint', { bearer: w.bearer })));
        const won = results.filter((r) => r.ok);
        assert.equal(won.length, 1);
        for (const r of results.filter((x) => !x.ok)) assert.equal(r.code, 'ERR_TOKEN_REVOKED');
        assert.equal((await store.record(w.fingerprint)).revoked, true);
        assert.equal((await store.record(won[0].value)).uses_left, 3);
      }
    });

    await t.test('a limited Worker dispatching from 4 processes at once never hands out more than it has', async () => {
      for (let round = 0; round < 5; round++) {
        const [w] = await dispatchMany(store, op.bearer, 'race', 1, { maxUses: 7 });
        // Each dispatch costs 1 + 2 uses: two fit in 7, a third does not.
        const results = await Promise.all(peers.map((p) => p.send('dispatch', { bearer: w.bearer, taskId: 'race', options: { maxUses: 2 } })));
        assert.equal(results.filter((r) => r.ok).length, 2);
        for (const r of results.filter((x) => !x.ok)) assert.ok(['ERR_INVALID_ARGUMENT', 'ERR_TOKEN_USES_EXHAUSTED'].includes(r.code), r.code);
        assert.equal((await store.record(w.fingerprint)).uses_left, 1);
      }
    });
  } finally {
    for (const p of peers) await p.stop();
    await store.close();
  }
}
