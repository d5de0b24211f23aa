// README's "Many processes, many machines" snippet runs as written (an ES
// module), against a redis-server this test starts (REDIS_URL).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startRedis } from './server.js';

const run = promisify(execFile);
const readme = fileURLToPath(new URL('../../README.md', import.meta.url));

test('the README snippet runs as written', async () => {
  const text = fs.readFileSync(readme, 'utf8');
  const section = text.slice(text.indexOf('## Many processes, many machines'));
  const snippet = /```js\n([\s\S]*?)```/.exec(section)[1];
  assert.match(snippet, /RedisTokenStore\.open\(client, \{ secret, namespace: 'swarm-a' \}\)/);
  const file = fileURLToPath(new URL(`./readme-snippet-${process.pid}.mjs`, import.meta.url));
  const server = await startRedis();
  try {
    fs.writeFileSync(file, snippet);
    const { stdout } = await run(process.execPath, [file], { env: { ...process.env, REDIS_URL: server.url }, timeout: 30_000 });
    assert.match(stdout, /agentId: 'worker-of-task-[0-9a-f]{12}'/);
    assert.match(stdout, /usesLeft: 0/);
    assert.match(stdout.trim(), /ERR_TOKEN_USES_EXHAUSTED$/);
  } finally {
    fs.rmSync(file, { force: true });
    await server.stop();
  }
});
