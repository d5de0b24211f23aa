'use strict';
// CommonJS entry for Node. The ESM entry loads this file too, so `require`
// and `import` share one module instance and one CapTokenError class.
const glue = require('../pkg/node/captoken.js');
const { CapTokenError, guardClasses, connect } = require('./common.js');

const { TokenStore, CapTokenRecord, __RemoteCore } = guardClasses(glue);
connect(glue);

module.exports = {
  TokenStore,
  CapTokenRecord,
  CapTokenError,
};
// Not part of the API: bytes of WebAssembly linear memory, for the benchmarks.
Object.defineProperty(module.exports, '__memoryBytes', { value: glue.__memoryBytes, enumerable: false });
// Not part of the API: captoken/redis's process half (js/redis.cjs), guarded.
Object.defineProperty(module.exports, '__RemoteCore', { value: __RemoteCore, enumerable: false });
