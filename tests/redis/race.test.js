// Four Node processes (two on node-redis, two on ioredis) share one
// namespace on a real redis-server.
import { test } from 'node:test';
import { serverWithClient } from './server.js';
import { races } from './races.js';

const redis = serverWithClient();

test('races on one redis-server', async (t) => {
  await races(t, { client: redis.client, ports: [redis.server.port] });
});
