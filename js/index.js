// ES module entry for Node: the same instance as the CommonJS entry.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const captoken = require('./index.cjs');

export const { TokenStore, CapTokenRecord, CapTokenError } = captoken;
