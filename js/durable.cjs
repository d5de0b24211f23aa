'use strict';
// A TokenStore that survives a crash: `require('captoken/node')`.
//
// The directory holds `snapshot-<gen>.json`, `journal-<gen>.ndjson` and,
// while a store has it open, `lock.json`. Every call that changes the state
// appends its journal lines and fsyncs them before it returns, so whatever a
// caller was told has happened is on disk. Now and then the journal is folded
// into a new snapshot (a new generation, written to a temporary file, fsynced
// and renamed into place) and the old generation is deleted. Opening takes
// the newest snapshot and replays its journal; a torn last line (a crash
// mid-write) is dropped. Snapshots and journal lines are sealed and chained
// (docs/snapshot-and-journal.md): an edited, deleted, duplicated or moved
// line is refused when opening.
//
// Nothing here keeps the secret: it goes to the TokenStore (inside the
// WebAssembly module) when the store is opened and is not held by any object
// of this file. Every other field is private (#), so util.inspect,
// JSON.stringify and structuredClone see none of them.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { TokenStore, CapTokenRecord, CapTokenError } = require('./index.cjs');

const SNAPSHOT = /^snapshot-(\d{16})\.json$/;
const JOURNAL = /^journal-(\d{16})\.ndjson$/;
const LOCK = 'lock.json';
const SEALED = '{"version":1,"key_id":"';
const name = (kind, gen) =>
  `${kind}-${String(gen).padStart(16, '0')}.${kind === 'snapshot' ? 'json' : 'ndjson'}`;

const unavailable = (reason) => new CapTokenError(`store unavailable: ${reason}`, { code: 'ERR_STORE_UNAVAILABLE' });

