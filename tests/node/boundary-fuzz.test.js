// Fuzzing across the wasm boundary: every exported static function, method
// and getter of TokenStore and CapTokenRecord is called thousands of times
// with random argument lists (0 to 4 arguments) drawn from every JavaScript
// type: undefined, null, booleans, NaN, -0, huge numbers, BigInt, symbols,
// plain, frozen, null-prototype and throwing objects, Proxies (throwing and
// revoked), arrays with holes, very long arrays, megabyte strings, lone
// surrogates, typed arrays, functions, and real bearers, tokens, fingerprints
// and task ids mixed in so that some calls get deep and some succeed.
//
// Every call must return or throw a CapTokenError with one of the 12 codes
// (never a TypeError, never a WebAssembly.RuntimeError). A call that throws
// leaves the store's snapshot() byte-identical; read-only calls and check()
// leave it identical whatever they return. After each round the store still
// decides a control token it never exposed to the fuzzer exactly as before.
//
// Reproduce a failure with the seed it prints:
//   BOUNDARY_FUZZ_SEED=<seed> node --test tests/node/boundary-fuzz.test.js
// More calls: BOUNDARY_FUZZ_CALLS=200000 (default 20000).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenStore, CapTokenRecord, CapTokenError } from 'captoken';
import { stateOf, withoutSeal } from './helpers.js';

const SEED = Number(process.env.BOUNDARY_FUZZ_SEED ?? 0xc0ffee) >>> 0;
const CALLS = Number(process.env.BOUNDARY_FUZZ_CALLS ?? 20_000);
const CALLS_PER_ROUND = 400;
const T0 = 1_764_150_000;
const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const OTHER_SECRET = new Uint8Array(32).fill(0xaa);
const CODES = new Set([
  'ERR_MALFORMED_TOKEN', 'ERR_BAD_SIGNATURE', 'ERR_TOKEN_EXPIRED', 'ERR_ROLE_VIOLATION',
  'ERR_TOKEN_NOT_FOUND', 'ERR_TOKEN_TASK_MISMATCH', 'ERR_TOKEN_REVOKED',
  'ERR_TOKEN_USES_EXHAUSTED', 'ERR_SPAWN_DEPTH_EXCEEDED', 'ERR_TASK_NOT_FOUND',
  'ERR_INVALID_ARGUMENT', 'ERR_SNAPSHOT_INVALID', 'ERR_LIMIT_EXCEEDED', 'ERR_STORE_UNAVAILABLE',
]);
const ROLES = ['operator', 'worker', 'observer', 'senior'];
const VERBS = [
  'start_task', 'dispatch_attempt', 'mint_worker_token', 'read_task_state', 'cancel_task',
  'query_senior', 'mark_pass', 'mark_blocked', 'attach_session', 'detach_session', 'heartbeat',
  'poll_task', 'fetch_prompt', 'fetch_data', 'post_result', 'verify_token', 'emit_output',
  'subscribe_events', 'read_trace', 'answer_query', 'override_verdict', 'pause_loop',
  'resume_loop', 'inject_directive',
];
const OPTION_KEYS = [
  'secret', 'format', 'maxSpawnDepth', 'workerTokenTtlSecs', 'now', 'gate',
  'scopes', 'ttlSecs', 'maxUses', 'taskId',
  'token', 'uses_left', 'revoked', 'task_id', 'fingerprint',
];
const TOKEN_FIELDS = ['v', 'agent_id', 'role', 'scopes', 'issued_at', 'expire_at', 'max_uses', 'nonce', 'sig_hex'];

// ---- seeded PRNG (mulberry32) --------------------------------------------

function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  const pick = (list) => list[int(list.length)];
  const chance = (p) => next() < p;
  return { next, int, pick, chance };
}

const rng = prng(SEED);

// ---- values of every JavaScript type -------------------------------------

const MEGABYTE = 'x'.repeat(1 << 20);
const JUST_TOO_LONG = 'y'.repeat(64 * 1024 + 1);
const LONG_ARRAY = new Array(100_000).fill('read');
const HUGE_SPARSE = [];
HUGE_SPARSE.length = 2 ** 32 - 1;
const boom = () => { throw new Error('boom'); };

