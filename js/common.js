// What the Node and browser entries share: the error class, the guard around
// the generated classes, and the wiring of the fast path (js/fast_path.js)
// and of the options copies (js/args.js). The CommonJS entry loads this ES
// module with require() (Node >= 20.19).

import { CapTokenError } from './error.js';
import { argCopiers } from './args.js';
import { layoutOf, grantFactory, inboxAuthorize, inboxMethod, presentedFactory, stagedRestore } from './fast_path.js';

export { CapTokenError };

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
 * The error to throw for `error`, which escaped a call into the module, and
 * whether the instance is now unusable: a trap, or a "recursive use of an
 * object" error in an outermost call (`health.depth` counts the calls in
 * progress; at depth 1 it cannot come from re-entry, such as a clock calling
 * back into a busy store, so a borrow was left held by an earlier
 * interrupted call and the instance is broken just the same).
 */
function failure(health, error) {
  if (error instanceof CapTokenError) return error;
  if (isTrap(error) || (health.depth === 1 && /recursive use of an object/.test(error?.message ?? ''))) {
    health.trapped = true;
    return unavailable();
  }
  // Only glue errors get here (e.g. a `now` callback calling back into
  // a store that is mid-call); the core reports everything else itself.
  return new CapTokenError(`invalid argument: ${error?.message ?? error}`, { code: 'ERR_INVALID_ARGUMENT' });
}

/**
 * Call `f` on `self` with the arguments as one call into the module: once
 * the instance has trapped, refuse it with `unavailable()`; when it traps
 * now, remember that. Written out flat, without a closure per call: this is
 * on the path of every decision.
 */
function callModule(health, f, self, a, b, c, d) {
  if (health.trapped) throw unavailable();
  health.depth++;
  try {
    return f.call(self, a, b, c, d);
  } catch (error) {
    throw failure(health, error);
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
function guardClass(cls, health, { methods = {}, statics = {}, copiers = {} } = {}) {
  const misuse = () =>
    new CapTokenError(`invalid argument: not a live ${cls.name} (freed, or called on another object)`,
      { code: 'ERR_INVALID_ARGUMENT' });
  // The arguments as the module gets them: options objects copied to plain data.
  const plain = (key, args) => {
    const copy = copiers[key];
    if (copy === undefined) return args;
    return args.map((arg, i) => (copy[i] ? copy[i](arg) : arg));
  };
  const applyPlain = (f, key) => function plainArgs(a, b, c, d) {
    return f.apply(this, plain(key, [a, b, c, d]));
  };
  const wrap = (f, key) => {
    if (copiers[key]) {
      const withPlainArgs = applyPlain(f, key);
      return function guarded(a, b, c, d) {
        if (!(this instanceof cls) || !this.__wbg_ptr) throw misuse();
        return callModule(health, withPlainArgs, this, a, b, c, d);
      };
    }
    return function guarded(a, b, c, d) {
      if (key === 'free' && health.trapped) return undefined;
      if (!(this instanceof cls) || !this.__wbg_ptr) {
        if (key === 'free' && this instanceof cls) return undefined;
        throw misuse();
      }
      return callModule(health, f, this, a, b, c, d);
    };
  };
  const proto = cls.prototype;
  for (const key of Object.getOwnPropertyNames(proto)) {
    if (key === 'constructor') continue;
    const desc = Object.getOwnPropertyDescriptor(proto, key);
    if (key.startsWith('__')) continue;
    const f = methods[key] ?? desc.value;
    if (typeof f === 'function') desc.value = wrap(f, key);
    if (desc.get) desc.get = wrap(desc.get, key);
    Object.defineProperty(proto, key, desc);
  }
  for (const key of Object.getOwnPropertyNames(cls)) {
    if (['length', 'name', 'prototype'].includes(key)) continue;
    const desc = Object.getOwnPropertyDescriptor(cls, key);
    if (key.startsWith('__')) continue;
    if (typeof desc.value !== 'function') continue;
    const f = statics[key] ?? desc.value;
    const withPlainArgs = applyPlain(f, key);
    desc.value = {
      [key](a, b, c, d) {
        return callModule(health, withPlainArgs, this, a, b, c, d);
      },
    }[key];
    Object.defineProperty(cls, key, desc);
  }
  return new Proxy(cls, {
    construct(target, args, newTarget) {
      const make = () => Reflect.construct(target, plain('construct', args), newTarget);
      return callModule(health, make, undefined);
    },
  });
}

/**
 * Prepare the generated classes, once per module instance, and return the
 * classes to export (guarded Proxies of the generated ones).
 */
export function guardClasses(glue) {
  const layout = layoutOf(glue);
  // The fast path's versions of verify, check and restore, which call the
  // generated ones (captured here) or the generated `__` ways in.
  const methods = { verify: inboxMethod(glue, layout, 'verify'), check: inboxMethod(glue, layout, 'check') };
  const statics = { restore: stagedRestore(glue, layout) };
  // The fast path's generated ways in are reachable only through the
  // methods above, which are guarded.
  delete glue.TokenStore.prototype.__verifyInbox;
  delete glue.TokenStore.prototype.__checkInbox;
  delete glue.TokenStore.__restoreStaged;
  const copiers = argCopiers(layout);
  // One per module instance: a trap breaks every store of the instance.
  const health = { trapped: false, depth: 0 };
  const guarded = {
    TokenStore: guardClass(glue.TokenStore, health, { methods, statics, copiers: copiers.store }),
    CapTokenRecord: guardClass(glue.CapTokenRecord, health),
  };
  // captoken/redis's process half, in the Node flavour only: guarded and
  // its options copied the same way (see js/redis.cjs).
  if (glue.__RemoteCore) {
    const authorize = inboxAuthorize(glue, layout);
    delete glue.__RemoteCore.prototype.__authorizeInbox;
    guarded.__RemoteCore = guardClass(glue.__RemoteCore, health, { methods: { authorize }, copiers: copiers.remote });
  }
  return guarded;
}

/** Hand the module what it builds results with; call after instantiation. */
export function connect(glue) {
  glue.__registerErrorClass(CapTokenError);
  glue.__registerGrantFactory(grantFactory(glue, layoutOf(glue)));
  // The Node flavour's captoken/redis half.
  if (glue.__registerPresentedFactory) glue.__registerPresentedFactory(presentedFactory(glue, layoutOf(glue)));
}
