// Shared helpers for the Node test suite (not a test file itself).
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { TokenStore, CapTokenRecord, CapTokenError } from 'captoken';

export { TokenStore, CapTokenRecord, CapTokenError };

/** The protocol's test-vector secret: the 32 bytes 0x01..0x20. */
export const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
/** Another secret, for "signed elsewhere" cases. */
export const OTHER_SECRET = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);
/** A fixed start time (unix seconds): the vectors' issued_at. */
export const T0 = 1764150000;

export const ROLES = ['operator', 'worker', 'observer', 'senior'];
export const VERBS = [
  'start_task', 'dispatch_attempt', 'mint_worker_token', 'read_task_state',
  'cancel_task', 'query_senior', 'mark_pass', 'mark_blocked', 'attach_session',
  'detach_session', 'heartbeat', 'poll_task', 'fetch_prompt', 'fetch_data',
  'post_result', 'verify_token', 'emit_output', 'subscribe_events', 'read_trace',
  'answer_query', 'override_verdict', 'pause_loop', 'resume_loop', 'inject_directive',
];
/** docs/protocol.md's default gate table. */
export const DEFAULT_GATE = {
  operator: ['start_task', 'dispatch_attempt', 'mint_worker_token', 'read_task_state',
    'cancel_task', 'query_senior', 'mark_pass', 'mark_blocked', 'attach_session',
    'detach_session', 'heartbeat', 'poll_task'],
  worker: ['fetch_prompt', 'fetch_data', 'post_result', 'verify_token', 'emit_output',
    'start_task', 'dispatch_attempt', 'read_task_state', 'poll_task', 'cancel_task'],
  observer: ['subscribe_events', 'read_trace', 'read_task_state'],
  senior: ['answer_query', 'override_verdict', 'pause_loop', 'resume_loop', 'inject_directive'],
};
/** Worker verbs that must name the token's bound task. */
export const OWNERSHIP_VERBS = ['fetch_prompt', 'post_result', 'emit_output', 'read_task_state', 'cancel_task', 'poll_task'];

export const ERROR_CODES = [
  'ERR_MALFORMED_TOKEN', 'ERR_BAD_SIGNATURE', 'ERR_TOKEN_EXPIRED', 'ERR_ROLE_VIOLATION',
  'ERR_TOKEN_NOT_FOUND', 'ERR_TOKEN_TASK_MISMATCH', 'ERR_TOKEN_REVOKED',
  'ERR_TOKEN_USES_EXHAUSTED', 'ERR_SPAWN_DEPTH_EXCEEDED', 'ERR_TASK_NOT_FOUND',
  'ERR_INVALID_ARGUMENT', 'ERR_SNAPSHOT_INVALID', 'ERR_LIMIT_EXCEEDED', 'ERR_STORE_UNAVAILABLE',
];

/** A settable clock: `clock.t` is what the store's `now` callback returns. */
export function makeClock(start = T0) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

/** A store on a settable clock (secret = SECRET unless given). */
export function makeStore(options = {}) {
  const clock = makeClock(options.start ?? T0);
  const { start, ...rest } = options;
  const store = new TokenStore({ secret: SECRET, now: clock.now, ...rest });
  return { store, clock };
}

/**
 * A store with some state in it: an unlimited Operator, a limited Operator,
 * a root task with a child, limited and unlimited Workers, an Observer, a
 * Senior, a revoked and an exhausted token.
 */
export function makeWorld(options = {}) {
  const { store, clock } = makeStore(options);
  const op = store.attachOperator('op-1');
  const opLimited = store.attachOperator('op-2', { maxUses: 5 });
  const root = store.startTask(op.bearer, { taskId: 'root' });
  const worker = store.dispatchAttempt(op.bearer, 'root', { maxUses: 10 });
  // A Worker's children get ids made by the store; the Operator names this one.
  const child = store.startTask(op.bearer, { parentId: 'root', taskId: 'child' });
  const childWorker = store.dispatchAttempt(op.bearer, 'child');
  const observer = store.mint('obs-1', 'observer', { maxUses: 3 });
  const senior = store.mint('sen-1', 'senior');
  const revoked = store.dispatchAttempt(op.bearer, 'root', { maxUses: 2 });
  store.revoke(revoked.fingerprint);
  const exhausted = store.dispatchAttempt(op.bearer, 'root', { maxUses: 1 });
  store.verify(exhausted.bearer, 'fetch_data');
  return { store, clock, op, opLimited, root, worker, child, childWorker, observer, senior, revoked, exhausted };
}

