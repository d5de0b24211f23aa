// Field names follow one rule: what the JavaScript API builds is camelCase
// (options, Grant, Decision, TaskInfo, Minted, class getters such as
// `record.usesLeft`); what is wire format is snake_case (CapToken,
// CapTokenRecordJSON from `records()` and `toJSON()`, snapshot and journal
// text), the reference engine's shape, so that it crosses implementations,
// disks and versions unchanged. docs/protocol.md describes the wire format.

/** A token holder's role. */
export type Role = 'operator' | 'worker' | 'observer' | 'senior';

/** The 24 verbs a token holder can ask for. */
export type Verb =
  | 'start_task' | 'dispatch_attempt' | 'mint_worker_token' | 'read_task_state'
  | 'cancel_task' | 'query_senior' | 'mark_pass' | 'mark_blocked' | 'attach_session'
  | 'detach_session' | 'heartbeat' | 'poll_task' | 'fetch_prompt' | 'fetch_data'
  | 'post_result' | 'verify_token' | 'emit_output' | 'subscribe_events' | 'read_trace'
  | 'answer_query' | 'override_verdict' | 'pause_loop' | 'resume_loop' | 'inject_directive';

/** The 14 stable error codes. */
export type ErrorCode =
  | 'ERR_MALFORMED_TOKEN' | 'ERR_BAD_SIGNATURE' | 'ERR_TOKEN_EXPIRED' | 'ERR_ROLE_VIOLATION'
  | 'ERR_TOKEN_NOT_FOUND' | 'ERR_TOKEN_TASK_MISMATCH' | 'ERR_TOKEN_REVOKED'
  | 'ERR_TOKEN_USES_EXHAUSTED' | 'ERR_SPAWN_DEPTH_EXCEEDED' | 'ERR_TASK_NOT_FOUND'
  | 'ERR_INVALID_ARGUMENT' | 'ERR_SNAPSHOT_INVALID' | 'ERR_LIMIT_EXCEEDED'
  | 'ERR_STORE_UNAVAILABLE';

/** A capability token, as its bearer string encodes it (wire format: snake_case). */
export interface CapToken {
  /** `2` for the v2 signing format; absent for mlua-swarm. */
  v?: 2;
  agent_id: string;
  role: Role;
  /** `"*"` means unrestricted. */
  scopes: string[];
  /** Unix seconds. */
  issued_at: number;
  /** Unix seconds; Operator tokens never expire. */
  expire_at: number;
  /** `null` for unlimited. */
  max_uses: number | null;
  /** 32 lowercase hex characters; secret. Empty in records. */
  nonce: string;
  /** 64 lowercase hex characters (HMAC-SHA256). */
  sig_hex: string;
}

/** A record as JSON (wire format: snake_case): the seed's shape plus the token's fingerprint. */
export interface CapTokenRecordJSON {
  token: CapToken;
  uses_left: number | null;
  revoked: boolean;
  task_id: string | null;
  fingerprint: string;
}

/** The seed's own record shape, accepted by `CapTokenRecord.fromJSON`. */
export interface CapTokenRecordInput {
  token: CapToken;
  uses_left: number | null;
  revoked: boolean;
  task_id?: string | null;
  /** May be missing when the token carries its nonce. */
  fingerprint?: string;
}

/** Every denial and every bad input. */
export declare class CapTokenError extends Error {
  private constructor();
  readonly name: 'CapTokenError';
  readonly code: ErrorCode;
  readonly fingerprint?: string;
  readonly role?: Role;
  readonly verb?: Verb;
  readonly bound?: string;
  readonly arg?: string;
  readonly current?: number;
  /** The limit's value (`ERR_LIMIT_EXCEEDED`) or the maximum spawn depth. */
  readonly max?: number;
  /** `ERR_LIMIT_EXCEEDED`: the name of the option that sets the limit. */
  readonly limit?: string;
}

/** The state paired 1:1 with a minted token. Never hands back a nonce. */
export declare class CapTokenRecord {
  private constructor();
  static fromToken(token: CapToken): CapTokenRecord;
  static fromWorkerToken(token: CapToken, taskId: string): CapTokenRecord;
  static fromJSON(json: CapTokenRecordJSON | CapTokenRecordInput | string): CapTokenRecord;
  readonly token: CapToken;
  readonly usesLeft: number | null;
  readonly revoked: boolean;
  readonly taskId: string | null;
  readonly fingerprint: string;
  /** Spend one use; throws ERR_TOKEN_REVOKED or ERR_TOKEN_USES_EXHAUSTED. */
  consume(): void;
  /** The same decision as `consume`, spending nothing. */
  canConsume(): boolean;
  revoke(): void;
  toJSON(): CapTokenRecordJSON;
  /**
   * Release the record's memory in the WebAssembly module now; later calls on
   * it throw. Optional: a FinalizationRegistry frees an unreachable record
   * when the garbage collector gets to it (perhaps never in a short script,
   * which does not matter). Worth calling when reading many records in a
   * long-running process.
   */
  free(): void;
}