const PRIMITIVES = [
  undefined, null, true, false, 0, -0, 1, -1, 0.5, 3, 7, 1800, NaN, Infinity, -Infinity,
  2 ** 31, 2 ** 32, 2 ** 32 - 1, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 64, -(2 ** 53),
  Number.MAX_VALUE, Number.MIN_VALUE, Number.EPSILON, 1e21, T0, T0 + 1800,
  0n, 1n, -1n, 3n, 2n ** 64n, 2n ** 200n, -(2n ** 63n),
  Symbol('x'), Symbol.iterator, Symbol.for('captoken'),
];

const STRINGS = [
  '', ' ', 'a', '*', 'root', 't1', 'x,y', 'a|b', '\u0000', '\uFFFD', '\uD800', '\uDC00',
  'a\uD800b', '\uDBFF\uDFFF', '😀', 'é', '"quoted"', '{}', '[]', 'null', 'undefined',
  'v2', 'mlua-swarm', 'V2', 'OPERATOR', 'Worker', '__proto__', 'constructor', 'toString',
  '0'.repeat(32), 'f'.repeat(64), 'F'.repeat(64), 'g'.repeat(64), '=', '!!!',
  ...ROLES, ...VERBS.slice(0, 8), 'heartbeat', 'fetch_prompt', 'post_result', 'read_trace',
];

function randomString() {
  const length = rng.pick([1, 2, 8, 32, 64, 256, 257, 1000]);
  const alphabet = rng.pick([
    'abcdef0123456789',
    'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_',
    '\u0000\u0001"\\/{}[],:|\uD800\uDFFF\uFFFF€😀',
  ]);
  let text = '';
  for (let i = 0; i < length; i++) text += alphabet[rng.int(alphabet.length)];
  return text;
}

function throwingProxy(target = {}) {
  return new Proxy(target, {
    get: boom, has: boom, ownKeys: boom, getPrototypeOf: boom,
    getOwnPropertyDescriptor: boom, set: boom, defineProperty: boom, apply: boom,
  });
}

function revokedProxy(target = {}) {
  const { proxy, revoke } = Proxy.revocable(target, {});
  revoke();
  return proxy;
}

function arrayWithThrowingIndex() {
  const array = ['a', 'b'];
  Object.defineProperty(array, 1, { get: boom });
  return array;
}

function typedArray() {
  switch (rng.int(12)) {
    case 0: return new Uint8Array(0);
    case 1: return new Uint8Array(31);
    case 2: return new Uint8Array(32);
    case 3: return SECRET.slice();
    case 4: return OTHER_SECRET;
    case 5: return new Uint8Array(4097);
    case 6: return new Int8Array(32);
    case 7: return new Uint16Array(32);
    case 8: return new Float64Array([NaN, -0, 1e308]);
    case 9: return new BigUint64Array(4);
    case 10: return new DataView(new ArrayBuffer(32));
    default: return rng.pick([new ArrayBuffer(32), Buffer.alloc(32, 1), new Uint8ClampedArray(32)]);
  }
}

/** A random value; `world` supplies real bearers, tokens, fingerprints, ids. */
function value(world, depth = 0) {
  const deep = depth < 2;
  switch (rng.int(deep ? 16 : 10)) {
    case 0: case 1: return rng.pick(PRIMITIVES);
    case 2: return rng.pick(STRINGS);
    case 3: return randomString();
    case 4: return rng.pick([MEGABYTE, JUST_TOO_LONG, MEGABYTE + '\uD800']);
    case 5: case 6: return domain(world);
    case 7: return typedArray();
    case 8: return oddObject();
    case 9: return rng.pick([() => T0, () => T0 + 1e6, boom, () => NaN, () => -1, () => 2n, () => 'soon', function named() { return this; }, class {}, async () => T0]);
    case 10: case 11: return optionsObject(world, depth);
    case 12: return tokenLike(world, depth);
    case 13: return arrayOf(world, depth);
    case 14: return recordLike(world, depth);
    default: return Object.freeze(optionsObject(world, depth));
  }
}

