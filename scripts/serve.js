// A small static server for the operator console: loopback only, correct
// MIME types (application/wasm for .wasm), no directory listings, and a
// Content-Security-Policy that lets only this origin's files run.
// Usage: node scripts/serve.js [--port N] [--check-port]
//   PORT env works too; 0 = any free port. --check-port only tells whether
//   the port is free (exit 0) or says what to do (exit 1): `npm start` runs it
//   before the set-up and the build, so a busy port is known at once.
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const HOST = '127.0.0.1';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

// The console keeps a secret and bearers in IndexedDB, readable by any script
// of this origin, so only the origin's own files may run: no inline script
// or style, no other origin, no framing. 'wasm-unsafe-eval' is what
// WebAssembly.instantiate needs under a script-src; data: is the empty icon.
export const SECURITY_HEADERS = {
  'content-security-policy': [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

// Only these folders are served; `/` is the console.
const MOUNTS = ['www', 'js', 'pkg'];

function resolvePath(urlPath) {
  let path = decodeURIComponent(urlPath.split('?')[0]);
  if (path === '/' || path === '') path = '/www/index.html';
  const clean = normalize(path).replace(/^([/\\])+/, '');
  const top = clean.split(sep)[0];
  if (!MOUNTS.includes(top) || clean.split(sep).includes('..')) return null;
  return join(root, clean);
}

export function startServer(port = 8080) {
  const server = createServer(async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...SECURITY_HEADERS, allow: 'GET, HEAD' }).end();
      return;
    }
    let file;
    try {
      file = resolvePath(new URL(req.url, 'http://localhost').pathname);
    } catch {
      file = null;
    }
    try {
      if (!file) throw new Error('outside');
      let info = await stat(file);
      if (info.isDirectory()) {
        file = join(file, 'index.html');
        info = await stat(file);
      }
      const body = await readFile(file);
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'content-length': body.length,
        'cache-control': 'no-cache',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => resolve(server));
  });
}

/** The one line a user needs when the port is taken, instead of a stack. */
function portAdvice(port, err) {
  const next = port > 0 && port < 65535 ? port + 1 : 8081;
  if (err.code === 'EADDRINUSE') {
    return `captoken console: port ${port} is already in use. Stop what is listening there, or pick another port: PORT=${next} npm start (or: npm start -- --port ${next})`;
  }
  return `captoken console: cannot listen on ${HOST}:${port} (${err.code ?? err.message}). Pick another port: PORT=${next} npm start`;
}

/**
 * When started by `npm start`, stop with it: npm forwards SIGTERM and SIGINT
 * to its child, but a SIGKILLed npm forwards nothing, so watch the process
 * that started us too.
 */
function stopWithParent() {
  const parent = Number(process.env.CAPTOKEN_PARENT_PID);
  if (!Number.isInteger(parent) || parent <= 1) return;
  setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch {
      process.exit(0);
    }
  }, 1000).unref();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const flag = process.argv.indexOf('--port');
  const raw = flag > 0 ? process.argv[flag + 1] : process.env.PORT ?? '8080';
  const port = Number(raw);
  if (!/^\d+$/.test(String(raw)) || port > 65535) {
    console.error(`captoken console: the port must be a number from 0 to 65535, not ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  let server;
  try {
    server = await startServer(port);
  } catch (err) {
    console.error(portAdvice(port, err));
    process.exit(1);
  }
  if (process.argv.includes('--check-port')) {
    await new Promise((resolve) => server.close(resolve));
  } else {
    // Exit at once: a static server has nothing to flush, and waiting for a
    // browser's keep-alive connections to end could keep it listening.
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(0));
    stopWithParent();
    const { port: bound } = server.address();
    console.log(`captoken console: http://${HOST}:${bound}/  (Ctrl-C stops it)`);
  }
}
