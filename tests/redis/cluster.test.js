// A real 3-master Redis Cluster on loopback: the behaviour suite and the
// 4-process races through node-redis and ioredis cluster clients, and two
// namespaces landing on different masters. Every key of a namespace shares
// one hash tag, so no script ever meets CROSSSLOT (any error reply would
// fail these tests as ERR_STORE_UNAVAILABLE).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { createCluster } from 'redis';
import { Cluster } from 'ioredis';
import { RedisTokenStore } from 'captoken/redis';
import { SECRET } from '../node/helpers.js';
import { startCluster } from './server.js';
import { clusterKinds } from './stores.js';
import { runScenarios } from './behaviour.js';
import { races } from './races.js';

let cluster;
const { kinds, closeClients } = clusterKinds();
before(async () => {
  cluster = await startCluster();
  for (const kind of kinds) await kind.connect(cluster);
});
after(async () => {
  try {
    await closeClients();
  } finally {
    await cluster?.stop();
  }
});

for (const kind of kinds) {
  test(`behaviour suite: ${kind.name}`, async (t) => {
    await runScenarios(t, kind);
  });
}

test('4-process races on the cluster', async (t) => {
  await races(t, { client: kinds[0].client, ports: cluster.nodes.map((n) => n.port), cluster: true, tokens: 2000 });
});

const cli = (port, ...args) => execFileSync('redis-cli', ['-p', String(port), ...args]).toString().trim();

test('two namespaces land on different masters and never see each other', async () => {
  const ports = cluster.nodes.map((n) => n.port);
  // The master that serves a namespace's hash tag.
  const owner = (namespace) => {
    const slot = Number(cli(ports[0], 'CLUSTER', 'KEYSLOT', `ct:{${namespace}}:R`));
    return ports.find((port) => cli(port, 'CLUSTER', 'NODES').split('\n').some((line) => line.includes('myself') && line.split(' ').slice(8).some((range) => {
        const [lo, hi = lo] = range.split('-').map(Number);
        return slot >= lo && slot <= hi;
      })));
  };
  const a = 'swarm-a';
  let b = 'swarm-b';
  for (let i = 0; owner(b) === owner(a); i++) b = `swarm-b${i}`;
  assert.notEqual(owner(a), owner(b));
  const client = kinds[0].client;
  const storeA = await RedisTokenStore.open(client, { secret: SECRET, namespace: a });
  const storeB = await RedisTokenStore.open(client, { secret: SECRET, namespace: b });
  const opA = await storeA.attachOperator('op-a');
  const opB = await storeB.attachOperator('op-b');
  await storeA.startTask(opA.bearer, { taskId: 'shared-name' });
  await storeB.startTask(opB.bearer, { taskId: 'shared-name' });
  assert.equal((await storeB.check(opA.bearer, 'heartbeat')).code, 'ERR_TOKEN_NOT_FOUND');
  assert.equal((await storeA.check(opB.bearer, 'heartbeat')).code, 'ERR_TOKEN_NOT_FOUND');
  assert.equal(cli(owner(a), 'EXISTS', `ct:{${a}}:r:${opA.fingerprint}`), '1');
  assert.equal(cli(owner(b), 'EXISTS', `ct:{${b}}:r:${opB.fingerprint}`), '1');
  // node-redis routes FUNCTION LOAD by the namespace's key: its master has the library.
  for (const ns of [a, b]) assert.match(cli(owner(ns), 'FUNCTION', 'LIST', 'LIBRARYNAME', 'captoken_*'), /captoken_[0-9a-f]{16}_verify/);
  assert.equal(await storeA.size(), 1);
  assert.equal(await storeB.size(), 1);
});

// Without FUNCTION (an ACL user here, an older server elsewhere), the
// store runs the same code as scripts, loaded on every master the same way.
const NO_FUNCTIONS = { username: 'captoken-no-functions', password: 'pw-no-functions' };
for (const mode of ['functions', 'scripts']) {
  test(`open() on an ioredis Cluster that is still connecting loads the ${mode} on every master`, async () => {
    const ports = cluster.nodes.map((n) => n.port);
    for (const port of ports) {
      cli(port, 'ACL', 'SETUSER', NO_FUNCTIONS.username, 'on', `>${NO_FUNCTIONS.password}`, '~*', '&*', '+@all', '-function');
      cli(port, 'FUNCTION', 'FLUSH');
      cli(port, 'SCRIPT', 'FLUSH');
    }
    const fresh = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })),
      mode === 'scripts' ? { redisOptions: NO_FUNCTIONS } : {});
    try {
      assert.equal(fresh.status === 'ready', false);
      const store = await RedisTokenStore.open(fresh, { secret: SECRET, namespace: `connecting-${mode}` });
      for (const port of ports) {
        const listed = cli(port, 'FUNCTION', 'LIST', 'LIBRARYNAME', 'captoken_*');
        const libraries = [...listed.matchAll(/captoken_[0-9a-f]{16}_(\w+)/g)]
          .map((m) => m[1]).sort();
        const flags = cli(port, 'SCRIPT', 'EXISTS', ...scriptShas()).split('\n');
        if (mode === 'functions') {
          assert.deepEqual(libraries, ['dispatch', 'import', 'mint', 'purge', 'read', 'remint', 'revoke', 'start', 'verify'], `master ${port}: ${listed}`);
          assert.deepEqual(flags, flags.map(() => '0'), `master ${port}`);
        } else {
          assert.deepEqual(libraries, [], `master ${port}`);
          assert.deepEqual(flags, flags.map(() => '1'), `master ${port}`);
        }
      }
      // A verify made before a revoke in the same turn is decided first.
      const op = await store.attachOperator('op');
      const w = await store.mint('w', 'worker', { maxUses: 1 });
      const [verified, live] = await Promise.all([
        store.verify(w.bearer, 'fetch_data').then(() => 'allowed', (e) => e.code),
        store.revoke(w.fingerprint),
      ]);
      assert.deepEqual([verified, live], ['allowed', true]);
      assert.ok(op.bearer);
      await store.close();
    } finally {
      fresh.disconnect();
    }
  });
}

test('open() on an ioredis Cluster made with lazyConnect connects it', async () => {
  const lazy = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), { lazyConnect: true });
  try {
    assert.equal(lazy.status, 'wait');
    const store = await RedisTokenStore.open(lazy, { secret: SECRET, namespace: 'lazy', timeoutMs: 5000 });
    const op = await store.attachOperator('op');
    assert.equal((await store.verify(op.bearer, 'heartbeat')).role, 'operator');
    await store.close();
  } finally {
    lazy.disconnect();
  }
});

/** The SHA-1 of every script js/redis.cjs loads (prelude + body). */
function scriptShas() {
  const dir = new URL('../../js/redis/', import.meta.url);
  const prelude = readFileSync(new URL('prelude.lua', dir), 'utf8');
  return readdirSync(dir).filter((f) => f.endsWith('.lua') && f !== 'prelude.lua')
    .map((f) => createHash('sha1').update(`${prelude}\nenter(KEYS, ARGV)\n${readFileSync(new URL(f, dir), 'utf8')}`).digest('hex'));
}
