// A small static server for the operator console: loopback only, correct
// MIME types (application/wasm for .wasm), no directory listings.
// Usage: node scripts/serve.js [--port N]   (PORT env works too; 0 = any free port)
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
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
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
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'content-length': body.length,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => resolve(server));
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const flag = process.argv.indexOf('--port');
  const port = Number(flag > 0 ? process.argv[flag + 1] : process.env.PORT ?? 8080);
  const server = await startServer(port);
  const { port: bound } = server.address();
  console.log(`captoken console: http://${HOST}:${bound}/`);
}