function domain(world) {
  switch (rng.int(10)) {
    case 0: case 1: return rng.pick(world.bearers);
    case 2: return rng.pick(world.fingerprints);
    case 3: return rng.pick(world.taskIds);
    case 4: return rng.pick(VERBS);
    case 5: return rng.pick(ROLES);
    case 6: return world.snapshot;
    case 7: return mutateString(rng.pick(world.bearers));
    case 8: return rng.pick(world.liveRecords.length ? world.liveRecords : [world.store]);
    default: return rng.pick([world.store, world.otherBearer, JSON.stringify(world.record)]);
  }
}

function mutateString(text) {
  if (!text) return text;
  const at = rng.int(text.length);
  switch (rng.int(4)) {
    case 0: return text.slice(0, at) + text.slice(at + 1);
    case 1: return text.slice(0, at) + rng.pick(['A', '_', '-', '=', '+', '/', '\uD800', ' ']) + text.slice(at + 1);
    case 2: return text + rng.pick(['=', '==', 'A', '\n']);
    default: return text.slice(0, at);
  }
}

function oddObject() {
  switch (rng.int(16)) {
    case 0: return throwingProxy();
    case 1: return throwingProxy([]);
    case 2: return revokedProxy();
    case 3: return revokedProxy([]);
    case 4: return { toString: boom, valueOf: boom, [Symbol.toPrimitive]: boom };
    case 5: return { get secret() { return boom(); }, get taskId() { return boom(); }, get scopes() { return boom(); }, get token() { return boom(); } };
    case 6: return Object.create(null);
    case 7: return Object.freeze({});
    case 8: return [, , 'a'];
    case 9: return arrayWithThrowingIndex();
    case 10: return new Proxy(['a'], { get: (t, k) => (k === 'length' ? boom() : t[k]) });
    case 11: return new Proxy(new Uint8Array(32), {});
    case 12: return Object.create(Uint8Array.prototype);
    case 13: return rng.pick([new Date(), /re/g, new Map([['secret', SECRET]]), new Set([1]), Promise.resolve(1), new Error('e'), new WeakMap()]);
    case 14: return rng.pick([LONG_ARRAY, HUGE_SPARSE]);
    default: {
      const cyclic = { taskId: 't1' };
      cyclic.self = cyclic;
      return cyclic;
    }
  }
}

function optionsObject(world, depth) {
  const object = {};
  const count = rng.int(4);
  for (let i = 0; i < count; i++) {
    const key = rng.pick(OPTION_KEYS);
    object[key] = rng.chance(0.5) ? plausible(key, world) : value(world, depth + 1);
  }
  return object;
}

/** A value that fits `key`, so that some calls get past argument checks. */
function plausible(key, world) {
  switch (key) {
    case 'secret': return rng.pick([SECRET, OTHER_SECRET, new Uint8Array(16)]);
    case 'format': return rng.pick(['v2', 'mlua-swarm']);
    case 'maxSpawnDepth': return rng.pick([1, 2, 4, 0]);
    case 'workerTokenTtlSecs': case 'ttlSecs': return rng.pick([1, 60, 1800, 0]);
    case 'now': return () => T0;
    case 'gate': return rng.pick([{ worker: ['fetch_prompt'] }, { senior: [] }, {}]);
    case 'scopes': return rng.pick([['*'], ['read', 'write'], [], ['']]);
    case 'maxUses': case 'uses_left': return rng.pick([null, 0, 1, 3]);
    case 'taskId': case 'task_id': return rng.pick(world.taskIds);
    case 'token': return tokenLike(world, 2);
    case 'revoked': return rng.chance(0.5);
    case 'fingerprint': return rng.pick(world.fingerprints);
    default: return undefined;
  }
}

function tokenLike(world, depth) {
  const token = { ...rng.pick(world.tokens) };
  const changes = rng.int(3);
  for (let i = 0; i < changes; i++) {
    const field = rng.pick(TOKEN_FIELDS);
    if (rng.chance(0.2)) delete token[field];
    else token[field] = value(world, depth + 1);
  }
  return token;
}

function recordLike(world, depth) {
  const record = { ...world.record, token: { ...world.record.token } };
  const field = rng.pick(['token', 'uses_left', 'revoked', 'task_id', 'fingerprint', 'extra']);
  record[field] = value(world, depth + 1);
  return record;
}

