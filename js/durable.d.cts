import type { StoreOptions, TokenStore as Store } from './types.cjs';
export * from './types.cjs';

export interface DurableOptions extends StoreOptions {
  /** Fold the journal into a new snapshot once it reaches this many bytes (default 4 MiB; 0 = never). */
  compactBytes?: number;
}

/**
 * A TokenStore kept in a directory: every change is appended to a journal and
 * fsynced before the call returns; `open` rebuilds the state after a crash.
 */
export declare class DurableTokenStore
  implements Pick<Store, 'attachOperator' | 'mint' | 'adopt' | 'startTask' | 'dispatchAttempt' | 'verify'
    | 'check' | 'revoke' | 'revokeTask' | 'remint' | 'purgeExpired' | 'record' | 'task' | 'records' | 'tasks'
    | 'snapshot' | 'size'> {
  private constructor();
  static open(dir: string, options: DurableOptions): DurableTokenStore;
  /** Bytes of a torn last journal line dropped when opening (0 after a clean stop). */
  readonly droppedBytes: number;
  attachOperator: Store['attachOperator'];
  mint: Store['mint'];
  adopt: Store['adopt'];
  startTask: Store['startTask'];
  dispatchAttempt: Store['dispatchAttempt'];
  verify: Store['verify'];
  check: Store['check'];
  revoke: Store['revoke'];
  revokeTask: Store['revokeTask'];
  remint: Store['remint'];
  purgeExpired: Store['purgeExpired'];
  record: Store['record'];
  task: Store['task'];
  records: Store['records'];
  tasks: Store['tasks'];
  snapshot: Store['snapshot'];
  readonly size: number;
  /** Fold the journal into a new snapshot now. */
  compact(): void;
  /** Flush, close the journal and free the store. */
  close(): void;
}
