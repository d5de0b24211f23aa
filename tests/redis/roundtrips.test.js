// Round trips, counted with MONITOR on a real redis-server, for node-redis
// and ioredis: verify and check send exactly one command (FCALL; EVALSHA for
// a user the server refuses FUNCTION LOAD) once the library (or script) is
// loaded, shared by the calls made in the same turn (32, then 64 at most);
// the first call after a FUNCTION FLUSH (SCRIPT FLUSH) one fallback (EVAL);
// a bearer failing a stateless step sends none. No command carries a nonce,
// a bearer or the secret.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import readline from 'node:readline';
import { createClient } from 'redis';
import { Redis } from 'ioredis';
import { RedisTokenStore } from 'captoken/redis';
import { SECRET, OTHER_SECRET, TokenStore, T0 } from '../node/helpers.js';
import { startRedis } from './server.js';
import { freshNamespace } from './stores.js';

const NO_FUNCTIONS = { username: 'captoken-no-functions', password: 'pw-no-functions' };
let server;
let monitor;
const lines = [];
before(async () => {
  server = await startRedis();
  monitor = spawn('redis-cli', ['-p', String(server.port), 'MONITOR'], { stdio: ['ignore', 'pipe', 'ignore'] });
  readline.createInterface({ input: monitor.stdout }).on('line', (line) => lines.push(line));
  // A user who may run everything but FUNCTION: its stores run scripts.
  execFileSync('redis-cli', ['-p', String(server.port), 'ACL', 'SETUSER', NO_FUNCTIONS.username, 'on',
    `>${NO_FUNCTIONS.password}`, '~*', '&*', '+@all', '-function']);
  await new Promise((r) => setTimeout(r, 200));
});
after(async () => {
  monitor?.kill('SIGKILL');
  await server?.stop();
});

const kinds = [
  ['node-redis', async (user) => {
    const c = await createClient({ url: server.url, ...user }).connect();
    return { echo: (m) => c.sendCommand(['ECHO', m]), command: (...args) => c.sendCommand(args), client: c };
  }],
  ['ioredis', async (user) => {
    const c = new Redis(server.port, '127.0.0.1', { ...user });
    await c.ping();
    return { echo: (m) => c.call('ECHO', m), command: (...args) => c.call(...args), client: c };
  }],
  ['ioredis with enableAutoPipelining', async (user) => {
    const c = new Redis(server.port, '127.0.0.1', { ...user, enableAutoPipelining: true });
    await c.ping();
    return { echo: (m) => c.call('ECHO', m), command: (...args) => c.call(...args), client: c };
  }],
];
const modes = [
  { mode: 'functions', user: {}, call: '"FCALL"', flush: ['FUNCTION', 'FLUSH'], fallback: ['"FCALL"', '"EVAL"', '"FUNCTION"'] },
  { mode: 'scripts', user: NO_FUNCTIONS, call: '"EVALSHA"', flush: ['SCRIPT', 'FLUSH'], fallback: ['"EVALSHA"', '"EVAL"'] },
];

