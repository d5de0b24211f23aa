// The orchestrator example in its Redis mode: two orchestrator processes and
// their worker processes share one RedisTokenStore namespace.
//
//   node examples/orchestrator-redis.js
//
// starts its own redis-server on a free loopback port (or uses REDIS_URL),
// forks two orchestrators (A and B) that each run a swarm of real worker
// processes (examples/worker.js) down to the depth cap, and then checks from
// a third store on the same namespace that both trees are there and every
// worker token was revoked. Prints a log and a final JSON summary.
import { fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { RedisTokenStore, CapTokenError } from 'captoken/redis';

const self = fileURLToPath(import.meta.url);
const workerScript = fileURLToPath(new URL('./worker.js', import.meta.url));
const [, , role, name] = process.argv;
/** Uses handed to the worker of a task at depth 1, 2, 3. */
const HANDED = [undefined, 24, 8, 2];

if (role === 'orchestrator') {
  await orchestrator(name);
} else {
  await launcher();
}

async function orchestrator(name) {
  const secret = Buffer.from(process.env.CAPTOKEN_SECRET_HEX, 'hex');
  const client = await createClient({ url: process.env.REDIS_URL }).connect();
  const store = await RedisTokenStore.open(client, { secret, namespace: process.env.CAPTOKEN_NAMESPACE, maxSpawnDepth: 4 });
  const operator = await store.attachOperator(`orchestrator-${name}`);
  const root = await store.startTask(operator.bearer, { taskId: `root-${name}` });
  const summary = { allowed: 0, denied: {}, depths: { [root.taskId]: 0 }, workers: 0 };
  const log = (line) => console.log(`[${name}] ${line}`);
  const running = new Set();
  const bearers = [];
  let done;
  const finished = new Promise((resolve) => { done = resolve; });

  async function decide(bearer, call) {
    const { verb, taskId } = call;
    try {
      let reply;
      if (verb === 'start_task') {
        // A Worker's child tasks get ids made by the store.
        reply = await store.startTask(bearer);
        summary.depths[reply.taskId] = reply.spawnDepth;
      } else if (verb === 'dispatch_attempt') {
        // Budgets are transferred: each level hands its child a share of its own.
        const minted = await store.dispatchAttempt(bearer, taskId, { maxUses: HANDED[summary.depths[taskId]] ?? 1 });
        launch(taskId, minted.bearer);
        reply = { fingerprint: minted.fingerprint };
      } else {
        const grant = await store.verify(bearer, verb, taskId);
        reply = { usesLeft: grant.usesLeft };
      }
      summary.allowed += 1;
      log(`allow ${verb.padEnd(16)} task=${taskId ?? '-'}`);
      return { ok: true, reply };
    } catch (error) {
      if (!(error instanceof CapTokenError)) throw error;
      summary.denied[error.code] = (summary.denied[error.code] ?? 0) + 1;
      log(`deny  ${verb.padEnd(16)} task=${taskId ?? '-'} ${error.code}`);
      return { ok: false, code: error.code };
    }
  }

  function launch(taskId, bearer) {
    bearers.push({ taskId, bearer });
    summary.workers += 1;
    const child = fork(workerScript, [], {
      env: { ...process.env, CAPTOKEN_BEARER: bearer, CAPTOKEN_TASK: taskId },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    running.add(child);
    child.on('message', async (call) => child.send({ id: call.id, ...(await decide(bearer, call)) }));
    child.on('exit', () => {
      running.delete(child);
      if (running.size === 0) done();
    });
  }

  // A worker spends fetch_prompt, start_task, dispatch_attempt (1 + what it
  // hands on) and post_result; the ownership probe and the refused spawn
  // spend nothing.
  launch(root.taskId, (await store.dispatchAttempt(operator.bearer, root.taskId, { maxUses: 64 })).bearer);
  await finished;
  summary.revokedTokens = await store.revokeTask(root.taskId);
  const after = await Promise.all(bearers.map(({ taskId, bearer }) => store.check(bearer, 'fetch_prompt', taskId)));
  summary.refusedAfterRevoke = after.filter((d) => d.code === 'ERR_TOKEN_REVOKED').length;
  summary.bearers = bearers;
  console.log(`SUMMARY ${JSON.stringify(summary)}`);
  await store.close();
  await client.quit();
}

async function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function launcher() {
  let redis;
  let dir;
  let url = process.env.REDIS_URL;
  if (!url) {
    // Our own redis-server, stopped by pid at the end.
    const port = await freePort();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'captoken-example-'));
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
      '--appendonly', 'yes'], { stdio: 'ignore' });
    url = `redis://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      const up = await new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); }).on('error', () => resolve(false));
      });
      if (up) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const env = {
    ...process.env,
    REDIS_URL: url,
    CAPTOKEN_SECRET_HEX: randomBytes(32).toString('hex'),
    CAPTOKEN_NAMESPACE: `example-${randomBytes(4).toString('hex')}`,
  };
  try {
    const runs = ['A', 'B'].map((name) => new Promise((resolve, reject) => {
      const child = fork(self, ['orchestrator', name], { env, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
      let out = '';
      child.stdout.on('data', (chunk) => { out += chunk; process.stdout.write(chunk); });
      child.on('exit', (code) => {
        const line = out.split('\n').find((l) => l.startsWith('SUMMARY '));
        if (code !== 0 || !line) reject(new Error(`orchestrator ${name} failed (${code})`));
        else resolve(JSON.parse(line.slice('SUMMARY '.length)));
      });
    }));
    const [a, b] = await Promise.all(runs);
    // A third process's view of the shared namespace.
    const client = await createClient({ url }).connect();
    const store = await RedisTokenStore.open(client, {
      secret: Buffer.from(env.CAPTOKEN_SECRET_HEX, 'hex'), namespace: env.CAPTOKEN_NAMESPACE,
    });
    const tasks = [];
    for await (const task of store.tasks()) tasks.push(task);
    const crossChecks = await Promise.all([...a.bearers, ...b.bearers].map(({ taskId, bearer }) => store.check(bearer, 'fetch_prompt', taskId)));
    for (const s of [a, b]) delete s.bearers;
    const summary = {
      orchestrators: { A: a, B: b },
      sharedTasks: tasks.length,
      roots: tasks.filter((t) => t.parentId === null).map((t) => t.taskId).sort(),
      maxDepth: Math.max(...tasks.map((t) => t.spawnDepth)),
      refusedEverywhere: crossChecks.filter((d) => d.code === 'ERR_TOKEN_REVOKED').length,
      records: await store.size(),
    };
    console.log(`SUMMARY ${JSON.stringify(summary)}`);
    await store.close();
    await client.quit();
  } finally {
    if (redis) {
      redis.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
}
