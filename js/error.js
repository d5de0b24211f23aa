// The package's one error class, shared by every entry and module.

/**
 * Every denial and every bad input, with a stable `code` and, where they
 * apply, `fingerprint`, `role`, `verb`, `bound`, `arg`, `current`, `max` and
 * `limit`.
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
