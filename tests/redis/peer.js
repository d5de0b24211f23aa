// A peer process for the multi-process tests: opens a RedisTokenStore on the
// namespace it is given and answers one JSON command per stdin line with one
// JSON line on stdout. argv: JSON { ports, cluster, client, namespace }.
import readline from 'node:readline';
import { RedisTokenStore } from 'captoken/redis';
import { createClient, createCluster } from 'redis';
import { Redis, Cluster } from 'ioredis';
import { SECRET } from '../node/helpers.js';

const config = JSON.parse(process.argv[2]);
let client;
if (config.client === 'ioredis') {
  client = config.cluster
    ? new Cluster(config.ports.map((port) => ({ host: '127.0.0.1', port })), { lazyConnect: true })
    : new Redis(config.ports[0], '127.0.0.1', { lazyConnect: true, enableAutoPipelining: true });
  await client.connect();
} else {
  client = config.cluster
    ? createCluster({ rootNodes: config.ports.map((port) => ({ url: `redis://127.0.0.1:${port}` })) })
    : createClient({ url: `redis://127.0.0.1:${config.ports[0]}` });
  client.on('error', () => {});
  await client.connect();
}
const store = await RedisTokenStore.open(client, { secret: SECRET, namespace: config.namespace, timeoutMs: config.timeoutMs ?? 5000 });

const outcome = async (fn) => {
  try {
    const value = await fn();
    return { ok: true, value };
  } catch (error) {
    return { ok: false, code: error.code, message: error.message };
  }
};

/** Run fn over items with `inFlight` calls at a time. */
async function pool(items, inFlight, fn) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < items.length) {
      const at = next++;
      results[at] = await fn(items[at], at);
    }
  }));
  return results;
}

const handlers = {
  async verifyAll({ bearers, taskId, inFlight = 64 }) {
    // Each process tries every token, in its own order.
    const order = bearers.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    const codes = {};
    const won = [];
    await pool(order, inFlight, async (index) => {
      const r = await outcome(() => store.verify(bearers[index], 'fetch_prompt', taskId));
      if (r.ok) won.push(index);
      else codes[r.code] = (codes[r.code] ?? 0) + 1;
    });
    return { won, codes };
  },
  async verifyN({ bearer, taskId, n, inFlight = 16 }) {
    const results = await pool(Array.from({ length: n }), inFlight,
      () => outcome(() => store.verify(bearer, 'fetch_prompt', taskId)));
    const codes = {};
    for (const r of results) if (!r.ok) codes[r.code] = (codes[r.code] ?? 0) + 1;
    return { ok: results.filter((r) => r.ok).length, codes };
  },
  verify: ({ bearer, verb = 'fetch_prompt', taskId }) => outcome(() => store.verify(bearer, verb, taskId)),
  check: ({ bearer, verb = 'fetch_prompt', taskId }) => store.check(bearer, verb, taskId),
  revokeTask: ({ taskId }) => outcome(() => store.revokeTask(taskId)),
  startTask: ({ bearer, options }) => outcome(() => store.startTask(bearer, options)),
  remint: ({ bearer }) => outcome(async () => (await store.remint(bearer)).fingerprint),
  dispatch: ({ bearer, taskId, options }) => outcome(async () => (await store.dispatchAttempt(bearer, taskId, options)).fingerprint),
  async timed({ bearer, taskId, n }) {
    const started = process.hrtime.bigint();
    const r = await handlers.verifyN({ bearer, taskId, n, inFlight: 64 });
    return { ...r, ns: Number(process.hrtime.bigint() - started) };
  },
  async quit() {
    await store.close();
    await (client.quit ?? client.close).call(client);
    setImmediate(() => process.exit(0));
    return true;
  },
};

const lines = readline.createInterface({ input: process.stdin });
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
for await (const line of lines) {
  const { id, op, ...args } = JSON.parse(line);
  let reply;
  try {
    reply = { id, result: await handlers[op](args) };
  } catch (error) {
    reply = { id, error: String(error?.stack ?? error) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
// stdin closed: the test process is gone (killed, or force-exited after a
// failure), and the open client would keep this one alive for good.
process.exit(0);
