// @noble/hashes primitives for the JavaScript peer store: what a browser has
// synchronously, without the asynchronous Web Crypto API.
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes, randomBytes, utf8ToBytes } from '@noble/hashes/utils.js';

function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export const nobleCrypto = {
  name: 'js + @noble/hashes',
  // The keyed HMAC state is prepared once and cloned per message.
  key: (secret) => hmac.create(sha256, secret),
  hmacHex: (key, bytes) => bytesToHex(key.clone().update(bytes).digest()),
  hmacEqual: (key, bytes, sigHex) => {
    let sig;
    try {
      sig = hexToBytes(sigHex);
    } catch {
      return false;
    }
    return equal(sig, key.clone().update(bytes).digest());
  },
  sha256Hex: (text) => bytesToHex(sha256(utf8ToBytes(text))),
  randomHex: (n) => bytesToHex(randomBytes(n)),
};
