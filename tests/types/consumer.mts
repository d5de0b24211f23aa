// ESM consumer of 'captoken' (resolved through package.json `exports`, the
// "import" condition): every member of the API, with its exact types.
import { TokenStore, CapTokenRecord, CapTokenError } from 'captoken';
import type {
  CapToken, CapTokenRecordInput, CapTokenRecordJSON, Decision, ErrorCode, Grant, MintOptions,
  Minted, Role, StoreOptions, TaskInfo, Verb,
} from 'captoken';

/** True only when A and B are the same type (`any` matches nothing else). */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
function expectType<A, B>(_proof: Equals<A, B>): void {}

// ---- types -------------------------------------------------------------
const role: Role = 'worker';
const roles: Role[] = ['operator', 'worker', 'observer', 'senior'];
const verb: Verb = 'fetch_prompt';
const code: ErrorCode = 'ERR_SNAPSHOT_INVALID';

let now = 1764150000;
const options: StoreOptions = {
  secret: new Uint8Array(32),
  format: 'mlua-swarm',
  maxSpawnDepth: 4,
  workerTokenTtlSecs: 1800,
  now: () => now,
  gate: { observer: ['read_trace', 'read_task_state'], senior: [] },
  journal: true,
};
const minimal: StoreOptions = { secret: new Uint8Array(32) };
const mintOptions: MintOptions = { scopes: ['*'], ttlSecs: 60, maxUses: 3, taskId: 'job' };
const unlimited: MintOptions = { maxUses: null };

// ---- TokenStore ----------------------------------------------------------
const store = new TokenStore(options);
expectType<typeof store, TokenStore>(true);
const defaults = new TokenStore(minimal);
const restored = TokenStore.restore(defaults.snapshot(), minimal);
expectType<typeof restored, TokenStore>(true);
const replayed = TokenStore.restore(defaults.snapshot(), options, defaults.takeJournal());
expectType<typeof replayed, TokenStore>(true);

const op = store.attachOperator('op', mintOptions);
const op2 = store.attachOperator('op-2');
expectType<typeof op, Minted>(true);
const bearer: string = op.bearer;
const opFingerprint: string = op2.fingerprint;
const token: CapToken = op.token;
expectType<typeof token.v, 2 | undefined>(true);
expectType<typeof token.role, Role>(true);
expectType<typeof token.max_uses, number | null>(true);
const fields: [string, Role, string[], number, number, number | null, string, string] = [
  token.agent_id, token.role, token.scopes, token.issued_at, token.expire_at, token.max_uses, token.nonce, token.sig_hex,
];

const minted = store.mint('agent', role, unlimited);
const minted2 = store.mint('agent', 'observer');
const adopted = store.adopt(minted.bearer, 'job');
const adopted2 = store.adopt(minted2.bearer);
expectType<typeof adopted, string>(true);

const task = store.startTask(bearer, { taskId: 'job' });
const task2 = store.startTask(bearer);
const task3 = store.startTask(bearer, {});
expectType<typeof task, TaskInfo>(true);
const taskFields: [string, string | null, number] = [task.taskId, task.parentId, task.spawnDepth];

const worker = store.dispatchAttempt(bearer, task.taskId, { maxUses: 2 });
const worker2 = store.dispatchAttempt(bearer, task2.taskId);
expectType<typeof worker, Minted>(true);

const grant = store.verify(worker.bearer, verb, task.taskId);
const grant2 = store.verify(worker.bearer, 'fetch_data');
expectType<typeof grant, Grant>(true);
expectType<typeof grant.usesLeft, number | null>(true);
expectType<typeof grant.taskId, string | null>(true);
const grantFields: [string, string, Role, string[]] = [grant.fingerprint, grant.agentId, grant.role, grant.scopes];

const decision = store.check(worker.bearer, 'poll_task', task.taskId);
const decision2 = store.check(worker.bearer, 'poll_task');
expectType<typeof decision, Decision>(true);
if (decision.allowed) {
  const allowed: Grant = decision;
  expectType<typeof decision.usesLeft, number | null>(true);
} else {
  expectType<typeof decision.code, ErrorCode>(true);
  const message: string = decision.message;
}

const wasLive: boolean = store.revoke(worker.fingerprint);
const revokedCount: number = store.revokeTask(task.taskId);
const fresh = store.remint(worker2.bearer);
expectType<typeof fresh, Minted>(true);
const purged: number = store.purgeExpired();
const record = store.record(worker.fingerprint);
expectType<typeof record, CapTokenRecord | undefined>(true);
const info = store.task(task.taskId);
expectType<typeof info, TaskInfo | undefined>(true);
const records = store.records();
expectType<typeof records, CapTokenRecordJSON[]>(true);
const tasks = store.tasks();
expectType<typeof tasks, TaskInfo[]>(true);
const size = store.size;
expectType<typeof size, number>(true);
const snapshot = store.snapshot();
expectType<typeof snapshot, string>(true);
const journal = store.takeJournal();
expectType<typeof journal, string>(true);

