// The orchestrator example's Redis mode: two orchestrator processes and
// their worker processes share one namespace on a real redis-server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startRedis } from './server.js';

const run = promisify(execFile);
const script = fileURLToPath(new URL('../../examples/orchestrator-redis.js', import.meta.url));

test('two orchestrators and their workers share Redis', { timeout: 60_000 }, async () => {
  const server = await startRedis();
  try {
    const { stdout } = await run(process.execPath, [script], { timeout: 50_000, env: { ...process.env, REDIS_URL: server.url } });
    const line = stdout.split('\n').filter((l) => l.startsWith('SUMMARY ')).pop();
    const summary = JSON.parse(line.slice('SUMMARY '.length));
    assert.deepEqual(summary.roots, ['root-A', 'root-B']);
    assert.equal(summary.sharedTasks, 8);
    assert.equal(summary.maxDepth, 3);
    assert.equal(summary.refusedEverywhere, 8);
    assert.equal(summary.records, 10);
    for (const o of Object.values(summary.orchestrators)) {
      assert.equal(o.workers, 4);
      assert.equal(o.allowed, 14);
      assert.deepEqual(o.denied, { ERR_TOKEN_TASK_MISMATCH: 4, ERR_SPAWN_DEPTH_EXCEEDED: 1 });
      assert.equal(o.revokedTokens, 4);
    }
  } finally {
    await server.stop();
  }
});
