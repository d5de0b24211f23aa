// node:crypto primitives for the JavaScript peer store.
import { createHmac, createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const nodeCrypto = {
  name: 'js + node:crypto',
  key: (secret) => Buffer.from(secret),
  hmacHex: (key, bytes) => createHmac('sha256', key).update(bytes).digest('hex'),
  hmacEqual: (key, bytes, sigHex) => {
    const sig = Buffer.from(sigHex, 'hex');
    const mac = createHmac('sha256', key).update(bytes).digest();
    return sig.length === mac.length && timingSafeEqual(sig, mac);
  },
  sha256Hex: (text) => createHash('sha256').update(text).digest('hex'),
  randomHex: (n) => randomBytes(n).toString('hex'),
};
