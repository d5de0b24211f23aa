// docs/protocol.md "Signing": v2 (default) and mlua-swarm, each store
// accepting only its own, the mlua-swarm test vectors, and both encodings
// recomputed here with node:crypto, independently of the module.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  TokenStore, SECRET, T0, makeStore, makeClock, throwsCap, decodeBearer, toBearer,
  fingerprintOf, mluaSigningText, v2SigningBytes, hmacHex, signToken,
} from './helpers.js';
import { stateOf } from './helpers.js';

const VECTOR_1 = {
  agent_id: 'agent-7',
  role: 'worker',
  scopes: ['read', 'write'],
  issued_at: 1764150000,
  expire_at: 1764151800,
  max_uses: 3,
  nonce: '00112233445566778899aabbccddeeff',
  sig_hex: 'fde2cdfb79f02bd21b58fd16246b5d07eba932140fb3f2153ab438133f45b2dc',
};
const VECTOR_2 = {
  agent_id: 'op-1',
  role: 'operator',
  scopes: ['*'],
  issued_at: 1764150000,
  expire_at: 1764236400,
  max_uses: null,
  nonce: 'ffeeddccbbaa99887766554433221100',
  sig_hex: '4907bc2ff879fab8e00ef8ed3fb0bb70b3a7ebee95004e96ccd117014d1b8619',
};
const VECTOR_1_FINGERPRINT = '5947d7c33d783f94b3b4c1a96ebc8991ed28f1b069b71e03376cba8caa98a720';

function mluaStore(now = T0 + 10) {
  const clock = makeClock(now);
  return { store: new TokenStore({ secret: SECRET, format: 'mlua-swarm', now: clock.now }), clock };
}

describe('the mlua-swarm test vectors', () => {
  it('the helper reproduces the signing texts and signatures of docs/protocol.md', () => {
    assert.equal(mluaSigningText(VECTOR_1),
      'agent-7|Worker|read,write|1764150000|1764151800|Some(3)|00112233445566778899aabbccddeeff');
    assert.equal(mluaSigningText(VECTOR_2),
      'op-1|Operator|*|1764150000|1764236400|None|ffeeddccbbaa99887766554433221100');
    assert.equal(hmacHex(SECRET, mluaSigningText(VECTOR_1)), VECTOR_1.sig_hex);
    assert.equal(hmacHex(SECRET, mluaSigningText(VECTOR_2)), VECTOR_2.sig_hex);
    assert.equal(fingerprintOf(VECTOR_1.nonce), VECTOR_1_FINGERPRINT);
  });

  it('vector 1 is adopted by a mlua-swarm store before its expiry, and decided', () => {
    const { store } = mluaStore(VECTOR_1.expire_at - 1);
    const bearer = toBearer(VECTOR_1);
    assert.equal(store.adopt(bearer, 'task-7'), VECTOR_1_FINGERPRINT);
    assert.equal(store.size, 1);
    const rec = store.record(VECTOR_1_FINGERPRINT);
    assert.equal(rec.usesLeft, 3);
    assert.equal(rec.taskId, 'task-7');
    assert.equal(rec.token.nonce, '');
    assert.equal(rec.token.sig_hex, VECTOR_1.sig_hex);
    const grant = store.verify(bearer, 'fetch_prompt', 'task-7');
    assert.deepEqual(grant, {
      fingerprint: VECTOR_1_FINGERPRINT, agentId: 'agent-7', role: 'worker',
      scopes: ['read', 'write'], taskId: 'task-7', usesLeft: 2,
    });
    // adopting again changes nothing: a spent budget is never reset
    assert.equal(store.adopt(bearer), VECTOR_1_FINGERPRINT);
    assert.equal(store.record(VECTOR_1_FINGERPRINT).usesLeft, 2);
    assert.equal(store.record(VECTOR_1_FINGERPRINT).taskId, 'task-7');
  });

  it('vector 1 after its expiry is ERR_TOKEN_EXPIRED', () => {
    const { store } = mluaStore(VECTOR_1.expire_at);
    throwsCap(() => store.adopt(toBearer(VECTOR_1)), 'ERR_TOKEN_EXPIRED', { fingerprint: VECTOR_1_FINGERPRINT });
    assert.equal(store.size, 0);
  });

  it('vector 2 (an Operator) is adopted even long after expire_at, and can start tasks', () => {
    const { store } = mluaStore(VECTOR_2.expire_at + 86400 * 365);
    const bearer = toBearer(VECTOR_2);
    const fp = store.adopt(bearer);
    assert.equal(fp, fingerprintOf(VECTOR_2.nonce));
    assert.equal(store.verify(bearer, 'heartbeat').usesLeft, null);
    const t = store.startTask(bearer, { taskId: 'vec-task' });
    assert.equal(t.spawnDepth, 0);
    const w = store.dispatchAttempt(bearer, 'vec-task');
    assert.equal('v' in w.token, false);
    assert.equal(w.token.sig_hex, hmacHex(SECRET, mluaSigningText(w.token)));
  });

  it('any changed field is refused', () => {
    const { store } = mluaStore(VECTOR_1.issued_at + 1);
    const changes = {
      agent_id: 'agent-8', role: 'observer', scopes: ['read'], issued_at: VECTOR_1.issued_at - 1,
      expire_at: VECTOR_1.expire_at + 1, max_uses: 4, nonce: 'ffeeddccbbaa99887766554433221100',
      sig_hex: `${VECTOR_1.sig_hex.slice(0, 63)}d`,
    };
    for (const [field, value] of Object.entries(changes)) {
      const bearer = toBearer({ ...VECTOR_1, [field]: value });
      throwsCap(() => store.adopt(bearer), 'ERR_BAD_SIGNATURE');
      throwsCap(() => store.verify(bearer, 'fetch_data'), 'ERR_BAD_SIGNATURE');
    }
    const unlimited = toBearer({ ...VECTOR_1, max_uses: null });
    throwsCap(() => store.adopt(unlimited), 'ERR_BAD_SIGNATURE');
    // claiming v2 is a different format: refused too
    throwsCap(() => store.adopt(toBearer({ v: 2, ...VECTOR_1 })), 'ERR_BAD_SIGNATURE');
    assert.equal(store.size, 0);
  });

  it('a v2 store refuses the vectors (no downgrade)', () => {
    const { store } = makeStore({ start: VECTOR_1.issued_at + 1 });
    throwsCap(() => store.adopt(toBearer(VECTOR_1)), 'ERR_BAD_SIGNATURE');
    throwsCap(() => store.adopt(toBearer(VECTOR_2)), 'ERR_BAD_SIGNATURE');
    assert.equal(store.size, 0);
  });
});

