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
 * Builds a Grant (or an allowed Decision) in one call from the module: one
 * crossing instead of one per field. `scopes` is undefined for `["*"]`.
 */
function makeGrant(allowed, fingerprint, agentId, role, scopes, taskId, usesLeft) {
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
}

/**
 * Guard every method and getter of a wasm-bindgen class: a call on a freed
 * object or with a foreign `this` would reach Rust with a dangling or
 * mistyped pointer, and glue errors are not CapTokenErrors. Freeing twice is
 * a no-op.
 */
function guardClass(cls) {
  const misuse = () =>
    new CapTokenError(`invalid argument: not a live ${cls.name} (freed, or called on another object)`,
      { code: 'ERR_INVALID_ARGUMENT' });
  const wrap = (f, key) =>
    function guarded(a, b, c, d) {
      if (!(this instanceof cls) || !this.__wbg_ptr) {
        if (key === 'free' && this instanceof cls) return undefined;
        throw misuse();
      }
      try {
        return f.call(this, a, b, c, d);
      } catch (error) {
        if (error instanceof CapTokenError) throw error;
        // Only glue errors get here (e.g. a `now` callback calling back into
        // a store that is mid-call); the core reports everything else itself.
        throw new CapTokenError(`invalid argument: ${error?.message ?? error}`, { code: 'ERR_INVALID_ARGUMENT' });
      }
    };
  const proto = cls.prototype;
  for (const key of Object.getOwnPropertyNames(proto)) {
    if (key === 'constructor' || key.startsWith('__')) continue;
    const desc = Object.getOwnPropertyDescriptor(proto, key);
    if (typeof desc.value === 'function') desc.value = wrap(desc.value, key);
    if (desc.get) desc.get = wrap(desc.get, key);
    Object.defineProperty(proto, key, desc);
  }
}

const MAX_BEARER_LEN = 8192;
const INBOX_LEN = 3 * MAX_BEARER_LEN;

/**
 * verify and check write the bearer into the module's inbox with
 * TextEncoder.encodeInto — one native copy — instead of letting the glue copy
 * it character by character, the largest single cost of a decision. Anything
 * but a string of bearer size takes the ordinary path (and its errors).
 */
function inboxPaths(glue) {
  const proto = glue.TokenStore.prototype;
  const encoder = new TextEncoder();
  let memory;
  let view;
  const inbox = () => {
    if (view === undefined || view.buffer !== memory.buffer) {
      memory ??= glue.__memory();
      view = new Uint8Array(memory.buffer, glue.__inbox(), INBOX_LEN);
    }
    return view;
  };
  for (const name of ['verify', 'check']) {
    const viaInbox = proto[`__${name}Inbox`];
    const ordinary = proto[name];
    // Reachable only through the guarded method below.
    delete proto[`__${name}Inbox`];
    proto[name] = function (bearer, verb, taskId) {
      if (typeof bearer !== 'string' || bearer.length > MAX_BEARER_LEN) {
        return ordinary.call(this, bearer, verb, taskId);
      }
      const { written } = encoder.encodeInto(bearer, inbox());
      return viaInbox.call(this, written, verb, taskId);
    };
  }
}

/** Prepare the generated classes, once per module instance. */
export function guardClasses(glue) {
  inboxPaths(glue);
  guardClass(glue.TokenStore);
  guardClass(glue.CapTokenRecord);
}

/** Hand the module what it builds results with; call after instantiation. */
export function connect(glue) {
  glue.__registerErrorClass(CapTokenError);
  glue.__registerGrantFactory(makeGrant);
}
