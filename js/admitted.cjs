'use strict';
// Steps 1 to 4 of a captoken/redis decision for bearers this process has
// already admitted (not part of the public API; js/redis.cjs uses it).
//
// Steps 1 and 2 (decode, signature) depend on nothing but the bearer text
// and the store's secret and format, which never change: a bearer that
// passed them once passes them again with the same token. So each store
// keeps what they gave for the last bearers it saw, keyed by the exact
// bearer string, and decides steps 3 (expiry, at the call's `now`) and 4
// (the gate, from the table the core derives from the store's gate) again
// on every call. Only an allowed call is answered here: anything else
// (an expired token, a verb the role may not call, an argument of an
// unusual shape) goes to the core, which gives its exact error in its exact
// order. What Redis decides (steps 5 to 7: record, uses, revocation, task)
// is asked of Redis on every call, cached or not.

/** How many bearers a store remembers; the oldest is forgotten first. */
const MAX_ADMITTED = 4096;
/** Task ids longer than this go to the core (which takes up to 64 KiB). */
const MAX_TASK_UNITS = 256;

const { presentedOf } = require('./fast_path.js');

const isWellFormed = String.prototype.isWellFormed;

class Admitted {
  #core;
  /** role → verb → ownership kind, for the verbs the gate lets the role call. */
  #kinds = new Map();
  /** bearer → what steps 1 and 2 gave (scopes copied: never handed out). */
  #bearers = new Map();

  constructor(core) {
    this.#core = core;
    for (const [role, verbs] of Object.entries(core.gateKinds())) {
      this.#kinds.set(role, new Map(Object.entries(verbs)));
    }
  }

  /** What `core.authorize(bearer, verb, taskId, now)` returns, or throws. */
  authorize(bearer, verb, taskId, now) {
    const known = typeof bearer === 'string' ? this.#bearers.get(bearer) : undefined;
    if (
      known !== undefined &&
      typeof now === 'number' &&
      now < known.expiresAt &&
      (taskId === undefined || taskId === null ||
        (typeof taskId === 'string' && taskId.length <= MAX_TASK_UNITS && isWellFormed.call(taskId)))
    ) {
      const kind = typeof verb === 'string' ? this.#kinds.get(known.role)?.get(verb) : undefined;
      if (kind !== undefined) {
        return presentedOf(known.fingerprint, known.digest, known.role, known.agentId, known.scopes.slice(),
          kind, taskId ?? null, known.expiresAt);
      }
    }
    const presented = this.#core.authorize(bearer, verb, taskId, now);
    if (known === undefined) {
      if (this.#bearers.size >= MAX_ADMITTED) this.#bearers.delete(this.#bearers.keys().next().value);
      const { fingerprint, digest, role, agentId, scopes, expiresAt } = presented;
      this.#bearers.set(bearer, { fingerprint, digest, role, agentId, scopes: [...scopes], expiresAt });
    }
    return presented;
  }

  /** Forget every bearer (the store is closed). */
  clear() {
    this.#bearers.clear();
  }
}

module.exports = { Admitted, MAX_ADMITTED };
