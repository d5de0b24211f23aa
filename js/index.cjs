'use strict';
// CommonJS entry for Node. The ESM entry loads this file too, so `require`
// and `import` share one module instance and one CapTokenError class.
const wasm = require('../pkg/node/captoken.js');
const { CapTokenError, guardClass } = require('./error.cjs');

wasm.__registerErrorClass(CapTokenError);
guardClass(wasm.TokenStore);
guardClass(wasm.CapTokenRecord);

module.exports = {
  TokenStore: wasm.TokenStore,
  CapTokenRecord: wasm.CapTokenRecord,
  CapTokenError,
};
// Not part of the API: bytes of WebAssembly linear memory, for the benchmarks.
Object.defineProperty(module.exports, '__memoryBytes', { value: wasm.__memoryBytes, enumerable: false });
