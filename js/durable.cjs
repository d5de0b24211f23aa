'use strict';
// A TokenStore that survives a crash: `require('captoken/node')`.
//
// The directory holds `snapshot-<gen>.json` and `journal-<gen>.ndjson`. Every
// call that changes the state appends its journal lines and fsyncs them
// before it returns, so whatever a caller was told has happened is on disk.
// Now and then the journal is folded into a new snapshot (a new generation,
// written to a temporary file, fsynced and renamed into place) and the old
// generation is deleted. Opening takes the newest snapshot and replays its
// journal; a torn last line (a crash mid-write) is dropped.
const fs = require('node:fs');
const path = require('node:path');
const { TokenStore, CapTokenError } = require('./index.cjs');

const SNAPSHOT = /^snapshot-(\d{16})\.json$/;
const JOURNAL = /^journal-(\d{16})\.ndjson$/;
const name = (kind, gen) =>
  `${kind}-${String(gen).padStart(16, '0')}.${kind === 'snapshot' ? 'json' : 'ndjson'}`;

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

function writeFileDurably(file, text) {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, text);
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

const MUTATING = ['attachOperator', 'mint', 'adopt', 'startTask', 'dispatchAttempt', 'verify',
  'revoke', 'revokeTask', 'remint', 'purgeExpired'];
const READING = ['check', 'record', 'task', 'records', 'tasks', 'snapshot'];

class DurableTokenStore {
  /**
   * Open (or create) the store kept in `dir`.
   * @param {string} dir
   * @param {import('./types.cjs').StoreOptions & { compactBytes?: number }} options
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
    return new DurableTokenStore(dir, storeOptions, compactBytes);
  }

  constructor(dir, options, compactBytes) {
    this.dir = dir;
    this.options = { ...options, journal: true };
    this.compactBytes = compactBytes;
    const files = fs.readdirSync(dir);
    const gens = files.map((f) => SNAPSHOT.exec(f)).filter(Boolean).map((m) => Number(m[1]));
    this.gen = gens.length ? Math.max(...gens) : 0;
    const snapshotFile = path.join(dir, name('snapshot', this.gen));
    const snapshot = gens.length
      ? fs.readFileSync(snapshotFile, 'utf8')
      : new TokenStore(this.options).snapshot();
    const journalFile = path.join(dir, name('journal', this.gen));
    const { text, dropped } = readJournal(journalFile);
    /** Bytes of a torn last line dropped when opening (0 after a clean stop). */
    this.droppedBytes = dropped;
    this.store = TokenStore.restore(snapshot, this.options, text);
    this.journalBytes = Buffer.byteLength(text);
    this.fd = fs.openSync(journalFile, 'a');
    fsyncDir(dir);
    // Files of other generations are leftovers of an interrupted compaction.
    for (const f of files) {
      const m = SNAPSHOT.exec(f) ?? JOURNAL.exec(f);
      if ((m && Number(m[1]) !== this.gen) || f.endsWith('.tmp')) fs.rmSync(path.join(dir, f), { force: true });
    }
  }

  /** Append and fsync what the last call changed. */
  flush() {
    const lines = this.store.takeJournal();
    if (lines === '') return;
    fs.writeSync(this.fd, lines);
    fs.fsyncSync(this.fd);
    this.journalBytes += Buffer.byteLength(lines);
    if (this.compactBytes > 0 && this.journalBytes >= this.compactBytes) this.compact();
  }

  /** Fold the journal into a new snapshot generation. */
  compact() {
    this.flush();
    const next = this.gen + 1;
    writeFileDurably(path.join(this.dir, name('snapshot', next)), this.store.snapshot());
    const fd = fs.openSync(path.join(this.dir, name('journal', next)), 'a');
    fs.fsyncSync(fd);
    fsyncDir(this.dir);
    fs.closeSync(this.fd);
    this.fd = fd;
    const old = this.gen;
    this.gen = next;
    this.journalBytes = 0;
    fs.rmSync(path.join(this.dir, name('journal', old)), { force: true });
    fs.rmSync(path.join(this.dir, name('snapshot', old)), { force: true });
  }

  get size() {
    return this.store.size;
  }

  /** Flush, close the journal and free the store. */
  close() {
    if (this.fd === undefined) return;
    this.flush();
    fs.closeSync(this.fd);
    this.fd = undefined;
    this.store.free();
  }
}

for (const method of MUTATING) {
  DurableTokenStore.prototype[method] = function (...args) {
    if (this.fd === undefined) {
      throw new CapTokenError('invalid argument: the store is closed', { code: 'ERR_INVALID_ARGUMENT' });
    }
    try {
      return this.store[method](...args);
    } finally {
      this.flush();
    }
  };
}
for (const method of READING) {
  DurableTokenStore.prototype[method] = function (...args) {
    return this.store[method](...args);
  };
}

module.exports = { DurableTokenStore, TokenStore, CapTokenRecord: require('./index.cjs').CapTokenRecord, CapTokenError };
