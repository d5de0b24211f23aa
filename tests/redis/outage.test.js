// Outages and crashes of a real redis-server (appendfsync always): calls
// settle within the timeout with ERR_STORE_UNAVAILABLE and nothing is
// granted; after a SIGKILL and restart every verify that resolved stays
// spent, and the same processes carry on without restarting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'redis';
import { Redis, Cluster } from 'ioredis';
import { RedisTokenStore, CapTokenError } from 'captoken/redis';
import { SECRET } from '../node/helpers.js';
import { startRedis } from './server.js';
import { startPeer } from './peers.js';
import { freshNamespace } from './stores.js';

const TIMEOUT = 400;

async function clients(server) {
  const nodeRedis = createClient({ url: server.url, socket: { reconnectStrategy: () => 50 } });
  nodeRedis.on('error', () => {});
  await nodeRedis.connect();
  const ioredis = new Redis(server.port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => 50 });
  ioredis.on('error', () => {});
  await ioredis.connect();
  return [['node-redis', nodeRedis], ['ioredis', ioredis]];
}

async function settle(promise) {
  const started = Date.now();
  try {
    return { value: await promise, ms: Date.now() - started };
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
}

test('a missing, foreign or closed client is a CapTokenError, never a hang', async () => {
  for (const client of [undefined, null, {}, 42, { sendCommand: 'no' }]) {
    await assert.rejects(RedisTokenStore.open(client, { secret: SECRET, namespace: 'x' }),
      (e) => e instanceof CapTokenError && e.code === 'ERR_INVALID_ARGUMENT');
  }
  for (const namespace of [undefined, '', 'a'.repeat(65), 'a}b', 'a{b', 'a b', 'ns*', 'é', 42]) {
    await assert.rejects(RedisTokenStore.open({}, { secret: SECRET, namespace }),
      (e) => e instanceof CapTokenError && e.code === 'ERR_INVALID_ARGUMENT');
  }
  const server = await startRedis();
  try {
    // An ioredis keyPrefix would cover only some of a store's keys: refused.
    const prefixed = new Redis(server.port, '127.0.0.1', { keyPrefix: 'app:' });
    const prefixedCluster = new Cluster([{ host: '127.0.0.1', port: server.port }], { lazyConnect: true, redisOptions: { keyPrefix: 'app:' } });
    for (const c of [prefixed, prefixedCluster]) {
      await assert.rejects(RedisTokenStore.open(c, { secret: SECRET, namespace: 'x' }),
        (e) => e instanceof CapTokenError && e.code === 'ERR_INVALID_ARGUMENT' && /keyPrefix/.test(e.message));
      c.disconnect();
    }
    const client = createClient({ url: server.url });
    client.on('error', () => {});
    await client.connect();
    const store = await RedisTokenStore.open(client, { secret: SECRET, namespace: freshNamespace(), timeoutMs: TIMEOUT });
    const op = await store.attachOperator('op');
    await client.quit();
    const r = await settle(store.verify(op.bearer, 'heartbeat'));
    assert.equal(r.error?.code, 'ERR_STORE_UNAVAILABLE');
    assert.ok(r.ms <= TIMEOUT + 200);
    await assert.rejects(RedisTokenStore.open(client, { secret: SECRET, namespace: 'x', timeoutMs: TIMEOUT }),
      (e) => e.code === 'ERR_STORE_UNAVAILABLE');
    // close(): later calls are refused; the client stays the caller's.
    const client2 = await createClient({ url: server.url }).connect();
    const store2 = await RedisTokenStore.open(client2, { secret: SECRET, namespace: freshNamespace() });
    await store2.close();
    await assert.rejects(store2.verify(op.bearer, 'heartbeat'),
      (e) => e.code === 'ERR_STORE_UNAVAILABLE' && /the store is closed/.test(e.message));
    assert.equal(await client2.ping(), 'PONG');
    await client2.quit();
  } finally {
    await server.stop();
  }
});

test('a server out of memory still decides, revokes, purges and reads; calls that add keys are refused', async () => {
  const server = await startRedis();
  const client = await createClient({ url: server.url }).connect();
  try {
    const store = await RedisTokenStore.open(client, { secret: SECRET, namespace: freshNamespace(), timeoutMs: TIMEOUT });
    const op = await store.attachOperator('op');
    await store.startTask(op.bearer, { taskId: 't' });
    const w = await store.dispatchAttempt(op.bearer, 't', { maxUses: 2 });
    const other = await store.mint('other', 'worker', { ttlSecs: 60 });
    await store.startTask(op.bearer, { taskId: 'u' });
    const bound = await store.dispatchAttempt(op.bearer, 'u');
    await client.sendCommand(['CONFIG', 'SET', 'maxmemory-policy', 'noeviction']);
    await client.sendCommand(['CONFIG', 'SET', 'maxmemory', '1']);
    try {
      assert.equal((await store.verify(w.bearer, 'fetch_prompt', 't')).usesLeft, 1);
      assert.equal((await store.check(w.bearer, 'fetch_prompt', 't')).usesLeft, 1);
      assert.equal((await store.verify(w.bearer, 'fetch_prompt', 't')).usesLeft, 0);
      await assert.rejects(store.verify(w.bearer, 'fetch_prompt', 't'), { code: 'ERR_TOKEN_USES_EXHAUSTED' });
      await assert.rejects(store.dispatchAttempt(op.bearer, 't'), (e) => e.code === 'ERR_STORE_UNAVAILABLE' && /OOM/.test(e.message));
      await assert.rejects(store.startTask(op.bearer), { code: 'ERR_STORE_UNAVAILABLE' });
      // Revoking and reading go on: a compromised token can still be cut off.
      assert.equal(await store.revoke(other.fingerprint), true);
      assert.equal(await store.revokeTask('u'), 1);
      assert.equal((await store.check(bound.bearer, 'fetch_prompt', 'u')).code, 'ERR_TOKEN_REVOKED');
      assert.equal((await store.record(other.fingerprint)).revoked, true);
      assert.equal((await store.task('u')).taskId, 'u');
      assert.match(await store.snapshot(), /"records"/);
      assert.equal(await store.purgeExpired(), 0);
    } finally {
      await client.sendCommand(['CONFIG', 'SET', 'maxmemory', '0']);
    }
    await store.dispatchAttempt(op.bearer, 't');
    await store.close();
  } finally {
    await client.quit();
    await server.stop();
  }
});

test('Redis killed and not restarted: every call settles within the timeout, nothing granted', async () => {
  const server = await startRedis();
  const open = await clients(server);
  try {
    const setups = [];
    for (const [name, client] of open) {
      const store = await RedisTokenStore.open(client, { secret: SECRET, namespace: freshNamespace(), timeoutMs: TIMEOUT });
      const op = await store.attachOperator('op');
      await store.startTask(op.bearer, { taskId: 't' });
      const w = await store.dispatchAttempt(op.bearer, 't', { maxUses: 5 });
      setups.push({ name, store, op, w });
    }
    await server.kill('SIGKILL');
    for (const { name, store, op, w } of setups) {
      const calls = {
        verify: store.verify(w.bearer, 'fetch_prompt', 't'),
        verifiesSharingACommand: Promise.all([1, 2, 3].map(() => store.verify(w.bearer, 'fetch_prompt', 't'))),
        startTask: store.startTask(op.bearer),
        dispatchAttempt: store.dispatchAttempt(op.bearer, 't'),
        attachOperator: store.attachOperator('op2'),
        revoke: store.revoke(w.fingerprint),
        revokeTask: store.revokeTask('t'),
        remint: store.remint(w.bearer),
        record: store.record(w.fingerprint),
        size: store.size(),
        snapshot: store.snapshot(),
        purgeExpired: store.purgeExpired(),
      };
      // Every call is settled from the start: they time out in any order.
      const settled = Object.entries(calls).map(([method, promise]) => [method, settle(promise)]);
      for (const [method, settling] of settled) {
        const r = await settling;
        assert.equal(r.error?.code, 'ERR_STORE_UNAVAILABLE', `${name} ${method}: ${r.error?.message ?? 'resolved'}`);
        assert.ok(r.error instanceof CapTokenError);
        assert.ok(r.ms <= TIMEOUT + 250, `${name} ${method} took ${r.ms} ms`);
      }
      const started = Date.now();
      const checks = await Promise.all([1, 2].map(() => store.check(w.bearer, 'fetch_prompt', 't')));
      for (const d of checks) {
        assert.equal(d.allowed, false);
        assert.equal(d.code, 'ERR_STORE_UNAVAILABLE');
        assert.equal(typeof d.message, 'string');
      }
      assert.ok(Date.now() - started <= TIMEOUT + 250);
      // A bearer that fails a stateless step needs no server at all.
      assert.equal((await store.check('garbage', 'fetch_prompt')).code, 'ERR_MALFORMED_TOKEN');
    }
  } finally {
    for (const [, c] of open) c.disconnect();
    await server.stop();
  }
});

test('Redis stopped (SIGSTOP, connections open): each call settles at its own deadline, nothing granted', { timeout: 20_000 }, async () => {
  const server = await startRedis();
  const open = await clients(server);
  try {
    for (const [name, client] of open) {
      const store = await RedisTokenStore.open(client, { secret: SECRET, namespace: freshNamespace(), timeoutMs: TIMEOUT });
      const op = await store.attachOperator('op');
      process.kill(server.pid, 'SIGSTOP');
      try {
        const first = settle(store.verify(op.bearer, 'heartbeat'));
        await new Promise((r) => setTimeout(r, TIMEOUT / 2));
        const second = settle(store.check(op.bearer, 'heartbeat'));
        const third = settle(store.size());
        const a = await first;
        assert.equal(a.error?.code, 'ERR_STORE_UNAVAILABLE', `${name}: ${a.error?.message ?? 'resolved'}`);
        assert.match(a.error.message, /did not answer within/);
        assert.ok(a.ms >= TIMEOUT - 5 && a.ms <= TIMEOUT + 150, `${name} verify took ${a.ms} ms`);
        const b = await second;
        assert.deepEqual([b.value?.allowed, b.value?.code], [false, 'ERR_STORE_UNAVAILABLE']);
        assert.ok(b.ms >= TIMEOUT - 5 && b.ms <= TIMEOUT + 150, `${name} check took ${b.ms} ms`);
        const c = await third;
        assert.equal(c.error?.code, 'ERR_STORE_UNAVAILABLE');
      } finally {
        process.kill(server.pid, 'SIGCONT');
      }
      // Once the server runs again, so does the store.
      assert.equal((await store.verify(op.bearer, 'heartbeat')).role, 'operator');
      // A reply that comes after its call was refused changes nothing: a
      // "function not found" then sends no fallback that would spend a use.
      const w = await store.mint('w', 'worker', { maxUses: 5 });
      await (name === 'node-redis' ? client.sendCommand(['FUNCTION', 'FLUSH']) : client.call('FUNCTION', 'FLUSH'));
      process.kill(server.pid, 'SIGSTOP');
      try {
        const late = await settle(store.verify(w.bearer, 'fetch_data'));
        assert.equal(late.error?.code, 'ERR_STORE_UNAVAILABLE');
      } finally {
        process.kill(server.pid, 'SIGCONT');
      }
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await store.check(w.bearer, 'fetch_data')).usesLeft, 5, name);
      await store.close();
    }
  } finally {
    for (const [, c] of open) c.disconnect();
    await server.stop();
  }
});