for (const [kind, connect] of kinds) for (const { mode, user, call, flush, fallback } of modes) {
  const name = `${kind}, ${mode}`;
  test(`round trips with ${name}`, async (t) => {
    const c = await connect(user);
    // A failed assertion must not leave the client reconnecting forever.
    t.after(() => c.client.disconnect());
    let marks = 0;
    /** The commands the store sent while fn ran (between two ECHO markers). */
    const commands = async (fn) => {
      const start = `mark-${name}-${marks++}`;
      const end = `mark-${name}-${marks++}`;
      await c.echo(start);
      await fn();
      await c.echo(end);
      for (let i = 0; i < 100 && !lines.some((l) => l.includes(`"${end}"`)); i++) await new Promise((r) => setTimeout(r, 20));
      const from = lines.findIndex((l) => l.includes(`"${start}"`));
      const to = lines.findIndex((l) => l.includes(`"${end}"`));
      assert.ok(from >= 0 && to > from);
      // Commands a script runs inside Redis show as "[0 lua]": not round trips.
      return lines.slice(from + 1, to).filter((l) => !/^[\d.]+ \[\d+ lua\]/.test(l))
        .map((l) => l.replace(/^[\d.]+ \[[^\]]*\] /, ''));
    };
    const clock = { t: T0 };
    const store = await RedisTokenStore.open(c.client, { secret: SECRET, namespace: freshNamespace(), now: () => clock.t });
    const op = await store.attachOperator('op');
    await store.startTask(op.bearer, { taskId: 't' });
    const w = await store.dispatchAttempt(op.bearer, 't', { maxUses: 100, ttlSecs: 600 });
    await store.verify(w.bearer, 'fetch_prompt', 't');

    // The script call is written at the end of the turn: never left in
    // ioredis's auto-pipeline queue for a later tick.
    if (c.client.options?.enableAutoPipelining) {
      const pending = store.verify(w.bearer, 'fetch_prompt', 't');
      await null;
      assert.equal(c.client.autoPipelineQueueSize, 0);
      await pending;
    }
    let sent = await commands(() => store.verify(w.bearer, 'fetch_prompt', 't'));
    assert.equal(sent.length, 1, sent.join('\n'));
    assert.equal(sent[0].split(' ')[0], call);
    sent = await commands(() => store.check(w.bearer, 'fetch_prompt', 't'));
    assert.equal(sent.length, 1);
    assert.equal(sent[0].split(' ')[0], call);
    // A refusal decided in the server is one command too.
    sent = await commands(() => store.check(w.bearer, 'fetch_prompt', 'other'));
    assert.equal(sent.length, 1);

    // Stateless refusals send nothing.
    const foreign = new TokenStore({ secret: OTHER_SECRET, now: () => clock.t }).attachOperator('x');
    sent = await commands(async () => {
      await assert.rejects(store.verify('garbage', 'heartbeat'), { code: 'ERR_MALFORMED_TOKEN' });
      await assert.rejects(store.verify(foreign.bearer, 'heartbeat'), { code: 'ERR_BAD_SIGNATURE' });
      await assert.rejects(store.verify(w.bearer, 'heartbeat'), { code: 'ERR_ROLE_VIOLATION' });
      assert.equal((await store.check(w.bearer, 'mark_pass')).code, 'ERR_ROLE_VIOLATION');
      clock.t += 600;
      await assert.rejects(store.verify(w.bearer, 'fetch_prompt', 't'), { code: 'ERR_TOKEN_EXPIRED' });
      clock.t -= 600;
    });
    assert.deepEqual(sent, []);

    // After the server lost the library (scripts): one fallback, then one
    // command again (the library goes back with the fallback's EVAL).
    const before = (await store.check(w.bearer, 'fetch_prompt', 't')).usesLeft;
    await c.command(...flush);
    sent = await commands(async () => assert.equal((await store.verify(w.bearer, 'fetch_prompt', 't')).usesLeft, before - 1));
    assert.deepEqual(sent.map((l) => l.split(' ')[0]), fallback);
    sent = await commands(() => store.verify(w.bearer, 'fetch_prompt', 't'));
    assert.deepEqual(sent.map((l) => l.split(' ')[0]), [call]);

    // Calls made in the same turn share commands: the first 32 at once, the
    // rest a macrotask later, 64 to a command (129: the garbage bearer sends
    // nothing); each is decided as if alone, in the order made.
    const once = await store.dispatchAttempt(op.bearer, 't', { maxUses: 1, ttlSecs: 600 });
    const many = await store.dispatchAttempt(op.bearer, 't', { maxUses: 200, ttlSecs: 600 });
    let results;
    sent = await commands(async () => {
      results = await Promise.all([
        store.check(once.bearer, 'fetch_prompt', 't'),
        store.verify(once.bearer, 'fetch_prompt', 't'),
        store.verify(once.bearer, 'fetch_prompt', 't').catch((e) => e),
        store.check(once.bearer, 'fetch_prompt', 't'),
        store.check(w.bearer, 'fetch_prompt', 'other'),
        store.verify('garbage', 'heartbeat').catch((e) => e),
        ...Array.from({ length: 124 }, () => store.verify(many.bearer, 'fetch_prompt', 't')),
      ]);
    });
    assert.deepEqual(sent.map((l) => l.split(' ')[0]), [call, call, call]);
    // Each call packed as js/redis/verify.lua reads it, end to end in one argument.
    assert.deepEqual(sent.map((l) => (l.match(/[01][w-][012][=-][0-9a-f]{128}[0-9]{6}/g) ?? []).length), [32, 64, 33]);
    assert.deepEqual(sent.map((l) => l.split('" "').length), [6, 6, 6]);
    assert.equal(results[0].allowed, true);
    assert.equal(results[0].usesLeft, 1);
    assert.equal(results[1].usesLeft, 0);
    assert.equal(results[2].code, 'ERR_TOKEN_USES_EXHAUSTED');
    assert.equal(results[3].code, 'ERR_TOKEN_USES_EXHAUSTED');
    assert.equal(results[4].code, 'ERR_TOKEN_TASK_MISMATCH');
    assert.equal(results[5].code, 'ERR_MALFORMED_TOKEN');
    assert.deepEqual(results.slice(6).map((g) => g.usesLeft), Array.from({ length: 124 }, (_, i) => 199 - i));

    // Nothing secret crosses the wire.
    const all = lines.join('\n');
    for (const m of [op, w]) {
      assert.ok(!all.includes(m.token.nonce), 'a nonce was sent');
      assert.ok(!all.includes(m.bearer), 'a bearer was sent');
    }
    assert.ok(!all.includes(Buffer.from(SECRET).toString('hex')));
    await store.close();
  });
}