function arrayOf(world, depth) {
  const length = rng.int(5);
  return Array.from({ length }, () => (rng.chance(0.5) ? rng.pick(STRINGS) : value(world, depth + 1)));
}

// ---- describing arguments for failure messages ----------------------------

function describe(v) {
  try {
    if (typeof v === 'string') return v.length > 40 ? `string(${v.length})` : JSON.stringify(v);
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'symbol') return v.toString();
    if (typeof v === 'function') return `function ${v.name}`;
    if (v === null || typeof v !== 'object') return String(v);
    if (Array.isArray(v)) return `array(${v.length})`;
    const tag = Object.prototype.toString.call(v);
    const keys = Object.keys(v).slice(0, 6).join(',');
    return `${tag}{${keys}}`;
  } catch {
    return 'exotic object (throws when inspected)';
  }
}

// ---- a world: a store and the real values the fuzzer mixes in -------------

function makeWorld() {
  const store = new TokenStore({ secret: SECRET, now: () => T0 });
  const op = store.attachOperator('op-1');
  const root = store.startTask(op.bearer, { taskId: 'root' });
  const worker = store.dispatchAttempt(op.bearer, root.taskId, { maxUses: 50 });
  // The Operator names the child (a Worker's children get ids made by the store).
  const child = store.startTask(op.bearer, { parentId: root.taskId, taskId: 't1' });
  store.startTask(worker.bearer);
  const observer = store.mint('watcher', 'observer', { maxUses: 2 });
  const once = store.mint('agent-7', 'worker', { maxUses: 1, taskId: 't1', scopes: ['read'] });
  // The control token: neither its bearer, nor its fingerprint, nor its task
  // is ever handed to the fuzzer, so no call may change what it decides.
  const control = store.mint('control', 'worker', { maxUses: 3, taskId: 'control-task' });
  const other = new TokenStore({ secret: OTHER_SECRET, now: () => T0 }).attachOperator('op-1');
  const minted = [op, worker, observer, once];
  const record = store.record(worker.fingerprint).toJSON();
  return {
    store,
    control,
    bearers: minted.map((m) => m.bearer),
    tokens: minted.map((m) => m.token),
    fingerprints: minted.map((m) => m.fingerprint),
    taskIds: ['root', 't1', child.taskId, 'ext', 'nope'],
    otherBearer: other.bearer,
    snapshot: store.snapshot(),
    record,
    liveRecords: [],
  };
}

/** The control token decides exactly as it did when minted. */
function assertControlIntact(world) {
  const { store, control } = world;
  const record = store.record(control.fingerprint);
  assert.ok(record, 'the control record is gone');
  assert.equal(record.usesLeft, 3, 'the control token lost uses');
  assert.equal(record.revoked, false, 'the control token was revoked');
  assert.equal(record.taskId, 'control-task');
  record.free();
  const decision = store.check(control.bearer, 'fetch_prompt', 'control-task');
  assert.equal(decision.allowed, true);
  assert.equal(decision.usesLeft, 3);
  // Still deciding correctly: spends exactly one use each time, then refuses.
  const text = store.snapshot();
  const before = withoutSeal(text);
  const restored = TokenStore.restore(text, { secret: SECRET, now: () => T0 });
  for (const expected of [2, 1, 0]) {
    assert.equal(restored.verify(control.bearer, 'fetch_prompt', 'control-task').usesLeft, expected);
  }
  assert.throws(
    () => restored.verify(control.bearer, 'fetch_prompt', 'control-task'),
    (e) => e instanceof CapTokenError && e.code === 'ERR_TOKEN_USES_EXHAUSTED',
  );
  assert.equal(stateOf(store), before, 'restoring changed the original store');
  restored.free();
}

// ---- the calls -------------------------------------------------------------

const READ_ONLY = new Set(['check', 'record', 'task', 'records', 'tasks', 'size', 'snapshot']);

