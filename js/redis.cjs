'use strict';
// A TokenStore whose records and tasks live in Redis: `require('captoken/redis')`.
//
// The process runs the stateless steps (decode, signature, expiry, gate) and
// signs new tokens; Redis runs steps 5 to 7 and every write in one Lua script
// per call (js/redis/*.lua; verify and check calls made in the same turn
// share one), so every read-and-write is atomic across all the processes
// sharing a namespace. Keys, values and commands hold no nonce, no bearer and
// no secret: a record is keyed by fingerprint and holds the digest its token
// is compared by (see src/persist/remote.rs).
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
// The process half, guarded like TokenStore and with its options objects
// copied to plain data first (js/args.js, through js/common.js).
const { TokenStore, CapTokenRecord, CapTokenError, __RemoteCore } = require('./index.cjs');
const { Admitted } = require('./admitted.cjs');
const { grantOf } = require('./fast_path.js');

const NAMESPACE = /^[A-Za-z0-9._:-]{1,64}$/;
/** Default for `timeoutMs`: how long one call waits for Redis. */
const DEFAULT_TIMEOUT_MS = 2000;
const BATCH = 500;
/** The most verify and check calls one script call decides. */
const MAX_BATCH = 64;
/**
 * The most calls of one turn sent at once (the rest follow a macrotask
 * later): two batches in flight keep both Redis and this process busy.
 */
const FIRST_BATCH = 32;

const invalid = (reason) => new CapTokenError(`invalid argument: ${reason}`, { code: 'ERR_INVALID_ARGUMENT' });
const unavailable = (reason) => new CapTokenError(`store unavailable: ${reason}`, { code: 'ERR_STORE_UNAVAILABLE' });

// ---- scripts ----------------------------------------------------------

// The scripts go to Redis as one library of Functions (Redis 7 and later):
// FCALL runs a function whose prelude ran once, at load (measured, a verify
// one at a time against EVALSHA of the same script with its prelude: 2 to
// 7 µs faster with client and server on two cores, about 1 µs on one).
// Where FUNCTION LOAD is refused (an older server, an ACL without it), the
// same bodies run as scripts (EVALSHA), each behind its own prelude.
const SCRIPT_DIR = path.join(__dirname, 'redis');
const PRELUDE = fs.readFileSync(path.join(SCRIPT_DIR, 'prelude.lua'), 'utf8');
const BODIES = Object.fromEntries(['verify', 'start', 'dispatch', 'mint', 'revoke', 'remint', 'purge', 'read', 'import']
  .map((name) => [name, fs.readFileSync(path.join(SCRIPT_DIR, `${name}.lua`), 'utf8')]));
const sha1 = (text) => crypto.createHash('sha1').update(text).digest('hex');
/**
 * A function that may write is refused outright on a server out of memory
 * (`maxmemory`, `noeviction`). These add no key (verify rewrites a field,
 * revoke sets one, purge deletes) and so run there too; read writes nothing.
 */
const FLAGS = { verify: ['allow-oom'], revoke: ['allow-oom'], purge: ['allow-oom'], read: ['no-writes'] };
const NAME = '\0name\0';
const UNNAMED = [
  `#!lua name=${NAME}`,
  PRELUDE,
  ...Object.entries(BODIES).map(([name, body]) => `redis.register_function{function_name = '${NAME}_${name}', `
    + `flags = {${(FLAGS[name] ?? []).map((f) => `'${f}'`).join(', ')}}, `
    + `callback = function(KEYS, ARGV)\nenter(KEYS, ARGV)\n${body}\nend}`),
].join('\n');
/**
 * The library's name carries a hash of all its text, so that two versions
 * of this package on one server never replace each other's functions.
 */
const LIBRARY_NAME = `captoken_${sha1(UNNAMED).slice(0, 16)}`;
const LIBRARY = UNNAMED.replaceAll(NAME, LIBRARY_NAME);
const SCRIPTS = {};
for (const [name, body] of Object.entries(BODIES)) {
  const source = `${PRELUDE}\nenter(KEYS, ARGV)\n${body}`;
  SCRIPTS[name] = { source, sha: sha1(source), fn: `${LIBRARY_NAME}_${name}` };
}

// ---- clients ----------------------------------------------------------

/**
 * One way to send a command, routed by `key`, for node-redis (client or
 * cluster) and ioredis (Redis or Cluster). Replies arrive as strings,
 * integers and arrays of them.
 */
