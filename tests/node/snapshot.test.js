// docs/protocol.md "Snapshots and journals": the shape, no nonce and no secret, the round
// trip keeping every decision, and corrupted snapshots refused with
// ERR_SNAPSHOT_INVALID.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  TokenStore, SECRET, OTHER_SECRET, T0, VERBS, makeWorld, makeStore, makeClock,
  throwsCap, assertNoNonce, decodeBearer, toBearer, canonical as canonicalToken,
} from './helpers.js';
import { stateOf, withoutSeal } from './helpers.js';

/** A snapshot with its records in fingerprint order, for comparing content. */
function canonical(text) {
  const doc = JSON.parse(text);
  delete doc.mac; // each seal has a fresh nonce
  doc.records.sort((a, b) => (a.fingerprint < b.fingerprint ? -1 : 1));
  doc.tasks.sort((a, b) => (a.task_id < b.task_id ? -1 : 1));
  return doc;
}

/** A richer world: the default one plus an expired Worker and an adopted token. */
function richWorld(format) {
  const world = makeWorld(format ? { format } : {});
  const { store, clock, op } = world;
  world.shortLived = store.dispatchAttempt(op.bearer, 'child', { ttlSecs: 10, maxUses: 4 });
  // A ',' in a scope is fine in v2 and never minted in mlua-swarm (its signing text joins scopes with ',').
  const odd = format === 'mlua-swarm' ? 'x;y' : 'x,y';
  world.external = store.mint('ext', 'worker', { taskId: 'not-tracked', scopes: ['read', odd] });
  const peer = new TokenStore({ secret: SECRET, now: clock.now, ...(format ? { format } : {}) });
  world.adopted = peer.mint('peer', 'observer', { maxUses: 2 });
  store.adopt(world.adopted.bearer);
  store.verify(world.adopted.bearer, 'read_trace');
  clock.t += 20; // shortLived is now expired
  return world;
}

function allMinted(world) {
  return ['op', 'opLimited', 'worker', 'childWorker', 'observer', 'senior', 'revoked', 'exhausted',
    'shortLived', 'external', 'adopted'].map((k) => world[k]);
}

function decisions(store, minted) {
  const out = [];
  for (const m of minted) {
    for (const verb of VERBS) {
      for (const task of [undefined, 'root', 'child', 'not-tracked']) {
        out.push(store.check(m.bearer, verb, task));
      }
    }
  }
  return out;
}

describe('snapshot()', () => {
  it('is JSON: numeric version 1, the format, records with wire role names, tasks', () => {
    const world = richWorld();
    const doc = JSON.parse(world.store.snapshot());
    assert.equal(typeof doc.version, 'number');
    assert.equal(doc.version, 1);
    assert.equal(doc.format, 'v2');
    assert.ok(Array.isArray(doc.records));
    assert.ok(Array.isArray(doc.tasks));
    assert.equal(doc.records.length, world.store.size);
    for (const r of doc.records) {
      assert.match(r.fingerprint, /^[0-9a-f]{64}$/);
      assert.ok(['operator', 'worker', 'observer', 'senior'].includes(r.token.role), r.token.role);
      assert.equal('nonce' in r.token, false, 'a snapshot token has no nonce field');
      assert.equal(typeof r.revoked, 'boolean');
    }
    assert.deepEqual(canonical(world.store.snapshot()).tasks, [
      { task_id: 'child', parent_id: 'root', spawn_depth: 1 },
      { task_id: 'root', parent_id: null, spawn_depth: 0 },
    ]);
    const mlua = JSON.parse(richWorld('mlua-swarm').store.snapshot());
    assert.equal(mlua.format, 'mlua-swarm');
  });

  it('holds no nonce and no secret', () => {
    for (const format of ['v2', 'mlua-swarm']) {
      const world = richWorld(format);
      const text = world.store.snapshot();
      assertNoNonce(text, allMinted(world));
      assertNoNonce(JSON.stringify(world.store.records()), allMinted(world));
      for (const r of world.store.records()) assert.equal(r.token.nonce, '');
    }
  });

  it('a leaked snapshot lets no one act as any token', () => {
    const world = richWorld();
    const doc = JSON.parse(world.store.snapshot());
    const rec = doc.records.find((r) => r.fingerprint === world.op.fingerprint);
    // Without a nonce the token does not even decode …
    throwsCap(() => world.store.verify(toBearer(rec.token), 'heartbeat'), 'ERR_MALFORMED_TOKEN');
    // … and with a made-up nonce the signature fails.
    const guessed = toBearer(canonicalToken({ ...rec.token, nonce: '0'.repeat(32) }));
    throwsCap(() => world.store.verify(guessed, 'heartbeat'), 'ERR_BAD_SIGNATURE');
  });

  it('is stable while nothing changes, but for its seal: each seal has a fresh nonce', () => {
    const world = richWorld();
    const a = world.store.snapshot();
    world.store.check(world.op.bearer, 'heartbeat');
    world.store.records();
    world.store.tasks();
    const b = world.store.snapshot();
    assert.equal(withoutSeal(b), withoutSeal(a));
    assert.notEqual(b.slice(48, 112), a.slice(48, 112));
    for (const text of [a, b]) assert.equal(TokenStore.restore(text, { secret: SECRET }).size, world.store.size);
  });
});

