// docs/protocol.md is meant to be enough to write another implementation, so
// its test vectors must be right: each is read from the document and checked
// two ways, by node:crypto following the document's own recipe and by the
// package itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TokenStore } from 'captoken';

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
const secret = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const NOW = 1764150000;
const hmac = (data) => createHmac('sha256', secret).update(data).digest('hex');

/** The text of the first fenced block after `marker`. */
function blockAfter(marker) {
  const at = doc.indexOf(marker);
  assert.ok(at >= 0, `docs/protocol.md has "${marker}"`);
  return doc.slice(at).match(/```[a-z]*\n([\s\S]*?)```/)[1];
}

test('the fingerprint vector', () => {
  const [, nonce, fp] = doc.match(/fingerprint of nonce `([0-9a-f]{32})` is\s+`([0-9a-f]{64})`/);
  assert.equal(createHash('sha256').update(nonce).digest('hex'), fp);
});

test('the mlua-swarm vectors sign as written, and such a token is accepted by an mlua-swarm store', () => {
  const vectors = [...doc.matchAll(/`([^`|]+\|[A-Z][a-z]+\|[^`]+)`\s+signs to `([0-9a-f]{64})`/g)];
  assert.equal(vectors.length, 2);
  for (const [, text, sig] of vectors) assert.equal(hmac(text), sig, text);
  const [agent, , scopes, issued, expire, , nonce] = vectors[0][1].split('|');
  const json = JSON.stringify({
    agent_id: agent, role: 'worker', scopes: scopes.split(','), issued_at: Number(issued),
    expire_at: Number(expire), max_uses: 3, nonce, sig_hex: vectors[0][2],
  });
  const store = new TokenStore({ secret, format: 'mlua-swarm', now: () => NOW });
  assert.equal(store.adopt(Buffer.from(json).toString('base64url')), createHash('sha256').update(nonce).digest('hex'));
});

test('the v2 vector: signing bytes, signature, canonical JSON and bearer agree, and a v2 store accepts the bearer', () => {
  const bytes = Buffer.from(blockAfter('has the signing bytes (hex)').replace(/\s+/g, ''), 'hex');
  assert.ok(bytes.subarray(0, 11).equals(Buffer.from('captoken-v2')));
  const json = doc.match(/```json\n([\s\S]*?)```/)[1].trim(); // the document's one JSON block
  const token = JSON.parse(json);
  assert.equal(hmac(bytes), token.sig_hex);
  assert.equal(JSON.stringify(token), json, 'the JSON is its own canonical spelling');
  const bearer = blockAfter('and the bearer').trim();
  assert.equal(Buffer.from(bearer, 'base64url').toString(), json);
  const store = new TokenStore({ secret, now: () => NOW });
  store.adopt(bearer);
  assert.equal(store.verify(bearer, 'fetch_data').usesLeft, 2);
  // Another spelling of the same token is refused, as the document says.
  const spaced = Buffer.from(json.replace(',"role"', ', "role"')).toString('base64url');
  assert.throws(() => store.verify(spaced, 'fetch_data'), { code: 'ERR_MALFORMED_TOKEN' });
});

test('every error code the package declares is in the document', () => {
  const declared = readFileSync(new URL('../../js/types.d.cts', import.meta.url), 'utf8')
    .match(/export type ErrorCode =([\s\S]*?);/)[1].match(/ERR_[A-Z_]+/g);
  assert.ok(declared.length >= 14);
  for (const code of declared) assert.match(doc, new RegExp(`\\| \`${code}\` \\|`), code);
});
