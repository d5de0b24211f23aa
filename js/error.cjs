'use strict';
// The error class and the method guard of the Node entries. js/web.js holds
// the same two pieces for browsers, which load ES modules only; the tests
// load both entries and hold them to the same behaviour.

/**
 * Every denial and every bad input, with a stable `code` and, where they
 * apply, `fingerprint`, `role`, `verb`, `bound`, `arg`, `current` and `max`.
 */
class CapTokenError extends Error {
  constructor(message, details) {
    super(message);
    Object.defineProperty(this, 'name', { value: 'CapTokenError', configurable: true, writable: true });
    for (const key of Object.keys(details ?? {})) {
      Object.defineProperty(this, key, { value: details[key], enumerable: true });
    }
  }
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

module.exports = { CapTokenError, guardClass };
