export * from './types.cjs';

/** What `init` can load the WebAssembly module from. */
export type InitInput = RequestInfo | URL | Response | BufferSource | WebAssembly.Module;

/** Load and instantiate the WebAssembly module; call once before anything else. */
export default function init(source?: InitInput | Promise<InitInput>): Promise<void>;