function adapt(client) {
  if (client === null || typeof client !== 'object') {
    throw invalid('client must be a connected node-redis or ioredis client');
  }
  // ioredis: Redis and Cluster both have call() and a status string.
  if (typeof client.call === 'function' && typeof client.status === 'string') {
    // ioredis would prefix the keys a command names but not the ones the
    // scripts build from the namespace: a store's keys would straddle two
    // prefixes, and two prefixes would not keep two stores apart.
    if (client.options?.keyPrefix || client.options?.redisOptions?.keyPrefix) {
      throw invalid('an ioredis client with keyPrefix: give the store a namespace instead');
    }
    // With enableAutoPipelining, call() waits a turn of the event loop to
    // gather commands into one write. A script call is one command already
    // (verify's carries up to 64 calls), so it is written at once, through
    // ioredis's own createBuiltinCommand (its functions never auto-pipeline).
    // (Measured with a trivial FCALL one at a time: 29.6-33.7 µs a round
    // trip through a Pipeline of its own, as this store sent it before,
    // 20.7-24.4 µs so.)
    const direct = new Map(typeof client.createBuiltinCommand === 'function'
      ? ['FCALL', 'EVALSHA', 'EVAL'].map((name) => [name, client.createBuiltinCommand(name).string])
      : []);
    return {
      kind: client.isCluster ? 'ioredis-cluster' : 'ioredis',
      send: (_key, args) => {
        if (client.isCluster && (args[0] === 'SCRIPT' || args[0] === 'FUNCTION')) return onEveryMaster(client, args);
        const send = direct.get(args[0]);
        if (typeof send === 'function') return send.apply(client, args.slice(1));
        return client.call(...args);
      },
      // 'end': closed for good (quit, disconnect); any other status queues or sends.
      ready: () => client.status !== 'end',
    };
  }
  if (typeof client.sendCommand === 'function') {
    // node-redis: a cluster routes sendCommand by its first argument.
    const cluster = typeof client.getSlotRandomNode === 'function' && 'masters' in client;
    if (cluster) {
      return {
        kind: 'node-redis-cluster',
        send: (key, args) => client.sendCommand(key, false, args),
        ready: () => client.isOpen !== false,
      };
    }
    return {
      kind: 'node-redis',
      send: (_key, args) => client.sendCommand(args),
      ready: () => client.isOpen !== false,
    };
  }
  throw invalid('client must be a connected node-redis or ioredis client');
}

/** verify's Grant (`spend`) or check's allowed Decision (made as the package's own). */
function allowedResult(spend, p, taskId, usesLeft) {
  return grantOf(!spend, p.fingerprint, p.agentId, p.role, p.scopes, taskId, usesLeft);
}

/** Settle a batched call refused with `error`: verify rejects, check resolves a denial. */
function refuse(call, error) {
  if (call.spend) call.reject(error);
  else call.resolve(denied(error));
}

/** The refused Decision for a CapTokenError. */
function denied(error) {
  return { allowed: false, code: error.code, message: error.message };
}

/**
 * A command without a key (FUNCTION LOAD, SCRIPT LOAD) on every master of an
 * ioredis Cluster (it would send it to any one node), so that the namespace's
 * master has it; once the cluster is ready, since it knows no master before.
 */
async function onEveryMaster(cluster, args) {
  if (cluster.status !== 'ready') {
    await new Promise((resolve, reject) => {
      const closed = () => {
        cluster.off('ready', ready);
        reject(new Error('the cluster is closed'));
      };
      const ready = () => {
        cluster.off('end', closed);
        resolve();
      };
      if (cluster.status === 'end') {
        reject(new Error('the cluster is closed'));
        return;
      }
      cluster.once('ready', ready);
      cluster.once('end', closed);
      // A lazyConnect cluster connects at its first command: this is one.
      if (cluster.status === 'wait') cluster.connect().catch(() => {});
    });
  }
  const masters = cluster.nodes('master');
  if (masters.length === 0) throw new Error('no master of the cluster is reachable');
  const replies = await Promise.all(masters.map((node) => node.call(...args)));
  return replies[0];
}

/** An error's message, never throwing (a hostile getter or toString is an unknown error). */
function messageOf(error) {
  try {
    return String(error?.message ?? error);
  } catch {
    return 'unknown error';
  }
}