describe('restore()', () => {
  for (const format of ['v2', 'mlua-swarm']) {
    it(`a round trip keeps every decision (${format})`, () => {
      const world = richWorld(format);
      const minted = allMinted(world);
      const text = world.store.snapshot();
      const restored = TokenStore.restore(text, { secret: SECRET, format, now: world.clock.now });
      assert.equal(restored.size, world.store.size);
      assert.deepEqual(restored.records(), world.store.records());
      assert.deepEqual(restored.tasks(), world.store.tasks());
      assert.deepEqual(canonical(restored.snapshot()), canonical(text));
      assert.deepEqual(decisions(restored, minted), decisions(world.store, minted));

      // The same calls on both stores go the same way from here on.
      const run = (store) => {
        const out = [];
        const attempt = (fn) => {
          try {
            out.push(fn());
          } catch (e) {
            out.push(e.code);
          }
        };
        for (let i = 0; i < 3; i++) attempt(() => store.verify(world.opLimited.bearer, 'heartbeat'));
        for (let i = 0; i < 4; i++) attempt(() => store.verify(world.observer.bearer, 'read_trace'));
        attempt(() => store.verify(world.adopted.bearer, 'read_trace'));
        attempt(() => store.verify(world.adopted.bearer, 'read_trace'));
        // A Worker may not name its child (ids it starts are made by the store, which
        // would differ between the two stores); the Operator names one, once.
        attempt(() => store.startTask(world.childWorker.bearer, { taskId: 'grandchild' }));
        attempt(() => store.startTask(world.op.bearer, { parentId: 'child', taskId: 'grandchild' }));
        attempt(() => store.startTask(world.op.bearer, { parentId: 'child', taskId: 'grandchild' }));
        attempt(() => store.check(world.childWorker.bearer, 'dispatch_attempt', 'grandchild'));
        attempt(() => store.dispatchAttempt(world.childWorker.bearer, 'root').token); // above its task: refused
        attempt(() => store.startTask(world.external.bearer));
        attempt(() => store.verify(world.shortLived.bearer, 'fetch_data'));
        attempt(() => store.verify(world.revoked.bearer, 'fetch_data'));
        attempt(() => store.revokeTask('root'));
        attempt(() => store.verify(world.childWorker.bearer, 'fetch_prompt', 'child'));
        attempt(() => store.purgeExpired());
        attempt(() => store.size);
        attempt(() => store.tasks());
        attempt(() => store.records());
        return out;
      };
      assert.deepEqual(run(restored), run(world.store));
      assert.deepEqual(decisions(restored, minted), decisions(world.store, minted));
      assert.deepEqual(canonical(restored.snapshot()), canonical(world.store.snapshot()));
    });
  }

  it('spawn depth continues after a restore', () => {
    const { store, clock } = makeStore();
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 'd0' });
    const w0 = store.dispatchAttempt(op.bearer, 'd0');
    const d1 = store.startTask(w0.bearer).taskId;
    const w1 = store.dispatchAttempt(op.bearer, d1);
    const d2 = store.startTask(w1.bearer).taskId;
    const w2 = store.dispatchAttempt(op.bearer, d2);
    const restored = TokenStore.restore(store.snapshot(), { secret: SECRET, now: clock.now });
    const d3 = restored.startTask(w2.bearer);
    assert.deepEqual(d3, { taskId: d3.taskId, parentId: d2, spawnDepth: 3 });
    const w3 = restored.dispatchAttempt(op.bearer, d3.taskId);
    throwsCap(() => restored.startTask(w3.bearer), 'ERR_SPAWN_DEPTH_EXCEEDED', { current: 4, max: 4 });
  });

  it('another secret: refused, and the error says the secret does not match', () => {
    const world = richWorld();
    throwsCap(() => TokenStore.restore(world.store.snapshot(), { secret: OTHER_SECRET, now: world.clock.now }),
      'ERR_SNAPSHOT_INVALID');
    assert.throws(() => TokenStore.restore(world.store.snapshot(), { secret: OTHER_SECRET }),
      /sealed under another secret: the secret does not match/);
  });

  it('the secret is not in the snapshot: its unsealed body restored with another secret, every bearer fails', () => {
    const world = richWorld();
    const doc = JSON.parse(world.store.snapshot());
    delete doc.key_id;
    delete doc.mac;
    const other = TokenStore.restore(JSON.stringify(doc),
      { secret: OTHER_SECRET, now: world.clock.now, allowUnsealed: true });
    assert.equal(other.size, world.store.size);
    for (const m of allMinted(world)) {
      throwsCap(() => other.verify(m.bearer, 'heartbeat'), 'ERR_BAD_SIGNATURE');
    }
  });

  it('restore validates its options like the constructor', () => {
    const text = richWorld().store.snapshot();
    throwsCap(() => TokenStore.restore(text, { secret: new Uint8Array(31) }), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => TokenStore.restore(text), 'ERR_INVALID_ARGUMENT');
    throwsCap(() => TokenStore.restore(text, { secret: SECRET, maxSpawnDepth: 0 }), 'ERR_INVALID_ARGUMENT');
    // a snapshot of one format is refused by a store of the other
    throwsCap(() => TokenStore.restore(text, { secret: SECRET, format: 'mlua-swarm' }), 'ERR_SNAPSHOT_INVALID');
    const mluaText = richWorld('mlua-swarm').store.snapshot();
    throwsCap(() => TokenStore.restore(mluaText, { secret: SECRET }), 'ERR_SNAPSHOT_INVALID');
  });

  it('an empty store round-trips', () => {
    const empty = new TokenStore({ secret: SECRET });
    const back = TokenStore.restore(empty.snapshot(), { secret: SECRET });
    assert.equal(back.size, 0);
    const { key_id: keyId, mac, ...rest } = JSON.parse(back.snapshot());
    assert.match(keyId, /^[0-9a-f]{16}$/);
    assert.match(mac, /^[0-9a-f]{64}$/);
    assert.deepEqual(rest, { version: 1, format: 'v2', records: [], tasks: [] });
  });
});

