// The fast path, JavaScript half (src/bindings/fast_path.rs is the other).
//
// Memory protocol: every offset and limit comes from the module's
// `__layout()`, read once on first use.
// * inbox: verify and check UTF-8-encode the bearer at `inbox` and the task
//   id at `inbox + inboxTaskAt` with TextEncoder.encodeInto (one native copy
//   each, instead of the glue's copy character by character), and pass the
//   verb as its index in `verbNames`. Anything else (a non-string, an
//   unknown verb, an over-long or ill-formed string) takes the ordinary
//   path and its errors.
// * outbox: the module writes a Grant's fingerprint (64 hex digits), agent id
//   and task id back to back at `outbox` and calls the grant factory once;
//   it reads them with one TextDecoder call.
// * stage: restore encodes the snapshot text, and the journal after it, into
//   a buffer the module grows with `__stage(len)`; the glue's allocation for
//   a string of hundreds of MB is slower and cannot fail gracefully.

import { CapTokenError } from './error.js';

const isWellFormed = String.prototype.isWellFormed;

/** The module's layout, read on first use (the browser module loads later). */
export function layoutOf(glue) {
  let layout;
  return () => (layout ??= glue.__layout());
}

/**
 * A view of `length()` bytes at `at()` in the module's memory; made again
 * after the memory grows, which detaches the old buffer and leaves its views
 * empty (cheaper to test than comparing buffers).
 */
function memoryView(glue, at, length) {
  let view;
  return () => {
    if (view === undefined || view.length === 0) {
      view = new Uint8Array(glue.__memory().buffer, at(), length());
    }
    return view;
  };
}

// Grants are made by two constructors whose `prototype` is Object.prototype:
// plain objects to every reader (prototype, constructor, keys in this order),
// made without a literal. A literal has an allocation site, and V8 tenures a
// site all of whose objects are live at one GC: a full GC that finishes its
// incremental marking during a burst of decisions (as after a large
// restore) counts the Grants made meanwhile as live, and from then on every
// Grant was born in old space: verify took 20% longer for the rest of the
// process (measured in the benchmark; gone with
// `--no-allocation-site-pretenuring`). `new` has no allocation site, and
// neither has `slice` (of a private array that is never handed out).
function Grant(fingerprint, agentId, role, scopes, taskId, usesLeft) {
  this.fingerprint = fingerprint;
  this.agentId = agentId;
  this.role = role;
  this.scopes = scopes;
  this.taskId = taskId;
  this.usesLeft = usesLeft;
}
Grant.prototype = Object.prototype;
function AllowedGrant(fingerprint, agentId, role, scopes, taskId, usesLeft) {
  this.allowed = true;
  this.fingerprint = fingerprint;
  this.agentId = agentId;
  this.role = role;
  this.scopes = scopes;
  this.taskId = taskId;
  this.usesLeft = usesLeft;
}
AllowedGrant.prototype = Object.prototype;
const ONE_STAR = ['*'];

/**
 * A Grant, or with `allowed` an allowed Decision (also captoken/redis's).
 * Never throws: a read-only property of one of these names on
 * Object.prototype makes an assignment throw (and a throw inside a module
 * callback would leave the module's borrows held: the store would refuse
 * every later call), so that case gets literals, which define their own
 * properties.
 */
export function grantOf(allowed, fingerprint, agentId, role, scopes, taskId, usesLeft) {
  try {
    return allowed
      ? new AllowedGrant(fingerprint, agentId, role, scopes, taskId, usesLeft)
      : new Grant(fingerprint, agentId, role, scopes, taskId, usesLeft);
  } catch {
    return allowed
      ? { allowed: true, fingerprint, agentId, role, scopes, taskId, usesLeft }
      : { fingerprint, agentId, role, scopes, taskId, usesLeft };
  }
}

/**
 * The function the module builds a Grant (or an allowed Decision) with, in
 * one call. The strings arrive in the outbox (`agentLen >= 0`), or else as
 * arguments. `scopes` is undefined for `["*"]`; `taskLen` is -1 for no task.
 */