function describe(error) {
  const text = messageOf(error);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

// ---- the store ----------------------------------------------------------

function optional(value) {
  return value === undefined || value === null ? '' : `=${value}`;
}
function unoptional(value) {
  return value === '' || value === undefined || value === null ? null : String(value).slice(1);
}

/** How long Redis keeps a record: until one lifetime after expiry (remint may need it). */
function keyTtl(record, now) {
  if (record.role === 'operator') return 0;
  const lifetime = record.expireAt - record.issuedAt;
  return Math.max(60, record.expireAt + lifetime - now);
}

class RedisTokenStore {
  #client;
  #send;
  #coreRef;
  /** Steps 1 to 4, remembering the bearers already admitted (js/admitted.cjs). */
  #admitted;
  #config;
  #prefix;
  #key;
  #timeoutMs;
  /** No `now` option: the core's clock is the system's (see #now). */
  #systemClock;
  /** Whether the server took the library (FCALL) or runs scripts (EVALSHA). */
  #functions = false;
  #closed = false;

  /**
   * Open the store kept under `options.namespace` in Redis.
   * @param {unknown} client a connected node-redis or ioredis client (or cluster)
   * @param {object} options TokenStore's options plus `namespace` and `timeoutMs`
   */
  static async open(client, options) {
    const store = RedisTokenStore.#make(client, options);
    await store.#load();
    return store;
  }

  /**
   * Load the library on the namespace's server (or, where FUNCTION LOAD is
   * refused, every script into its script cache) before the first call, so
   * that calls run in the order they were made: a fallback would send its
   * EVAL after calls made later. Redis keeps functions in its AOF and RDB
   * files and sends them to replicas; after a FUNCTION FLUSH (or SCRIPT
   * FLUSH, or a restart, for scripts) the next call falls back once.
   */
  async #load() {
    try {
      await this.#loadLibrary();
      this.#functions = true;
      return;
    } catch {
      // Scripts decide the same, a few µs slower a call (a store stays with
      // them: a failure here for any reason costs speed, never a decision);
      // if the server cannot take them either, open() rejects.
    }
    await Promise.all(Object.values(SCRIPTS).map(({ source }) => this.#command(['SCRIPT', 'LOAD', source])));
  }

  /**
   * Load `TokenStore` snapshot text into an empty namespace. Text that does
   * not restore is ERR_SNAPSHOT_INVALID, a namespace holding keys
   * ERR_INVALID_ARGUMENT; nothing is written in either case.
   */
  static async import(client, snapshot, options) {
    const store = RedisTokenStore.#make(client, options);
    const { records, tasks } = store.#core.readSnapshot(snapshot);
    await store.#importRows(records, tasks);
    await store.#load();
    return store;
  }

  static #make(client, options) {
    // Read once, here, where a throwing getter or Proxy trap is caught; the
    // store's own options are then copied to plain data before the module
    // sees them (js/args.js, through the guarded __RemoteCore).
    let namespace;
    let timeoutMs;
    let storeOptions;
    try {
      if (options === null || typeof options !== 'object' || Array.isArray(options)) {
        throw invalid('options must be an object');
      }
      ({ namespace, timeoutMs = DEFAULT_TIMEOUT_MS, ...storeOptions } = options);
    } catch (error) {
      if (error instanceof CapTokenError) throw error;
      throw invalid('reading options failed');
    }
    if (typeof namespace !== 'string' || !NAMESPACE.test(namespace)) {
      throw invalid('namespace must be 1 to 64 characters of A-Z a-z 0-9 . _ : -');
    }
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 3_600_000) {
      throw invalid('timeoutMs must be a whole number of milliseconds from 1 to 3600000');
    }
    const adapted = adapt(client);
    const core = new __RemoteCore(storeOptions);
    return new RedisTokenStore(RedisTokenStore.#token, client, adapted, core, namespace, timeoutMs,
      storeOptions.now === undefined);
  }

  static #token = Symbol('RedisTokenStore');

  constructor(token, client, adapted, core, namespace, timeoutMs, systemClock) {
    if (token !== RedisTokenStore.#token) throw invalid('use RedisTokenStore.open(client, options)');
    this.#systemClock = systemClock;
    this.#client = client;
    this.#send = adapted;
    this.#coreRef = core;
    this.#admitted = new Admitted(core);
    this.#config = core.config();
    this.#prefix = `ct:{${namespace}}:`;
    this.#key = `${this.#prefix}R`;
    this.#timeoutMs = timeoutMs;
    Object.defineProperty(this, 'namespace', { value: namespace, enumerable: true });
  }

  /**
   * The process half; once the store is closed (it is freed then),
   * ERR_STORE_UNAVAILABLE, also for a call that was waiting on Redis.
   */
  get #core() {
    if (this.#closed) throw unavailable('the store is closed');
    return this.#coreRef;
  }

  /**
   * Commands waiting for Redis, oldest first (so also by deadline: the
   * timeout is the store's): one timer for them all, not one a command.
   */
  #inflight = new Set();
  #sweeper = null;

  /**
   * One command, within the timeout; any failure is ERR_STORE_UNAVAILABLE.
   * A script the server lost (NOSCRIPT, or a function not found) settles as
   * `onLost()` does, when given.
   */
  #command(args, onLost) {
    if (this.#closed) return Promise.reject(unavailable('the store is closed'));
    // Calls are sent in the order they were made: verify and check calls
    // still waiting for the end of the turn go first.
    if (this.#pending.length !== 0) this.#flush();
    let sent;
    try {
      if (!this.#send.ready()) throw new Error('the client is not connected');
      sent = Promise.resolve(this.#send.send(this.#key, args));
    } catch (error) {
      return Promise.reject(unavailable(describe(error)));
    }
    // One promise, settled by the reply or by the sweep past its deadline.
    return new Promise((resolve, reject) => {
      const entry = { deadline: performance.now() + this.#timeoutMs, reject };
      this.#track(entry);
      sent.then((reply) => {
        if (this.#untrack(entry)) resolve(reply);
      }, (error) => {
        // Past its deadline the call was refused already: a late reply
        // changes nothing and sends nothing (no fallback after a refusal).
        if (!this.#untrack(entry)) return;
        // A script missing from the server is the one error reply handled
        // (a server that lost FCALL, behind a proxy say, too); anything
        // else (connection lost, max retries, cluster down) means the
        // server did not answer.
        if (onLost && /^(NOSCRIPT|ERR Function not found|ERR unknown command .?FCALL)/i.test(messageOf(error))) {
          resolve(onLost());
        } else {
          reject(unavailable(describe(error)));
        }
      });
    });
  }

  /**
   * The sweep's timer keeps the process alive while a command is in flight
   * (as a timer a command did before), and not after: the last reply must
   * not hold a short script up to `timeoutMs` before it can exit.
   */
  #track(entry) {
    if (this.#inflight.size === 0) {
      if (this.#sweeper === null) this.#sweeper = setTimeout(this.#sweep, this.#timeoutMs);
      else this.#sweeper.ref();
    }
    this.#inflight.add(entry);
  }

  /** Whether the entry was still waiting (false: the sweep refused it). */
  #untrack(entry) {
    if (!this.#inflight.delete(entry)) return false;
    if (this.#inflight.size === 0) this.#sweeper?.unref();
    return true;
  }

  #sweep = () => {
    this.#sweeper = null;
    const now = performance.now();
    for (const entry of this.#inflight) {
      if (entry.deadline > now) {
        this.#sweeper = setTimeout(this.#sweep, Math.ceil(entry.deadline - now));
        return;
      }
      this.#inflight.delete(entry);
      entry.reject(unavailable(`Redis did not answer within ${this.#timeoutMs} ms`));
    }
  };

  #loadLibrary() {
    return this.#command(['FUNCTION', 'LOAD', 'REPLACE', LIBRARY]);
  }

  /** FCALL a function (or EVALSHA a script); when the server lost it, one EVAL instead. */
  #script(name, argv) {
    const script = SCRIPTS[name];
    const tail = ['1', this.#key, this.#prefix, ...argv.map(String)];
    return this.#command(this.#functions ? ['FCALL', script.fn, ...tail] : ['EVALSHA', script.sha, ...tail],
      () => this.#scriptLost(script, tail));
  }

  async #scriptLost(script, tail) {
    if (!this.#functions) return this.#command(['EVAL', script.source, ...tail]);
    // The library is gone (FUNCTION FLUSH, a server that lost its data):
    // it goes back in the same round trip, for the calls after this one.
    // If it cannot, the store runs scripts from now on (this EVAL cached
    // one; the others fall back once each), not three commands a call.
    const [reply] = await Promise.all([
      this.#command(['EVAL', script.source, ...tail]),
      this.#loadLibrary().catch(() => {
        this.#functions = false;
      }),
    ]);
    return reply;
  }

  /** The CapTokenError for a script's refusal `['E', code, a, b]`. */
  #refusal(reply, fingerprint) {
    const [, code, a, b] = reply;
    switch (code) {
      case 'ERR_TOKEN_TASK_MISMATCH':
        return this.#core.error(code, fingerprint, unoptional(a) ?? undefined, unoptional(b) ?? undefined);
      case 'ERR_TASK_NOT_FOUND':
        return this.#core.error(code, fingerprint, unoptional(a) ?? undefined, undefined);
      case 'ERR_SPAWN_DEPTH_EXCEEDED':
        return this.#core.error(code, fingerprint, Number(a), Number(b));
      case 'ERR_LIMIT_EXCEEDED':
        return this.#core.error(code, fingerprint, a, Number(b));
      default:
        return this.#core.error(code, fingerprint, a, b);
    }
  }

  #now() {
    if (this.#closed) throw unavailable('the store is closed');
    if (!this.#systemClock) return this.#core.now();
    // The core's own clock without a `now` option (JsClock in
    // src/bindings/args.rs), read here: Date.now() in whole seconds, and a
    // time it cannot hold fails closed as the far future. It saves a call
    // into the module on every decision (measured: 1.7-1.9 µs of a verify's
    // time before its command is sent); tests/redis/clock.test.js holds the
    // two to the same answers.
    const seconds = Date.now() / 1000;
    return seconds >= 0 && seconds <= Number.MAX_SAFE_INTEGER ? Math.floor(seconds) : Number.MAX_SAFE_INTEGER;
  }

  // ---- deciding --------------------------------------------------------

  // verify and check calls made in the same turn of the event loop share
  // one script call (js/redis/verify.lua runs them in order, each as if
  // alone): a call made alone is still one EVALSHA, and 64 calls in flight
  // are two commands of 32 instead of 64 commands. Steps 1 to 4 run at the
  // call, so a bearer that fails them never waits for the batch.
  #pending = [];

  /** Steps 1 to 4 now, then into the next batch; resolves to a Grant or a Decision. */
  #decide(bearer, verb, taskId, spend) {
    const now = this.#now();
    const p = this.#admitted.authorize(bearer, verb, taskId, now);
    // Packed as js/redis/verify.lua reads it; the task is counted in UTF-8
    // bytes, as the client sends it (authorize takes only well-formed text,
    // at most 64 Ki units: six digits hold its length).
    const task = p.taskArg;
    const head = `${spend ? '1' : '0'}${p.role === 'worker' ? 'w' : '-'}${p.kind}`;
    const arg = task === null
      ? `${head}-${p.fingerprint}${p.digest}000000`
      : `${head}=${p.fingerprint}${p.digest}${String(Buffer.byteLength(task)).padStart(6, '0')}${task}`;
    return new Promise((resolve, reject) => {
      if (this.#pending.push({ arg, p, spend, resolve, reject }) === 1) queueMicrotask(this.#endTurn);
    });
  }

  /**
   * The end of a turn: up to FIRST_BATCH calls go at once and the rest a
   * macrotask later, in their own command, so that Redis decides one batch
   * while this process settles the replies of the other and makes the next
   * calls (one batch of everything leaves one side idle while the other works).
   */
  #endTurn = () => {
    const calls = this.#pending;
    if (calls.length <= FIRST_BATCH) {
      this.#flush();
      return;
    }
    // Empty while the first batch is sent: #command sends what is pending first.
    this.#pending = [];
    this.#decideBatch(calls.slice(0, FIRST_BATCH));
    // Calls made before the next flush queue behind these, in order.
    this.#pending = calls.slice(FIRST_BATCH).concat(this.#pending);
    setImmediate(this.#flush);
  };

  /** Send every pending call now, in order, MAX_BATCH to a command. */
  #flush = () => {
    const calls = this.#pending;
    this.#pending = [];
    for (let i = 0; i < calls.length; i += MAX_BATCH) {
      this.#decideBatch(i === 0 && calls.length <= MAX_BATCH ? calls : calls.slice(i, i + MAX_BATCH));
    }
  };

  #decideBatch(calls) {
    // Every call settles, whatever goes wrong (settling twice does nothing).
    const fail = (error) => {
      const e = error instanceof CapTokenError ? error : unavailable(describe(error));
      for (const c of calls) refuse(c, e);
    };
    let replied;
    try {
      replied = this.#script('verify', [calls.length === 1 ? calls[0].arg : calls.map((c) => c.arg).join('')]);
    } catch (error) {
      fail(error);
      return;
    }
    replied.then((reply) => {
      try {
        this.#settleBatch(calls, reply);
      } catch (error) {
        fail(error);
      }
    }, fail);
  }

  /** Settle every call of a batch from the reply of js/redis/verify.lua. */
  #settleBatch(calls, reply) {
    // {entries, extra...}: see js/redis/verify.lua.
    const entries = Array.isArray(reply) && typeof reply[0] === 'string' ? reply[0].split(',') : [];
    let extras = 0;
    for (let i = 0; i < entries.length - 1; i++) {
      const entry = entries[i];
      if (entry.charCodeAt(0) === 33) extras += 2; // '!': a refusal's two details
      else if (entry.charCodeAt(entry.length - 1) === 42) extras += 1; // '*': a bound task
    }
    if (entries.length !== calls.length + 1 || extras !== reply.length - 1) {
      const e = unavailable('unexpected reply from Redis');
      for (const c of calls) refuse(c, e);
      return;
    }
    let extra = 1;
    for (let i = 0; i < calls.length; i++) {
      const c = calls[i];
      const entry = entries[i];
      // Every call settles, whatever happens to the others (a refusal
      // after close() is ERR_STORE_UNAVAILABLE: the core is gone).
      try {
        if (entry.charCodeAt(0) === 33) { // '!'
          const a = reply[extra++];
          const b = reply[extra++];
          refuse(c, this.#refusal(['E', entry.slice(1), a, b], c.p.fingerprint));
          continue;
        }
        const mark = entry.charCodeAt(entry.length - 1);
        const left = entry.slice(0, -1);
        let taskId;
        if (mark === 58) taskId = null; // ':'
        else if (mark === 61) taskId = c.p.taskArg; // '='
        else if (mark === 42) taskId = String(reply[extra++]); // '*'
        else throw unavailable('unexpected reply from Redis');
        c.resolve(allowedResult(c.spend, c.p, taskId, left === '-1' ? null : Number(left)));
      } catch (error) {
        refuse(c, error instanceof CapTokenError ? error : unavailable(describe(error)));
      }
    }
  }

  /** Decide a call and spend one use; resolves to a Grant. */
  verify(bearer, verb, taskId) {
    try {
      return this.#decide(bearer, verb, taskId, true);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Decide as verify would, spending nothing; never rejects. */
  check(bearer, verb, taskId) {
    try {
      return this.#decide(bearer, verb, taskId, false);
    } catch (error) {
      return Promise.resolve(denied(error instanceof CapTokenError ? error : unavailable(describe(error))));
    }
  }

  // ---- minting ---------------------------------------------------------

  async #insertMinted(prepared, now) {
    const record = prepared.record;
    const reply = await this.#script('mint', [
      prepared.deferred ? '1' : '0', this.#config.maxRecords,
      ...(record
        ? [record.fingerprint, record.digest, record.json, record.role,
            record.maxUses ?? -1, optional(record.taskId), record.expireAt, keyTtl(record, now)]
        : ['', '', '', '', '', '', '', '0']),
    ]);
    if (reply[0] === 'DEFER') throw prepared.deferred;
    if (reply[0] !== 'OK') throw this.#refusal(reply, record?.fingerprint);
    return prepared.minted;
  }

  /** Attach an Operator: mint its session token. */
  async attachOperator(agentId, options) {
    const now = this.#now();
    return this.#insertMinted(this.#core.mint(agentId, 'operator', options, now), now);
  }

  /** Mint a token of any role. */
  async mint(agentId, role, options) {
    const now = this.#now();
    return this.#insertMinted(this.#core.mint(agentId, role, options, now), now);
  }

  /** Record a token minted elsewhere with the same secret; resolves to its fingerprint. */
  async adopt(bearer, taskId) {
    const now = this.#now();
    const p = this.#core.adoptPrepare(bearer, taskId, now);
    const reply = await this.#script('mint', [
      '0', this.#config.maxRecords, p.fingerprint, p.digest, p.json, p.role,
      p.maxUses ?? -1, optional(p.taskId), p.expireAt, keyTtl(p, now),
    ]);
    if (reply[0] !== 'OK') throw this.#refusal(reply, p.fingerprint);
    return p.fingerprint;
  }

  /** startTask: a root task, or a child (for a Worker, of its bound task by default). */
  async startTask(bearer, options) {
    const now = this.#now();
    const p = this.#core.startPrepare(bearer, options, now);
    const explicit = p.taskId !== undefined;
    const c = this.#config;
    for (let attempt = 0; attempt < 16; attempt++) {
      const id = explicit ? p.taskId : `task-${crypto.randomBytes(6).toString('hex')}`;
      const reply = await this.#script('start', [
        p.fingerprint, p.digest, p.role, optional(p.taskArg), explicit ? 'explicit' : 'made', id,
        p.deferred ? '1' : '0', c.maxSpawnDepth, c.maxTasks, c.maxTasksPerTree,
        c.maxChildrenPerTask, c.maxMadePerWorkerToken,
      ]);
      if (reply[0] === 'RETRY') continue;
      if (reply[0] === 'DEFER') throw p.deferred;
      if (reply[0] !== 'OK') throw this.#refusal(reply, p.fingerprint);
      return { taskId: reply[1], parentId: unoptional(reply[2]), spawnDepth: Number(reply[3]) };
    }
    throw unavailable('could not make an unused task id');
  }

  /** dispatchAttempt: mint a Worker token bound to a tracked task. */
  async dispatchAttempt(bearer, taskId, options) {
    const now = this.#now();
    const p = this.#core.dispatchPrepare(bearer, taskId, options, now);
    const r = p.record;
    const reply = await this.#script('dispatch', [
      p.fingerprint, p.digest, p.role, optional(p.taskArg), p.stage, p.asked ?? -1,
      this.#config.maxRecords, this.#config.maxMadePerWorkerToken,
      ...(r ? [r.fingerprint, r.digest, r.json, r.maxUses ?? -1, r.expireAt, keyTtl(r, now), r.notAfter ?? '']
        : ['', '', '', '', '', '0', '']),
    ]);
    if (reply[0] === 'DEFER') throw p.deferred;
    if (reply[0] !== 'OK') throw this.#refusal(reply, p.fingerprint);
    return p.minted;
  }

  // ---- lifecycle ---------------------------------------------------------

  /** Revoke one token by fingerprint; true when it was live. */
  async revoke(fingerprint) {
    const fp = this.#core.fingerprintArg(fingerprint);
    this.#now();
    return (await this.#script('revoke', [fp])) === 1;
  }

  /** Revoke every token bound to a task or a task below it; resolves to how many. */
  async revokeTask(taskId) {
    const id = this.#core.taskIdArg(taskId);
    this.#now();
    return Number(await this.#script('revoke', ['', id]));
  }

  /**
   * Remint a late Worker token: read its record, sign in the process, and
   * write only when the record is unchanged (else read again).
   */
  async remint(bearer) {
    this.#now();
    const p = this.#core.remintPrepare(bearer);
    for (let attempt = 0; attempt < 16; attempt++) {
      const [d, u, x, t, a] = await this.#command(['HMGET', `${this.#prefix}r:${p.fingerprint}`, 'd', 'u', 'x', 't', 'a']);
      if (d === null || d === undefined) throw this.#core.error('ERR_TOKEN_NOT_FOUND', p.fingerprint);
      if (d !== p.digest) throw this.#core.error('ERR_BAD_SIGNATURE');
      if (x === '1') throw this.#core.error('ERR_TOKEN_REVOKED', p.fingerprint);
      if (u === '0') throw this.#core.error('ERR_TOKEN_USES_EXHAUSTED', p.fingerprint);
      // Signed at the core's clock, read once: at most one lifetime late,
      // and never past the expiry of the Worker that minted the token
      // (ERR_TOKEN_EXPIRED otherwise).
      const notAfter = a === null || a === undefined ? -1 : Number(a);
      const prepared = this.#core.remintMint(bearer, Number(u), t ?? undefined, notAfter);
      if (prepared.deferred) throw prepared.deferred;
      const r = prepared.record;
      const now = r.issuedAt;
      const reply = await this.#script('remint', [
        p.fingerprint, d, u, x, optional(t), this.#config.maxRecords,
        r.fingerprint, r.digest, r.json, r.maxUses ?? -1, optional(r.taskId), r.expireAt, keyTtl(r, now),
        r.notAfter ?? '',
      ]);
      if (reply[0] === 'RETRY') continue;
      if (reply[0] !== 'OK') throw this.#refusal(reply, p.fingerprint);
      return prepared.minted;
    }
    throw unavailable('the record kept changing');
  }

  /** Remove the records of expired tokens (Operator tokens stay); resolves to how many. */
  async purgeExpired() {
    const now = this.#now();
    let purged = 0;
    for await (const batch of this.#scan('R')) {
      purged += Number(await this.#script('purge', [now, ...batch]));
    }
    return purged;
  }

  // ---- reading ---------------------------------------------------------

  async *#scan(index) {
    let cursor = '0';
    do {
      const [next, members] = await this.#command(['SSCAN', `${this.#prefix}${index}`, cursor, 'COUNT', String(BATCH)]);
      cursor = String(next);
      if (members.length > 0) yield members.map(String);
    } while (cursor !== '0');
  }

  /** Records as `CapTokenRecord#toJSON()` gives them; `notAfter`: each with the minting Worker's expiry beside it. */
  static #recordRows(rows, forSnapshot = false) {
    const out = [];
    for (let i = 0; i + 6 < rows.length; i += 7) {
      const record = {
        token: JSON.parse(rows[i + 1]),
        uses_left: rows[i + 2] === '-1' ? null : Number(rows[i + 2]),
        revoked: rows[i + 3] === '1',
        task_id: unoptional(rows[i + 4]),
        fingerprint: rows[i],
      };
      const after = unoptional(rows[i + 5]);
      out.push(forSnapshot ? { record, notAfter: after === null ? null : Number(after), made: Number(rows[i + 6]) } : record);
    }
    return out;
  }

  /** One record as `CapTokenRecord#toJSON()` gives it, or undefined. */
  async record(fingerprint) {
    const fp = this.#core.fingerprintArg(fingerprint);
    this.#now();
    const rows = await this.#script('read', ['r', fp]);
    return RedisTokenStore.#recordRows(rows)[0];
  }

  /** One task, or undefined. */
  async task(taskId) {
    const id = this.#core.taskIdArg(taskId);
    this.#now();
    const rows = await this.#script('read', ['t', id]);
    if (rows.length < 3) return undefined;
    return { taskId: rows[0], parentId: unoptional(rows[1]), spawnDepth: Number(rows[2]) };
  }

  /** Every record, a batch at a time (SSCAN): an async iterable. */
  async *records() {
    this.#now();
    for await (const batch of this.#scan('R')) {
      yield* RedisTokenStore.#recordRows(await this.#script('read', ['r', ...batch]));
    }
  }

  /** Every record with its `notAfter` and `made` (for the snapshot). */
  async *#recordsWithCap() {
    this.#now();
    for await (const batch of this.#scan('R')) {
      yield* RedisTokenStore.#recordRows(await this.#script('read', ['r', ...batch]), true);
    }
  }

  /** Every tracked task, a batch at a time: an async iterable. */
  async *tasks() {
    this.#now();
    for await (const batch of this.#scan('T')) {
      const rows = await this.#script('read', ['t', ...batch]);
      for (let i = 0; i + 2 < rows.length; i += 3) {
        yield { taskId: rows[i], parentId: unoptional(rows[i + 1]), spawnDepth: Number(rows[i + 2]) };
      }
    }
  }

  /** How many records the namespace holds. */
  async size() {
    this.#now();
    return Number(await this.#command(['SCARD', this.#key]));
  }

  /** The whole namespace as snapshot text `TokenStore.restore` accepts. */
  async snapshot() {
    const records = [];
    for await (const { record: r, notAfter, made } of this.#recordsWithCap()) {
      const { nonce, ...token } = r.token;
      const row = { fingerprint: r.fingerprint, token, uses_left: r.uses_left, revoked: r.revoked, task_id: r.task_id };
      // Written only for tokens a Worker minted, and made when not 0, as
      // TokenStore writes them.
      if (notAfter !== null) row.not_after = notAfter;
      if (made > 0) row.made = made;
      records.push(JSON.stringify(row));
    }
    const tasks = [];
    for await (const t of this.tasks()) {
      tasks.push(JSON.stringify({ task_id: t.taskId, parent_id: t.parentId, spawn_depth: t.spawnDepth }));
    }
    // Assembled as unsealed text from what this process read, then restored
    // (allowing it unsealed: nothing but this code wrote it), validated and
    // written, sealed, by the core in the store's own snapshot format.
    const assembled = `{"version":1,"format":${JSON.stringify(this.#config.format)},"records":[${records.join(',')}],"tasks":[${tasks.join(',')}]}`;
    return this.#core.finishSnapshot(assembled);
  }

  async #importRows(records, tasks) {
    const now = this.#core.now();
    const byId = new Map(tasks.map((t) => [t.task_id, { ...t, children: 0, tree: 1 }]));
    const rootOf = (t) => {
      let at = t;
      while (at.parent_id !== null && byId.has(at.parent_id)) at = byId.get(at.parent_id);
      return at.task_id;
    };
    for (const t of byId.values()) {
      t.root = rootOf(t);
      if (t.parent_id !== null) {
        byId.get(t.parent_id).children += 1;
        byId.get(t.root).tree += 1;
      }
    }
    const rows = records.map((r) => [
      r.fingerprint, r.digest, r.json, r.role, r.usesLeft ?? -1, r.revoked ? '1' : '0',
      optional(r.taskId), r.expireAt, keyTtl(r, now), r.notAfter ?? '', r.made,
    ]);
    const taskRows = [...byId.values()].map((t) => [t.task_id, optional(t.parent_id), t.spawn_depth, t.root, t.children, t.tree]);
    let first = true;
    for (let i = 0; first || i < Math.max(rows.length, taskRows.length); i += BATCH) {
      const recs = rows.slice(i, i + BATCH);
      const ts = taskRows.slice(i, i + BATCH);
      const reply = await this.#script('import', [first ? '1' : '0', recs.length, ...recs.flat(), ...ts.flat()]);
      if (reply[0] !== 'OK') throw this.#refusal(reply);
      first = false;
    }
  }

  /** Close the store; later calls reject with ERR_STORE_UNAVAILABLE. The client stays the caller's. */
  async close() {
    if (this.#closed) return;
    // Calls made before close() are sent (their replies settle them as for
    // a batch already in flight); only later calls are refused.
    if (this.#pending.length !== 0) this.#flush();
    this.#closed = true;
    this.#admitted.clear();
    this.#coreRef.free();
  }

  get [Symbol.toStringTag]() {
    return 'RedisTokenStore';
  }
}

module.exports = { RedisTokenStore, TokenStore, CapTokenRecord, CapTokenError, DEFAULT_TIMEOUT_MS };
