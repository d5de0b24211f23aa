import type { StoreOptions, TokenStore as Store } from './types.cjs';
export * from './types.cjs';

export interface DurableOptions extends StoreOptions {
  /** Fold the journal into a new snapshot once it reaches this many bytes (default 4 MiB; 0 = never). */
  compactBytes?: number;
}

/**
 * A TokenStore kept in a directory: every change is appended to a journal and
 * fsynced before the call returns; `open` rebuilds the state after a crash.
 *
 * One store at a time: `open` takes `lock.json` in the directory and throws
 * ERR_STORE_UNAVAILABLE, naming the holder, while another store (of this or
 * another process) has it open; a lock left by a dead process of this host
 * is taken over. After a failed write (e.g. ENOSPC) every call throws
 * ERR_STORE_UNAVAILABLE until the store is closed and reopened; after
 * `close()`, every call throws ERR_STORE_UNAVAILABLE "store unavailable: the
 * store is closed". No property of the object holds the secret.
 */
export declare class DurableTokenStore
  implements Pick<Store, 'attachOperator' | 'mint' | 'adopt' | 'startTask' | 'dispatchAttempt' | 'verify'
    | 'check' | 'revoke' | 'revokeTask' | 'remint' | 'purgeExpired' | 'record' | 'task' | 'records' | 'tasks'
    | 'size'> {
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
  /**
   * Compact (fold the journal into a new snapshot generation) and return that
   * snapshot's text, so that the journal chain on disk is never broken.
   */
  snapshot(): string;
  readonly size: number;
  /** Fold the journal into a new snapshot now. */
  compact(): void;
  /** Flush, close the journal, free the store and release the lock; a second call does nothing. */
  close(): void;
}