// Each corruption is checked twice: as it is (the seal refuses an edit), and
// with the seal taken off and `allowUnsealed: true`, so that the checks below
// the seal are still tested one by one.
describe('corrupted snapshots', () => {
  const world = richWorld();
  const text = world.store.snapshot();
  const good = () => {
    const doc = JSON.parse(text);
    delete doc.key_id;
    delete doc.mac;
    return doc;
  };
  const fpOf = (m) => m.fingerprint;
  const recOf = (doc, m) => doc.records.find((r) => r.fingerprint === fpOf(m));
  const edit = (fn) => {
    const doc = good();
    fn(doc);
    return JSON.stringify(doc);
  };

  const corruptions = {
    'empty text': '',
    'whitespace': '   ',
    'not JSON': 'snapshot',
    'JSON null': 'null',
    'a number': '1',
    'an array': '[]',
    'an empty object': '{}',
    'truncated': text.slice(0, -1),
    'trailing garbage': `${text}x`,
    'two documents': `${text}${text}`,
    'version 2': edit((d) => { d.version = 2; }),
    'version 0': edit((d) => { d.version = 0; }),
    'version as a string': edit((d) => { d.version = '1'; }),
    'version missing': edit((d) => { delete d.version; }),
    'format unknown': edit((d) => { d.format = 'v3'; }),
    'format missing': edit((d) => { delete d.format; }),
    'records not an array': edit((d) => { d.records = {}; }),
    'records missing': edit((d) => { delete d.records; }),
    'tasks missing': edit((d) => { delete d.tasks; }),
    'unknown top-level key': edit((d) => { d.secret = 'x'; }),
    'a record with a nonce': edit((d) => { recOf(d, world.op).token.nonce = world.op.token.nonce; }),
    'a record without fingerprint': edit((d) => { delete recOf(d, world.op).fingerprint; }),
    'an uppercase fingerprint': edit((d) => { const r = recOf(d, world.op); r.fingerprint = r.fingerprint.toUpperCase(); }),
    'a short fingerprint': edit((d) => { recOf(d, world.op).fingerprint = 'abc'; }),
    'a duplicate fingerprint': edit((d) => { d.records.push(structuredClone(recOf(d, world.op))); }),
    'a capitalised role': edit((d) => { recOf(d, world.worker).token.role = 'Worker'; }),
    'an unknown role': edit((d) => { recOf(d, world.worker).token.role = 'admin'; }),
    'uses_left above max_uses': edit((d) => { recOf(d, world.worker).uses_left = 11; }),
    'uses_left unlimited for a limited token': edit((d) => { recOf(d, world.worker).uses_left = null; }),
    'uses_left for an unlimited token': edit((d) => { recOf(d, world.op).uses_left = 5; }),
    'negative uses_left': edit((d) => { recOf(d, world.worker).uses_left = -1; }),
    'revoked not a boolean': edit((d) => { recOf(d, world.worker).revoked = 'no'; }),
    'an empty task_id': edit((d) => { recOf(d, world.worker).task_id = ''; }),
    'token of the other format': edit((d) => { delete recOf(d, world.worker).token.v; }),
    'a short sig_hex': edit((d) => { recOf(d, world.worker).token.sig_hex = 'abcd'; }),
    'an uppercase sig_hex': edit((d) => { const t = recOf(d, world.worker).token; t.sig_hex = t.sig_hex.toUpperCase(); }),
    'an empty agent_id': edit((d) => { recOf(d, world.worker).token.agent_id = ''; }),
    'a time beyond 2^53': edit((d) => { recOf(d, world.worker).token.expire_at = 2 ** 60; }),
    'a negative time': edit((d) => { recOf(d, world.worker).token.issued_at = -5; }),
    'an unknown record key': edit((d) => { recOf(d, world.worker).extra = 1; }),
    'an unknown token key': edit((d) => { recOf(d, world.worker).token.extra = 1; }),
    'scopes not an array': edit((d) => { recOf(d, world.worker).token.scopes = '*'; }),
    'a duplicate task': edit((d) => { d.tasks.push({ task_id: 'root', parent_id: null, spawn_depth: 0 }); }),
    'a task whose parent is missing': edit((d) => { d.tasks.push({ task_id: 'orphan', parent_id: 'ghost', spawn_depth: 1 }); }),
    'a child at the wrong depth': edit((d) => { d.tasks.find((t) => t.task_id === 'child').spawn_depth = 2; }),
    'a root at depth 1': edit((d) => { d.tasks.find((t) => t.task_id === 'root').spawn_depth = 1; }),
    'a parent cycle': edit((d) => {
      d.tasks.push({ task_id: 'x', parent_id: 'y', spawn_depth: 1 }, { task_id: 'y', parent_id: 'x', spawn_depth: 2 });
    }),
    'a self-parented task': edit((d) => { d.tasks.push({ task_id: 's', parent_id: 's', spawn_depth: 0 }); }),
    'an empty task id': edit((d) => { d.tasks.push({ task_id: '', parent_id: null, spawn_depth: 0 }); }),
    'a negative depth': edit((d) => { d.tasks.find((t) => t.task_id === 'root').spawn_depth = -1; }),
    'a fractional depth': edit((d) => { d.tasks.find((t) => t.task_id === 'child').spawn_depth = 1.5; }),
    'a task key unknown': edit((d) => { d.tasks[0].depth = 0; }),
  };

  for (const [name, corrupt] of Object.entries(corruptions)) {
    it(`${name}: ERR_SNAPSHOT_INVALID, nothing created (sealed or opted out of the seal)`, () => {
      const before = stateOf(world.store);
      for (const allowUnsealed of [false, true]) {
        let created;
        throwsCap(() => {
          created = TokenStore.restore(corrupt, { secret: SECRET, now: world.clock.now, allowUnsealed });
        }, 'ERR_SNAPSHOT_INVALID');
        assert.equal(created, undefined);
      }
      assert.equal(stateOf(world.store), before);
    });
  }

  it('the uncorrupted text still restores, and so does its unsealed body when opted in', () => {
    const restored = TokenStore.restore(text, { secret: SECRET, now: world.clock.now });
    assert.equal(restored.size, world.store.size);
    const body = JSON.stringify(good());
    throwsCap(() => TokenStore.restore(body, { secret: SECRET }), 'ERR_SNAPSHOT_INVALID');
    const opted = TokenStore.restore(body, { secret: SECRET, now: world.clock.now, allowUnsealed: true });
    assert.equal(opted.size, world.store.size);
  });
});