describe('minting in each format', () => {
  it('v2 is the default: "v": 2 and an HMAC over the v2 encoding', () => {
    const { store } = makeStore();
    for (const [agent, role, opts] of [
      ['op', 'operator', {}],
      ['agént-ü|x', 'worker', { scopes: ['a,b', 'c|d', 'ü'], maxUses: 7 }],
      ['o', 'observer', { maxUses: 0 }],
      ['s', 'senior', { maxUses: 4294967295 }],
    ]) {
      const m = store.mint(agent, role, opts);
      assert.equal(m.token.v, 2);
      assert.deepEqual(decodeBearer(m.bearer), m.token);
      assert.equal(m.bearer, Buffer.from(JSON.stringify(m.token)).toString('base64url'));
      assert.match(m.bearer, /^[A-Za-z0-9_-]+$/);
      assert.match(m.token.nonce, /^[0-9a-f]{32}$/);
      assert.match(m.token.sig_hex, /^[0-9a-f]{64}$/);
      assert.equal(m.fingerprint, fingerprintOf(m.token.nonce));
      assert.equal(m.token.sig_hex, hmacHex(SECRET, v2SigningBytes(m.token)));
    }
  });

  it('mlua-swarm: no "v" field and an HMAC over the signing text', () => {
    const { store } = mluaStore();
    for (const [agent, role, opts] of [
      ['op', 'operator', {}],
      ['w', 'worker', { scopes: ['read', 'write'], maxUses: 3 }],
      ['o', 'observer', {}],
      ['s', 'senior', { maxUses: 1 }],
    ]) {
      const m = store.mint(agent, role, opts);
      assert.equal('v' in m.token, false);
      assert.equal('v' in decodeBearer(m.bearer), false);
      assert.equal(m.token.sig_hex, hmacHex(SECRET, mluaSigningText(m.token)));
      assert.equal(m.fingerprint, fingerprintOf(m.token.nonce));
    }
  });

  it('nonces are fresh for every token', () => {
    const { store } = makeStore();
    const nonces = new Set();
    for (let i = 0; i < 200; i++) nonces.add(store.mint('a', 'worker').token.nonce);
    assert.equal(nonces.size, 200);
  });
});