export function grantFactory(glue, layout) {
  const outbox = memoryView(glue, () => layout().outbox, () => layout().outboxLen);
  const decoder = new TextDecoder();
  const decode = (from, to) => decoder.decode(outbox().subarray(from, to));
  // Called after instantiation (connect), so the layout can be read now.
  const ROLES = layout().roleNames;
  return function makeGrant(allowed, role, scopes, usesLeft, agentLen, taskLen, fingerprint, agentId, taskId) {
    if (agentLen >= 0) {
      const agentEnd = 64 + agentLen;
      const end = taskLen >= 0 ? agentEnd + taskLen : agentEnd;
      const text = decode(0, end);
      if (text.length === end) {
        // ASCII only: byte offsets are string offsets.
        fingerprint = text.slice(0, 64);
        agentId = text.slice(64, agentEnd);
        taskId = taskLen >= 0 ? text.slice(agentEnd) : null;
      } else {
        fingerprint = decode(0, 64);
        agentId = decode(64, agentEnd);
        taskId = taskLen >= 0 ? decode(agentEnd, end) : null;
      }
    }
    const list = scopes ?? ONE_STAR.slice();
    role = ROLES[role];
    return grantOf(allowed, fingerprint, agentId, role, list, taskId ?? null, usesLeft ?? null);
  };
}

// What captoken/redis's `authorize` returns (steps 1 to 4 done in the
// process), made like a Grant: by a constructor, not a literal.
function Presented(fingerprint, digest, role, agentId, scopes, kind, taskArg, expiresAt) {
  this.fingerprint = fingerprint;
  this.digest = digest;
  this.role = role;
  this.agentId = agentId;
  this.scopes = scopes;
  this.kind = kind;
  this.taskArg = taskArg;
  this.expiresAt = expiresAt;
}
Presented.prototype = Object.prototype;

/** What captoken/redis's `authorize` returns; never throws (see grantOf). */
export function presentedOf(fingerprint, digest, role, agentId, scopes, kind, taskArg, expiresAt) {
  try {
    return new Presented(fingerprint, digest, role, agentId, scopes, kind, taskArg, expiresAt);
  } catch {
    return { fingerprint, digest, role, agentId, scopes, kind, taskArg, expiresAt };
  }
}

/**
 * The function the Node flavour's `authorize` builds its result with, in
 * one call: the fingerprint's and the record digest's hex (64 characters
 * each) and the agent id arrive back to back in the outbox; `scopes` is
 * undefined for `["*"]`; `taskArg` is the task id argument, already checked;
 * `expiresAt` is when step 3 starts refusing the token (Infinity: never).
 */
export function presentedFactory(glue, layout) {
  const outbox = memoryView(glue, () => layout().outbox, () => layout().outboxLen);
  const decoder = new TextDecoder();
  const ROLES = layout().roleNames;
  return function makePresented(role, kind, scopes, agentLen, taskArg, expiresAt) {
    // The first 128 bytes are hex, so the agent id is what follows them,
    // whatever characters it holds.
    const text = decoder.decode(outbox().subarray(0, 128 + agentLen));
    const fingerprint = text.slice(0, 64);
    const digest = text.slice(64, 128);
    const agentId = text.slice(128);
    const list = scopes ?? ONE_STAR.slice();
    role = ROLES[role];
    return presentedOf(fingerprint, digest, role, agentId, list, kind, taskArg ?? null, expiresAt);
  };
}

/**
 * Writes a decision's bearer and task id into the inbox when the arguments
 * allow: `write(bearer, verb, taskId)` returns a reused `{ code, bearerLen,
 * taskLen }` (taskLen -1: no task), or undefined for anything that must take
 * the ordinary path (a non-string, an unknown verb, an over-long or
 * ill-formed string) and its errors.
 */