const STORE_METHODS = [
  'attachOperator', 'mint', 'adopt', 'startTask', 'dispatchAttempt', 'verify', 'check',
  'revoke', 'revokeTask', 'remint', 'purgeExpired', 'record', 'task', 'records', 'tasks',
  'size', 'snapshot',
];
const RECORD_METHODS = [
  'consume', 'canConsume', 'revoke', 'toJSON', 'token', 'usesLeft', 'revoked', 'taskId',
  'fingerprint', 'free',
];
const GETTERS = new Set(['size', 'token', 'usesLeft', 'revoked', 'taskId', 'fingerprint']);

const STATICS = {
  'new TokenStore': (args) => new TokenStore(...args),
  'TokenStore.restore': (args) => TokenStore.restore(...args),
  'CapTokenRecord.fromToken': (args) => CapTokenRecord.fromToken(...args),
  'CapTokenRecord.fromWorkerToken': (args) => CapTokenRecord.fromWorkerToken(...args),
  'CapTokenRecord.fromJSON': (args) => CapTokenRecord.fromJSON(...args),
};

const stats = { calls: 0, ok: 0, errors: 0, byCode: {} };

/** Run one call; it must return, or throw a CapTokenError with a known code. */
function attempt(label, args, call) {
  stats.calls++;
  try {
    const result = call();
    stats.ok++;
    return { ok: true, result };
  } catch (error) {
    const what = `${label}(${args.map(describe).join(', ')}) [seed ${SEED}]`;
    assert.ok(
      error instanceof CapTokenError,
      `${what} threw ${error?.constructor?.name}: ${String(error?.message).slice(0, 200)}`,
    );
    assert.ok(!(error instanceof WebAssembly.RuntimeError), `${what} trapped`);
    assert.ok(CODES.has(error.code), `${what} threw unknown code ${error.code}`);
    assert.equal(typeof error.message, 'string');
    // Messages may quote a task id the caller passed (up to 64 Ki units, so
    // escaped at most ~6x that) but never a megabyte argument.
    assert.ok(error.message.length > 0 && error.message.length < 400_000, `${what}: odd message length`);
    stats.errors++;
    stats.byCode[error.code] = (stats.byCode[error.code] ?? 0) + 1;
    return { ok: false, error };
  }
}

/** Well-typed arguments per call, so that half the calls get past the argument checks. */
const SHAPES = {
  attachOperator: ['agentId', 'mintOptions'],
  mint: ['agentId', 'role', 'mintOptions'],
  adopt: ['bearer', 'taskId'],
  startTask: ['bearer', 'taskOptions'],
  dispatchAttempt: ['bearer', 'taskId', 'mintOptions'],
  verify: ['bearer', 'verb', 'taskId'],
  check: ['bearer', 'verb', 'taskId'],
  revoke: ['fingerprint'],
  revokeTask: ['taskId'],
  remint: ['bearer'],
  record: ['fingerprint'],
  task: ['taskId'],
  'new TokenStore': ['storeOptions'],
  'TokenStore.restore': ['snapshot', 'storeOptions'],
  'CapTokenRecord.fromToken': ['token'],
  'CapTokenRecord.fromWorkerToken': ['token', 'taskId'],
  'CapTokenRecord.fromJSON': ['record'],
};

function wellTyped(kind, world) {
  switch (kind) {
    case 'agentId': return rng.pick(['op-2', 'agent-7', 'w', 'a|b', 'x'.repeat(256)]);
    case 'role': return rng.pick(ROLES);
    case 'verb': return rng.pick(VERBS);
    case 'bearer': return rng.chance(0.8) ? rng.pick(world.bearers) : mutateString(rng.pick(world.bearers));
    case 'taskId': return rng.chance(0.2) ? undefined : rng.pick(world.taskIds);
    case 'fingerprint': return rng.pick(world.fingerprints);
    case 'snapshot': return rng.chance(0.7) ? world.snapshot : mutateString(world.snapshot);
    case 'token': return rng.chance(0.5) ? { ...rng.pick(world.tokens) } : tokenLike(world, 1);
    case 'record': return rng.chance(0.5) ? world.record : recordLike(world, 1);
    case 'taskOptions': return rng.pick([
      undefined, {}, { taskId: `t-${rng.int(1e9)}` }, { taskId: rng.pick(world.taskIds) },
      { parentId: rng.pick(world.taskIds) }, { parentId: rng.pick(world.taskIds), taskId: `t-${rng.int(1e9)}` },
    ]);
    case 'mintOptions': {
      const options = {};
      for (const key of ['scopes', 'ttlSecs', 'maxUses', 'taskId']) {
        if (rng.chance(0.4)) options[key] = plausible(key, world);
      }
      return rng.chance(0.2) ? undefined : options;
    }
    case 'storeOptions': {
      const options = { secret: rng.chance(0.9) ? SECRET : OTHER_SECRET, now: () => T0 };
      for (const key of ['format', 'maxSpawnDepth', 'workerTokenTtlSecs', 'gate']) {
        if (rng.chance(0.3)) options[key] = plausible(key, world);
      }
      return options;
    }
    default: return value(world);
  }
}

