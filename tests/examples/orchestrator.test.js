// Runs the example orchestrator with its real worker processes and checks
// what it reports: every depth up to the cap (each task started by the worker
// one level up, with an id made by the store), the refused spawn, the
// ownership refusals, the budgets handed down, and the revoked tree.
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

  // The chain root -> d1 -> d2 -> d3: the Operator names the root; each
  // deeper task is a worker's child, its id made by the store.
  const chain = ['root'];
  for (let depth = 1; depth < 4; depth++) {
    const next = Object.keys(summary.parents).filter((id) => summary.parents[id] === chain[depth - 1]);
    assert.equal(next.length, 1, `one task below ${chain[depth - 1]}`);
    assert.match(next[0], /^task-[0-9a-f]{12}$/);
    chain.push(next[0]);
  }
  assert.deepEqual(summary.depths, Object.fromEntries(chain.map((id, depth) => [id, depth])));
  assert.equal(summary.parents.root, null);
  assert.deepEqual(summary.spawnRefused, { current: 4, max: 4 });
  assert.equal(summary.workers, 4);
  assert.equal(summary.tasks, 4);
  assert.equal(summary.failedWorkers, undefined);
  assert.deepEqual(Object.keys(summary.results).sort(), [...chain].sort());
  assert.equal(summary.results[chain[2]], `done at ${chain[2]}`);
  assert.equal(summary.denied.ERR_TOKEN_TASK_MISMATCH, 4);
  assert.equal(summary.denied.ERR_SPAWN_DEPTH_EXCEEDED, 1);
  assert.equal(summary.revokedTokens, 4);
  assert.equal(summary.refusedAfterRevoke, 4);
  // Budgets are transferred down the tree, never copied: each worker hands
  // its child all but the dispatch's own use and the one for its post_result.
  assert.deepEqual(chain.map((id) => summary.budgets[id]), [16, 12, 8, 4]);
  // 4 fetch_prompt + 3 start_task + 3 dispatch_attempt + 4 post_result,
  // within the root worker's budget of 16 for the whole tree.
  assert.equal(summary.allowed, 14);
  assert.ok(summary.allowed <= summary.budgets.root);
  assert.match(stdout, /deny {2}start_task {7}task=- ERR_SPAWN_DEPTH_EXCEEDED/);
});
