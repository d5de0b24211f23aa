// ES module entry of `captoken/node`: the same instance as the CommonJS one.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const { DurableTokenStore, TokenStore, CapTokenRecord, CapTokenError } = require('./durable.cjs');