function randomArgs(world, label) {
  const shape = SHAPES[label];
  if (shape && rng.chance(0.5)) {
    // Well-typed, with now and then one position replaced by anything.
    const args = shape.map((kind) => wellTyped(kind, world));
    if (rng.chance(0.5)) args[rng.int(args.length)] = value(world);
    return args;
  }
  const count = rng.int(5);
  return Array.from({ length: count }, () => value(world));
}

function callStatic(world) {
  const [label, fn] = rng.pick(Object.entries(STATICS));
  const args = randomArgs(world, label);
  const { ok, result } = attempt(label, args, () => fn(args));
  if (!ok) return;
  if (result instanceof TokenStore) {
    // A store built from random options: it must still answer, then go.
    attempt(`${label} -> size`, [], () => result.size);
    attempt(`${label} -> snapshot`, [], () => result.snapshot());
    attempt(`${label} -> check`, [], () => result.check(rng.pick(world.bearers), 'heartbeat'));
    result.free();
  } else if (result instanceof CapTokenRecord) {
    world.liveRecords.push(result);
    if (world.liveRecords.length > 16) world.liveRecords.shift().free();
  } else {
    assert.fail(`${label} returned ${describe(result)}`);
  }
}

function callStore(world) {
  const { store } = world;
  const method = rng.pick(STORE_METHODS);
  const args = randomArgs(world, method);
  const before = stateOf(store);
  const { ok, result } = attempt(`store.${method}`, args, () =>
    (GETTERS.has(method) ? store[method] : store[method](...args)));
  const after = stateOf(store);
  const what = `store.${method}(${args.map(describe).join(', ')}) [seed ${SEED}]`;
  if (!ok) {
    assert.equal(after, before, `${what} failed but changed the state`);
    return;
  }
  if (READ_ONLY.has(method)) assert.equal(after, before, `${what} is read-only but changed the state`);
  if (method === 'check') {
    assert.equal(typeof result.allowed, 'boolean', `${what} gave no decision`);
    if (!result.allowed) {
      assert.ok(CODES.has(result.code), `${what} gave unknown code ${result.code}`);
      assert.equal(typeof result.message, 'string');
    }
  }
  if (method === 'record' && result !== undefined) {
    assert.ok(result instanceof CapTokenRecord, `${what} returned ${describe(result)}`);
    // A record is a copy: spending or revoking it changes nothing in the store.
    attempt('record.consume', [], () => result.consume());
    attempt('record.revoke', [], () => result.revoke());
    assert.equal(stateOf(store), after, `${what}: a record's methods changed the store`);
    result.free();
  }
  if (['attachOperator', 'mint', 'dispatchAttempt', 'remint'].includes(method)) {
    assert.equal(typeof result.bearer, 'string');
    assert.match(result.fingerprint, /^[0-9a-f]{64}$/);
  }
  if (['revoke'].includes(method)) assert.equal(typeof result, 'boolean');
  if (['revokeTask', 'purgeExpired', 'size'].includes(method)) assert.equal(typeof result, 'number');
  if (method === 'adopt') assert.match(result, /^[0-9a-f]{64}$/);
}

function callRecord(world) {
  if (world.liveRecords.length === 0) {
    world.liveRecords.push(world.store.record(rng.pick(world.fingerprints)) ?? CapTokenRecord.fromJSON(world.record));
  }
  const index = rng.int(world.liveRecords.length);
  const record = world.liveRecords[index];
  const method = rng.pick(RECORD_METHODS);
  const args = randomArgs(world);
  const before = stateOf(world.store);
  attempt(`record.${method}`, args, () => (GETTERS.has(method) ? record[method] : record[method](...args)));
  assert.equal(stateOf(world.store), before, `record.${method} changed the store`);
  if (method === 'free') world.liveRecords.splice(index, 1);
}