function inboxWriter(glue, layout) {
  const encoder = new TextEncoder();
  let verbCodes;
  let limits;
  const bearerBox = memoryView(glue, () => layout().inbox, () => layout().inboxTaskAt);
  const taskBox = memoryView(glue, () => layout().inbox + layout().inboxTaskAt, () => layout().inboxTaskBytes);
  const written = { code: 0, bearerLen: 0, taskLen: -1 };
  return function write(bearer, verb, taskId) {
    if (limits === undefined) {
      const l = layout();
      verbCodes = new Map(l.verbNames.map((verbName, code) => [verbName, code]));
      limits = { bearer: l.maxBearerLen, task: l.inboxTaskUnits };
    }
    const code = typeof verb === 'string' ? verbCodes.get(verb) : undefined;
    const noTask = taskId === undefined || taskId === null;
    if (
      typeof bearer !== 'string' ||
      bearer.length > limits.bearer ||
      code === undefined ||
      !(noTask || (typeof taskId === 'string' && taskId.length <= limits.task && isWellFormed?.call(taskId)))
    ) {
      return undefined;
    }
    written.code = code;
    written.bearerLen = encoder.encodeInto(bearer, bearerBox()).written;
    written.taskLen = noTask ? -1 : encoder.encodeInto(taskId, taskBox()).written;
    return written;
  };
}

/**
 * `verify` or `check` (`name`) of the generated class, through the inbox
 * when the arguments allow; the generated `__verifyInbox`/`__checkInbox`
 * is the way in.
 */
export function inboxMethod(glue, layout, name) {
  const proto = glue.TokenStore.prototype;
  const ordinary = proto[name];
  const viaInbox = proto[`__${name}Inbox`];
  const write = inboxWriter(glue, layout);
  return function (bearer, verb, taskId) {
    const w = write(bearer, verb, taskId);
    if (w === undefined) return ordinary.call(this, bearer, verb, taskId);
    return viaInbox.call(this, w.bearerLen, w.code, w.taskLen);
  };
}

/**
 * captoken/redis's `authorize(bearer, verb, taskId, now)` through the inbox
 * when the arguments allow (`__authorizeInbox` of `__RemoteCore`).
 */
export function inboxAuthorize(glue, layout) {
  const proto = glue.__RemoteCore.prototype;
  const ordinary = proto.authorize;
  const viaInbox = proto.__authorizeInbox;
  const write = inboxWriter(glue, layout);
  return function authorize(bearer, verb, taskId, now) {
    const w = write(bearer, verb, taskId);
    if (w === undefined) return ordinary.call(this, bearer, verb, taskId, now);
    const presented = viaInbox.call(this, w.bearerLen, w.code, w.taskLen, now);
    presented.taskArg = taskId ?? null;
    return presented;
  };
}

/**
 * `TokenStore.restore` through the stage for snapshot text (and journal
 * text) of at most `maxSnapshotLen` units; anything else takes the ordinary
 * path, and a journal that is not such a string is passed as it is, for the
 * module to refuse.
 */
export function stagedRestore(glue, layout) {
  const cls = glue.TokenStore;
  const ordinary = cls.restore;
  const staged = cls.__restoreStaged;
  const encoder = new TextEncoder();
  const fits = (text) => typeof text === 'string' && text.length <= layout().maxSnapshotLen;
  return function restore(snapshot, options, journal) {
    if (!fits(snapshot)) {
      return ordinary.call(this, snapshot, options, journal);
    }
    const texts = fits(journal) ? [snapshot, journal] : [snapshot];
    const memory = glue.__memory();
    // One byte per unit fits ASCII text (what snapshot() writes); any other
    // character makes the loop grow the stage for the rest, at 3 bytes a unit.
    const lengths = [];
    let written = 0;
    for (const text of texts) {
      let capacity = written + text.length;
      let read = 0;
      const start = written;
      for (;;) {
        const at = glue.__stage(capacity);
        if (at === 0) {
          throw new CapTokenError('invalid snapshot: too large for the module\'s memory', { code: 'ERR_SNAPSHOT_INVALID' });
        }
        const rest = read === 0 ? text : text.slice(read);
        const done = encoder.encodeInto(rest, new Uint8Array(memory.buffer, at + written, capacity - written));
        read += done.read;
        written += done.written;
        if (read >= text.length) break;
        capacity = written + 3 * (text.length - read);
      }
      lengths.push(written - start);
    }
    return texts.length === 2
      ? staged.call(this, lengths[0], options, undefined, lengths[1])
      : staged.call(this, lengths[0], options, journal, undefined);
  };
}
