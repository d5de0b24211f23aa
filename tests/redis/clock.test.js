// Without a `now` option a RedisTokenStore reads the system clock in
// JavaScript (js/redis.cjs #now) instead of calling into the module: it must
// give the same time as the core's own clock (JsClock in
// src/bindings/args.rs), a clock that cannot be read failing closed alike.
// Both read Date.now(), so replacing it steers both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RedisTokenStore, TokenStore } from 'captoken/redis';
import { SECRET } from '../node/helpers.js';
import { serverWithClient } from './server.js';
import { freshNamespace } from './stores.js';

const redis = serverWithClient();

test('the store reads the system clock as the core does, failing closed alike', async () => {
  const local = new TokenStore({ secret: SECRET });
  const shared = await RedisTokenStore.open(redis.client, { secret: SECRET, namespace: freshNamespace() });
  const realNow = Date.now;
  const start = Math.floor(realNow() / 1000);
  const minted = {
    local: local.mint('w', 'worker', { ttlSecs: 100, maxUses: 50 }),
    shared: await shared.mint('w', 'worker', { ttlSecs: 100, maxUses: 50 }),
  };
  const times = [
    undefined, // the real clock
    (start + 50) * 1000, (start + 99) * 1000 + 999, (start + 100) * 1000, (start + 100) * 1000 - 1,
    start * 1000 - 1, 0, 999, -1, -5000, NaN, Infinity, -Infinity, 2 ** 53 * 1000, 1e300, -0,
  ];
  for (const t of times) {
    if (t !== undefined) Date.now = () => t;
    let answers;
    try {
      answers = [
        local.check(minted.local.bearer, 'fetch_data'),
        await shared.check(minted.shared.bearer, 'fetch_data'),
      ].map((d) => (d.allowed ? 'allowed' : d.code));
    } finally {
      Date.now = realNow;
    }
    assert.equal(answers[1], answers[0], `Date.now() = ${t}`);
  }
  // A time past expiry and an unreadable one are both refused.
  Date.now = () => NaN;
  try {
    assert.equal((await shared.check(minted.shared.bearer, 'fetch_data')).code, 'ERR_TOKEN_EXPIRED');
  } finally {
    Date.now = realNow;
  }
  assert.equal((await shared.check(minted.shared.bearer, 'fetch_data')).allowed, true);
  await shared.close();
  local.free();
});
