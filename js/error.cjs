'use strict';
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
module.exports = { CapTokenError };
