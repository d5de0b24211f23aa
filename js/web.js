// Browser entry: `import init, { TokenStore } from 'captoken/web'; await init();`
import initWasm, { TokenStore, CapTokenRecord, __registerErrorClass } from '../pkg/web/captoken.js';

/**
 * Every denial and every bad input, with a stable `code` and, where they
 * apply, `fingerprint`, `role`, `verb`, `bound`, `arg`, `current` and `max`.
 * (Same class as the Node entry's, defined here because browsers load ES modules only.)
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
