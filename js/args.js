// Options objects are copied here into plain data before they reach the
// module: fresh objects and arrays of primitives, fresh Uint8Arrays. Reading
// a caller's object may run caller code (getters, Proxy traps) that throws;
// here the throw is caught and becomes a CapTokenError, while inside the
// module it would skip the release of the store's borrow. The module
// (src/bindings/args.rs) then checks types and ranges on what it is given.

import { CapTokenError } from './error.js';

function invalid(reason) {
  return new CapTokenError(`invalid argument: ${reason}`, { code: 'ERR_INVALID_ARGUMENT' });
}

/** Run `read`; any throw but a CapTokenError becomes "reading `name` failed". */
function reading(name, read) {
  try {
    return read();
  } catch (error) {
    if (error instanceof CapTokenError) throw error;
    throw invalid(`reading ${name} failed`);
  }
}

/** A value that cannot run code when read, as it is; anything else is refused. */
function primitive(value, name) {
  const type = typeof value;
  if (type === 'string' || type === 'number' || type === 'boolean' || value === undefined || value === null) {
    return value;
  }
  throw invalid(`${name} has a value of the wrong type`);
}

/**
 * A copy of a plain, non-array object's `keys` (by default its own keys, at
 * most `maxKeys`), each copied by `copy`.
 */
function object(value, name, keys, copy, maxKeys) {
  if (value === undefined || value === null) return value;
  return reading(name, () => {
    if (typeof value !== 'object' || Array.isArray(value)) throw invalid(`${name} must be an object`);
    const ownKeys = keys === undefined;
    if (ownKeys) {
      keys = Object.keys(value);
      if (keys.length > maxKeys) throw invalid(`${name} has too many keys`);
    }
    const out = {};
    for (const key of keys) {
      const field = value[key];
      if (field !== undefined || ownKeys) out[key] = copy(key, field, `${name}.${key}`);
    }
    return out;
  });
}

/**
 * The copiers, given the module's limits (`__layout()`): each takes the
 * caller's argument and returns plain data for the module.
 */
export function argCopiers(limits) {
  // Read on first use: the browser entry makes the copiers before init().
  const maxList = () => limits().maxListLen;

  function list(value, name) {
    return reading(name, () => {
      if (!Array.isArray(value)) return primitive(value, name);
      const length = value.length;
      if (!(Number.isInteger(length) && length >= 0 && length <= maxList())) {
        throw invalid(`${name} has too many entries`);
      }
      const out = [];
      for (let i = 0; i < length; i++) out.push(primitive(value[i], name));
      return out;
    });
  }

  function secret(value) {
    return reading('options.secret', () => {
      // A Proxy or a fake inheriting from Uint8Array.prototype passes
      // instanceof but is no view; the copy reads the genuine bytes.
      if (!(value instanceof Uint8Array) || !ArrayBuffer.isView(value)) {
        throw invalid('options.secret must be a Uint8Array');
      }
      return new Uint8Array(value);
    });
  }

  // Every key of a gate is a row: one left undefined is refused, not skipped.
  const gateRow = (key, value, name) => {
    if (!reading(name, () => Array.isArray(value))) throw invalid(`${name} must be an array of verb names`);
    return list(value, name);
  };

  const mintField = (key, value, name) => (key === 'scopes' ? list(value, name) : primitive(value, name));
  const storeField = (key, value, name) => {
    if (key === 'secret') return secret(value);
    if (key === 'gate') return object(value, name, undefined, gateRow, maxList());
    if (key === 'now' && typeof value === 'function') return value;
    return primitive(value, name);
  };
  const MINT = ['scopes', 'ttlSecs', 'maxUses', 'taskId'];
  const START = ['taskId', 'parentId'];
  const STORE = [
    'secret', 'format', 'maxSpawnDepth', 'workerTokenTtlSecs', 'gate', 'maxRecords', 'maxTasks',
    'maxTasksPerTree', 'maxChildrenPerTask', 'maxMadePerWorkerToken', 'now', 'journal', 'allowUnsealed',
  ];
  const mint = (value) => object(value, 'options', MINT, mintField);
  const start = (value) => object(value, 'options', START, (key, field, name) => primitive(field, name));
  const store = (value) => object(value, 'options', STORE, storeField);
  // Which argument of which call is an options object: TokenStore's, and
  // captoken/redis's process half (__RemoteCore, Node flavour only).
  return {
    store: {
      construct: [store],
      restore: [undefined, store],
      attachOperator: [undefined, mint],
      mint: [undefined, undefined, mint],
      dispatchAttempt: [undefined, undefined, mint],
      startTask: [undefined, start],
    },
    remote: {
      construct: [store],
      mint: [undefined, undefined, mint],
      dispatchPrepare: [undefined, undefined, mint],
      startPrepare: [undefined, start],
    },
  };
}
