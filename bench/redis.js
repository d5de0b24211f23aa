// captoken/redis speed: `npm run bench:redis` (or node bench/redis.js).
// Starts its own redis-server on a free loopback port (appendfsync
// everysec here, like a production default; the durability test uses
// always), and measures on the same server:
//   - one bare PING round trip from the client (median, one at a time);
//   - verify one at a time (median latency);
//   - verify with 64 in flight from one process (throughput);
//   - redis-benchmark's ceiling for a trivial EVALSHA, one connection, 64 pipelined;
//   - verify from 4 processes, 64 in flight each (throughput);
//   - latency and throughput again with a different bearer every call;
// for node-redis and ioredis. Budgets: throughput >= 40% of the ceiling,
// latency <= 1.5x the PING round trip. Writes bench/redis-results.json and
// prints a Markdown table.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { Redis } from 'ioredis';
import { RedisTokenStore } from 'captoken/redis';
import { SECRET } from '../tests/node/helpers.js';
import { startRedis } from '../tests/redis/server.js';
import { startPeers } from '../tests/redis/peers.js';

const N = Number(process.env.BENCH_REDIS_N ?? 20000);
const LAT_N = Number(process.env.BENCH_REDIS_LAT_N ?? 3000);
// More than a store remembers (4,096), so that every call misses.
const DISTINCT = Number(process.env.BENCH_REDIS_DISTINCT ?? 5000);
// `npm run bench` runs this file as a child and reads its results here.
const OUT = process.env.BENCH_REDIS_OUT ?? fileURLToPath(new URL('./redis-results.json', import.meta.url));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const now = () => Number(process.hrtime.bigint()) / 1e3; // µs

async function throughput(fn, n, inFlight = 64) {
  let next = 0;
  const t = now();
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next++ < n) await fn();
  }));
  return n / ((now() - t) / 1e6);
}

function redisBenchmark(port) {
  const sha = execFileSync('redis-cli', ['-p', String(port), 'SCRIPT', 'LOAD', 'return 1']).toString().trim();
  const out = execFileSync('redis-benchmark', ['-p', String(port), '-c', '1', '-P', '64', '-n', String(N * 50), '-q',
    'EVALSHA', sha, '0']).toString();
  const m = /([\d.]+) requests per second/.exec(out.split('\r').pop() ?? out) ?? /([\d.]+) requests per second/.exec(out);
  return Number(m[1]);
}

