// Forged and tampered tokens, in both signing formats:
//
// * every single-field change of a valid token (each field set to a few
//   other values, removed, or joined by an extra field), re-encoded as a
//   bearer, is refused with ERR_MALFORMED_TOKEN or ERR_BAD_SIGNATURE;
// * so is every bit flip of the bearer's JSON bytes, and every change of one
//   character of the bearer string to any other base64url character;
// * a token signed with another secret, or in the store's other format with
//   the same secret, is refused with ERR_BAD_SIGNATURE;
// * any other spelling of a valid token (whitespace, key order, escapes,
//   padding, the standard alphabet, a capitalised role) is ERR_MALFORMED_TOKEN:
//   a token has exactly one bearer string;
// * none of these refusals spends or changes anything;
// * no error message, String(error), JSON of a thrown error, check()
//   decision, record, snapshot or inspection contains any minted nonce, or
//   the secret as hex, base64 or its bytes joined by commas.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { TokenStore, CapTokenError } from 'captoken';
import { stateOf } from './helpers.js';

const T0 = 1_764_150_000;
// Distinct byte values, so that every rendering of the secret is distinctive.
const SECRET = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i * 3);
const OTHER_SECRET = Uint8Array.from({ length: 32 }, (_, i) => 0xe0 - i);
const REFUSED = ['ERR_MALFORMED_TOKEN', 'ERR_BAD_SIGNATURE'];
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const toBearer = (json) => Buffer.from(typeof json === 'string' ? json : JSON.stringify(json)).toString('base64url');
const fromBearer = (bearer) => JSON.parse(Buffer.from(bearer, 'base64url').toString('utf8'));

/** Every distinct text the package hands back, collected for the leak check. */
const outputs = new Set();
outputs.push = (...texts) => texts.forEach((text) => outputs.add(text));
const seenErrors = new Set();
/** Every nonce minted by any store in this file. */
const nonces = new Set();

function collectError(error) {
  // Refusals repeat (the same message thousands of times): render each once.
  const key = `${error.code}\n${error.message}\n${Object.keys(error).join()}`;
  if (seenErrors.has(key)) return;
  seenErrors.add(key);
  outputs.push(error.message, String(error), JSON.stringify(error), inspect(error, { depth: 5 }));
  outputs.push(JSON.stringify(Object.fromEntries(Object.getOwnPropertyNames(error).map((k) => [k, error[k]]))));
}

function mint(store, ...args) {
  const minted = store.mint(...args);
  nonces.add(minted.token.nonce);
  return minted;
}

function makeStore(format, secret = SECRET) {
  const clock = { t: T0 };
  const store = new TokenStore({ secret, format, now: () => clock.t });
  return { store, clock };
}

/** `call` must throw a CapTokenError whose code is one of `codes`. */
function refused(call, codes, what) {
  let thrown;
  try {
    call();
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown !== undefined, `${what} was allowed`);
  assert.ok(thrown instanceof CapTokenError, `${what} threw ${thrown?.constructor?.name}: ${thrown?.message}`);
  assert.ok(codes.includes(thrown.code), `${what} was refused with ${thrown.code}, not ${codes.join(' or ')}`);
  collectError(thrown);
  return thrown;
}

/** Verify and check both refuse `bearer`, with the same code, changing nothing. */
function assertRefused(store, bearer, verb, taskId, what, codes = REFUSED) {
  const before = stateOf(store);
  const error = refused(() => store.verify(bearer, verb, taskId), codes, what);
  const decision = store.check(bearer, verb, taskId);
  outputs.push(JSON.stringify(decision));
  assert.equal(decision.allowed, false, `${what}: check allowed it`);
  assert.equal(decision.code, error.code, `${what}: check and verify disagree`);
  assert.equal(stateOf(store), before, `${what}: a refusal changed the state`);
  return error.code;
}

