// CommonJS consumer of 'captoken' (the "require" condition of `exports`):
// every member of the API, with its exact types.
import captoken = require('captoken');

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
function expectType<A, B>(_proof: Equals<A, B>): void {}

const { TokenStore, CapTokenRecord, CapTokenError } = captoken;

let clock = 1764150000;
const options: captoken.StoreOptions = {
  secret: new Uint8Array(32),
  format: 'v2',
  maxSpawnDepth: 3,
  workerTokenTtlSecs: 600,
  now: () => clock,
  gate: { worker: ['fetch_prompt', 'start_task'] },
  journal: false,
};

// ---- TokenStore ----------------------------------------------------------
const store: captoken.TokenStore = new TokenStore(options);
const restored = TokenStore.restore(store.snapshot(), options);
expectType<typeof restored, captoken.TokenStore>(true);
const op = store.attachOperator('op');
const op2 = store.attachOperator('op', { maxUses: null, ttlSecs: 5, scopes: [], taskId: 't' });
expectType<typeof op, captoken.Minted>(true);
expectType<typeof op2.token, captoken.CapToken>(true);
const minted = store.mint('a', 'senior', { maxUses: 1 });
const minted2 = store.mint('b', 'worker');
expectType<typeof minted, captoken.Minted>(true);
const fingerprint: string = store.adopt(minted.bearer);
const fingerprint2: string = store.adopt(minted2.bearer, 'job');
const task: captoken.TaskInfo = store.startTask(op.bearer, { taskId: 'job' });
const task2: captoken.TaskInfo = store.startTask(op.bearer);
const worker: captoken.Minted = store.dispatchAttempt(op.bearer, task.taskId, { ttlSecs: 30 });
const worker2: captoken.Minted = store.dispatchAttempt(op.bearer, task2.taskId);
const grant = store.verify(worker.bearer, 'post_result', task.taskId);
expectType<typeof grant, captoken.Grant>(true);
const grant2: captoken.Grant = store.verify(worker.bearer, 'fetch_data');
const decision = store.check(worker.bearer, 'cancel_task', 'job');
const decision2: captoken.Decision = store.check(worker.bearer, 'cancel_task');
expectType<typeof decision, captoken.Decision>(true);
const outcome: string = decision.allowed ? decision.agentId : decision.code;
const wasLive: boolean = store.revoke(worker.fingerprint);
const count: number = store.revokeTask('job');
const fresh: captoken.Minted = store.remint(worker2.bearer);
const purged: number = store.purgeExpired();
const record = store.record(fingerprint);
expectType<typeof record, captoken.CapTokenRecord | undefined>(true);
const info = store.task('job');
expectType<typeof info, captoken.TaskInfo | undefined>(true);
const records: captoken.CapTokenRecordJSON[] = store.records();
const tasks: captoken.TaskInfo[] = store.tasks();
const size: number = store.size;
const snapshot: string = store.snapshot();
const journal: string = store.takeJournal();
const replayed: captoken.TokenStore = TokenStore.restore(snapshot, options, journal);
replayed.free();
store.free();
restored.free();

// ---- CapTokenRecord -----------------------------------------------------
const r1 = CapTokenRecord.fromToken(op.token);
const r2 = CapTokenRecord.fromWorkerToken(worker.token, 'job');
const r3 = CapTokenRecord.fromJSON(r2.toJSON());
const r4 = CapTokenRecord.fromJSON(JSON.stringify(r2));
const input: captoken.CapTokenRecordInput = { token: op.token, uses_left: null, revoked: false, task_id: null };
const r5 = CapTokenRecord.fromJSON(input);
expectType<typeof r5, captoken.CapTokenRecord>(true);
const view: [captoken.CapToken, number | null, boolean, string | null, string] = [
  r1.token, r1.usesLeft, r1.revoked, r1.taskId, r1.fingerprint,
];
r2.consume();
const can: boolean = r2.canConsume();
r2.revoke();
const json = r2.toJSON();
expectType<typeof json, captoken.CapTokenRecordJSON>(true);
for (const r of [r1, r2, r3, r4, r5]) r.free();

// ---- CapTokenError ------------------------------------------------------
function describeError(error: unknown): string {
  if (!(error instanceof CapTokenError)) return 'other';
  expectType<typeof error.code, captoken.ErrorCode>(true);
  const details: [string | undefined, captoken.Role | undefined, captoken.Verb | undefined, string | undefined,
    string | undefined, number | undefined, number | undefined] = [
    error.fingerprint, error.role, error.verb, error.bound, error.arg, error.current, error.max,
  ];
  return `${error.name} ${error.code} ${error.message} ${details.length}`;
}
describeError(new Error('x'));

// ---- wrong usage is rejected -----------------------------------------------
// @ts-expect-error: not a verb
store.verify(op.bearer, 'launch_missiles');
// @ts-expect-error: not a role
store.mint('a', 'admin');
// @ts-expect-error: the constructor is private
new CapTokenError();
// @ts-expect-error: fields of a record are read-only
r1.revoked = true;
// @ts-expect-error: no such method
store.verifyAll();

export {};