export interface StoreOptions {
  /** At least 32 bytes. */
  secret: Uint8Array;
  /** Default `'v2'`. */
  format?: 'v2' | 'mlua-swarm';
  /** Default 4: depths 0 to 3 exist. */
  maxSpawnDepth?: number;
  /** Default 1800. */
  workerTokenTtlSecs?: number;
  /** Unix seconds; default `Date.now() / 1000`. */
  now?: () => number;
  /** Replaces the default verbs of each role given. */
  gate?: Partial<Record<Role, Verb[]>>;
  /** Keep every state change as journal lines for `takeJournal()` (default false). */
  journal?: boolean;
  /**
   * `TokenStore.restore` only: accept a snapshot of the old, unsealed shape
   * (no `key_id` and `mac`), and unsealed journal lines after it (default
   * false). Nothing vouches for such text: anyone who could write it could
   * have revived a spent or revoked token. Sealed text is checked either way.
   */
  allowUnsealed?: boolean;
  /**
   * Limits (ERR_LIMIT_EXCEEDED past them; Workers may fill the store-wide
   * two only to nine tenths, so an Operator can always start a new root).
   * Records in the store; default 2,000,000.
   */
  maxRecords?: number;
  /** Tasks in the store; default 1,000,000. */
  maxTasks?: number;
  /** Tasks in one root task's tree, the root included; default 10,000. */
  maxTasksPerTree?: number;
  /** Tasks started directly under one task; default 1,000. */
  maxChildrenPerTask?: number;
  /** Tasks and tokens one Worker token may make (startTask, dispatchAttempt); default 1,000. */
  maxMadePerWorkerToken?: number;
}

export interface MintOptions {
  /** Default `["*"]`. */
  scopes?: string[];
  /** Default: the store's `workerTokenTtlSecs`. */
  ttlSecs?: number;
  /**
   * Default `null`: unlimited. A Worker with limited uses dispatching must
   * name it (at least 1, at most its uses left minus this call's own): the
   * uses are transferred from its own budget.
   */
  maxUses?: number | null;
  /** Bind the token to this task, tracked by the store or not. */
  taskId?: string;
}

export interface StartTaskOptions {
  /** The new task's id (Operators and other non-Worker roles only); default: made by the store. */
  taskId?: string;
  /** Start the task under this tracked task instead of as a root (a Worker: its bound task by default). */
  parentId?: string;
}

export interface Minted {
  /** Hand this to the token's holder; it carries the nonce. */
  bearer: string;
  token: CapToken;
  fingerprint: string;
}

export interface Grant {
  fingerprint: string;
  agentId: string;
  role: Role;
  scopes: string[];
  taskId: string | null;
  /** After this call's use for `verify`; as they stand for `check`. */
  usesLeft: number | null;
}

export type Decision =
  | ({ allowed: true } & Grant)
  | { allowed: false; code: ErrorCode; message: string };

export interface TaskInfo {
  taskId: string;
  parentId: string | null;
  spawnDepth: number;
}

/** The token table and task table of one orchestrator. */
export declare class TokenStore {
  constructor(options: StoreOptions);
  /**
   * A store from `snapshot()` text, then the journal lines written after it.
   * The seal of the snapshot and of every journal line is checked first
   * (docs/snapshot-and-journal.md): edited text, a line deleted, duplicated
   * or moved, another secret ("the secret does not match"), an unsealed
   * snapshot without `allowUnsealed`, or a task at depth >= maxSpawnDepth
   * throw ERR_SNAPSHOT_INVALID and create nothing. Complete lines cut off the
   * end of the journal, and an older sealed snapshot and journal put back,
   * look like a crash and are not detected.
   */
  static restore(snapshot: string, options: StoreOptions, journal?: string): TokenStore;
  attachOperator(agentId: string, options?: MintOptions): Minted;
  mint(agentId: string, role: Role, options?: MintOptions): Minted;
  adopt(bearer: string, taskId?: string): string;
  /**
   * A root task, or a child of `parentId` at its depth + 1. A Worker starts
   * children of its bound task (or, naming `parentId`, of a task below it);
   * their ids are made by the store, so a Worker passes no `taskId`.
   */
  startTask(bearer: string, options?: StartTaskOptions): TaskInfo;
  dispatchAttempt(bearer: string, taskId: string, options?: MintOptions): Minted;
  /** Decide a call and spend one use; throws CapTokenError when denied. */
  verify(bearer: string, verb: Verb, taskId?: string): Grant;
  /** Decide a call as `verify` would; never spends, never throws. */
  check(bearer: string, verb: Verb, taskId?: string): Decision;
  revoke(fingerprint: string): boolean;
  revokeTask(taskId: string): number;
  remint(bearer: string): Minted;
  purgeExpired(): number;
  record(fingerprint: string): CapTokenRecord | undefined;
  task(taskId: string): TaskInfo | undefined;
  records(): CapTokenRecordJSON[];
  tasks(): TaskInfo[];
  readonly size: number;
  /**
   * The whole state as sealed JSON text (no nonce, no secret). Starts a new
   * journal chain: lines not yet taken are dropped (the snapshot holds their
   * changes), and the next line is chained to this snapshot. Throws
   * ERR_LIMIT_EXCEEDED (limit `memory`) when the text does not fit in the
   * module's memory; the store is unchanged then.
   */
  snapshot(): string;
  /**
   * The journal lines (newline-delimited JSON, no nonce, no secret) written
   * since the last call; `''` unless the store was made with `journal: true`.
   * Each line is sealed and chained to the one before it.
   */
  takeJournal(): string;
  /**
   * Release the store's memory in the WebAssembly module now; later calls on
   * it throw. Optional: a FinalizationRegistry frees an unreachable store
   * when the garbage collector gets to it (perhaps never in a short script,
   * which does not matter). Worth calling when a long-running process drops
   * stores, or to give a large store's memory back at a known moment.
   */
  free(): void;
}
