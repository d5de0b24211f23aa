// Browser entry: `import init, { TokenStore } from 'captoken/web'; await init();`
import initWasm, { TokenStore, CapTokenRecord, __registerErrorClass } from '../pkg/web/captoken.js';

/**
 * Every denial and every bad input, with a stable `code` and, where they
 * apply, `fingerprint`, `role`, `verb`, `bound`, `arg`, `current` and `max`.
 * (The Node entry's twin, js/error.cjs: browsers load ES modules only.)
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

/** Guard every method and getter (twin of guardClass in js/error.cjs). */
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

guardClass(TokenStore);
guardClass(CapTokenRecord);

let ready;

/**
 * Load and instantiate the WebAssembly module once. By default it is fetched
 * from beside this file; pass a URL, Response, BufferSource or
 * WebAssembly.Module to load it from elsewhere.
 */
export default function init(source) {
  if (!ready) {
    const moduleOrPath = source ?? new URL('../pkg/web/captoken_bg.wasm', import.meta.url);
    ready = initWasm({ module_or_path: moduleOrPath }).then(() => {
      __registerErrorClass(CapTokenError);
    });
    ready.catch(() => {
      ready = undefined;
    });
  }
  return ready;
}

export { TokenStore, CapTokenRecord };
