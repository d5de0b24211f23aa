// IndexedDB persistence for the console: one record holding the secret, the
// store options, the store's snapshot, the bearers minted here (the snapshot
// deliberately holds no nonce, so they are kept beside it), refused spawns and
// the audit log. Everything stays in this browser.

const DB_NAME = 'captoken-console';
const DB_VERSION = 1;
const OBJECT_STORE = 'state';
const KEY = 'current';

let dbPromise;

function open() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains(OBJECT_STORE)) {
          req.result.createObjectStore(OBJECT_STORE);
        }
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
      req.onblocked = () => reject(new Error('IndexedDB is blocked by another tab'));
    });
    dbPromise.catch(() => {
      dbPromise = undefined;
    });
  }
  return dbPromise;
}

function run(mode, fn) {
  return open().then(
    (db) =>
      new Promise((resolve, reject) => {
        const tx = db.transaction(OBJECT_STORE, mode);
        const req = fn(tx.objectStore(OBJECT_STORE));
        tx.oncomplete = () => resolve(req?.result);
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
      }),
  );
}

/** The saved console state, or undefined. */
export function loadState() {
  return run('readonly', (os) => os.get(KEY));
}

/** Replace the saved console state (structured clone: the secret stays a Uint8Array). */
export function saveState(state) {
  return run('readwrite', (os) => os.put(state, KEY));
}

/** Forget everything saved. */
export function clearState() {
  return run('readwrite', (os) => os.delete(KEY));
}

export const DB_INFO = { name: DB_NAME, store: OBJECT_STORE, key: KEY };
