// No object of the package shows the secret: util.inspect (every option that
// reveals more), JSON.stringify, a walk of own properties (Reflect.ownKeys,
// getters included, prototypes too), and structuredClone (refused, or a
// clone without the secret). Checked as hex, base64, base64url, latin1 and
// the raw bytes, for every public object: TokenStore, CapTokenRecord,
// DurableTokenStore, a thrown CapTokenError, minted/grant/decision objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import util from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TokenStore, CapTokenRecord, CapTokenError } from 'captoken';
import { DurableTokenStore } from 'captoken/node';

const secret = randomBytes(48);
const needles = [
  secret.toString('hex'),
  secret.toString('hex').toUpperCase(),
  secret.toString('base64'),
  secret.toString('base64url'),
  secret.toString('latin1'),
  // The bytes as decimal lists: util.inspect of a Uint8Array (whitespace
  // is normalised below), JSON of a Buffer, JSON of a Uint8Array.
  Array.from(secret.subarray(0, 12)).join(', '),
  Array.from(secret.subarray(0, 12)).join(','),
  Array.from(secret.subarray(0, 4), (b, i) => `"${i}":${b}`).join(','),
  // util.inspect of a Buffer: `<Buffer 3a 5f ...>`.
  Array.from(secret.subarray(0, 12), (b) => b.toString(16).padStart(2, '0')).join(' '),
];

function assertNoSecret(text, where) {
  const flat = String(text).replace(/\s+/g, ' ');
  for (const needle of needles) {
    assert.ok(!flat.includes(needle), `${where} shows the secret`);
  }
}

/** Every value reachable through own properties (getters run) and prototypes. */
function walk(root) {
  const seen = new Set();
  const found = [];
  const visit = (value, depth) => {
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) {
      found.push(value);
      return;
    }
    if (seen.has(value) || depth > 8) return;
    seen.add(value);
    if (ArrayBuffer.isView(value)) found.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('latin1'));
    if (value instanceof ArrayBuffer) found.push(Buffer.from(value).toString('latin1'));
    for (const key of Reflect.ownKeys(value)) {
      found.push(String(key));
      let v;
      try {
        v = Reflect.get(value, key, value);
      } catch {
        continue; // a guarded getter on a prototype, called on the prototype
      }
      visit(v, depth + 1);
    }
    visit(Object.getPrototypeOf(value), depth + 1);
  };
  visit(root, 0);
  return found;
}

function check(value, where) {
  for (const options of [{}, { showHidden: true, depth: Infinity, getters: true }]) {
    assertNoSecret(util.inspect(value, options), `${where}: util.inspect ${JSON.stringify(options)}`);
  }
  let json;
  try {
    json = JSON.stringify(value);
  } catch {
    json = '';
  }
  assertNoSecret(json ?? '', `${where}: JSON.stringify`);
  for (const found of walk(value)) assertNoSecret(found, `${where}: property walk`);
  let clone;
  try {
    clone = structuredClone(value);
  } catch {
    clone = undefined; // refused: nothing copied
  }
  assertNoSecret(util.inspect(clone, { showHidden: true, depth: Infinity }), `${where}: structuredClone`);
}

test('no public object of the package shows a byte of the secret', () => {
  const dir = mkdtempSync(join(tmpdir(), 'captoken-leak-'));
  try {
    const store = new TokenStore({ secret, journal: true });
    const op = store.attachOperator('op');
    store.startTask(op.bearer, { taskId: 't' });
    const minted = store.dispatchAttempt(op.bearer, 't', { maxUses: 3 });
    const grant = store.verify(minted.bearer, 'fetch_prompt', 't');
    const allowed = store.check(minted.bearer, 'fetch_prompt', 't');
    const denied = store.check(minted.bearer, 'fetch_prompt', 'other');
    const record = store.record(minted.fingerprint);
    const standalone = CapTokenRecord.fromToken(minted.token);
    let thrown;
    try {
      store.verify(minted.bearer, 'answer_query', 't');
    } catch (error) {
      thrown = error;
    }
    assert.ok(thrown instanceof CapTokenError);
    let restoreError;
    try {
      TokenStore.restore('{}', { secret });
    } catch (error) {
      restoreError = error;
    }
    const durable = DurableTokenStore.open(dir, { secret });
    const durableMinted = durable.attachOperator('dop');
    let lockError;
    try {
      DurableTokenStore.open(dir, { secret });
    } catch (error) {
      lockError = error;
    }
    assert.equal(lockError?.code, 'ERR_STORE_UNAVAILABLE');
    const objects = {
      store, op, minted, grant, allowed, denied, record, standalone, thrown, restoreError, lockError,
      durable, durableMinted, tasks: store.tasks(), records: store.records(),
      snapshot: store.snapshot(), journal: store.takeJournal(), durableSnapshot: durable.snapshot(),
    };
    for (const [where, value] of Object.entries(objects)) check(value, where);
    durable.close();
    check(durable, 'closed durable store');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
