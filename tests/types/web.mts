// Browser consumer of 'captoken/web': init, then every member of the API.
import init, { TokenStore, CapTokenRecord, CapTokenError } from 'captoken/web';
import type {
  CapToken, CapTokenRecordInput, CapTokenRecordJSON, Decision, ErrorCode, Grant, InitInput, MintOptions,
  Minted, Role, StoreOptions, TaskInfo, Verb,
} from 'captoken/web';

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
function expectType<A, B>(_proof: Equals<A, B>): void {}

// ---- init ----------------------------------------------------------------
const loading = init();
expectType<typeof loading, Promise<void>>(true);
await loading;
const sources: InitInput[] = [
  new URL('https://example.invalid/captoken_bg.wasm'),
  'captoken_bg.wasm',
  new Request('captoken_bg.wasm'),
  new Uint8Array(8),
  new ArrayBuffer(8),
];
await init(sources[0]);
await init(fetch('captoken_bg.wasm'));
await init(WebAssembly.compile(new Uint8Array(8)));

// ---- TokenStore ----------------------------------------------------------
const role: Role = 'observer';
const verb: Verb = 'read_trace';
const options: StoreOptions = {
  secret: crypto.getRandomValues(new Uint8Array(32)),
  format: 'v2',
  maxSpawnDepth: 4,
  workerTokenTtlSecs: 1800,
  now: () => Date.now() / 1000,
  gate: { operator: ['start_task', 'dispatch_attempt', 'heartbeat'] },
  journal: true,
};
const store = new TokenStore(options);
const restored: TokenStore = TokenStore.restore(store.snapshot(), options);
const mintOptions: MintOptions = { maxUses: 5, ttlSecs: 10, scopes: ['a'], taskId: 'x' };
const op: Minted = store.attachOperator('op', mintOptions);
const op2: Minted = store.attachOperator('op');
const observer: Minted = store.mint('o', role);
const observer2: Minted = store.mint('o', role, { maxUses: null });
const fp: string = store.adopt(observer.bearer);
const fp2: string = store.adopt(observer2.bearer, 'x');
const task: TaskInfo = store.startTask(op.bearer, { taskId: 'x' });
const task2: TaskInfo = store.startTask(op2.bearer);
const worker: Minted = store.dispatchAttempt(op.bearer, 'x', { maxUses: 1 });
const worker2: Minted = store.dispatchAttempt(op.bearer, 'x');
const grant: Grant = store.verify(observer.bearer, verb);
const grant2: Grant = store.verify(worker.bearer, 'read_task_state', 'x');
const decision: Decision = store.check(observer.bearer, verb, 'x');
const decision2: Decision = store.check(observer.bearer, verb);
const code: ErrorCode | undefined = decision.allowed ? undefined : decision.code;
const live: boolean = store.revoke(fp);
const n: number = store.revokeTask('x');
const fresh: Minted = store.remint(worker2.bearer);
const purged: number = store.purgeExpired();
const record: CapTokenRecord | undefined = store.record(fp);
const info: TaskInfo | undefined = store.task('x');
const records: CapTokenRecordJSON[] = store.records();
const tasks: TaskInfo[] = store.tasks();
const size: number = store.size;
const text: string = store.snapshot();
const journal: string = store.takeJournal();
const replayed: TokenStore = TokenStore.restore(text, options, journal);
replayed.free();
store.free();
restored.free();

// ---- CapTokenRecord -----------------------------------------------------
const token: CapToken = op.token;
const a = CapTokenRecord.fromToken(token);
const b = CapTokenRecord.fromWorkerToken(worker.token, 'x');
const seed: CapTokenRecordInput = { token, uses_left: 5, revoked: false };
const c = CapTokenRecord.fromJSON(seed);
const d = CapTokenRecord.fromJSON(b.toJSON());
const e = CapTokenRecord.fromJSON(JSON.stringify(b));
const view: [CapToken, number | null, boolean, string | null, string] = [a.token, a.usesLeft, a.revoked, a.taskId, a.fingerprint];
a.consume();
const can: boolean = a.canConsume();
a.revoke();
const json: CapTokenRecordJSON = a.toJSON();
for (const r of [a, b, c, d, e]) r.free();

// ---- CapTokenError ------------------------------------------------------
try {
  store.verify('x', 'heartbeat');
} catch (error) {
  if (error instanceof CapTokenError) {
    expectType<typeof error.code, ErrorCode>(true);
    const details = [error.fingerprint, error.role, error.verb, error.bound, error.arg, error.current, error.max] as const;
    console.log(error.name, error.message, details);
  }
}

// ---- wrong usage is rejected -----------------------------------------------
// @ts-expect-error: init resolves to nothing
const notText: Promise<string> = init();
// @ts-expect-error: init takes one source
await init('a.wasm', 'b.wasm');
// @ts-expect-error: not a verb
store.check(op.bearer, 'self_destruct');
// @ts-expect-error: not a role
store.attachOperator('op', { role: 'admin' });

export {};
