// ES module entry of `captoken/redis`: the same instance as the CommonJS one.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const { RedisTokenStore, TokenStore, CapTokenRecord, CapTokenError, DEFAULT_TIMEOUT_MS } = require('./redis.cjs');
