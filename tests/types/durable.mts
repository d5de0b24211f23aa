// captoken/node: every member of DurableTokenStore, with exact types.
import {
  DurableTokenStore,
  CapTokenError,
  type DurableOptions,
  type Grant,
  type Minted,
  type TaskInfo,
  type Decision,
  type CapTokenRecordJSON,
} from 'captoken/node';

const options: DurableOptions = { secret: new Uint8Array(32), compactBytes: 1 << 20, format: 'v2', journal: true };
const store: DurableTokenStore = DurableTokenStore.open('/tmp/captoken-types', options);
const dropped: number = store.droppedBytes;
const op: Minted = store.attachOperator('op');
const minted: Minted = store.mint('w', 'worker', { taskId: 't', maxUses: 1 });
const fp: string = store.adopt(minted.bearer);
const root: TaskInfo = store.startTask(op.bearer, { taskId: 't' });
const worker: Minted = store.dispatchAttempt(op.bearer, root.taskId);
const grant: Grant = store.verify(worker.bearer, 'fetch_prompt', root.taskId);
const decision: Decision = store.check(worker.bearer, 'fetch_prompt');
const revoked: boolean = store.revoke(fp);
const count: number = store.revokeTask(root.taskId) + store.purgeExpired() + store.size;
const again: Minted = store.remint(worker.bearer);
const record = store.record(again.fingerprint);
const usesLeft: number | null | undefined = record?.usesLeft;
const task: TaskInfo | undefined = store.task('t');
const records: CapTokenRecordJSON[] = store.records();
const tasks: TaskInfo[] = store.tasks();
const text: string = store.snapshot();
store.compact();
store.close();
const isError: boolean = new Error() instanceof CapTokenError;

// @ts-expect-error compactBytes is a number
DurableTokenStore.open('/tmp/x', { secret: new Uint8Array(32), compactBytes: 'big' });
// @ts-expect-error open needs a directory
DurableTokenStore.open({ secret: new Uint8Array(32) });

export { dropped, grant, decision, revoked, count, usesLeft, task, records, tasks, text, isError };
