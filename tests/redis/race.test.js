// Four Node processes (two on node-redis, two on ioredis) share one
// namespace on a real redis-server.
import { test, before, after } from 'node:test';
import { createClient } from 'redis';
import { startRedis } from './server.js';
import { races } from './races.js';

let server;
let client;
before(async () => {
  server = await startRedis();
  client = await createClient({ url: server.url }).connect();
});
after(async () => {
  try {
    await client?.quit();
  } finally {
    await server?.stop();
  }
});

test('races on one redis-server', async (t) => {
  await races(t, { client, ports: [server.port] });
});
