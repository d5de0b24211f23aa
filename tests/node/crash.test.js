// Durability under SIGKILL: a child mints and consumes one-time tokens as fast
// as it can; the parent kills it at random moments, reopens the directory and
// checks that every token reported consumed is refused and every token
// reported minted is known. Nothing reported may be lost, round after round.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { DurableTokenStore } from 'captoken/node';

const child = fileURLToPath(new URL('./fixtures/crash-child.cjs', import.meta.url));
const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 12);

function runUntilKilled(dir, secretHex, delayMs) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, dir, secretHex], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer;
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      if (timer === undefined && out.includes('READY\n')) {
        timer = setTimeout(() => proc.kill('SIGKILL'), delayMs);
      }
    });
    proc.stderr.on('data', (chunk) => (err += chunk));
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child ended by itself (${code}): ${err}`));
      else resolve(out);
    });
  });
}

test('no reported mint or consume is lost across SIGKILL crashes', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'captoken-crash-'));
  const secret = randomBytes(32);
  const minted = new Map(); // fingerprint -> bearer
  const consumed = new Set();
  let torn = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const out = await runUntilKilled(dir, secret.toString('hex'), 20 + Math.floor(Math.random() * 250));
      // Only whole lines count: the last one may itself be cut.
      for (const line of out.split('\n').slice(0, -1)) {
        const [kind, fp, bearer] = line.split(' ');
        if (kind === 'M') minted.set(fp, bearer);
        if (kind === 'C') consumed.add(fp);
      }
      const store = DurableTokenStore.open(dir, { secret });
      torn += store.droppedBytes > 0 ? 1 : 0;
      for (const [fp, bearer] of minted) {
        assert.ok(store.record(fp), `round ${round}: minted token ${fp.slice(0, 12)} is unknown`);
        if (consumed.has(fp)) {
          const decision = store.check(bearer, 'fetch_prompt', 'crash');
          assert.equal(decision.allowed, false, `round ${round}: consumed token ${fp.slice(0, 12)} passes again`);
          assert.equal(decision.code, 'ERR_TOKEN_USES_EXHAUSTED');
        }
      }
      store.close();
    }
    assert.ok(consumed.size > ROUNDS, `too little work to mean anything: ${consumed.size} consumed`);
    const files = readdirSync(dir);
    assert.ok(files.length <= 3, `stale files left: ${files}`);
    console.log(`crash test: ${ROUNDS} kills, ${minted.size} minted, ${consumed.size} consumed, ${torn} torn tails dropped`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
