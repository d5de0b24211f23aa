// What RedisTokenStore keeps in Redis: keys under one hash tag per
// namespace, record expiry, no secret material, import of a TokenStore
// snapshot, and namespaces that cannot reach each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RedisTokenStore, TokenStore, CapTokenError } from 'captoken/redis';
import { SECRET, OTHER_SECRET, T0 } from '../node/helpers.js';
import { serverWithClient } from './server.js';
import { freshNamespace } from './stores.js';

const redis = serverWithClient();

async function dump(namespace) {
  const keys = [];
  for await (const batch of redis.client.scanIterator({ MATCH: `ct:{${namespace}}:*`, COUNT: 1000 })) keys.push(...batch);
  const values = [];
  for (const key of keys) {
    const type = await redis.client.type(key);
    if (type === 'hash') values.push(JSON.stringify(await redis.client.hGetAll(key)));
    if (type === 'set') values.push(JSON.stringify(await redis.client.sMembers(key)));
  }
  return { keys, text: `${keys.join('\n')}\n${values.join('\n')}` };
}

test('every key shares the namespace hash tag; no nonce, bearer or secret is stored', async () => {
  const namespace = freshNamespace();
  const clock = { t: T0 };
  const store = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace, now: () => clock.t });
  const op = await store.attachOperator('op');
  await store.startTask(op.bearer, { taskId: 'r' });
  const w = await store.dispatchAttempt(op.bearer, 'r', { maxUses: 3, ttlSecs: 100 });
  const child = await store.startTask(w.bearer);
  const w2 = await store.dispatchAttempt(w.bearer, child.taskId, { maxUses: 1 });
  const { keys, text } = await dump(namespace);
  assert.ok(keys.length >= 8);
  for (const key of keys) assert.ok(key.startsWith(`ct:{${namespace}}:`), key);
  for (const m of [op, w, w2]) {
    assert.ok(!text.includes(m.token.nonce), 'a nonce is stored');
    assert.ok(!text.includes(m.bearer), 'a bearer is stored');
  }
  assert.ok(!text.includes(Buffer.from(SECRET).toString('hex')));
  // Records of expiring tokens expire one lifetime after expire_at; Operators' never.
  assert.equal(await redis.client.ttl(`ct:{${namespace}}:r:${op.fingerprint}`), -1);
  const ttl = await redis.client.ttl(`ct:{${namespace}}:r:${w.fingerprint}`);
  assert.ok(ttl > 190 && ttl <= 200, `ttl ${ttl}`);
});

test('import: a TokenStore snapshot into an empty namespace decides the same', async () => {
  const clock = { t: T0 };
  const local = new TokenStore({ secret: SECRET, now: () => clock.t });
  const op = local.attachOperator('op');
  local.startTask(op.bearer, { taskId: 'r' });
  const w = local.dispatchAttempt(op.bearer, 'r', { maxUses: 5 });
  local.verify(w.bearer, 'fetch_prompt', 'r');
  const child = local.startTask(w.bearer);
  const gone = local.dispatchAttempt(op.bearer, child.taskId);
  local.revoke(gone.fingerprint);
  const text = local.snapshot();

  const namespace = freshNamespace();
  const store = await RedisTokenStore.import(redis.client, text, { secret: SECRET, namespace, now: () => clock.t });
  assert.equal(await store.size(), local.size);
  for (const [bearer, verb, task] of [[w.bearer, 'fetch_prompt', 'r'], [gone.bearer, 'fetch_prompt', child.taskId],
    [op.bearer, 'heartbeat'], [w.bearer, 'fetch_prompt', child.taskId]]) {
    const mine = await store.check(bearer, verb, task);
    const theirs = local.check(bearer, verb, task);
    assert.deepEqual(mine, theirs);
  }
  assert.deepEqual(await store.task(child.taskId), local.task(child.taskId));
  // A worker under the imported tree counts against its limits and depth.
  const grandchild = await store.startTask(w.bearer, { parentId: child.taskId });
  assert.equal(grandchild.spawnDepth, 2);
  // The namespace now holds keys: a second import is refused, nothing written.
  const before = (await dump(namespace)).text;
  await assert.rejects(RedisTokenStore.import(redis.client, text, { secret: SECRET, namespace }),
    (e) => e instanceof CapTokenError && e.code === 'ERR_INVALID_ARGUMENT');
  assert.equal((await dump(namespace)).text, before);
  // Bad text: ERR_SNAPSHOT_INVALID, nothing written.
  const empty = freshNamespace();
  const widened = text.replace('"uses_left":3', '"uses_left":99');
  assert.notEqual(widened, text);
  for (const bad of ['{', '{"version":1}', widened, 42]) {
    await assert.rejects(RedisTokenStore.import(redis.client, bad, { secret: SECRET, namespace: empty }),
      (e) => e instanceof CapTokenError && e.code === (typeof bad === 'string' ? 'ERR_SNAPSHOT_INVALID' : 'ERR_INVALID_ARGUMENT'));
  }
  assert.deepEqual((await dump(empty)).keys, []);
  // Round trip back: the Redis snapshot restores into a TokenStore deciding the same.
  const back = TokenStore.restore(await store.snapshot(), { secret: SECRET, now: () => clock.t });
  assert.deepEqual(back.check(w.bearer, 'fetch_prompt', 'r'), await store.check(w.bearer, 'fetch_prompt', 'r'));
});