function fsyncDir(dir) {
  let fd;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some platforms cannot fsync a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Write all of `bytes` (writeSync may write fewer than asked). */
function writeAll(fd, bytes) {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}

function writeFileDurably(file, text) {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    writeAll(fd, Buffer.from(text, 'utf8'));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/**
 * The journal's complete lines. Lines are appended whole, newline last, so a
 * crash mid-write leaves at most one torn line at the end, without its
 * newline: it is dropped, and cut off the file so appends go on cleanly.
 * A damaged complete line is not guessed at: restoring it fails.
 */
function readJournal(file) {
  let bytes;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    if (error.code === 'ENOENT') return { text: '', dropped: 0 };
    throw error;
  }
  const end = bytes.lastIndexOf(0x0a) + 1;
  const dropped = bytes.length - end;
  if (dropped > 0) fs.truncateSync(file, end);
  return { text: bytes.subarray(0, end).toString('utf8'), dropped };
}

/** Whether a process with this pid runs on this host (EPERM: it does, as another user). */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

function readLock(file) {
  try {
    const holder = JSON.parse(fs.readFileSync(file, 'utf8'));
    return holder && typeof holder === 'object' && Number.isSafeInteger(holder.pid) ? holder : null;
  } catch (error) {
    return error.code === 'ENOENT' ? undefined : null;
  }
}

const describe = (holder) =>
  holder
    ? `pid ${holder.pid} on ${JSON.stringify(String(holder.hostname))}, since ${String(holder.started)}`
    : 'a holder whose lock file cannot be read';

/**
 * Take the directory's lock: `lock.json`, created with O_EXCL, holding pid,
 * hostname and start time. A lock left by a process of this host that no
 * longer runs is taken over (renamed aside first, so that of two processes
 * taking it over at once only one succeeds). Returns the lock's id.
 */
function acquireLock(dir) {
  const file = path.join(dir, LOCK);
  const id = crypto.randomBytes(16).toString('hex');
  const mine = JSON.stringify({ pid: process.pid, hostname: os.hostname(), started: new Date().toISOString(), id });
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd;
    try {
      fd = fs.openSync(file, 'wx');
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const holder = readLock(file);
      if (holder === undefined) continue; // removed meanwhile: try again
      const stale = holder !== null && holder.hostname === os.hostname() && holder.pid !== process.pid && !alive(holder.pid);
      if (!stale) {
        throw unavailable(`the directory is locked by ${describe(holder)} (${file}); ` +
          'one store at a time may open it. If no process uses it, remove the lock file.');
      }
      // Rename aside, then check that what was moved is the stale lock read
      // above and not a lock another process took meanwhile.
      const aside = `${file}.stale-${id}`;
      try {
        fs.renameSync(file, aside);
      } catch (renameError) {
        if (renameError.code === 'ENOENT') continue;
        throw renameError;
      }
      const moved = readLock(aside);
      if (moved?.id !== holder.id || moved?.pid !== holder.pid) {
        try {
          fs.linkSync(aside, file);
        } catch {
          // Someone else holds the lock now; ours is refused below.
        }
        fs.rmSync(aside, { force: true });
        throw unavailable(`the directory is locked by ${describe(moved)} (${file})`);
      }
      fs.rmSync(aside, { force: true });
      continue;
    }
    try {
      writeAll(fd, Buffer.from(mine));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fsyncDir(dir);
    return id;
  }
  throw unavailable(`the lock ${file} changed hands while opening; try again`);
}

function releaseLock(dir, id) {
  const file = path.join(dir, LOCK);
  if (readLock(file)?.id === id) fs.rmSync(file, { force: true });
}

const MUTATING = ['attachOperator', 'mint', 'adopt', 'startTask', 'dispatchAttempt', 'verify',
  'revoke', 'revokeTask', 'remint', 'purgeExpired'];
const READING = ['check', 'record', 'task', 'records', 'tasks'];
const OPENING = Symbol('DurableTokenStore.open');

class DurableTokenStore {
  #dir;
  #compactBytes;
  #gen;
  #store;
  #fd;
  #lockId;
  #journalBytes = 0;
  #droppedBytes = 0;
  /** Why the store refuses every call: closed, or a write failed. */
  #broken = null;

  /**
   * Open (or create) the store kept in `dir`, and lock the directory.
   * @param {string} dir
   * @param {import('./durable.cjs').DurableOptions} options
   */
  static open(dir, options) {
    if (typeof dir !== 'string' || dir === '') {
      throw new CapTokenError('invalid argument: dir must be a path', { code: 'ERR_INVALID_ARGUMENT' });
    }
    const { compactBytes = 4 * 1024 * 1024, ...storeOptions } = options ?? {};
    if (!Number.isSafeInteger(compactBytes) || compactBytes < 0) {
      throw new CapTokenError('invalid argument: compactBytes must be a whole number',
        { code: 'ERR_INVALID_ARGUMENT' });
    }
    fs.mkdirSync(dir, { recursive: true });
    return new DurableTokenStore(OPENING, dir, storeOptions, compactBytes);
  }

  constructor(opening, dir, options, compactBytes) {
    if (opening !== OPENING) {
      throw new CapTokenError('invalid argument: use DurableTokenStore.open(dir, options)',
        { code: 'ERR_INVALID_ARGUMENT' });
    }
    this.#dir = dir;
    this.#compactBytes = compactBytes;
    this.#lockId = acquireLock(dir);
    try {
      this.#load({ ...options, journal: true });
    } catch (error) {
      this.#store?.free();
      if (this.#fd !== undefined) fs.closeSync(this.#fd);
      releaseLock(dir, this.#lockId);
      throw error;
    }
  }

  #load(options) {
    const dir = this.#dir;
    const files = fs.readdirSync(dir);
    const gens = files.map((f) => SNAPSHOT.exec(f)).filter(Boolean).map((m) => Number(m[1]));
    this.#gen = gens.length ? Math.max(...gens) : 0;
    const journalFile = path.join(dir, name('journal', this.#gen));
    let snapshot;
    if (gens.length) {
      snapshot = fs.readFileSync(path.join(dir, name('snapshot', this.#gen)), 'utf8');
    } else if (options.allowUnsealed && fs.existsSync(journalFile)) {
      // A directory of the old format that never compacted: an unsealed
      // journal after the (unwritten) empty snapshot.
      snapshot = JSON.stringify({ version: 1, format: options.format ?? 'v2', records: [], tasks: [] });
    } else {
      // A new directory: its empty snapshot is written, so that opening it
      // with another secret says so (the seal names its key).
      const empty = new TokenStore(options);
      try {
        snapshot = empty.snapshot();
      } finally {
        empty.free();
      }
      writeFileDurably(path.join(dir, name('snapshot', 0)), snapshot);
    }
    const { text, dropped } = readJournal(journalFile);
    this.#droppedBytes = dropped;
    this.#store = TokenStore.restore(snapshot, options, text);
    this.#journalBytes = Buffer.byteLength(text);
    this.#fd = fs.openSync(journalFile, 'a');
    fsyncDir(dir);
    // Files of other generations are leftovers of an interrupted compaction.
    for (const f of files) {
      const m = SNAPSHOT.exec(f) ?? JOURNAL.exec(f);
      if ((m && Number(m[1]) !== this.#gen) || f.endsWith('.tmp')) fs.rmSync(path.join(dir, f), { force: true });
    }
    // A directory of the old, unsealed format (opened with allowUnsealed):
    // seal it now, so that sealed lines never follow unsealed ones.
    if (!snapshot.startsWith(SEALED)) this.#compact();
  }

  /** Throw unless the store can take a call (on a DurableTokenStore). */
  #usable() {
    if (this.#broken !== null) throw unavailable(this.#broken);
  }

  static #check(self) {
    if (!(self !== null && typeof self === 'object' && #broken in self)) {
      throw new CapTokenError('invalid argument: not a DurableTokenStore', { code: 'ERR_INVALID_ARGUMENT' });
    }
    self.#usable();
  }

  /**
   * Stop taking calls after a failed write: memory and disk may now differ,
   * and only reopening says what the disk holds.
   */
  #fail(error) {
    this.#broken = `a write to ${this.#dir} failed (${error?.code ?? error?.message ?? error}); ` +
      'the last call may or may not be on disk. Close and reopen the store.';
    return unavailable(this.#broken);
  }

  /** Append and fsync what the last call changed. */
  #flush() {
    const lines = this.#store.takeJournal();
    if (lines === '') return;
    try {
      writeAll(this.#fd, Buffer.from(lines, 'utf8'));
      fs.fsyncSync(this.#fd);
    } catch (error) {
      throw this.#fail(error);
    }
    this.#journalBytes += Buffer.byteLength(lines);
    if (this.#compactBytes > 0 && this.#journalBytes >= this.#compactBytes) this.#compact();
  }

  /** Fold the journal into a new snapshot generation; returns the snapshot. */
  #compact() {
    this.#flush();
    // From here the store's journal chain starts at the new snapshot: if
    // anything below fails, the old generation cannot be appended to.
    let text;
    try {
      text = this.#store.snapshot();
      const next = this.#gen + 1;
      writeFileDurably(path.join(this.#dir, name('snapshot', next)), text);
      const fd = fs.openSync(path.join(this.#dir, name('journal', next)), 'a');
      fs.fsyncSync(fd);
      fsyncDir(this.#dir);
      fs.closeSync(this.#fd);
      this.#fd = fd;
      const old = this.#gen;
      this.#gen = next;
      this.#journalBytes = 0;
      fs.rmSync(path.join(this.#dir, name('journal', old)), { force: true });
      fs.rmSync(path.join(this.#dir, name('snapshot', old)), { force: true });
    } catch (error) {
      if (error instanceof CapTokenError) {
        this.#broken ??= `compaction failed (${error.code}); close and reopen the store`;
        throw error;
      }
      throw this.#fail(error);
    }
    return text;
  }

  /** Bytes of a torn last line dropped when opening (0 after a clean stop). */
  get droppedBytes() {
    return this.#droppedBytes;
  }

  get size() {
    DurableTokenStore.#check(this);
    return this.#store.size;
  }

  /** Fold the journal into a new snapshot now. */
  compact() {
    DurableTokenStore.#check(this);
    this.#compact();
  }

  /**
   * Compact (a new generation) and return that snapshot's text. A plain
   * TokenStore's snapshot() starts a new journal chain; here the new chain
   * starts in a new generation, so the journal on disk is never broken.
   */
  snapshot() {
    DurableTokenStore.#check(this);
    return this.#compact();
  }

  /** Flush, close the journal, free the store and unlock the directory. A second close does nothing. */
  close() {
    if (!(this !== null && typeof this === 'object' && #broken in this)) DurableTokenStore.#check(this);
    if (this.#fd === undefined) return;
    let failure;
    if (this.#broken === null) {
      try {
        this.#flush();
      } catch (error) {
        failure = error;
      }
    }
    this.#broken = 'the store is closed';
    try {
      fs.closeSync(this.#fd);
    } finally {
      this.#fd = undefined;
      this.#store.free();
      releaseLock(this.#dir, this.#lockId);
    }
    if (failure) throw failure;
  }

  /** What util.inspect shows: the directory and whether the store is open. */
  [Symbol.for('nodejs.util.inspect.custom')]() {
    return `DurableTokenStore { dir: ${JSON.stringify(this.#dir)}, open: ${this.#fd !== undefined} }`;
  }

  toJSON() {
    return { dir: this.#dir };
  }

  static {
    for (const method of MUTATING) {
      DurableTokenStore.prototype[method] = function (...args) {
        DurableTokenStore.#check(this);
        let result;
        try {
          result = this.#store[method](...args);
        } finally {
          // A refused call writes nothing; flushing anyway keeps one path.
          this.#flush();
        }
        return result;
      };
    }
    for (const method of READING) {
      DurableTokenStore.prototype[method] = function (...args) {
        DurableTokenStore.#check(this);
        return this.#store[method](...args);
      };
    }
  }
}

module.exports = { DurableTokenStore, TokenStore, CapTokenRecord, CapTokenError };