/** URL-safe base64 without padding of a value's JSON (or of a string as is). */
export function b64url(value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** The token a bearer encodes. */
export function decodeBearer(bearer) {
  return JSON.parse(Buffer.from(bearer, 'base64url').toString('utf8'));
}

/** The fingerprint of a nonce: hex SHA-256 of its text. */
export function fingerprintOf(nonce) {
  return createHash('sha256').update(nonce, 'utf8').digest('hex');
}

const ROLE_CAPS = { operator: 'Operator', worker: 'Worker', observer: 'Observer', senior: 'Senior' };
const ROLE_CODES = { operator: 0, worker: 1, observer: 2, senior: 3 };

/** The mlua-swarm signing text of a token. */
export function mluaSigningText(t) {
  const maxUses = t.max_uses === null ? 'None' : `Some(${t.max_uses})`;
  return `${t.agent_id}|${ROLE_CAPS[t.role]}|${t.scopes.join(',')}|${t.issued_at}|${t.expire_at}|${maxUses}|${t.nonce}`;
}

/** The v2 signing bytes of a token, built from docs/protocol.md independently of the module. */
export function v2SigningBytes(t) {
  const parts = [Buffer.from('captoken-v2', 'ascii')];
  const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
  const u64 = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };
  const str = (s) => { const b = Buffer.from(s, 'utf8'); parts.push(u32(b.length), b); };
  str(t.agent_id);
  parts.push(Buffer.from([ROLE_CODES[t.role]]));
  parts.push(u32(t.scopes.length));
  for (const s of t.scopes) str(s);
  parts.push(u64(t.issued_at), u64(t.expire_at));
  if (t.max_uses === null) parts.push(Buffer.from([0]));
  else parts.push(Buffer.from([1]), u32(t.max_uses));
  str(t.nonce);
  return Buffer.concat(parts);
}

export function hmacHex(secret, data) {
  return createHmac('sha256', Buffer.from(secret)).update(data).digest('hex');
}

/** A token's fields in their canonical order (docs/protocol.md "Token"). */
export const TOKEN_FIELDS = ['v', 'agent_id', 'role', 'scopes', 'issued_at', 'expire_at', 'max_uses', 'nonce', 'sig_hex'];

/**
 * The same token object with its keys in the canonical order (`v` first when
 * present, any other key after): a bearer is the base64url of exactly that
 * JSON, so a test that edits a field keeps every other part of the spelling.
 */
export function canonical(token) {
  const out = {};
  for (const key of TOKEN_FIELDS) if (key in token && token[key] !== undefined) out[key] = token[key];
  for (const key of Object.keys(token)) if (!(key in out) && token[key] !== undefined) out[key] = token[key];
  return out;
}

/** Sign a token object in a format, with a secret (what a peer engine would do). */
export function signToken(token, format, secret = SECRET) {
  const t = { ...token };
  if (format === 'v2') {
    t.v = 2;
    t.sig_hex = hmacHex(secret, v2SigningBytes(t));
  } else {
    delete t.v;
    t.sig_hex = hmacHex(secret, mluaSigningText(t));
  }
  return canonical(t);
}

/** Re-encode a token object as a bearer (key order kept). */
export function toBearer(token) {
  return b64url(token);
}

/**
 * Run `fn`, expect a CapTokenError with `code` (or one of `code` when an
 * array) and the given detail properties; return the error.
 */
export function throwsCap(fn, code, details = {}) {
  let error;
  let threw = false;
  try {
    fn();
  } catch (e) {
    threw = true;
    error = e;
  }
  assert.ok(threw, `expected a CapTokenError ${code}, but nothing was thrown`);
  assert.ok(
    error instanceof CapTokenError,
    `expected a CapTokenError, got ${error?.constructor?.name}: ${error?.message}`,
  );
  assert.ok(error instanceof Error);
  assert.equal(error.name, 'CapTokenError');
  const codes = Array.isArray(code) ? code : [code];
  assert.ok(codes.includes(error.code), `expected ${codes.join('|')}, got ${error.code}: ${error.message}`);
  assert.equal(typeof error.message, 'string');
  assert.ok(error.message.length > 0);
  for (const [key, value] of Object.entries(details)) {
    assert.deepEqual(error[key], value, `detail ${key} of ${error.code}`);
  }
  return error;
}

/** Assert that no nonce of the given minted tokens appears in `text`. */
export function assertNoNonce(text, minted) {
  for (const m of minted) {
    assert.ok(!String(text).includes(m.token.nonce), 'a nonce leaked');
  }
  assert.ok(!String(text).includes(Buffer.from(SECRET).toString('hex')), 'the secret leaked');
}

/** One MiB of text. */
export const HUGE = 'x'.repeat(1 << 20);

/** The wrong-typed or garbage values every argument is probed with. */
export const BAD_VALUES = [
  ['undefined', undefined],
  ['null', null],
  ['number', 42],
  ['NaN', NaN],
  ['-1', -1],
  ['1.5', 1.5],
  ['2**53', 2 ** 53],
  ['BigInt', 10n],
  ['Symbol', Symbol('bad')],
  ['object', { a: 1 }],
  ['array', ['a']],
  ['function', () => 'f'],
  ['1 MiB string', HUGE],
  ['lone surrogate', '\uD800'],
];

/**
 * Snapshot text without its seal (the 64 hex characters at 48..112): each
 * snapshot's seal has a fresh nonce, so equal states give equal text only
 * without it.
 */
export function withoutSeal(text) {
  return `${text.slice(0, 48)}${'0'.repeat(64)}${text.slice(112)}`;
}

/** The store's state as text, for "nothing changed" checks. */
export function stateOf(store) {
  return withoutSeal(store.snapshot());
}
