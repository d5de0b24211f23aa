// captoken/redis: every member of RedisTokenStore, with exact types.
import {
  RedisTokenStore,
  CapTokenError,
  DEFAULT_TIMEOUT_MS,
  type RedisStoreOptions,
  type Grant,
  type Minted,
  type TaskInfo,
  type Decision,
  type CapTokenRecordJSON,
} from 'captoken/redis';

declare const client: object;
const options: RedisStoreOptions = { secret: new Uint8Array(32), namespace: 'swarm-a', timeoutMs: DEFAULT_TIMEOUT_MS, maxRecords: 10 };
const store: RedisTokenStore = await RedisTokenStore.open(client, options);
const op: Minted = await store.attachOperator('op');
const minted: Minted = await store.mint('w', 'worker', { taskId: 't', maxUses: 1 });
const fp: string = await store.adopt(minted.bearer);
const root: TaskInfo = await store.startTask(op.bearer, { taskId: 't' });
const worker: Minted = await store.dispatchAttempt(op.bearer, root.taskId, { maxUses: 1 });
const grant: Grant = await store.verify(worker.bearer, 'fetch_prompt', root.taskId);
const decision: Decision = await store.check(worker.bearer, 'fetch_prompt');
const revoked: boolean = await store.revoke(fp);
const count: number = (await store.revokeTask(root.taskId)) + (await store.purgeExpired()) + (await store.size());
const again: Minted = await store.remint(worker.bearer);
const record: CapTokenRecordJSON | undefined = await store.record(again.fingerprint);
const task: TaskInfo | undefined = await store.task('t');
for await (const r of store.records()) { const u: number | null = r.uses_left; void u; }
for await (const t of store.tasks()) { const d: number = t.spawnDepth; void d; }
const text: string = await store.snapshot();
const imported: RedisTokenStore = await RedisTokenStore.import(client, text, { ...options, namespace: 'swarm-b' });
await store.close();
const isError: boolean = new Error() instanceof CapTokenError;

// @ts-expect-error the namespace is required
await RedisTokenStore.open(client, { secret: new Uint8Array(32) });
// @ts-expect-error verify resolves to a Grant, not a boolean
const wrong: boolean = await store.verify(worker.bearer, 'fetch_prompt');

export { grant, decision, revoked, count, record, task, imported, isError, wrong };
