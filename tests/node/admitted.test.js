// captoken/redis's admitted bearers (js/admitted.cjs): for every input, the
// same result or the same error as the core's own steps 1 to 4, whether the
// bearer was seen before or not; only allowed calls skip the core.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { inspect } from 'node:util';
import { SECRET, OTHER_SECRET, T0, TokenStore, VERBS } from './helpers.js';

const require = createRequire(import.meta.url);
const { __RemoteCore } = require('../../js/index.cjs');
const { Admitted, MAX_ADMITTED } = require('../../js/admitted.cjs');

/** The core, counting its authorize calls. */
function countingCore(options) {
  const core = new __RemoteCore(options);
  const counted = {
    calls: 0,
    gateKinds: () => core.gateKinds(),
    authorize(...args) {
      counted.calls++;
      return core.authorize(...args);
    },
  };
  return { core, counted };
}

function outcome(f) {
  try {
    return { ok: { ...f() } };
  } catch (error) {
    return { code: error.code, message: error.message, details: { ...error } };
  }
}

/** A small seeded generator, so a failure names its case. */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

for (const options of [
  { secret: SECRET },
  { secret: SECRET, format: 'mlua-swarm' },
  { secret: SECRET, gate: { worker: ['fetch_prompt', 'heartbeat'], observer: ['read_trace', 'start_task'] } },
]) {
  test(`the same answer as the core for every input (${JSON.stringify({ ...options, secret: undefined })})`, () => {
    const clock = { t: T0 };
    const local = new TokenStore({ ...options, now: () => clock.t });
    const op = local.attachOperator('op');
    local.startTask(op.bearer, { taskId: 't' });
    const tokens = [
      op,
      local.dispatchAttempt(op.bearer, 't', { ttlSecs: 60 }),
      local.mint('obs', 'observer', { ttlSecs: 30, scopes: ['a', 'b'] }),
      local.mint('sen', 'senior', { ttlSecs: 90, maxUses: 3 }),
      local.mint('wk', 'worker', { ttlSecs: 10 }),
    ];
    const foreign = new TokenStore({ secret: OTHER_SECRET, now: () => clock.t }).mint('x', 'worker');
    const bearers = [...tokens.map((m) => m.bearer), foreign.bearer, 'garbage', '', 42, undefined,
      `${tokens[1].bearer} `];
    const verbs = [...VERBS, 'nope', '__proto__', 'constructor', 42, undefined];
    const tasks = [undefined, null, 't', 'other', '', 'x'.repeat(256), 'x'.repeat(257), '\uD800', 42, {}];
    const times = [T0 - 5, T0, T0 + 9, T0 + 10, T0 + 29.5, T0 + 30, T0 + 59, T0 + 60, T0 + 61, T0 + 1e6, NaN,
      BigInt(T0), String(T0), { valueOf: () => T0 }];
    const { counted } = countingCore({ ...options });
    const { core } = countingCore({ ...options });
    const admitted = new Admitted(counted);
    const random = rng(7);
    const pick = (xs) => xs[Math.floor(random() * xs.length)];
    let skipped = 0;
    for (let i = 0; i < 20_000; i++) {
      const args = [pick(bearers), pick(verbs), pick(tasks), pick(times)];
      const before = counted.calls;
      const got = outcome(() => admitted.authorize(...args));
      const want = outcome(() => core.authorize(...args));
      assert.deepEqual(got, want, `case ${i}: ${inspect(args)}`);
      if (counted.calls === before) {
        skipped++;
        assert.ok(got.ok, 'only an allowed call skips the core');
      }
    }
    assert.ok(skipped > 300, `${skipped} calls answered without the core`);
  });
}

test('a Grant\'s scopes are its own, and the oldest bearer is forgotten first', () => {
  const local = new TokenStore({ secret: SECRET, now: () => T0 });
  const obs = local.mint('obs', 'observer', { scopes: ['a', 'b'] });
  const { counted } = countingCore({ secret: SECRET });
  const admitted = new Admitted(counted);
  const first = admitted.authorize(obs.bearer, 'read_trace', undefined, T0);
  first.scopes.push('mine');
  const second = admitted.authorize(obs.bearer, 'read_trace', undefined, T0);
  assert.equal(counted.calls, 1);
  assert.deepEqual(second.scopes, ['a', 'b']);
  second.scopes.length = 0;
  assert.deepEqual(admitted.authorize(obs.bearer, 'read_trace', undefined, T0).scopes, ['a', 'b']);

  const many = Array.from({ length: MAX_ADMITTED }, (_, i) => local.mint(`o${i}`, 'observer').bearer);
  for (const bearer of many) admitted.authorize(bearer, 'read_trace', undefined, T0);
  const calls = counted.calls;
  admitted.authorize(many.at(-1), 'read_trace', undefined, T0);
  assert.equal(counted.calls, calls, 'the newest is remembered');
  admitted.authorize(obs.bearer, 'read_trace', undefined, T0);
  assert.equal(counted.calls, calls + 1, 'the oldest was forgotten');
});