test('import and snapshot: sealed text only, and a Worker-minted token keeps its minter\'s expiry (not_after)', async () => {
  const clock = { t: T0 };
  const now = () => clock.t;
  const local = new TokenStore({ secret: SECRET, now });
  const op = local.attachOperator('op');
  local.startTask(op.bearer, { taskId: 'r' });
  const minter = local.dispatchAttempt(op.bearer, 'r', { ttlSecs: 60 });
  const child = local.dispatchAttempt(minter.bearer, 'r');
  const text = local.snapshot();
  assert.match(text, /^\{"version":1,"key_id":"[0-9a-f]+","mac":"[0-9a-f]{64}",/);
  assert.match(text, /"not_after":/);
  // Unsealed text, or text sealed with another secret: refused, nothing written.
  const unsealed = text.replace(/^\{"version":1,"key_id":"[0-9a-f]+","mac":"[0-9a-f]{64}",/, '{"version":1,');
  assert.notEqual(unsealed, text);
  const foreign = new TokenStore({ secret: OTHER_SECRET, now }).snapshot();
  const empty = freshNamespace();
  for (const [bad, why] of [[unsealed, /unsealed|seal/], [foreign, /secret|key/]]) {
    await assert.rejects(RedisTokenStore.import(redis.client, bad, { secret: SECRET, namespace: empty }),
      (e) => e instanceof CapTokenError && e.code === 'ERR_SNAPSHOT_INVALID' && why.test(e.message));
  }
  assert.deepEqual((await dump(empty)).keys, []);

  const store = await RedisTokenStore.import(redis.client, text, { secret: SECRET, namespace: freshNamespace(), now });
  // Redis's snapshot is sealed, restores in TokenStore and holds the same records.
  const exported = await store.snapshot();
  assert.match(exported, /^\{"version":1,"key_id":"[0-9a-f]+","mac":"[0-9a-f]{64}",/);
  const back = TokenStore.restore(exported, { secret: SECRET, now });
  assert.deepEqual(back.records(), local.records());
  // The cap came through: a remint stops at the minter's expiry, in Redis and in TokenStore.
  clock.t = T0 + 30;
  const again = await store.remint(child.bearer);
  assert.equal(again.token.expire_at, T0 + 60);
  clock.t = T0 + 61;
  await assert.rejects(store.remint(again.bearer), { code: 'ERR_TOKEN_EXPIRED' });
  const later = TokenStore.restore(await store.snapshot(), { secret: SECRET, now });
  assert.throws(() => later.remint(again.bearer), { code: 'ERR_TOKEN_EXPIRED' });
  assert.throws(() => back.remint(child.bearer), { code: 'ERR_TOKEN_EXPIRED' });
});

test('import and snapshot keep what a Worker made: no fresh maxMadePerWorkerToken by a round trip', async () => {
  const now = () => T0;
  const options = { secret: SECRET, now, maxMadePerWorkerToken: 3 };
  const local = new TokenStore(options);
  const op = local.attachOperator('op');
  local.startTask(op.bearer, { taskId: 'r' });
  const w = local.dispatchAttempt(op.bearer, 'r');
  local.startTask(w.bearer);
  local.dispatchAttempt(w.bearer, 'r');
  assert.match(local.snapshot(), /"made":2/);
  // Imported into Redis: one more, then the limit.
  const store = await RedisTokenStore.import(redis.client, local.snapshot(), { ...options, namespace: freshNamespace() });
  await store.startTask(w.bearer);
  await assert.rejects(store.startTask(w.bearer), { code: 'ERR_LIMIT_EXCEEDED', limit: 'maxMadePerWorkerToken', max: 3 });
  // Exported from Redis: TokenStore and a second import refuse it too.
  const exported = await store.snapshot();
  assert.match(exported, /"made":3/);
  const back = TokenStore.restore(exported, options);
  assert.throws(() => back.startTask(w.bearer), { code: 'ERR_LIMIT_EXCEEDED' });
  const again = await RedisTokenStore.import(redis.client, exported, { ...options, namespace: freshNamespace() });
  await assert.rejects(again.dispatchAttempt(w.bearer, 'r'), { code: 'ERR_LIMIT_EXCEEDED', limit: 'maxMadePerWorkerToken' });
});

test('a record whose fields differ from its token is refused as TokenStore refuses it, after any import', async () => {
  // An old unsealed snapshot, edited, restored with allowUnsealed and sealed
  // again by snapshot(): the seal vouches for the store, not for the fields.
  const edits = {
    agent: (t) => { t.agent_id = 'other'; },
    role: (t) => { t.role = 'observer'; },
    scopes: (t) => { t.scopes = ['read']; },
    expiry: (t) => { t.expire_at -= 1000; },
    issued: (t) => { t.issued_at -= 1; },
  };
  for (const format of ['v2', 'mlua-swarm']) {
    for (const [name, edit] of Object.entries(edits)) {
      const source = new TokenStore({ secret: SECRET, format, now: () => T0 });
      const w = source.mint('w', 'worker', { maxUses: 3 });
      const old = JSON.parse(source.snapshot());
      delete old.key_id;
      delete old.mac;
      edit(old.records[0].token);
      const local = TokenStore.restore(JSON.stringify(old), { secret: SECRET, format, allowUnsealed: true, now: () => T0 });
      assert.equal(local.check(w.bearer, 'fetch_data').code, 'ERR_BAD_SIGNATURE', `${format} ${name} local`);
      const store = await RedisTokenStore.import(redis.client, local.snapshot(),
        { secret: SECRET, format, namespace: freshNamespace(), now: () => T0 });
      assert.equal((await store.check(w.bearer, 'fetch_data')).code, 'ERR_BAD_SIGNATURE', `${format} ${name}`);
      await assert.rejects(store.remint(w.bearer), { code: 'ERR_BAD_SIGNATURE' }, `${format} ${name} remint`);
      await store.close();
    }
  }
});

test('hostile namespaces cannot reach another namespace\'s keys', async () => {
  const victim = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace: 'victim' });
  const op = await victim.attachOperator('op');
  await victim.startTask(op.bearer, { taskId: 't' });
  for (const namespace of ['victim}', '{victim', 'victim}:r', '*', 'victim*', 'vic tim', 'victim\n', '', 'é']) {
    await assert.rejects(RedisTokenStore.open(redis.client, { secret: SECRET, namespace }), { code: 'ERR_INVALID_ARGUMENT' });
  }
  // Namespaces that are prefixes or extensions of another see nothing of it.
  for (const namespace of ['victi', 'victim:', 'victim:r', 'victim.x', 'victim-']) {
    const other = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace });
    assert.equal((await other.check(op.bearer, 'heartbeat')).code, 'ERR_TOKEN_NOT_FOUND');
    assert.equal(await other.task('t'), undefined);
    assert.equal(await other.size(), 0);
    assert.equal(await other.revokeTask('t'), 0);
    assert.equal(await other.purgeExpired(), 0);
  }
  assert.equal((await victim.check(op.bearer, 'heartbeat')).allowed, true);
  assert.equal(await victim.size(), 1);
});