test('a store whose library cannot come back runs scripts, one command a call again', async (t) => {
  // A user that may load functions at open, and no longer once they are gone.
  const user = { username: 'captoken-loses-functions', password: 'pw-loses-functions' };
  const cli = (...args) => execFileSync('redis-cli', ['-p', String(server.port), ...args]).toString().trim();
  cli('ACL', 'SETUSER', user.username, 'on', `>${user.password}`, '~*', '&*', '+@all');
  const client = await createClient({ url: server.url, ...user }).connect();
  t.after(() => client.disconnect());
  const store = await RedisTokenStore.open(client, { secret: SECRET, namespace: freshNamespace() });
  const w = await store.mint('w', 'worker', { maxUses: 10 });
  const sentBy = async (fn) => {
    const start = `lost-${Math.random()}`;
    const end = `lost-${Math.random()}`;
    await client.sendCommand(['ECHO', start]);
    await fn();
    await client.sendCommand(['ECHO', end]);
    for (let i = 0; i < 100 && !lines.some((l) => l.includes(`"${end}"`)); i++) await new Promise((r) => setTimeout(r, 20));
    const from = lines.findIndex((l) => l.includes(`"${start}"`));
    const to = lines.findIndex((l) => l.includes(`"${end}"`));
    return lines.slice(from + 1, to).filter((l) => !/^[\d.]+ \[\d+ lua\]/.test(l)).map((l) => l.split('] ')[1].split(' ')[0]);
  };
  assert.deepEqual(await sentBy(() => store.verify(w.bearer, 'fetch_data')), ['"FCALL"']);
  cli('FUNCTION', 'FLUSH');
  cli('ACL', 'SETUSER', user.username, '-function');
  const first = await sentBy(async () => assert.equal((await store.verify(w.bearer, 'fetch_data')).usesLeft, 8));
  // (MONITOR does not show the FUNCTION LOAD the ACL refused.)
  assert.deepEqual(first.filter((c) => c !== '"FUNCTION"'), ['"FCALL"', '"EVAL"']);
  assert.deepEqual(await sentBy(() => store.verify(w.bearer, 'fetch_data')), ['"EVALSHA"']);
  assert.equal((await store.check(w.bearer, 'fetch_data')).usesLeft, 7);
  await store.close();
});