// restore() writes the text into the module's memory with encodeInto, one
// byte per unit first, growing the stage for anything beyond ASCII.
describe('restore() of any text', () => {
  it('non-ASCII ids round-trip, wherever they fall in the text', () => {
    for (const agent of ['é', '😀'.repeat(20), 'ü-agent']) {
      const { store } = makeStore();
      const op = store.attachOperator(`op-${agent}`);
      store.startTask(op.bearer, { taskId: `tâche-${agent}` });
      const w = store.dispatchAttempt(op.bearer, `tâche-${agent}`, { maxUses: 3 });
      store.mint(agent, 'observer', { scopes: ['lire', '读'] });
      store.verify(w.bearer, 'fetch_prompt', `tâche-${agent}`);
      const text = store.snapshot();
      const restored = TokenStore.restore(text, { secret: SECRET, now: makeClock().now });
      assert.equal(withoutSeal(restored.snapshot()), withoutSeal(text));
      assert.equal(restored.verify(w.bearer, 'fetch_prompt', `tâche-${agent}`).usesLeft, 1);
    }
  });

  it('odd strings are invalid snapshots, never a trap', () => {
    const { store } = makeStore();
    for (const text of ['', ' ', '\uD800', `{"version":1,"format":"v2","records":[],"tasks":[]}\uD800`, '€'.repeat(1000), 'null']) {
      throwsCap(() => TokenStore.restore(text, { secret: SECRET }), 'ERR_SNAPSHOT_INVALID');
    }
    for (const text of [undefined, null, 42, {}, new String('{}')]) {
      throwsCap(() => TokenStore.restore(text, { secret: SECRET }), 'ERR_INVALID_ARGUMENT');
    }
    assert.equal(TokenStore.restore(store.snapshot(), { secret: SECRET }).size, 0);
  });
});
