// `require('captoken')` and `import('captoken')` (self-reference through
// package.json `exports`) give the same module instance and classes, so
// `instanceof CapTokenError` holds for errors thrown through either.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as staticEsm from 'captoken';

const require = createRequire(import.meta.url);
const root = fileURLToPath(new URL('../../', import.meta.url));
const secret = new Uint8Array(32).fill(11);

describe('ESM and CommonJS entries', () => {
  it('export exactly TokenStore, CapTokenRecord and CapTokenError', async () => {
    const cjs = require('captoken');
    const esm = await import('captoken');
    assert.deepEqual(Object.keys(cjs).sort(), ['CapTokenError', 'CapTokenRecord', 'TokenStore']);
    assert.deepEqual(Object.keys(esm).sort(), ['CapTokenError', 'CapTokenRecord', 'TokenStore']);
    assert.equal(esm.default, undefined);
    for (const name of ['TokenStore', 'CapTokenRecord', 'CapTokenError']) {
      assert.equal(typeof cjs[name], 'function', name);
    }
  });

  it('give the same classes', async () => {
    const cjs = require('captoken');
    const esm = await import('captoken');
    assert.equal(cjs.TokenStore, esm.TokenStore);
    assert.equal(cjs.CapTokenRecord, esm.CapTokenRecord);
    assert.equal(cjs.CapTokenError, esm.CapTokenError);
    assert.equal(staticEsm.CapTokenError, esm.CapTokenError);
    assert.equal(require('captoken'), cjs, 'one CommonJS instance');
  });

  it('errors thrown through either are instanceof both CapTokenError bindings', async () => {
    const cjs = require('captoken');
    const esm = await import('captoken');
    const fromCjs = new cjs.TokenStore({ secret });
    const fromEsm = new esm.TokenStore({ secret });
    const errors = [];
    for (const call of [
      () => fromCjs.verify('nope', 'heartbeat'),
      () => fromEsm.verify('nope', 'heartbeat'),
      () => new cjs.TokenStore({ secret: new Uint8Array(3) }),
      () => new esm.TokenStore(Symbol('x')),
      () => cjs.CapTokenRecord.fromJSON('{'),
      () => esm.TokenStore.restore('x', { secret }),
      () => fromEsm.record(5),
    ]) {
      try {
        call();
        assert.fail('expected a throw');
      } catch (e) {
        errors.push(e);
      }
    }
    for (const e of errors) {
      assert.ok(e instanceof cjs.CapTokenError, e.message);
      assert.ok(e instanceof esm.CapTokenError, e.message);
      assert.ok(e instanceof staticEsm.CapTokenError, e.message);
      assert.ok(e instanceof Error);
      assert.equal(e.name, 'CapTokenError');
      assert.match(e.code, /^ERR_[A-Z_]+$/);
    }
  });

  it('objects cross between the two: a store from one, tokens checked by the other', async () => {
    const cjs = require('captoken');
    const esm = await import('captoken');
    const a = new cjs.TokenStore({ secret });
    const op = a.attachOperator('op');
    assert.ok(a instanceof esm.TokenStore);
    const rec = a.record(op.fingerprint);
    assert.ok(rec instanceof esm.CapTokenRecord);
    const b = new esm.TokenStore({ secret });
    assert.equal(b.adopt(op.bearer), op.fingerprint);
  });

  it('package.json is exported, and subpaths outside `exports` are not', async () => {
    assert.equal(require('captoken/package.json').name, 'captoken');
    assert.throws(() => require('captoken/js/index.cjs'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
    await assert.rejects(import('captoken/pkg/node/captoken.js'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
  });

  it('a fresh process gets the same result from require and import', () => {
    const script = `
      const cjs = require('captoken');
      import('captoken').then((esm) => {
        const s = new cjs.TokenStore({ secret: new Uint8Array(32).fill(1) });
        let same = false;
        try { s.verify('x', 'heartbeat'); } catch (e) { same = e instanceof esm.CapTokenError; }
        console.log(JSON.stringify({ same, classes: cjs.TokenStore === esm.TokenStore }));
      });`;
    const out = execFileSync(process.execPath, ['--input-type=commonjs', '-e', script], { cwd: root, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), { same: true, classes: true });
  });
});

describe('the browser entry, loaded in Node', () => {
  it('initialises from the wasm bytes and throws its own CapTokenError', async () => {
    const web = await import('captoken/web');
    assert.equal(typeof web.default, 'function');
    const bytes = await readFile(new URL('../../pkg/web/captoken_bg.wasm', import.meta.url));
    await web.default(bytes);
    await web.default(bytes); // a second init is a no-op
    const s = new web.TokenStore({ secret, now: () => 1764150000 });
    const op = s.attachOperator('op');
    assert.equal(s.verify(op.bearer, 'heartbeat').role, 'operator');
    assert.throws(() => s.verify('x', 'heartbeat'), (e) => e instanceof web.CapTokenError && e.code === 'ERR_MALFORMED_TOKEN');
    assert.throws(() => s.mint(Symbol('x'), 'worker'), (e) => e instanceof web.CapTokenError && e.code === 'ERR_INVALID_ARGUMENT');
    // the web flavour and the Node flavour mint interoperable tokens
    const node = new staticEsm.TokenStore({ secret, now: () => 1764150000 });
    assert.equal(node.adopt(op.bearer), op.fingerprint);
    const rec = web.CapTokenRecord.fromToken(op.token);
    assert.equal(rec.fingerprint, op.fingerprint);
  });
});