test(`every export takes ${CALLS} random calls and throws only CapTokenError (seed ${SEED})`, { timeout: 120_000 }, () => {
  const started = Date.now();
  let world = makeWorld();
  for (let i = 0; i < CALLS; i++) {
    if (i > 0 && i % CALLS_PER_ROUND === 0) {
      assertControlIntact(world);
      for (const record of world.liveRecords) record.free();
      world.store.free();
      world = makeWorld();
    }
    const dice = rng.int(10);
    if (dice < 6) callStore(world);
    else if (dice < 8) callStatic(world);
    else callRecord(world);
  }
  assertControlIntact(world);
  // The store still decides a known bearer correctly.
  const fresh = world.store.mint('final', 'worker', { maxUses: 1, taskId: 'root' });
  assert.equal(world.store.verify(fresh.bearer, 'fetch_prompt', 'root').usesLeft, 0);
  assert.throws(
    () => world.store.verify(fresh.bearer, 'fetch_prompt', 'root'),
    (e) => e instanceof CapTokenError && e.code === 'ERR_TOKEN_USES_EXHAUSTED',
  );
  assert.ok(stats.ok > CALLS / 50, `too few calls succeeded (${stats.ok}): the fuzzer is not getting deep`);
  assert.ok(stats.errors > CALLS / 10, `too few calls failed (${stats.errors})`);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`boundary fuzz: ${stats.calls} calls in ${seconds}s, ${stats.ok} returned, ${stats.errors} threw CapTokenError`, stats.byCode);
});

test('the same wrong values through every static and method, one at a time', () => {
  // Deterministic sweep: each exotic value alone in each argument position.
  const world = makeWorld();
  const exotic = [
    undefined, null, NaN, -0, 2 ** 64, 10n ** 30n, Symbol('s'), MEGABYTE, '\uD800',
    throwingProxy(), throwingProxy([]), revokedProxy(), revokedProxy([]),
    { toString: boom, valueOf: boom, [Symbol.toPrimitive]: boom }, Object.freeze({ taskId: 't1' }),
    Object.create(null), [, , 'a'], arrayWithThrowingIndex(), LONG_ARRAY, HUGE_SPARSE,
    new Proxy(new Uint8Array(32), {}), Object.create(Uint8Array.prototype), new Float64Array(4),
    { secret: throwingProxy(), now: boom }, { scopes: throwingProxy([]) }, { gate: throwingProxy() },
    { secret: SECRET, gate: revokedProxy() }, { scopes: arrayWithThrowingIndex() },
    { token: throwingProxy() }, { ...world.tokens[0], scopes: revokedProxy([]) },
  ];
  for (const bad of exotic) {
    for (let position = 0; position < 4; position++) {
      for (const method of STORE_METHODS.filter((m) => !GETTERS.has(m))) {
        const args = [rng.pick(world.bearers), 'heartbeat', 'root', {}];
        args[position] = bad;
        const before = stateOf(world.store);
        const { ok } = attempt(`store.${method}`, args, () => world.store[method](...args));
        if (!ok || READ_ONLY.has(method)) {
          assert.equal(stateOf(world.store), before, `store.${method} with ${describe(bad)} at ${position}`);
        }
      }
      for (const [label, fn] of Object.entries(STATICS)) {
        const args = [world.tokens[1], 't1', {}, {}];
        args[position] = bad;
        const { ok, result } = attempt(label, args, () => fn(args));
        if (ok) result.free();
      }
    }
  }
  assertControlIntact(world);
});

// The guard in js/common.js (tests/node/guard.test.js covers it in full).
test('methods called on a freed instance, or with a foreign `this`, throw CapTokenError', () => {
  const store = new TokenStore({ secret: SECRET });
  store.free();
  assert.throws(() => store.snapshot(), CapTokenError);
  assert.throws(() => TokenStore.prototype.verify.call({}, 'a', 'heartbeat'), CapTokenError);
});
