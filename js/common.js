// What the Node and browser entries share: the error class, the grant
// factory and the guard around the generated classes. The CommonJS entry
// loads this ES module with require() (Node >= 20.19).

/**
 * Every denial and every bad input, with a stable `code` and, where they
 * apply, `fingerprint`, `role`, `verb`, `bound`, `arg`, `current` and `max`.
 */
export class CapTokenError extends Error {
  constructor(message, details) {
    super(message);
    Object.defineProperty(this, 'name', { value: 'CapTokenError', configurable: true, writable: true });
    for (const key of Object.keys(details ?? {})) {
      Object.defineProperty(this, key, { value: details[key], enumerable: true });
    }
  }
}

const ROLES = ['operator', 'worker', 'observer', 'senior'];

/**
 * A view of `length` bytes at the pointer `at()` gives, in the module's
 * memory; made again after the memory grows, which detaches the old buffer
 * and leaves its views empty (cheaper to test than comparing buffers).
 */
function memoryView(glue, at, length) {
  let view;
  return () => {
    if (view === undefined || view.length === 0) {
      view = new Uint8Array(glue.__memory().buffer, at(), length);
    }
    return view;
  };
}

// Must match OUTBOX_LEN in src/bindings.rs.
const OUTBOX_LEN = 4096;

/**
 * The function the module builds a Grant (or an allowed Decision) with, in
 * one call: one crossing instead of one per field. The fingerprint (64 hex
 * digits), agent id and task id arrive back to back in the outbox and are
 * read with one TextDecoder call (`agentLen >= 0`), or else as arguments.
 * `scopes` is undefined for `["*"]`; `taskLen` is -1 for no task.
 */
function grantFactory(glue) {
  const outbox = memoryView(glue, () => glue.__outbox(), OUTBOX_LEN);
  const decoder = new TextDecoder();
  const decode = (from, to) => decoder.decode(outbox().subarray(from, to));
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
    // Two literals rather than a spread: each keeps one hidden class and is
    // built without copying.
    return allowed
      ? {
          allowed: true,
          fingerprint,
          agentId,
          role: ROLES[role],
          scopes: scopes ?? ['*'],
          taskId: taskId ?? null,
          usesLeft: usesLeft ?? null,
        }
      : {
          fingerprint,
          agentId,
          role: ROLES[role],
          scopes: scopes ?? ['*'],
          taskId: taskId ?? null,
          usesLeft: usesLeft ?? null,
        };
  };
}

/**
 * Whether an error escaping a call into the module means the module itself
 * failed: a WebAssembly trap (`unreachable` after an allocation failure, an
 * out-of-bounds access), or the call stack running out while WebAssembly code
 * ran. Either stops the module in the middle of a call: a borrow is never
 * released, the allocator may be half-way through an update. Nothing decided
 * by that instance can be trusted afterwards.
 */
function isTrap(error) {
  return (
    error instanceof WebAssembly.RuntimeError ||
    (error instanceof RangeError && /call stack/i.test(error.message ?? ''))
  );
}

/**
 * The one error every call gets once the module instance trapped.
 */
function unavailable() {
  return new CapTokenError(
    'store unavailable: the WebAssembly instance trapped and cannot be used again; ' +
      'reload the module (restart the process or reload the page) and restore the state ' +
      'from its snapshot and journal',
    { code: 'ERR_STORE_UNAVAILABLE' },
  );
}

/**
 * Run `f` as one call into the module: once the instance has trapped, refuse
 * it with `unavailable()`; when it traps now, remember that. `health.depth`
 * counts the calls in progress: a "recursive use of an object" error in an
 * outermost call cannot come from re-entry (a clock calling back into a busy
 * store, depth 2), so a borrow was left held by an earlier interrupted call:
 * the instance is broken just the same.
 */
function callModule(health, f) {
  if (health.trapped) throw unavailable();
  health.depth++;
  try {
    return f();
  } catch (error) {
    if (error instanceof CapTokenError) throw error;
    if (isTrap(error) || (health.depth === 1 && /recursive use of an object/.test(error?.message ?? ''))) {
      health.trapped = true;
      throw unavailable();
    }
    // Only glue errors get here (e.g. a `now` callback calling back into
    // a store that is mid-call); the core reports everything else itself.
    throw new CapTokenError(`invalid argument: ${error?.message ?? error}`, { code: 'ERR_INVALID_ARGUMENT' });
  } finally {
    health.depth--;
  }
}

/**
 * Guard every method and getter of a wasm-bindgen class: a call on a freed
 * object or with a foreign `this` would reach Rust with a dangling or
 * mistyped pointer, and glue errors are not CapTokenErrors. Freeing twice is
 * a no-op, and so is freeing after the instance trapped. Static methods and
 * the constructor go through the same trap guard; the class returned is a
 * Proxy of `cls` whose `new` is guarded (instanceof and statics unchanged).
 */
