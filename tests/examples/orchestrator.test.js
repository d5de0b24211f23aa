// Runs the example orchestrator with its real worker processes and checks
// what it reports: every depth up to the cap, the refused spawn, the
// ownership refusals, and the revoked tree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const script = fileURLToPath(new URL('../../examples/orchestrator.js', import.meta.url));

test('example orchestrator runs a swarm of worker processes to the depth cap', { timeout: 60_000 }, async () => {
  const { stdout } = await run(process.execPath, [script], { timeout: 50_000 });
  const line = stdout.split('\n').find((l) => l.startsWith('SUMMARY '));
  assert.ok(line, `no summary in:\n${stdout}`);
  const summary = JSON.parse(line.slice('SUMMARY '.length));
  assert.deepEqual(summary.depths, { root: 0, 'root.1': 1, 'root.1.1': 2, 'root.1.1.1': 3 });
  assert.deepEqual(summary.spawnRefused, { current: 4, max: 4 });
  assert.equal(summary.workers, 4);
  assert.equal(summary.tasks, 4);
  assert.equal(summary.failedWorkers, undefined);
  assert.deepEqual(Object.keys(summary.results).sort(), ['root', 'root.1', 'root.1.1', 'root.1.1.1']);
  assert.equal(summary.results['root.1.1'], 'done at root.1.1');
  assert.equal(summary.denied.ERR_TOKEN_TASK_MISMATCH, 4);
  assert.equal(summary.denied.ERR_SPAWN_DEPTH_EXCEEDED, 1);
  assert.equal(summary.revokedTokens, 4);
  assert.equal(summary.refusedAfterRevoke, 4);
  // 4 fetch_prompt + 3 start_task + 3 dispatch_attempt + 4 post_result
  assert.equal(summary.allowed, 14);
  assert.match(stdout, /deny {2}start_task {7}task=- ERR_SPAWN_DEPTH_EXCEEDED/);
});