describe('a store accepts only its own format, both ways', () => {
  const clock = makeClock();
  const v2 = new TokenStore({ secret: SECRET, now: clock.now });
  const mlua = new TokenStore({ secret: SECRET, format: 'mlua-swarm', now: clock.now });
  const explicitV2 = new TokenStore({ secret: SECRET, format: 'v2', now: clock.now });

  for (const [name, from, to] of [['v2 -> mlua-swarm', v2, mlua], ['mlua-swarm -> v2', mlua, v2], ['mlua-swarm -> explicit v2', mlua, explicitV2]]) {
    it(name, () => {
      const op = from.attachOperator('op');
      const w = from.mint('w', 'worker', { taskId: 'T' });
      const before = stateOf(to);
      for (const m of [op, w]) {
        throwsCap(() => to.adopt(m.bearer), 'ERR_BAD_SIGNATURE');
        throwsCap(() => to.verify(m.bearer, 'fetch_data', 'T'), 'ERR_BAD_SIGNATURE');
        throwsCap(() => to.remint(m.bearer), 'ERR_BAD_SIGNATURE');
        throwsCap(() => to.startTask(m.bearer), 'ERR_BAD_SIGNATURE');
        assert.equal(to.check(m.bearer, 'fetch_data', 'T').code, 'ERR_BAD_SIGNATURE');
      }
      assert.equal(stateOf(to), before);
    });
  }

  it('a v2 token with its "v" removed, or a mlua-swarm token with "v": 2 added, is refused', () => {
    const w2 = v2.mint('w', 'worker');
    const stripped = { ...decodeBearer(w2.bearer) };
    delete stripped.v;
    throwsCap(() => v2.verify(toBearer(stripped), 'fetch_data'), 'ERR_BAD_SIGNATURE');
    throwsCap(() => mlua.verify(toBearer(stripped), 'fetch_data'), 'ERR_BAD_SIGNATURE');
    const wm = mlua.mint('w', 'worker');
    const tagged = { v: 2, ...decodeBearer(wm.bearer) };
    throwsCap(() => mlua.verify(toBearer(tagged), 'fetch_data'), 'ERR_BAD_SIGNATURE');
    throwsCap(() => v2.verify(toBearer(tagged), 'fetch_data'), 'ERR_BAD_SIGNATURE');
  });

  it('explicit format "v2" and the default are the same format', () => {
    const m = v2.mint('w', 'worker');
    assert.equal(explicitV2.adopt(m.bearer), m.fingerprint);
  });
});

describe('v2 is unambiguous', () => {
  it('tokens signed by a peer with the v2 encoding of docs/protocol.md are accepted', () => {
    const { store } = makeStore();
    const base = {
      agent_id: 'peer-ü-😀', role: 'worker', scopes: ['a,b', 'c'], issued_at: T0, expire_at: T0 + 60,
      max_uses: 5, nonce: '0123456789abcdef0123456789abcdef', sig_hex: '',
    };
    const signed = signToken(base, 'v2');
    assert.equal(store.adopt(toBearer(signed), 'T'), fingerprintOf(base.nonce));
    assert.equal(store.verify(toBearer(signed), 'fetch_prompt', 'T').usesLeft, 4);
    const signedNull = signToken({ ...base, nonce: 'f'.repeat(32), max_uses: null, role: 'senior' }, 'v2');
    assert.equal(store.adopt(toBearer(signedNull)), fingerprintOf('f'.repeat(32)));
  });

  it('moving bytes between scopes, or through "|" in agent_id, breaks a v2 signature', () => {
    const { store } = makeStore();
    const m = store.mint('a|b', 'worker', { scopes: ['x,y'] });
    const t = decodeBearer(m.bearer);
    for (const variant of [
      { ...t, scopes: ['x', 'y'] },
      { ...t, agent_id: 'a', scopes: ['b|x,y'] },
      { ...t, scopes: ['x,y', ''] },
    ]) {
      throwsCap(() => store.verify(toBearer(variant), 'fetch_data'), 'ERR_BAD_SIGNATURE');
    }
    // the same shift would keep a mlua-swarm signing text identical
    assert.equal(mluaSigningText({ ...t, scopes: ['x', 'y'] }), mluaSigningText(t));
  });
});
