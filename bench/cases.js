// The workloads, shared by the Node runner and the Chromium page, so both run
// exactly the same code. Each builder returns { name: batch } where batch(k)
// performs k operations. Builders check every path once before it is timed
// (a benchmark of a denial would be meaningless).

/** The protocol's test-vector secret: the 32 bytes 0x01..0x20. */
export const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
/** A fixed "now" (unix seconds): tokens minted at T0 live until T0 + 1800. */
export const T0 = 1764150000;
export const TASK = 'task-bench';
export const VERB = 'fetch_prompt'; // a Worker verb under the ownership rule
/** u32::MAX: a record that will not run out during a bench. */
const MANY_USES = 4294967295;

function assert(condition, message) {
  if (!condition) throw new Error(`bench sanity check failed: ${message}`);
}

/** Round-robin over `items`: a function returning the next one each call. */
function cycle(items) {
  let i = 0;
  return () => {
    const item = items[i];
    i = i + 1 === items.length ? 0 : i + 1;
    return item;
  };
}

/**
 * captoken (the WebAssembly build), given its classes.
 * `tokens` live Worker tokens (unlimited uses) minted by dispatchAttempt.
 */
export function captokenCases({ TokenStore, CapTokenRecord }, { tokens }) {
  const options = () => ({ secret: SECRET, now: () => T0 });
  const store = new TokenStore(options());
  const operator = store.attachOperator('op-bench').bearer;
  store.startTask(operator, { taskId: TASK });
  const bearers = [];
  for (let i = 0; i < tokens; i++) bearers.push(store.dispatchAttempt(operator, TASK).bearer);

  // A store restored from a snapshot: its records have not passed the HMAC
  // in this process, and check() never marks them, so every check runs it.
  const restored = TokenStore.restore(store.snapshot(), options());

  // dispatchAttempt gets its own store, so minting never changes the others.
  const mintStore = new TokenStore(options());
  const mintOperator = mintStore.attachOperator('op-bench').bearer;
  mintStore.startTask(mintOperator, { taskId: TASK });

  const fresh = () =>
    CapTokenRecord.fromWorkerToken(store.mint('worker-1', 'worker', { maxUses: MANY_USES, taskId: TASK }).token, TASK);
  let record = fresh();

  assert(store.verify(bearers[0], VERB, TASK).usesLeft === null, 'verify');
  assert(store.check(bearers[0], VERB, TASK).allowed === true, 'check');
  assert(restored.check(bearers[0], VERB, TASK).allowed === true, 'check on a restored store');
  record.consume();
  assert(record.usesLeft === MANY_USES - 1, 'consume');
  assert(typeof mintStore.dispatchAttempt(mintOperator, TASK).bearer === 'string', 'dispatchAttempt');

  const nextV = cycle(bearers);
  const nextC = cycle(bearers);
  const nextH = cycle(bearers);
  return {
    verify: (k) => {
      for (let j = 0; j < k; j++) store.verify(nextV(), VERB, TASK);
    },
    check: (k) => {
      for (let j = 0; j < k; j++) store.check(nextC(), VERB, TASK);
    },
    check_hmac: (k) => {
      for (let j = 0; j < k; j++) restored.check(nextH(), VERB, TASK);
    },
    consume: (k) => {
      if (record.usesLeft < k) {
        record.free();
        record = fresh();
      }
      for (let j = 0; j < k; j++) record.consume();
    },
    mint: (k) => {
      for (let j = 0; j < k; j++) mintStore.dispatchAttempt(mintOperator, TASK);
    },
  };
}

/** A pure-JavaScript peer store (bench/peers/js-store.js) over `crypto`. */
export function peerCases({ PeerStore, consume }, crypto, { tokens }) {
  const now = () => T0;
  const store = new PeerStore(crypto, SECRET, now);
  const operator = store.mint('op-bench', 'operator').bearer;
  const bearers = [];
  for (let i = 0; i < tokens; i++) bearers.push(store.mint(`worker-of-${TASK}`, 'worker', { taskId: TASK }).bearer);

  // The peer always runs the HMAC; its restored store is here for symmetry.
  const restored = PeerStore.restore(crypto, SECRET, store.snapshot());
  restored.now = now;

  const mintStore = new PeerStore(crypto, SECRET, now);
  const mintOperator = mintStore.mint('op-bench', 'operator').bearer;
  // dispatch_attempt = decide the operator's call, then mint a bound Worker.
  const dispatch = () => {
    mintStore.verify(mintOperator, 'dispatch_attempt', TASK);
    return mintStore.mint(`worker-of-${TASK}`, 'worker', { taskId: TASK });
  };

  const fresh = () => ({ token: {}, uses_left: MANY_USES, revoked: false, task_id: TASK });
  let record = fresh();

  assert(store.verify(bearers[0], VERB, TASK).usesLeft === null, 'verify');
  assert(store.verify(operator, 'start_task').usesLeft === null, 'verify operator');
  assert(store.check(bearers[0], VERB, TASK).allowed === true, 'check');
  assert(restored.check(bearers[0], VERB, TASK).allowed === true, 'check on a restored store');
  consume(record);
  assert(record.uses_left === MANY_USES - 1, 'consume');
  assert(typeof dispatch().bearer === 'string', 'dispatch');

  const nextV = cycle(bearers);
  const nextC = cycle(bearers);
  const nextH = cycle(bearers);
  return {
    verify: (k) => {
      for (let j = 0; j < k; j++) store.verify(nextV(), VERB, TASK);
    },
    check: (k) => {
      for (let j = 0; j < k; j++) store.check(nextC(), VERB, TASK);
    },
    check_hmac: (k) => {
      for (let j = 0; j < k; j++) restored.check(nextH(), VERB, TASK);
    },
    consume: (k) => {
      if (record.uses_left < k) record = fresh();
      for (let j = 0; j < k; j++) consume(record);
    },
    mint: (k) => {
      for (let j = 0; j < k; j++) dispatch();
    },
  };
}
