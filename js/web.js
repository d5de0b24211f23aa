// Browser entry: `import init, { TokenStore } from 'captoken/web'; await init();`
import * as glue from '../pkg/web/captoken.js';
import { CapTokenError, guardClasses, connect } from './common.js';

const guarded = guardClasses(glue);

let ready;

/**
 * Load and instantiate the WebAssembly module once. By default it is fetched
 * from beside this file; pass a URL, Response, BufferSource or
 * WebAssembly.Module to load it from elsewhere.
 */
export default function init(source) {
  if (!ready) {
    const moduleOrPath = source ?? new URL('../pkg/web/captoken_bg.wasm', import.meta.url);
    ready = glue.default({ module_or_path: moduleOrPath }).then(() => connect(glue));
    ready.catch(() => {
      ready = undefined;
    });
  }
  return ready;
}

export const { TokenStore, CapTokenRecord } = guarded;
export { CapTokenError };