function guardClass(cls, health) {
  const misuse = () =>
    new CapTokenError(`invalid argument: not a live ${cls.name} (freed, or called on another object)`,
      { code: 'ERR_INVALID_ARGUMENT' });
  const wrap = (f, key) =>
    function guarded(a, b, c, d) {
      if (key === 'free' && health.trapped) return undefined;
      if (!(this instanceof cls) || !this.__wbg_ptr) {
        if (key === 'free' && this instanceof cls) return undefined;
        throw misuse();
      }
      return callModule(health, () => f.call(this, a, b, c, d));
    };
  const proto = cls.prototype;
  for (const key of Object.getOwnPropertyNames(proto)) {
    if (key === 'constructor' || key.startsWith('__')) continue;
    const desc = Object.getOwnPropertyDescriptor(proto, key);
    if (typeof desc.value === 'function') desc.value = wrap(desc.value, key);
    if (desc.get) desc.get = wrap(desc.get, key);
    Object.defineProperty(proto, key, desc);
  }
  for (const key of Object.getOwnPropertyNames(cls)) {
    if (key.startsWith('__') || ['length', 'name', 'prototype'].includes(key)) continue;
    const desc = Object.getOwnPropertyDescriptor(cls, key);
    if (typeof desc.value !== 'function') continue;
    const f = desc.value;
    desc.value = {
      [key](a, b, c, d) {
        return callModule(health, () => f.call(this, a, b, c, d));
      },
    }[key];
    Object.defineProperty(cls, key, desc);
  }
  return new Proxy(cls, {
    construct(target, args, newTarget) {
      return callModule(health, () => Reflect.construct(target, args, newTarget));
    },
  });
}

// Must match MAX_BEARER_LEN in src/token.rs and the inbox layout in
// src/bindings.rs: the bearer's UTF-8 at 0, the task id's at 3 * 8192.
const MAX_BEARER_LEN = 8192;
const INBOX_TASK_AT = 3 * MAX_BEARER_LEN;
const INBOX_TASK_UNITS = 256;
const isWellFormed = String.prototype.isWellFormed;

/**
 * verify and check write the bearer and the task id into the module's inbox
 * with TextEncoder.encodeInto (one native copy each) and pass the verb as its
 * index, instead of letting the glue copy each string character by
 * character. Anything else (a non-string, an unknown verb, an over-long or
 * ill-formed string) takes the ordinary path and its errors.
 */
function inboxPaths(glue) {
  const proto = glue.TokenStore.prototype;
  const encoder = new TextEncoder();
  // Read on first use: the browser entry guards the classes before init().
  let verbCodes;
  const bearerBox = memoryView(glue, () => glue.__inbox(), INBOX_TASK_AT);
  const taskBox = memoryView(glue, () => glue.__inbox() + INBOX_TASK_AT, 3 * INBOX_TASK_UNITS);
  for (const name of ['verify', 'check']) {
    const viaInbox = proto[`__${name}Inbox`];
    const ordinary = proto[name];
    // Reachable only through the guarded method below.
    delete proto[`__${name}Inbox`];
    proto[name] = function (bearer, verb, taskId) {
      verbCodes ??= new Map(glue.__verbNames().map((name, code) => [name, code]));
      const code = typeof verb === 'string' ? verbCodes.get(verb) : undefined;
      const noTask = taskId === undefined || taskId === null;
      if (
        typeof bearer !== 'string' ||
        bearer.length > MAX_BEARER_LEN ||
        code === undefined ||
        !(noTask || (typeof taskId === 'string' && taskId.length <= INBOX_TASK_UNITS && isWellFormed?.call(taskId)))
      ) {
        return ordinary.call(this, bearer, verb, taskId);
      }
      const { written } = encoder.encodeInto(bearer, bearerBox());
      const taskLen = noTask ? -1 : encoder.encodeInto(taskId, taskBox()).written;
      return viaInbox.call(this, written, code, taskLen);
    };
  }
}

// Must match MAX_SNAPSHOT_LEN in src/bindings.rs.
const MAX_SNAPSHOT_LEN = 2 ** 30;

/**
 * TokenStore.restore writes the snapshot text, and the journal text after it,
 * into a staging buffer in the module's memory with TextEncoder.encodeInto:
 * for a million records (a few hundred MB) the glue's per-character copy cost
 * more than the parse, and the glue's allocation for a string cannot fail
 * gracefully (the module would trap). Anything but a string of snapshot size
 * takes the ordinary path; a journal that is not such a string is passed as
 * it is, for the module to refuse.
 */
function stagedRestore(glue) {
  const cls = glue.TokenStore;
  const ordinary = cls.restore;
  const staged = cls.__restoreStaged;
  delete cls.__restoreStaged;
  const encoder = new TextEncoder();
  const fits = (text) => typeof text === 'string' && text.length <= MAX_SNAPSHOT_LEN;
  cls.restore = function restore(snapshot, options, journal) {
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

/**
 * Prepare the generated classes, once per module instance, and return the
 * classes to export (guarded Proxies of the generated ones).
 */
export function guardClasses(glue) {
  inboxPaths(glue);
  stagedRestore(glue);
  // One per module instance: a trap breaks every store of the instance.
  const health = { trapped: false, depth: 0 };
  return {
    TokenStore: guardClass(glue.TokenStore, health),
    CapTokenRecord: guardClass(glue.CapTokenRecord, health),
  };
}

/** Hand the module what it builds results with; call after instantiation. */
export function connect(glue) {
  glue.__registerErrorClass(CapTokenError);
  glue.__registerGrantFactory(grantFactory(glue));
}