test('where Redis differs from TokenStore (README): a record Redis has expired is gone', async () => {
  const namespace = freshNamespace();
  const clock = { t: T0 };
  const store = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace, now: () => clock.t });
  const local = new TokenStore({ secret: SECRET, now: () => clock.t });
  const w = await store.mint('w', 'worker', { ttlSecs: 100 });
  local.adopt(w.bearer);
  // One lifetime after expiry Redis drops the key by its own clock; here we
  // stand in for that wait.
  clock.t = w.token.expire_at + 101;
  await redis.client.pExpire(`ct:{${namespace}}:r:${w.fingerprint}`, 1);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(await store.record(w.fingerprint), undefined);
  assert.notEqual(local.record(w.fingerprint), undefined);
  // Both refuse a remint that late, with different codes.
  await assert.rejects(store.remint(w.bearer), { code: 'ERR_TOKEN_NOT_FOUND' });
  assert.throws(() => local.remint(w.bearer), { code: 'ERR_TOKEN_EXPIRED' });
  // Both count the record until purgeExpired removes it.
  assert.equal(await store.size(), local.size);
  assert.equal(await store.purgeExpired(), local.purgeExpired());
  assert.equal(await store.size(), 0);
});

test('a malformed packed call sent straight to the verify function is refused, never loops', { timeout: 10_000 }, async () => {
  const namespace = freshNamespace();
  await RedisTokenStore.open(redis.client, { secret: SECRET, namespace });
  const listed = JSON.stringify(await redis.client.sendCommand(['FUNCTION', 'LIST', 'LIBRARYNAME', 'captoken_*']));
  const verify = /captoken_[0-9a-f]{16}_verify/.exec(listed)?.[0];
  assert.ok(verify, listed);
  const call = (length) => `0-0-${'a'.repeat(64)}${'b'.repeat(64)}${length}`;
  for (const length of ['-00138', 'xxxxxx', '']) {
    await assert.rejects(redis.client.sendCommand(['FCALL', verify, '1', `ct:{${namespace}}:R`, `ct:{${namespace}}:`, call(length)]),
      (e) => /malformed call/.test(e?.message));
  }
  // A well-formed call of an unknown token is an answer, not an error.
  assert.deepEqual(await redis.client.sendCommand(['FCALL', verify, '1', `ct:{${namespace}}:R`, `ct:{${namespace}}:`, call('000000')]),
    ['!ERR_TOKEN_NOT_FOUND,', '', '']);
});
