// The stores the shared behaviour suite runs against, behind one async
// interface: TokenStore and DurableTokenStore through a thin async adapter,
// RedisTokenStore (node-redis and ioredis clients) as it is. Not a test file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TokenStore } from 'captoken';
import { DurableTokenStore } from 'captoken/node';
import { RedisTokenStore } from 'captoken/redis';
import { createClient, createCluster } from 'redis';
import { Redis, Cluster } from 'ioredis';

/** A sync store seen through RedisTokenStore's async interface. */
export function asyncAdapter(sync, onClose = () => {}) {
  const call = (name) => async (...args) => sync[name](...args);
  return {
    attachOperator: call('attachOperator'),
    mint: call('mint'),
    adopt: call('adopt'),
    startTask: call('startTask'),
    dispatchAttempt: call('dispatchAttempt'),
    verify: call('verify'),
    check: call('check'),
    revoke: call('revoke'),
    revokeTask: call('revokeTask'),
    remint: call('remint'),
    purgeExpired: call('purgeExpired'),
    record: async (fp) => sync.record(fp)?.toJSON(),
    task: call('task'),
    size: async () => sync.size,
    snapshot: call('snapshot'),
    async *records() { yield* sync.records(); },
    async *tasks() { yield* sync.tasks(); },
    close: async () => { sync.close?.(); onClose(); },
  };
}

let namespaces = 0;
/** A namespace no other test uses. */
export const freshNamespace = () => `t${process.pid}.${Date.now().toString(36)}.${namespaces++}`;

/**
 * The store kinds. `open(options)` makes an empty store with TokenStore's
 * options; the Redis kinds need `connect(server)` first.
 */
export function storeKinds() {
  const clients = [];
  const kinds = [
    {
      name: 'TokenStore',
      open: async (options) => asyncAdapter(new TokenStore(options)),
    },
    {
      name: 'DurableTokenStore',
      open: async (options) => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'captoken-durable-'));
        return asyncAdapter(DurableTokenStore.open(dir, options), () => fs.rmSync(dir, { recursive: true, force: true }));
      },
    },
    {
      name: 'RedisTokenStore (node-redis)',
      redis: true,
      client: null,
      async connect(server) {
        this.client = await createClient({ url: server.url }).connect();
        clients.push(() => this.client.quit());
      },
      open(options) {
        return RedisTokenStore.open(this.client, { ...options, namespace: freshNamespace() });
      },
    },
    {
      name: 'RedisTokenStore (ioredis)',
      redis: true,
      client: null,
      async connect(server) {
        this.client = new Redis(server.port, '127.0.0.1', { lazyConnect: true });
        await this.client.connect();
        clients.push(() => this.client.quit());
      },
      open(options) {
        return RedisTokenStore.open(this.client, { ...options, namespace: freshNamespace() });
      },
    },
    {
      // A user the server refuses FUNCTION LOAD: the store runs the same
      // code as scripts (EVALSHA), as on a server without functions.
      name: 'RedisTokenStore (node-redis, scripts)',
      redis: true,
      client: null,
      async connect(server) {
        const user = { username: 'captoken-no-functions', password: 'pw-no-functions' };
        const admin = await createClient({ url: server.url }).connect();
        try {
          await admin.sendCommand(['ACL', 'SETUSER', user.username, 'on', `>${user.password}`, '~*', '&*', '+@all', '-function']);
        } finally {
          await admin.quit();
        }
        this.client = await createClient({ url: server.url, ...user }).connect();
        clients.push(() => this.client.quit());
      },
      open(options) {
        return RedisTokenStore.open(this.client, { ...options, namespace: freshNamespace() });
      },
    },
    {
      // Script calls then go out as a Command of their own (js/redis.cjs).
      name: 'RedisTokenStore (ioredis, enableAutoPipelining)',
      redis: true,
      client: null,
      async connect(server) {
        this.client = new Redis(server.port, '127.0.0.1', { lazyConnect: true, enableAutoPipelining: true });
        await this.client.connect();
        clients.push(() => this.client.quit());
      },
      open(options) {
        return RedisTokenStore.open(this.client, { ...options, namespace: freshNamespace() });
      },
    },
  ];
  return { kinds, closeClients: async () => { for (const close of clients) await close().catch(() => {}); } };
}

/** node-redis and ioredis clients of a cluster, as store kinds. */
export function clusterKinds() {
  const clients = [];
  return {
    kinds: [
      {
        name: 'RedisTokenStore (node-redis cluster)',
        redis: true,
        async connect(cluster) {
          this.client = await createCluster({
            rootNodes: cluster.nodes.map((n) => ({ url: n.url })),
          }).connect();
          clients.push(() => this.client.close());
        },
        open(options) {
          return RedisTokenStore.open(this.client, { ...options, namespace: freshNamespace() });
        },
      },
      {
        name: 'RedisTokenStore (ioredis cluster)',
        redis: true,
        async connect(cluster) {
          this.client = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), { lazyConnect: true });
          await this.client.connect();
          clients.push(() => this.client.quit());
        },
        open(options) {
          return RedisTokenStore.open(this.client, { ...options, namespace: freshNamespace() });
        },
      },
    ],
    closeClients: async () => { for (const close of clients) await close().catch(() => {}); },
  };
}
