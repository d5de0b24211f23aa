// The behaviour suite: one list of scenarios, written once against the
// async store interface, run unchanged against TokenStore,
// DurableTokenStore and RedisTokenStore (single node and cluster). Each
// scenario asserts SPEC.md's answers and returns a transcript of every
// outcome (codes, details, grants without random parts), which must be the
// same for every store. Not a test file itself.
import assert from 'node:assert/strict';
import { CapTokenError, TokenStore } from 'captoken';
import {
  SECRET, OTHER_SECRET, T0, BAD_VALUES, decodeBearer, signToken, toBearer, HUGE,
} from '../node/helpers.js';

/** A value with its random parts (fingerprints, made task ids) masked. */
const masked = (v) => JSON.parse(JSON.stringify(v ?? null)
  .replace(/[0-9a-f]{64}/g, '<fp>').replace(/task-[0-9a-f]{12}/g, 'task-*'));

/** The outcome of a call: 'ok' with a summary, or the error's code and details. */
async function attempt(fn, summarize = masked) {
  try {
    return { ok: summarize(await fn()) };
  } catch (error) {
    assert.ok(error instanceof CapTokenError, `not a CapTokenError: ${error?.stack ?? error}`);
    const { code, role, verb, bound, arg, current, max, limit } = error;
    const details = Object.fromEntries(Object.entries({ role, verb, bound, arg, current, max, limit })
      .filter(([, v]) => v !== undefined));
    return { code, ...details };
  }
}

const grant = (g) => ({ agentId: g.agentId, role: g.role, scopes: g.scopes, taskId: g.taskId, usesLeft: g.usesLeft });
const minted = (m) => ({ agent: m.token.agent_id.replace(/task-[0-9a-f]{12}/, 'task-*'), role: m.token.role, scopes: m.token.scopes, max_uses: m.token.max_uses, life: m.token.expire_at - m.token.issued_at });

async function expectCode(fn, code, details = {}) {
  const outcome = await attempt(fn);
  assert.equal(outcome.code, code, `expected ${code}, got ${JSON.stringify(outcome)}`);
  for (const [k, v] of Object.entries(details)) assert.deepEqual(outcome[k], v, `detail ${k}`);
  return outcome;
}