/** Other values for each field: same type, other types, and absence. */
function alternatives(field, value) {
  const common = [null, true, 'x', 0, -1, 1.5, [], {}, undefined];
  const byField = {
    v: () => [1, 3, '2', 2.5, 0, 255, 256],
    agent_id: () => ['', 'agent-8', `${value} `, value.toUpperCase(), `${value}|Worker`, 'a'.repeat(300), '\uD800'],
    role: () => ['operator', 'worker', 'observer', 'senior', 'Operator', 'Worker', 'Observer', 'Senior', 'WORKER', 'admin', ''],
    scopes: () => [['*'], ['read'], ['read', 'write'], ['read,write'], [], ['*', '*'], [''], '*', [1]],
    issued_at: () => [value + 1, value - 1, 0, 2 ** 53 - 1, 2 ** 53, -1, value + 0.5, String(value)],
    expire_at: () => [value + 1, value - 1, 0, 2 ** 53 - 1, 2 ** 53, 1e21, String(value)],
    max_uses: () => [null, 0, 1, 2, 3, 4, 2 ** 32 - 1, 2 ** 32, -1],
    nonce: () => ['0'.repeat(32), 'f'.repeat(32), value.toUpperCase(), value.slice(1), `${value}0`,
      value.slice(0, -1) + (value.endsWith('0') ? '1' : '0'), 'g'.repeat(32)],
    sig_hex: () => ['0'.repeat(64), value.toUpperCase(), value.slice(0, -1) + (value.endsWith('0') ? '1' : '0'),
      value.slice(2), `${value}00`, 'z'.repeat(64)],
  };
  return [...(byField[field]?.() ?? []), ...common]
    .filter((alt) => JSON.stringify(alt) !== JSON.stringify(value));
}

const capitalised = (role) => role[0].toUpperCase() + role.slice(1);

/**
 * Other spellings of the very same token (same fields, same signature): a
 * token has exactly one bearer string, so each of these is ERR_MALFORMED_TOKEN
 * in both formats, the role written the reference engine's way (`"Worker"`)
 * included.
 */
function respellings(json, bearer) {
  const text = JSON.stringify(json);
  const keys = Object.keys(json);
  const reversed = Object.fromEntries([...keys].reverse().map((k) => [k, json[k]]));
  const swapped = { ...json };
  delete swapped.agent_id;
  const roleFirst = { role: json.role, agent_id: json.agent_id, ...swapped };
  return {
    'spaces after separators': toBearer(JSON.stringify(json, null, 1).replace(/\n\s*/g, ' ')),
    'pretty-printed': toBearer(JSON.stringify(json, null, 2)),
    'leading space': toBearer(` ${text}`),
    'trailing newline': toBearer(`${text}\n`),
    'keys reversed': toBearer(reversed),
    'role before agent_id': toBearer(roleFirst),
    // "worker" as "\u0077orker", "operator" as "\u006fperator": the same string.
    'escaped role': toBearer(text.replace(`"role":"${json.role}"`,
      `"role":"\\u00${json.role.charCodeAt(0).toString(16)}${json.role.slice(1)}"`)),
    '\\u002d escape': toBearer(text.replace('-', '\\u002d')),
    'escaped key': toBearer(text.replace('"role"', '"\\u0072ole"')),
    'upper-case escape': toBearer(text.replace('-', '\\u002D')),
    'padding': `${bearer}${'='.repeat((4 - (bearer.length % 4)) % 4 || 4)}`,
    'standard alphabet': Buffer.from(text).toString('base64'),
    'capitalised role': toBearer({ ...json, role: capitalised(json.role) }),
  };
}