// ---- CapTokenRecord -----------------------------------------------------
const fromToken = CapTokenRecord.fromToken(op.token);
const fromWorker = CapTokenRecord.fromWorkerToken(worker.token, 'job');
const json = fromWorker.toJSON();
expectType<typeof json, CapTokenRecordJSON>(true);
const fromObject = CapTokenRecord.fromJSON(json);
const fromText = CapTokenRecord.fromJSON(JSON.stringify(json));
const seed: CapTokenRecordInput = { token: op.token, uses_left: null, revoked: false };
const fromSeed = CapTokenRecord.fromJSON(seed);
expectType<typeof fromSeed, CapTokenRecord>(true);
expectType<typeof fromToken.token, CapToken>(true);
expectType<typeof fromToken.usesLeft, number | null>(true);
expectType<typeof fromToken.revoked, boolean>(true);
expectType<typeof fromToken.taskId, string | null>(true);
expectType<typeof fromToken.fingerprint, string>(true);
const jsonFields: [CapToken, number | null, boolean, string | null, string] = [
  json.token, json.uses_left, json.revoked, json.task_id, json.fingerprint,
];
fromWorker.consume();
const can: boolean = fromWorker.canConsume();
fromWorker.revoke();
expectType<ReturnType<CapTokenRecord['consume']>, void>(true);
expectType<ReturnType<CapTokenRecord['revoke']>, void>(true);
fromToken.free();
fromWorker.free();
fromObject.free();
fromText.free();
record?.free();

// ---- CapTokenError ------------------------------------------------------
try {
  store.verify('garbage', 'heartbeat');
} catch (error) {
  if (error instanceof CapTokenError) {
    const asError: Error = error;
    expectType<typeof error.name, 'CapTokenError'>(true);
    expectType<typeof error.code, ErrorCode>(true);
    expectType<typeof error.fingerprint, string | undefined>(true);
    expectType<typeof error.role, Role | undefined>(true);
    expectType<typeof error.verb, Verb | undefined>(true);
    expectType<typeof error.bound, string | undefined>(true);
    expectType<typeof error.arg, string | undefined>(true);
    expectType<typeof error.current, number | undefined>(true);
    expectType<typeof error.max, number | undefined>(true);
    const text: string = error.message;
    if (error.code === 'ERR_SPAWN_DEPTH_EXCEEDED') now += (error.current ?? 0) + (error.max ?? 0);
  }
}

store.free();
defaults.free();
restored.free();
replayed.free();

// ---- wrong usage is rejected -----------------------------------------------
// @ts-expect-error: not a verb
store.verify(bearer, 'fly');
// @ts-expect-error: not a role
store.mint('a', 'admin');
// @ts-expect-error: secret is required
new TokenStore({});
// @ts-expect-error: not a signing format
new TokenStore({ secret: new Uint8Array(32), format: 'v3' });
// @ts-expect-error: secret is bytes, not text
new TokenStore({ secret: 'x'.repeat(32) });
// @ts-expect-error: a gate row names verbs
new TokenStore({ secret: new Uint8Array(32), gate: { worker: ['fly'] } });
// @ts-expect-error: a gate key is a role
new TokenStore({ secret: new Uint8Array(32), gate: { admin: ['heartbeat'] } });
// @ts-expect-error: the constructor is private
new CapTokenError();
// @ts-expect-error: the constructor is private
new CapTokenRecord();
// @ts-expect-error: the verb is required
store.verify(bearer);
// @ts-expect-error: a task id is a string
store.check(bearer, 'heartbeat', 5);
// @ts-expect-error: a fingerprint is a string
store.revoke(5);
// @ts-expect-error: maxUses is a number or null
store.mint('a', 'worker', { maxUses: '3' });
// @ts-expect-error: a denied decision is no Grant
const notAGrant: Grant = decision;
// @ts-expect-error: record() may give undefined
const notARecord: CapTokenRecord = store.record('f');
// @ts-expect-error: size is read-only
store.size = 3;
// @ts-expect-error: usesLeft is read-only
fromSeed.usesLeft = 3;
// @ts-expect-error: not an error code
const notACode: ErrorCode = 'ERR_NOPE';
// @ts-expect-error: restore takes options
TokenStore.restore(snapshot);
// @ts-expect-error: journal is text
TokenStore.restore(snapshot, minimal, ['line']);
// @ts-expect-error: journal is a boolean option
new TokenStore({ secret: new Uint8Array(32), journal: 'yes' });

export {};
