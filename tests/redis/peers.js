// Start peer processes (tests/redis/peer.js) and talk to them. Not a test file.
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const PEER = fileURLToPath(new URL('./peer.js', import.meta.url));

export async function startPeer(config) {
  const child = spawn(process.execPath, [PEER, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout });
  const waiting = new Map();
  let ready;
  const readyPromise = new Promise((resolve, reject) => {
    ready = resolve;
    child.once('exit', (code) => reject(new Error(`peer exited with ${code}`)));
  });
  lines.on('line', (line) => {
    const msg = JSON.parse(line);
    if (msg.ready) return ready();
    const w = waiting.get(msg.id);
    waiting.delete(msg.id);
    if (msg.error) w.reject(new Error(msg.error));
    else w.resolve(msg.result);
  });
  child.on('exit', () => {
    for (const w of waiting.values()) w.reject(new Error('peer exited'));
    waiting.clear();
  });
  await readyPromise;
  let ids = 0;
  return {
    pid: child.pid,
    send(op, args = {}) {
      const id = ids++;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        child.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      this.send('quit').catch(() => {});
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Four peers: two on node-redis, two on ioredis. */
export async function startPeers(base, n = 4) {
  const peers = [];
  try {
    for (let i = 0; i < n; i++) peers.push(await startPeer({ ...base, client: i % 2 ? 'ioredis' : 'node-redis' }));
  } catch (error) {
    for (const p of peers) await p.stop();
    throw error;
  }
  return peers;
}
