// A pure-JavaScript token store with captoken's semantics (v2 signing format,
// fingerprint-keyed records, the same seven verification steps), as a fair
// peer for the benchmark. `crypto` supplies hmacSha256(keyState, bytes) and
// sha256Hex(text); see node-crypto.js and noble.js beside this file.

const enc = new TextEncoder();
const DOMAIN = enc.encode('captoken-v2');
const ROLE_CODE = { operator: 0, worker: 1, observer: 2, senior: 3 };
const OWNERSHIP = new Set(['fetch_prompt', 'post_result', 'read_task_state', 'cancel_task', 'poll_task']);
const GATE = {
  operator: new Set(['start_task', 'dispatch_attempt', 'mint_worker_token', 'read_task_state', 'cancel_task',
    'query_senior', 'mark_pass', 'mark_blocked', 'attach_session', 'detach_session', 'heartbeat', 'poll_task']),
  worker: new Set(['fetch_prompt', 'fetch_data', 'post_result', 'verify_token', 'emit_output', 'start_task',
    'dispatch_attempt', 'read_task_state', 'poll_task', 'cancel_task']),
  observer: new Set(['subscribe_events', 'read_trace', 'read_task_state']),
  senior: new Set(['answer_query', 'override_verdict', 'pause_loop', 'resume_loop', 'inject_directive']),
};

export class PeerError extends Error {
  constructor(code) {
    super(code);
    this.code = code;
  }
}

function signingBytes(t) {
  const parts = [DOMAIN];
  const u32 = (n) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n);
    return b;
  };
  const u64 = (n) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(n));
    return b;
  };
  const str = (s) => {
    const bytes = enc.encode(s);
    parts.push(u32(bytes.length), bytes);
  };
  str(t.agent_id);
  parts.push(Uint8Array.of(ROLE_CODE[t.role]));
  parts.push(u32(t.scopes.length));
  for (const s of t.scopes) str(s);
  parts.push(u64(t.issued_at), u64(t.expire_at));
  parts.push(t.max_uses === null ? Uint8Array.of(0) : Uint8Array.of(1, ...u32(t.max_uses)));
  str(t.nonce);
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export class PeerStore {
  constructor(crypto, secret, now = () => Math.floor(Date.now() / 1000)) {
    this.crypto = crypto;
    this.key = crypto.key(secret);
    this.now = now;
    this.records = new Map();
  }

  mint(agentId, role, { maxUses = null, taskId = null, ttlSecs = 1800 } = {}) {
    const now = this.now();
    const token = {
      v: 2, agent_id: agentId, role, scopes: ['*'], issued_at: now, expire_at: now + ttlSecs,
      max_uses: maxUses, nonce: this.crypto.randomHex(16), sig_hex: '',
    };
    token.sig_hex = this.crypto.hmacHex(this.key, signingBytes(token));
    const fingerprint = this.crypto.sha256Hex(token.nonce);
    const { nonce, ...kept } = token;
    this.records.set(fingerprint, { token: kept, uses_left: maxUses, revoked: false, task_id: taskId });
    return { bearer: Buffer.from(JSON.stringify(token)).toString('base64url'), fingerprint };
  }

  decide(bearer, verb, taskId) {
    if (typeof bearer !== 'string' || bearer.length > 8192) throw new PeerError('ERR_MALFORMED_TOKEN');
    let token;
    try {
      token = JSON.parse(Buffer.from(bearer, 'base64url').toString('utf8'));
    } catch {
      throw new PeerError('ERR_MALFORMED_TOKEN');
    }
    if (!token || typeof token.nonce !== 'string' || typeof token.sig_hex !== 'string' || token.v !== 2) {
      throw new PeerError('ERR_MALFORMED_TOKEN');
    }
    if (!this.crypto.hmacEqual(this.key, signingBytes(token), token.sig_hex)) throw new PeerError('ERR_BAD_SIGNATURE');
    if (token.role !== 'operator' && this.now() >= token.expire_at) throw new PeerError('ERR_TOKEN_EXPIRED');
    if (!GATE[token.role]?.has(verb)) throw new PeerError('ERR_ROLE_VIOLATION');
    const fingerprint = this.crypto.sha256Hex(token.nonce);
    const record = this.records.get(fingerprint);
    if (!record) throw new PeerError('ERR_TOKEN_NOT_FOUND');
    if (token.role === 'worker' && OWNERSHIP.has(verb) && (record.task_id === null || record.task_id !== taskId)) {
      throw new PeerError('ERR_TOKEN_TASK_MISMATCH');
    }
    if (record.revoked) throw new PeerError('ERR_TOKEN_REVOKED');
    if (record.uses_left === 0) throw new PeerError('ERR_TOKEN_USES_EXHAUSTED');
    return { fingerprint, token, record };
  }

  verify(bearer, verb, taskId) {
    const { fingerprint, token, record } = this.decide(bearer, verb, taskId);
    if (record.uses_left !== null) record.uses_left -= 1;
    return { fingerprint, agentId: token.agent_id, role: token.role, scopes: token.scopes,
      taskId: record.task_id, usesLeft: record.uses_left };
  }

  check(bearer, verb, taskId) {
    try {
      const { fingerprint, token, record } = this.decide(bearer, verb, taskId);
      return { allowed: true, fingerprint, agentId: token.agent_id, role: token.role, scopes: token.scopes,
        taskId: record.task_id, usesLeft: record.uses_left };
    } catch (e) {
      return { allowed: false, code: e.code, message: e.message };
    }
  }

  snapshot() {
    const records = [];
    for (const [fingerprint, r] of this.records) records.push({ fingerprint, ...r });
    return JSON.stringify({ version: 1, format: 'v2', records, tasks: [] });
  }

  static restore(crypto, secret, text) {
    const store = new PeerStore(crypto, secret);
    const doc = JSON.parse(text);
    for (const { fingerprint, ...r } of doc.records) store.records.set(fingerprint, r);
    return store;
  }
}

/** A record's consume, as the peer of CapTokenRecord.consume(). */
export function consume(record) {
  if (record.revoked) throw new PeerError('ERR_TOKEN_REVOKED');
  if (record.uses_left === 0) throw new PeerError('ERR_TOKEN_USES_EXHAUSTED');
  if (record.uses_left !== null) record.uses_left -= 1;
}