const server = await startRedis({ appendfsync: 'everysec' });
const rows = [];
const redisVersion = /redis_version:(\S+)/.exec(execFileSync('redis-cli', ['-p', String(server.port), 'INFO', 'server']).toString())?.[1];
try {
  const ceiling = redisBenchmark(server.port);
  for (const kind of ['node-redis', 'ioredis']) {
    let client;
    let ping;
    if (kind === 'node-redis') {
      client = await createClient({ url: server.url }).connect();
      ping = () => client.ping();
    } else {
      // Auto-pipelining: commands issued in the same tick share one write,
      // as node-redis does by default (redis-benchmark's -P 64 is the same idea).
      client = new Redis(server.port, '127.0.0.1', { enableAutoPipelining: true });
      await client.ping();
      ping = () => client.ping();
    }
    const namespace = `bench-${kind}`;
    const store = await RedisTokenStore.open(client, { secret: SECRET, namespace });
    const op = await store.attachOperator('op');
    await store.startTask(op.bearer, { taskId: 't' });
    const w = await store.dispatchAttempt(op.bearer, 't');
    const verify = () => store.verify(w.bearer, 'fetch_prompt', 't');
    // PING and verify alternate, so that both see the same machine load.
    const pings = [];
    const verifies = [];
    for (let i = 0; i < 200; i++) { await ping(); await verify(); }
    for (let i = 0; i < LAT_N; i++) {
      let t = now();
      await ping();
      pings.push(now() - t);
      t = now();
      await verify();
      verifies.push(now() - t);
    }
    const pingUs = median(pings);
    const verifyUs = median(verifies);
    // The same client's own ceiling: a trivial EVALSHA (same key and
    // argument count as verify's), 64 in flight.
    const trivial = String(await (kind === 'node-redis'
      ? client.sendCommand(['SCRIPT', 'LOAD', 'return 1'])
      : client.call('SCRIPT', 'LOAD', 'return 1')));
    const bare = kind === 'node-redis'
      ? () => client.sendCommand(['EVALSHA', trivial, '1', `ct:{${namespace}}:R`, 'a', 'b', 'c', 'd', 'e', 'f', 'g'])
      : () => client.call('EVALSHA', trivial, '1', `ct:{${namespace}}:R`, 'a', 'b', 'c', 'd', 'e', 'f', 'g');
    await throughput(bare, N);
    const clientCeiling = await throughput(bare, N);
    await throughput(verify, N); // warm-up
    const one = await throughput(verify, N);
    // The same with a different bearer every call: DISTINCT tokens taken in
    // turn, so every call decodes and checks its HMAC again (js/admitted.cjs).
    const distinct = [];
    for (let i = 0; i < DISTINCT; i++) distinct.push((await store.dispatchAttempt(op.bearer, 't')).bearer);
    let turn = 0;
    const verifyDistinct = () => store.verify(distinct[turn++ % DISTINCT], 'fetch_prompt', 't');
    const coldLatencies = [];
    for (let i = 0; i < LAT_N; i++) {
      const t = now();
      await verifyDistinct();
      coldLatencies.push(now() - t);
    }
    const verifyColdUs = median(coldLatencies);
    const oneCold = await throughput(verifyDistinct, N);
    const peers = await startPeers({ ports: [server.port], namespace }, 4);
    let four;
    try {
      const t = now();
      const results = await Promise.all(peers.map((p) => p.send('timed', { bearer: w.bearer, taskId: 't', n: N })));
      four = (results.reduce((s, r) => s + r.ok, 0)) / ((now() - t) / 1e6);
    } finally {
      for (const p of peers) await p.stop();
    }
    rows.push({ client: kind, pingUs, verifyUs, latencyRatio: verifyUs / pingUs, perSecOne: one, ceiling,
      shareOfCeiling: one / ceiling, clientCeiling, shareOfClient: one / clientCeiling, perSecFour: four,
      verifyColdUs, perSecOneCold: oneCold });
    await store.close();
    await client.quit();
  }
} finally {
  await server.stop();
}

const f = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const lines = [
  '| client | PING round trip | verify, one at a time | ratio (budget <= 1.5) | verify, 64 in flight, 1 process | redis-benchmark EVALSHA, -P 64 | share (budget >= 40%) | trivial EVALSHA, same client, 64 in flight | share of that | verify, 4 processes x 64 |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => `| ${r.client} | ${f(r.pingUs, 1)} µs | ${f(r.verifyUs, 1)} µs | ${f(r.latencyRatio, 2)} ${r.latencyRatio <= 1.5 ? 'pass' : 'FAIL'} | ${f(r.perSecOne)}/s | ${f(r.ceiling)}/s | ${f(100 * r.shareOfCeiling, 1)}% ${r.shareOfCeiling >= 0.4 ? 'pass' : 'FAIL'} | ${f(r.clientCeiling)}/s | ${f(100 * r.shareOfClient, 1)}% | ${f(r.perSecFour)}/s |`),
  '',
  `A different bearer every call (${f(DISTINCT)} in turn: none remembered, each decoded and its HMAC checked):`,
  '',
  '| client | verify, one at a time | ratio to PING | verify, 64 in flight, 1 process | share of the redis-benchmark ceiling |',
  '| --- | --- | --- | --- | --- |',
  ...rows.map((r) => `| ${r.client} | ${f(r.verifyColdUs, 1)} µs | ${f(r.verifyColdUs / r.pingUs, 2)} | ${f(r.perSecOneCold)}/s | ${f(100 * r.perSecOneCold / r.ceiling, 1)}% |`),
];
console.log(lines.join('\n'));
writeFileSync(OUT, `${JSON.stringify({ date: new Date().toISOString(), n: N, latN: LAT_N, distinct: DISTINCT,
  redisVersion, rows }, null, 2)}\n`);