for (const format of ['v2', 'mlua-swarm']) {
  describe(`tampered ${format} tokens`, () => {
    const { store, clock } = makeStore(format);
    const op = mint(store, 'op-1', 'operator');
    const root = store.startTask(op.bearer, { taskId: 'root' });
    const worker = store.dispatchAttempt(op.bearer, root.taskId, { maxUses: 3 });
    nonces.add(worker.token.nonce);
    const once = mint(store, 'agent-7', 'worker', { maxUses: 1, taskId: 'root', scopes: ['read', 'write'] });
    const targets = [
      ['worker', worker, 'fetch_prompt', 'root'],
      ['operator', op, 'heartbeat', undefined],
      ['one-time', once, 'post_result', 'root'],
    ];
    const pristine = stateOf(store);

    after(() => {
      // None of the refusals spent or changed anything, and the tokens work.
      assert.equal(stateOf(store), pristine);
      assert.equal(store.verify(worker.bearer, 'fetch_prompt', 'root').usesLeft, 2);
      assert.equal(store.verify(once.bearer, 'post_result', 'root').usesLeft, 0);
      assert.equal(store.verify(op.bearer, 'heartbeat').role, 'operator');
      clock.t = T0;
    });

    for (const [name, minted, verb, taskId] of targets) {
      it(`every single-field change of the ${name} token is refused`, () => {
        const json = fromBearer(minted.bearer);
        assert.deepEqual(json, minted.token);
        let probes = 0;
        for (const field of Object.keys(json)) {
          for (const alt of alternatives(field, json[field])) {
            const changed = { ...json };
            if (alt === undefined) delete changed[field];
            else changed[field] = alt;
            const bearer = toBearer(changed);
            const what = `${field} = ${JSON.stringify(alt)}`;
            assertRefused(store, bearer, verb, taskId, what);
            probes++;
          }
        }
        for (const [key, extra] of [['extra', 1], ['v', 2], ['v', null], ['nonce2', json.nonce], ['task_id', 'root'], ['fingerprint', minted.fingerprint]]) {
          if (key in json) continue;
          assertRefused(store, toBearer({ ...json, [key]: extra }), verb, taskId, `added ${key}`);
          probes++;
        }
        assert.ok(probes > 60, `only ${probes} field changes probed`);
      });

      it(`every other spelling of the ${name} token is refused as malformed; the canonical one is accepted`, () => {
        const json = fromBearer(minted.bearer);
        assert.equal(minted.bearer, toBearer(json), 'the minted bearer is its canonical JSON');
        let probes = 0;
        for (const [what, bearer] of Object.entries(respellings(json, minted.bearer))) {
          // The standard alphabet spells some bearers the same (no '+', '/' or padding).
          if (what === 'standard alphabet' && bearer === minted.bearer) continue;
          assert.notEqual(bearer, minted.bearer, what);
          probes++;
          assertRefused(store, bearer, verb, taskId, what, ['ERR_MALFORMED_TOKEN']);
          refused(() => store.adopt(bearer, taskId), ['ERR_MALFORMED_TOKEN'], `adopt ${what}`);
          refused(() => store.remint(bearer), ['ERR_MALFORMED_TOKEN'], `remint ${what}`);
        }
        assert.ok(probes >= 11, `only ${probes} spellings probed`);
        const decision = store.check(minted.bearer, verb, taskId);
        assert.equal(decision.allowed, true, decision.message);
        assert.equal(decision.fingerprint, minted.fingerprint);
      });

      it(`every bit flip of the ${name} bearer's JSON is refused`, () => {
        const bytes = Buffer.from(minted.bearer, 'base64url');
        const codes = {};
        for (let i = 0; i < bytes.length; i++) {
          for (let bit = 0; bit < 8; bit++) {
            const flipped = Buffer.from(bytes);
            flipped[i] ^= 1 << bit;
            const bearer = flipped.toString('base64url');
            const what = `byte ${i} bit ${bit}`;
            const code = assertRefused(store, bearer, verb, taskId, what);
            codes[code] = (codes[code] ?? 0) + 1;
          }
        }
        assert.ok(codes.ERR_BAD_SIGNATURE > 0 && codes.ERR_MALFORMED_TOKEN > 0, JSON.stringify(codes));
      });

      it(`every one-character change of the ${name} bearer string is refused`, () => {
        const bearer = minted.bearer;
        let probes = 0;
        for (let i = 0; i < bearer.length; i++) {
          for (const c of BASE64URL) {
            if (c === bearer[i]) continue;
            const changed = bearer.slice(0, i) + c + bearer.slice(i + 1);
            const before = stateOf(store);
            const error = refused(() => store.verify(changed, verb, taskId), REFUSED, `position ${i} -> ${c}`);
            if (probes % 4 === 0) assert.equal(store.check(changed, verb, taskId).code, error.code);
            probes++;
            if (probes % 512 === 0) assert.equal(stateOf(store), before);
          }
          // Characters outside the alphabet, padding, truncation, extension.
          for (const c of ['=', '+', '/', '.', ' ', '\n', '\u00e9', '\uD800']) {
            const changed = bearer.slice(0, i) + c + bearer.slice(i + 1);
            refused(() => store.verify(changed, verb, taskId), ['ERR_MALFORMED_TOKEN'], `position ${i} -> ${JSON.stringify(c)}`);
          }
        }
        for (const changed of [bearer.slice(0, -1), bearer.slice(1), `${bearer}A`, `${bearer}=`, `A${bearer}`, bearer.repeat(2)]) {
          refused(() => store.verify(changed, verb, taskId), REFUSED, 'truncated or extended');
        }
        assert.equal(stateOf(store), pristine);
      });
    }

    it('tampered bearers are refused by every method that takes one', () => {
      const json = fromBearer(worker.bearer);
      const forged = [
        toBearer({ ...json, max_uses: null }),
        toBearer({ ...json, role: 'operator' }),
        toBearer({ ...json, expire_at: json.expire_at + 86_400 }),
        toBearer({ ...json, scopes: ['*', 'admin'] }),
      ];
      for (const bearer of forged) {
        const before = stateOf(store);
        refused(() => store.adopt(bearer, 'root'), REFUSED, 'adopt');
        refused(() => store.remint(bearer), REFUSED, 'remint');
        refused(() => store.startTask(bearer), REFUSED, 'startTask');
        refused(() => store.dispatchAttempt(bearer, 'root'), REFUSED, 'dispatchAttempt');
        assert.equal(stateOf(store), before);
      }
    });

    it('a token signed with another secret is refused as a bad signature', () => {
      const { store: elsewhere } = makeStore(format, OTHER_SECRET);
      const foreignOp = mint(elsewhere, 'op-1', 'operator');
      const foreign = mint(elsewhere, 'agent-7', 'worker', { maxUses: 3, taskId: 'root' });
      // The same fields as our own worker token, signed with the other secret.
      const json = fromBearer(worker.bearer);
      const resigned = { ...fromBearer(foreign.bearer), agent_id: json.agent_id, issued_at: json.issued_at, expire_at: json.expire_at };
      for (const bearer of [foreign.bearer, foreignOp.bearer]) {
        assertRefused(store, bearer, 'fetch_prompt', 'root', 'foreign token', ['ERR_BAD_SIGNATURE']);
        const before = stateOf(store);
        refused(() => store.adopt(bearer, 'root'), ['ERR_BAD_SIGNATURE'], 'adopt foreign');
        refused(() => store.remint(bearer), ['ERR_BAD_SIGNATURE'], 'remint foreign');
        refused(() => store.startTask(bearer), ['ERR_BAD_SIGNATURE'], 'startTask foreign');
        assert.equal(stateOf(store), before);
      }
      // Our nonce and fields under the other secret's signature.
      const stolen = { ...json, sig_hex: foreign.token.sig_hex };
      assertRefused(store, toBearer(stolen), 'fetch_prompt', 'root', 'foreign signature', ['ERR_BAD_SIGNATURE']);
      assertRefused(store, toBearer(resigned), 'fetch_prompt', 'root', 'resigned', ['ERR_BAD_SIGNATURE']);
      // And the other way round.
      assertRefused(elsewhere, worker.bearer, 'fetch_prompt', 'root', 'ours there', ['ERR_BAD_SIGNATURE']);
      elsewhere.free();
    });

    it('a token of the other signing format with the same secret is refused as a bad signature', () => {
      const otherFormat = format === 'v2' ? 'mlua-swarm' : 'v2';
      const { store: sibling } = makeStore(otherFormat);
      const theirs = mint(sibling, 'agent-7', 'worker', { maxUses: 3, taskId: 'root' });
      assertRefused(store, theirs.bearer, 'fetch_prompt', 'root', 'other format', ['ERR_BAD_SIGNATURE']);
      assertRefused(sibling, worker.bearer, 'fetch_prompt', 'root', 'other format back', ['ERR_BAD_SIGNATURE']);
      // Adding or removing "v" does not change the format either.
      const json = fromBearer(worker.bearer);
      const flipped = format === 'v2' ? (({ v, ...rest }) => rest)(json) : { v: 2, ...json };
      assertRefused(store, toBearer(flipped), 'fetch_prompt', 'root', 'v changed', ['ERR_BAD_SIGNATURE']);
      sibling.free();
    });

    it('every kind of refusal names no nonce and no secret', () => {
      const { store: s, clock: c } = makeStore(format);
      const o = mint(s, 'op-1', 'operator');
      s.startTask(o.bearer, { taskId: 'r' });
      const w = s.dispatchAttempt(o.bearer, 'r', { maxUses: 1 });
      nonces.add(w.token.nonce);
      const observer = mint(s, 'watch', 'observer');
      const revoked = mint(s, 'agent-7', 'worker', { taskId: 'r' });
      s.revoke(revoked.fingerprint);
      const short = mint(s, 'agent-7', 'worker', { taskId: 'r', ttlSecs: 5 });
      const untracked = mint(s, 'agent-7', 'worker', { taskId: 'elsewhere' });
      const stranger = mint(makeStore(format).store, 'agent-7', 'worker');
      let deep = s.dispatchAttempt(o.bearer, 'r');
      nonces.add(deep.token.nonce);
      const probes = [
        () => s.verify(w.bearer, 'fetch_prompt', 'other'), // task mismatch
        () => s.verify(observer.bearer, 'start_task'), // role violation
        () => s.verify(revoked.bearer, 'fetch_prompt', 'r'), // revoked
        () => s.verify(stranger.bearer, 'fetch_prompt'), // not found
        () => s.startTask(untracked.bearer), // task not found
        () => s.dispatchAttempt(o.bearer, 'nope'), // task not found
        () => s.remint(o.bearer), // invalid argument
        () => s.verify(toBearer({ ...w.token, sig_hex: 'A'.repeat(64) }), 'fetch_prompt', 'r'), // malformed
        () => s.verify(toBearer({ ...w.token, max_uses: 9 }), 'fetch_prompt', 'r'), // bad signature
        () => TokenStore.restore(s.snapshot().replace('"version":1', '"version":2'), { secret: SECRET, format }),
        () => TokenStore.restore(JSON.stringify({ ...JSON.parse(s.snapshot()), nonce: w.token.nonce }), { secret: SECRET, format }),
        () => TokenStore.restore(`{"version":1,"format":"${format}","records":[{"nonce":"${w.token.nonce}"}],"tasks":[]}`, { secret: SECRET, format }),
        () => TokenStore.restore(`{"${w.token.nonce}":1}`, { secret: SECRET, format }),
        () => new TokenStore({ secret: SECRET.slice(0, 31) }),
      ];
      // Spawn down to the depth cap.
      for (let depth = 1; depth < 5; depth++) {
        probes.push(() => {
          const t = s.startTask(deep.bearer);
          deep = s.dispatchAttempt(deep.bearer, t.taskId);
          nonces.add(deep.token.nonce);
        });
      }
      probes.push(() => s.verify(w.bearer, 'fetch_prompt', 'r')); // spends the only use
      probes.push(() => s.verify(w.bearer, 'fetch_prompt', 'r')); // exhausted
      probes.push(() => { c.t = T0 + 10; s.verify(short.bearer, 'fetch_prompt', 'r'); }); // expired
      const codes = new Set();
      for (const probe of probes) {
        try {
          probe();
        } catch (error) {
          assert.ok(error instanceof CapTokenError, `${error}`);
          codes.add(error.code);
          collectError(error);
        }
      }
      for (const m of [w, observer, revoked, short, untracked, stranger, o]) {
        for (const verb of ['fetch_prompt', 'start_task', 'heartbeat', 'read_trace']) {
          outputs.push(JSON.stringify(s.check(m.bearer, verb, 'r')));
        }
      }
      outputs.push(s.snapshot(), JSON.stringify(s.records()), JSON.stringify(s.tasks()));
      for (const { fingerprint } of s.records()) {
        const record = s.record(fingerprint);
        outputs.push(JSON.stringify(record), JSON.stringify(record.token), inspect(record), String(record));
        record.free();
      }
      for (const code of ['ERR_TOKEN_TASK_MISMATCH', 'ERR_ROLE_VIOLATION', 'ERR_TOKEN_REVOKED', 'ERR_TOKEN_NOT_FOUND',
        'ERR_TASK_NOT_FOUND', 'ERR_INVALID_ARGUMENT', 'ERR_BAD_SIGNATURE', 'ERR_SNAPSHOT_INVALID',
        'ERR_SPAWN_DEPTH_EXCEEDED', 'ERR_TOKEN_USES_EXHAUSTED', 'ERR_TOKEN_EXPIRED']) {
        assert.ok(codes.has(code), `no ${code} was produced (got ${[...codes].join(', ')})`);
      }
      s.free();
    });
  });
}