test('SIGKILL mid-run (appendfsync always), restart: every verify that resolved is still spent', async () => {
  const server = await startRedis({ appendfsync: 'always' });
  const open = await clients(server);
  const namespace = freshNamespace();
  let peer;
  try {
    const [[, nodeRedis], [, ioredis]] = open;
    const a = await RedisTokenStore.open(nodeRedis, { secret: SECRET, namespace, timeoutMs: TIMEOUT });
    const b = await RedisTokenStore.open(ioredis, { secret: SECRET, namespace, timeoutMs: TIMEOUT });
    peer = await startPeer({ ports: [server.port], namespace, client: 'node-redis', timeoutMs: TIMEOUT });
    const op = await a.attachOperator('op');
    await a.startTask(op.bearer, { taskId: 't' });
    const tokens = [];
    for (let i = 0; i < 4000; i += 100) {
      tokens.push(...await Promise.all(Array.from({ length: 100 }, () => a.dispatchAttempt(op.bearer, 't', { maxUses: 1 }))));
    }
    // Verify all of them, 32 in flight from each store, and kill Redis mid-run.
    const resolved = [];
    let next = 0;
    const run = (store) => Promise.all(Array.from({ length: 32 }, async () => {
      while (next < tokens.length) {
        const m = tokens[next++];
        try {
          await store.verify(m.bearer, 'fetch_prompt', 't');
          resolved.push(m);
        } catch (error) {
          assert.ok(['ERR_STORE_UNAVAILABLE'].includes(error.code), error.message);
          return; // this lane stops at the outage
        }
      }
    }));
    const running = Promise.all([run(a), run(b)]);
    await new Promise((r) => setTimeout(r, 40));
    await server.kill('SIGKILL');
    await running;
    assert.ok(resolved.length > 0 && resolved.length < tokens.length, `resolved ${resolved.length}`);
    await server.restart();
    // The same clients reconnect; no process restarts.
    for (const store of [a, b]) {
      let again;
      for (let i = 0; i < 100; i++) {
        again = await store.check(op.bearer, 'heartbeat');
        if (again.allowed) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(again.allowed, true, again.message);
    }
    for (const m of resolved) {
      const d = await b.check(m.bearer, 'fetch_prompt', 't');
      assert.equal(d.code, 'ERR_TOKEN_USES_EXHAUSTED', `a resolved verify was lost: ${d.code}`);
    }
    // Every token is spent at most once: those not resolved may go through once more.
    const spentTwice = [];
    for (const m of resolved) {
      const r = await peer.send('verify', { bearer: m.bearer, taskId: 't' });
      if (r.ok) spentTwice.push(m.fingerprint);
    }
    assert.deepEqual(spentTwice, []);
    console.log(`# ${resolved.length} of ${tokens.length} verifies resolved before the SIGKILL; all still spent after the restart`);
    const fresh = await a.dispatchAttempt(op.bearer, 't', { maxUses: 1 });
    assert.equal((await peer.send('verify', { bearer: fresh.bearer, taskId: 't' })).ok, true);
  } finally {
    await peer?.stop();
    for (const [, c] of open) c.disconnect();
    await server.stop();
  }
});
