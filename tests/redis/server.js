// Start and stop real redis-server processes for the tests (never a Redis
// the tests did not start): each on a free loopback port, in its own temp
// dir, stopped by pid. Not a test file itself.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { before, after } from 'node:test';
import { createClient } from 'redis';

// Every redis-server this process started and has not stopped: killed by
// pid when the process exits, even after a failed test.
const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, child, ms = 10_000) {
  const until = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`redis-server on ${port} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Start redis-server on a free port in a temp dir (append-only file on,
 * `appendfsync always` unless told otherwise). Returns { port, url, dir,
 * pid, kill(signal), restart(), stop() }.
 */
export async function startRedis(options = {}) {
  const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'captoken-redis-'));
  const port = options.port ?? (await freePort());
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', 'yes', '--appendfsync', options.appendfsync ?? 'always',
    '--daemonize', 'no', '--protected-mode', 'no', '--logfile', path.join(dir, 'redis.log'),
    ...(options.extra ?? []),
  ];
  const server = { port, dir, url: `redis://127.0.0.1:${port}`, child: null };
  const launch = async () => {
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    live.add(child);
    child.once('exit', () => live.delete(child));
    server.child = child;
    server.pid = child.pid;
    await waitForPort(port, child);
  };
  server.kill = (signal = 'SIGKILL') => new Promise((resolve) => {
    const child = server.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    process.kill(child.pid, signal);
  });
  server.restart = launch;
  server.stop = async () => {
    await server.kill('SIGKILL');
    if (!options.keepDir) fs.rmSync(dir, { recursive: true, force: true });
  };
  await launch();
  return server;
}

/**
 * A 3-master Redis Cluster on loopback: three `redis-server
 * --cluster-enabled yes`, joined with `redis-cli --cluster create`.
 */
export async function startCluster() {
  const nodes = [];
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      nodes.push(await startRedis({
        port,
        extra: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'],
      }));
    }
    execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' });
    // Wait until every node agrees the cluster is ok.
    const until = Date.now() + 20_000;
    for (const n of nodes) {
      for (;;) {
        const info = execFileSync('redis-cli', ['-p', String(n.port), 'cluster', 'info']).toString();
        if (/cluster_state:ok/.test(info)) break;
        if (Date.now() > until) throw new Error('cluster did not become ok');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (error) {
    for (const n of nodes) await n.stop();
    throw error;
  }
  return { nodes, stop: async () => { for (const n of nodes) await n.stop(); } };
}

/**
 * For one test file: a redis-server and a connected node-redis client,
 * started before its tests and stopped after them (the client first, the
 * server also when quitting fails). `.server` and `.client` are set once the
 * file's `before` has run.
 */
export function serverWithClient() {
  const redis = { server: undefined, client: undefined };
  before(async () => {
    redis.server = await startRedis();
    redis.client = await createClient({ url: redis.server.url }).connect();
  });
  after(async () => {
    try {
      await redis.client?.quit();
    } finally {
      await redis.server?.stop();
    }
  });
  return redis;
}