async function collect(iterable) {
  const out = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** [name, options, async (store, clock, log) => void] */
export const SCENARIOS = [
  ['the issue\'s example: a one-time token grants once', {}, async (s, clock, log) => {
    const op = await s.attachOperator('orchestrator');
    const task = await s.startTask(op.bearer, { taskId: 'job-1' });
    const w = await s.dispatchAttempt(op.bearer, task.taskId, { maxUses: 1 });
    const c = await s.check(w.bearer, 'fetch_prompt', task.taskId);
    assert.equal(c.allowed, true);
    assert.equal(c.usesLeft, 1);
    const g = await s.verify(w.bearer, 'fetch_prompt', task.taskId);
    assert.equal(g.fingerprint, w.fingerprint);
    assert.equal(g.usesLeft, 0);
    log(task, grant(g));
    log(await expectCode(() => s.verify(w.bearer, 'fetch_prompt', task.taskId), 'ERR_TOKEN_USES_EXHAUSTED'));
    const d = await s.check(w.bearer, 'fetch_prompt', task.taskId);
    assert.equal(d.allowed, false);
    assert.equal(d.code, 'ERR_TOKEN_USES_EXHAUSTED');
    assert.equal((await s.record(w.fingerprint)).uses_left, 0);
  }],

  ['non-ASCII agent ids and scopes come back in Grants as minted', {}, async (s, clock, log) => {
    for (const agent of ['é', 'ü-agent', '😀'.repeat(20)]) {
      const m = await s.mint(agent, 'observer', { scopes: ['read_trace', 'lire-读'] });
      const g = await s.verify(m.bearer, 'read_trace');
      assert.equal(g.agentId, agent);
      assert.deepEqual(g.scopes, ['read_trace', 'lire-读']);
      assert.equal(Object.getPrototypeOf(g), Object.prototype);
      log(grant(g), grant(await s.check(m.bearer, 'read_trace')));
    }
  }],

  ['steps 1 to 7 refuse in order with their codes', {}, async (s, clock, log) => {
    const op = await s.attachOperator('op');
    await s.startTask(op.bearer, { taskId: 'a' });
    await s.startTask(op.bearer, { taskId: 'b' });
    const w = await s.dispatchAttempt(op.bearer, 'a', { maxUses: 3 });
    const other = new TokenStore({ secret: OTHER_SECRET, now: clock.now });
    const foreign = other.attachOperator('x');
    const sameSecret = new TokenStore({ secret: SECRET, now: clock.now }).mint('y', 'worker');
    log(await expectCode(() => s.verify('not a bearer', 'fetch_prompt', 'a'), 'ERR_MALFORMED_TOKEN'));
    log(await expectCode(() => s.verify(foreign.bearer, 'heartbeat'), 'ERR_BAD_SIGNATURE'));
    log(await expectCode(() => s.verify(w.bearer, 'heartbeat'), 'ERR_ROLE_VIOLATION', { role: 'worker', verb: 'heartbeat' }));
    log(await expectCode(() => s.verify(sameSecret.bearer, 'fetch_data'), 'ERR_TOKEN_NOT_FOUND'));
    log(await expectCode(() => s.verify(w.bearer, 'fetch_prompt', 'b'), 'ERR_TOKEN_TASK_MISMATCH', { bound: 'a', arg: 'b' }));
    log(await expectCode(() => s.verify(w.bearer, 'fetch_prompt'), 'ERR_TOKEN_TASK_MISMATCH', { bound: 'a' }));
    assert.equal(await s.revoke(w.fingerprint), true);
    assert.equal(await s.revoke(w.fingerprint), false);
    // Ownership (step 6) comes before revoked (step 7).
    log(await expectCode(() => s.verify(w.bearer, 'fetch_prompt', 'b'), 'ERR_TOKEN_TASK_MISMATCH'));
    log(await expectCode(() => s.verify(w.bearer, 'fetch_prompt', 'a'), 'ERR_TOKEN_REVOKED'));
    const w2 = await s.dispatchAttempt(op.bearer, 'a', { ttlSecs: 10 });
    clock.t += 10;
    log(await expectCode(() => s.verify(w2.bearer, 'fetch_prompt', 'a'), 'ERR_TOKEN_EXPIRED'));
    // Operators never expire.
    log(grant(await s.verify(op.bearer, 'heartbeat')));
    // A failed call spent nothing.
    assert.equal((await s.record(w.fingerprint)).uses_left, 3);
  }],

  ['the record is the authority: a re-signed token under a recorded fingerprint', {}, async (s, clock, log) => {
    const op = await s.attachOperator('op');
    await s.startTask(op.bearer, { taskId: 't' });
    const w = await s.dispatchAttempt(op.bearer, 't', { maxUses: 2 });
    const t = decodeBearer(w.bearer);
    const forged = signToken({ ...t, max_uses: 100 }, 'v2');
    const bearer = toBearer({ v: 2, ...Object.fromEntries(Object.entries(forged).filter(([k]) => k !== 'v')) });
    log(await expectCode(() => s.verify(bearer, 'fetch_data'), 'ERR_BAD_SIGNATURE'));
    log(await expectCode(() => s.adopt(bearer), 'ERR_BAD_SIGNATURE'));
    assert.equal((await s.record(w.fingerprint)).uses_left, 2);
  }],

  ['tasks: depth, ids, ownership of a subtree', { maxSpawnDepth: 3 }, async (s, clock, log) => {
    const op = await s.attachOperator('op');
    const root = await s.startTask(op.bearer, { taskId: 'root' });
    log(root);
    log(await expectCode(() => s.startTask(op.bearer, { taskId: 'root' }), 'ERR_INVALID_ARGUMENT'));
    log(await expectCode(() => s.startTask(op.bearer, { parentId: 'nope' }), 'ERR_TASK_NOT_FOUND'));
    const w = await s.dispatchAttempt(op.bearer, 'root');
    const child = await s.startTask(w.bearer);
    assert.equal(child.parentId, 'root');
    assert.equal(child.spawnDepth, 1);
    assert.match(child.taskId, /^task-[0-9a-f]{12}$/);
    log(await expectCode(() => s.startTask(w.bearer, { taskId: 'mine' }), 'ERR_INVALID_ARGUMENT'));
    const grandchild = await s.startTask(w.bearer, { parentId: child.taskId });
    assert.equal(grandchild.spawnDepth, 2);
    log(await expectCode(() => s.startTask(w.bearer, { parentId: grandchild.taskId }), 'ERR_SPAWN_DEPTH_EXCEEDED', { current: 3, max: 3 }));
    // A Worker may dispatch below its task, not beside it.
    await s.startTask(op.bearer, { taskId: 'other' });
    log(minted(await s.dispatchAttempt(w.bearer, child.taskId)));
    log(await expectCode(() => s.dispatchAttempt(w.bearer, 'other'), 'ERR_TOKEN_TASK_MISMATCH', { bound: 'root', arg: 'other' }));
    log(await expectCode(() => s.dispatchAttempt(op.bearer, 'ghost'), 'ERR_TASK_NOT_FOUND'));
    // Bound to a task the store does not track: verbs for it, no children.
    const loose = await s.mint('loose', 'worker', { taskId: 'untracked' });
    log(grant(await s.verify(loose.bearer, 'fetch_prompt', 'untracked')));
    log(await expectCode(() => s.startTask(loose.bearer), 'ERR_TASK_NOT_FOUND'));
    const unbound = await s.mint('unbound', 'worker');
    log(await expectCode(() => s.startTask(unbound.bearer), 'ERR_TASK_NOT_FOUND'));
    assert.deepEqual(await s.task('root'), { taskId: 'root', parentId: null, spawnDepth: 0 });
    assert.equal(await s.task('ghost'), undefined);
    assert.equal((await collect(s.tasks())).length, 4);
  }],

  ['budgets are transferred, never copied; a refusal spends nothing', {}, async (s, clock, log) => {
    const op = await s.attachOperator('op');
    await s.startTask(op.bearer, { taskId: 'r' });
    const w = await s.dispatchAttempt(op.bearer, 'r', { maxUses: 5, scopes: ['a', 'b'] });
    log(await expectCode(() => s.dispatchAttempt(w.bearer, 'r'), 'ERR_INVALID_ARGUMENT'));
    log(await expectCode(() => s.dispatchAttempt(w.bearer, 'r', { maxUses: 0 }), 'ERR_INVALID_ARGUMENT'));
    log(await expectCode(() => s.dispatchAttempt(w.bearer, 'r', { maxUses: 5 }), 'ERR_INVALID_ARGUMENT'));
    log(await expectCode(() => s.dispatchAttempt(w.bearer, 'r', { maxUses: 1, scopes: ['c'] }), 'ERR_INVALID_ARGUMENT'));
    log(await expectCode(() => s.dispatchAttempt(w.bearer, 'r', { maxUses: 1, ttlSecs: 999999 }), 'ERR_INVALID_ARGUMENT'));
    log(await expectCode(() => s.dispatchAttempt(w.bearer, 'r', { maxUses: 1, taskId: 'x' }), 'ERR_INVALID_ARGUMENT'));
    assert.equal((await s.record(w.fingerprint)).uses_left, 5);
    const sub = await s.dispatchAttempt(w.bearer, 'r', { maxUses: 3, scopes: ['a'] });
    log(minted(sub));
    assert.equal((await s.record(w.fingerprint)).uses_left, 1);
    log(await expectCode(() => s.dispatchAttempt(w.bearer, 'r', { maxUses: 1 }), 'ERR_TOKEN_USES_EXHAUSTED'));
    log(grant(await s.verify(w.bearer, 'fetch_data')));
    log(await expectCode(() => s.verify(w.bearer, 'fetch_data'), 'ERR_TOKEN_USES_EXHAUSTED'));
    // A child's expiry is capped at its minter's.
    clock.t += 100;
    const late = await s.dispatchAttempt(sub.bearer, 'r', { maxUses: 1 });
    assert.equal(late.token.expire_at, sub.token.expire_at);
    log(minted(late));
  }],

  ['limits: ERR_LIMIT_EXCEEDED with limit and max; nothing changes', {
    maxChildrenPerTask: 2, maxTasksPerTree: 4, maxMadePerWorkerToken: 3, maxRecords: 12, maxTasks: 20,
  }, async (s, clock, log) => {
    const op = await s.attachOperator('op');
    await s.startTask(op.bearer, { taskId: 'r' });
    await s.startTask(op.bearer, { taskId: 'c1', parentId: 'r' });
    await s.startTask(op.bearer, { taskId: 'c2', parentId: 'r' });
    log(await expectCode(() => s.startTask(op.bearer, { taskId: 'c3', parentId: 'r' }), 'ERR_LIMIT_EXCEEDED', { limit: 'maxChildrenPerTask', max: 2 }));
    await s.startTask(op.bearer, { taskId: 'g1', parentId: 'c1' });
    log(await expectCode(() => s.startTask(op.bearer, { taskId: 'g2', parentId: 'c1' }), 'ERR_LIMIT_EXCEEDED', { limit: 'maxTasksPerTree', max: 4 }));
    assert.equal(await s.task('g2'), undefined);
    const w = await s.dispatchAttempt(op.bearer, 'c2');
    await s.dispatchAttempt(w.bearer, 'c2');
    await s.dispatchAttempt(w.bearer, 'c2');
    await s.dispatchAttempt(w.bearer, 'c2');
    log(await expectCode(() => s.dispatchAttempt(w.bearer, 'c2'), 'ERR_LIMIT_EXCEEDED', { limit: 'maxMadePerWorkerToken', max: 3 }));
    for (let i = 0; i < 5; i++) await s.mint(`m${i}`, 'observer');
    // 11 records: Workers stop at nine tenths (10), an Operator may go on.
    const w2 = await s.dispatchAttempt(op.bearer, 'r');
    log(await expectCode(() => s.dispatchAttempt(w2.bearer, 'r'), 'ERR_LIMIT_EXCEEDED', { limit: 'maxRecords', max: 12 }));
    log(minted(await s.mint('full', 'senior')));
    log(await expectCode(() => s.mint('over', 'senior'), 'ERR_LIMIT_EXCEEDED', { limit: 'maxRecords', max: 12 }));
    assert.equal(await s.size(), 12);
  }],

  ['revokeTask revokes a whole subtree; revoke by fingerprint', {}, async (s, clock, log) => {
    const op = await s.attachOperator('op');
    await s.startTask(op.bearer, { taskId: 'r' });
    await s.startTask(op.bearer, { taskId: 'c', parentId: 'r' });
    await s.startTask(op.bearer, { taskId: 'side' });
    const a = await s.dispatchAttempt(op.bearer, 'r');
    const b = await s.dispatchAttempt(op.bearer, 'c');
    const keep = await s.dispatchAttempt(op.bearer, 'side');
    assert.equal(await s.revokeTask('r'), 2);
    assert.equal(await s.revokeTask('r'), 0);
    log(await expectCode(() => s.verify(a.bearer, 'fetch_data'), 'ERR_TOKEN_REVOKED'));
    log(await expectCode(() => s.verify(b.bearer, 'fetch_data'), 'ERR_TOKEN_REVOKED'));
    log(grant(await s.verify(keep.bearer, 'fetch_data')));
    assert.equal(await s.revokeTask('nothing-here'), 0);
    log(await expectCode(() => s.revoke('x'), 'ERR_INVALID_ARGUMENT'));
  }],

  ['remint: a late Worker token, at most one lifetime late', {}, async (s, clock, log) => {
    const op = await s.attachOperator('op');
    await s.startTask(op.bearer, { taskId: 't' });
    const w = await s.dispatchAttempt(op.bearer, 't', { maxUses: 4, ttlSecs: 100 });
    await s.verify(w.bearer, 'fetch_data');
    clock.t += 150;
    const fresh = await s.remint(w.bearer);
    log(minted(fresh));
    assert.equal(fresh.token.max_uses, 3);
    assert.equal(fresh.token.issued_at, clock.t);
    log(await expectCode(() => s.verify(w.bearer, 'fetch_data'), 'ERR_TOKEN_EXPIRED'));
    log(await expectCode(() => s.remint(w.bearer), 'ERR_TOKEN_REVOKED'));
    log(grant(await s.verify(fresh.bearer, 'fetch_prompt', 't')));
    const old = await s.dispatchAttempt(op.bearer, 't', { ttlSecs: 100 });
    clock.t += 201;
    log(await expectCode(() => s.remint(old.bearer), 'ERR_TOKEN_EXPIRED'));
    log(await expectCode(() => s.remint(op.bearer), 'ERR_INVALID_ARGUMENT'));
  }],

  ['remint keeps what the Worker made: no fresh maxMadePerWorkerToken', { maxMadePerWorkerToken: 2 }, async (s, clock, log) => {
    const op = await s.attachOperator('op');
    await s.startTask(op.bearer, { taskId: 'r' });
    const w = await s.dispatchAttempt(op.bearer, 'r');
    await s.startTask(w.bearer);
    await s.dispatchAttempt(w.bearer, 'r');
    log(await expectCode(() => s.startTask(w.bearer), 'ERR_LIMIT_EXCEEDED', { limit: 'maxMadePerWorkerToken', max: 2 }));
    let bearer = w.bearer;
    for (let i = 0; i < 3; i++) {
      bearer = (await s.remint(bearer)).bearer;
      log(await expectCode(() => s.startTask(bearer), 'ERR_LIMIT_EXCEEDED', { limit: 'maxMadePerWorkerToken', max: 2 }));
      log(await expectCode(() => s.dispatchAttempt(bearer, 'r'), 'ERR_LIMIT_EXCEEDED', { limit: 'maxMadePerWorkerToken', max: 2 }));
    }
  }],

  ['remint never outlives the Worker that minted the token', {}, async (s, clock, log) => {
    const op = await s.attachOperator('op');
    await s.startTask(op.bearer, { taskId: 'root' });
    const minter = await s.dispatchAttempt(op.bearer, 'root', { ttlSecs: 60 });
    clock.t += 50;
    const child = await s.dispatchAttempt(minter.bearer, 'root');
    assert.equal(child.token.expire_at, T0 + 60);
    clock.t += 5;
    // Reminted before the cap: what is left of the minter's life, no more.
    const again = await s.remint(child.bearer);
    assert.equal(again.token.expire_at, T0 + 60);
    log(minted(again));
    // The cap survives a snapshot: TokenStore refuses the same remint.
    const text = await s.snapshot();
    clock.t += 6;
    const back = TokenStore.restore(text, { secret: SECRET, now: clock.now });
    assert.throws(() => back.remint(again.bearer), (error) => error.code === 'ERR_TOKEN_EXPIRED');
    // Past the cap, within one lifetime of the token's own expiry: refused.
    log(await expectCode(() => s.remint(again.bearer), 'ERR_TOKEN_EXPIRED'));
    log(await expectCode(() => s.verify(minter.bearer, 'fetch_prompt', 'root'), 'ERR_TOKEN_EXPIRED'));
    // The Operator's own tokens carry no cap.
    const plain = await s.dispatchAttempt(op.bearer, 'root', { ttlSecs: 10 });
    clock.t += 15;
    const fresh = await s.remint(plain.bearer);
    assert.equal(fresh.token.expire_at, T0 + 61 + 15 + 10);
    log(minted(fresh));
  }],

  ['adopt: verified, then recorded; adopting again resets nothing', {}, async (s, clock, log) => {
    const elsewhere = new TokenStore({ secret: SECRET, now: clock.now });
    const m = elsewhere.mint('peer', 'worker', { maxUses: 2, taskId: 'p' });
    assert.equal(await s.adopt(m.bearer, 'p'), m.fingerprint);
    log(grant(await s.verify(m.bearer, 'fetch_prompt', 'p')));
    assert.equal(await s.adopt(m.bearer, 'p'), m.fingerprint);
    assert.equal((await s.record(m.fingerprint)).uses_left, 1);
    const foreign = new TokenStore({ secret: OTHER_SECRET, now: clock.now }).mint('f', 'worker');
    log(await expectCode(() => s.adopt(foreign.bearer), 'ERR_BAD_SIGNATURE'));
    const late = elsewhere.mint('late', 'worker', { ttlSecs: 1 });
    clock.t += 1;
    log(await expectCode(() => s.adopt(late.bearer), 'ERR_TOKEN_EXPIRED'));
    assert.equal(await s.record(late.fingerprint), undefined);
  }],

  ['purgeExpired removes expired records; Operators stay', {}, async (s, clock, log) => {
    const op = await s.attachOperator('op');
    await s.mint('o', 'observer', { ttlSecs: 10 });
    await s.mint('w', 'worker', { ttlSecs: 10 });
    await s.mint('long', 'worker', { ttlSecs: 1000 });
    clock.t += 10;
    assert.equal(await s.purgeExpired(), 2);
    assert.equal(await s.purgeExpired(), 0);
    assert.equal(await s.size(), 2);
    log(grant(await s.verify(op.bearer, 'heartbeat')));
  }],

  ['snapshot: restored by TokenStore, deciding the same', {}, async (s, clock, log) => {
    const op = await s.attachOperator('op');
    await s.startTask(op.bearer, { taskId: 'r' });
    const w = await s.dispatchAttempt(op.bearer, 'r', { maxUses: 3 });
    const child = await s.startTask(w.bearer, { parentId: 'r' });
    const gone = await s.dispatchAttempt(op.bearer, 'r');
    await s.revoke(gone.fingerprint);
    const text = await s.snapshot();
    assert.ok(!text.includes(w.token.nonce));
    const back = TokenStore.restore(text, { secret: SECRET, now: clock.now });
    assert.equal(back.size, await s.size());
    assert.equal(back.check(w.bearer, 'fetch_prompt', 'r').usesLeft, 2);
    assert.equal(back.check(gone.bearer, 'fetch_prompt', 'r').code, 'ERR_TOKEN_REVOKED');
    assert.deepEqual(back.task(child.taskId), child);
    const records = await collect(s.records());
    assert.equal(records.length, 3);
    const mine = records.find((r) => r.fingerprint === w.fingerprint);
    assert.deepEqual(mine, back.record(w.fingerprint).toJSON());
    log(records.length);
  }],

  ['bad input is refused with the codes TokenStore gives', {}, async (s, clock, log) => {
    const op = await s.attachOperator('op');
    await s.startTask(op.bearer, { taskId: 't' });
    for (const [name, bad] of BAD_VALUES) {
      log(name, await attempt(() => s.verify(bad, 'heartbeat')));
      log(name, await attempt(() => s.verify(op.bearer, bad)));
      log(name, await attempt(() => s.verify(op.bearer, 'heartbeat', bad)));
      log(name, await attempt(() => s.startTask(op.bearer, { taskId: bad })));
      log(name, await attempt(() => s.dispatchAttempt(op.bearer, bad)));
      log(name, await attempt(() => s.dispatchAttempt(op.bearer, 't', { maxUses: bad }), minted));
      log(name, await attempt(() => s.mint(bad, 'worker'), minted));
      log(name, await attempt(() => s.mint('a', bad), minted));
      log(name, await attempt(() => s.record(bad)));
      log(name, await attempt(() => s.revokeTask(bad)));
      log(name, await attempt(() => s.adopt(bad)));
      const d = await s.check(bad, 'heartbeat');
      assert.equal(d.allowed, false);
      log(name, d.code);
    }
    log(await attempt(() => s.verify(`${op.bearer}=`, 'heartbeat')));
    log(await attempt(() => s.startTask(op.bearer, { taskId: HUGE })));
    assert.equal(await s.task('t').then((t) => t.taskId), 't');
  }],
];

/** Run every scenario on a store kind; returns name -> transcript. */
export async function runScenarios(t, kind, only) {
  const transcripts = {};
  for (const [name, options, scenario] of SCENARIOS) {
    if (only && !only.includes(name)) continue;
    await t.test(name, async () => {
      const clock = { t: T0 };
      clock.now = () => clock.t;
      const store = await kind.open({ secret: SECRET, now: clock.now, ...options });
      const log = [];
      try {
        await scenario(store, clock, (...items) => log.push(JSON.stringify(items)));
      } finally {
        await store.close();
      }
      transcripts[name] = log;
    });
  }
  return transcripts;
}