describe('leaks', () => {
  it('no output contains a nonce or the secret', () => {
    assert.ok(nonces.size >= 10, `only ${nonces.size} nonces collected`);
    assert.ok(outputs.size > 50, `only ${outputs.size} distinct outputs collected`);
    const secrets = [];
    for (const secret of [SECRET, OTHER_SECRET]) {
      const bytes = Buffer.from(secret);
      secrets.push(
        bytes.toString('hex'), bytes.toString('hex').toUpperCase(),
        bytes.toString('base64'), bytes.toString('base64').replace(/=+$/, ''), bytes.toString('base64url'),
        [...bytes].join(','), [...bytes].join(', '), JSON.stringify([...bytes]),
        // A run of the first bytes is enough to count as a leak.
        [...bytes].slice(0, 8).join(','), bytes.subarray(0, 8).toString('hex'),
        bytes.toString('latin1'),
      );
    }
    const text = [...outputs].join('\n');
    for (const nonce of nonces) {
      assert.ok(!text.includes(nonce), 'an output contains a nonce');
      assert.ok(!text.includes(nonce.toUpperCase()), 'an output contains a nonce (upper case)');
    }
    for (const rendering of secrets) {
      assert.ok(!text.includes(rendering), `an output contains the secret (${rendering.slice(0, 12)}...)`);
    }
  });
});
