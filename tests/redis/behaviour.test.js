// The shared behaviour suite over TokenStore, DurableTokenStore and
// RedisTokenStore (node-redis and ioredis), on a real redis-server; every
// store must give the same transcript.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis } from './server.js';
import { storeKinds } from './stores.js';
import { runScenarios } from './behaviour.js';

let server;
const { kinds, closeClients } = storeKinds();
const transcripts = {};

before(async () => {
  server = await startRedis();
  for (const kind of kinds) if (kind.redis) await kind.connect(server);
});
after(async () => {
  try {
    await closeClients();
  } finally {
    await server?.stop();
  }
});

for (const kind of kinds) {
  test(kind.name, async (t) => {
    transcripts[kind.name] = await runScenarios(t, kind);
  });
}

test('every store gives the same transcript', () => {
  const [reference, ...others] = kinds.map((k) => k.name);
  assert.ok(Object.keys(transcripts[reference]).length > 0);
  for (const name of others) {
    for (const scenario of Object.keys(transcripts[reference])) {
      assert.deepEqual(transcripts[name][scenario], transcripts[reference][scenario], `${name}: ${scenario}`);
    }
  }
});
