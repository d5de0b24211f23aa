'use strict';
// CommonJS entry for Node. The ESM entry loads this file too, so `require`
// and `import` share one module instance and one CapTokenError class.
const glue = require('../pkg/node/captoken.js');
const { CapTokenError, guardClasses, connect } = require('./common.js');

const { TokenStore, CapTokenRecord } = guardClasses(glue);
connect(glue);

module.exports = {
  TokenStore,
  CapTokenRecord,
  CapTokenError,
};
// Not part of the API: bytes of WebAssembly linear memory, for the benchmarks.
Object.defineProperty(module.exports, '__memoryBytes', { value: glue.__memoryBytes, enumerable: false });
