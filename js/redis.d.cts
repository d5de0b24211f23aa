import type {
  CapTokenRecordJSON, Decision, Grant, MintOptions, Minted, Role, StartTaskOptions, StoreOptions, TaskInfo, Verb,
} from './types.cjs';
export * from './types.cjs';

/** How long one call waits for Redis unless `timeoutMs` says otherwise (2000 ms). */
export declare const DEFAULT_TIMEOUT_MS: number;

/**
 * A node-redis client or cluster (`createClient`, `createCluster`), or an
 * ioredis `Redis` or `Cluster`, already connected. Neither package is a
 * dependency of captoken: bring your own.
 */
export type RedisClientLike = object;

export interface RedisStoreOptions extends StoreOptions {
  /** 1 to 64 characters of A-Z a-z 0-9 . _ : - ; stores with different namespaces never see each other's keys. */
  namespace: string;
  /** How long one call waits for Redis before it fails with ERR_STORE_UNAVAILABLE (default 2000 ms). */
  timeoutMs?: number;
}

/**
 * A TokenStore whose records and tasks live in Redis, shared by every
 * process that opens the same namespace. Every method returns a Promise.
 */
export declare class RedisTokenStore {
  private constructor();
  static open(client: RedisClientLike, options: RedisStoreOptions): Promise<RedisTokenStore>;
  /** Load TokenStore snapshot text into an empty namespace. */
  static import(client: RedisClientLike, snapshot: string, options: RedisStoreOptions): Promise<RedisTokenStore>;
  readonly namespace: string;
  attachOperator(agentId: string, options?: MintOptions): Promise<Minted>;
  mint(agentId: string, role: Role, options?: MintOptions): Promise<Minted>;
  adopt(bearer: string, taskId?: string | null): Promise<string>;
  startTask(bearer: string, options?: StartTaskOptions): Promise<TaskInfo>;
  dispatchAttempt(bearer: string, taskId: string, options?: MintOptions): Promise<Minted>;
  /** Resolves to a Grant or rejects with a CapTokenError. Calls made in the same turn share one FCALL (or EVALSHA; 64 at most). */
  verify(bearer: string, verb: Verb, taskId?: string | null): Promise<Grant>;
  /** As verify, spending nothing; never rejects. */
  check(bearer: string, verb: Verb, taskId?: string | null): Promise<Decision>;
  revoke(fingerprint: string): Promise<boolean>;
  revokeTask(taskId: string): Promise<number>;
  remint(bearer: string): Promise<Minted>;
  purgeExpired(): Promise<number>;
  record(fingerprint: string): Promise<CapTokenRecordJSON | undefined>;
  task(taskId: string): Promise<TaskInfo | undefined>;
  records(): AsyncIterable<CapTokenRecordJSON>;
  tasks(): AsyncIterable<TaskInfo>;
  size(): Promise<number>;
  snapshot(): Promise<string>;
  /** Later calls reject with ERR_STORE_UNAVAILABLE ("the store is closed"); the client stays the caller's. */
  close(): Promise<void>;
}
