// Where verify's time goes: a CPU profile of the verify loop, against a build
// of the same release .wasm that keeps its function names, with self time
// summed by what each function does. Run by bench/run.js (one child process).

import { spawnSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/**
 * Build the package into `dir`/pkg with scripts/build.sh, keeping function
 * names (the same code and passes as pkg/ otherwise), with a copy of js/
 * beside it. Returns an error message, or null.
 */
export function buildNamed(root, dir) {
  const run = spawnSync('bash', ['scripts/build.sh'], {
    cwd: root,
    env: { ...process.env, CAPTOKEN_PKG_DIR: join(dir, 'pkg'), CAPTOKEN_KEEP_NAMES: '1' },
    encoding: 'utf8',
  });
  if (run.status !== 0) return `scripts/build.sh failed: ${run.error ?? run.stderr}`;
  cpSync(join(root, 'js'), join(dir, 'js'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
  return null;
}

/** What a function does, from its name and its script. First match wins. */
const CATEGORIES = [
  ['benchmark loop', (name, url) => url.endsWith('/bench/cases.js')],
  ['garbage collection', (name) => name === '(garbage collector)'],
  ['fingerprint (SHA-256 of the nonce)', (name) => /\bsha2::|digest::/.test(name)],
  ['token decode (base64, JSON)', (name) =>
    /serde|base64|TokenRef::decode|token::Text|role_name|present_v|check_shape|str::converts::from_utf8/.test(name)],
  ['record lookup (index, table)', (name) => /table::RecordTable|hashbrown/.test(name)],
  ['memory allocation', (name) => /dlmalloc|__rdl_|__rust_(alloc|dealloc|realloc)|memcpy|memset/.test(name)],
  ['decision (signature match, expiry, gate, ownership, use)', (name) =>
    /captoken::(store|state|verifier|gate|record|signer|hex|token|role)::|same_signature|memcmp/.test(name)],
  // Everything that exists only because the call crosses from JavaScript:
  // the entry module, the generated glue, its shims, the clock callback,
  // TextEncoder/TextDecoder and the Grant object (with its fingerprint in hex).
  ['JS ↔ wasm boundary (arguments, clock, Grant)', (name, url) =>
    /\/js\/(common|fast_path|args|error)\.js$|captoken\.js$|^node:internal|encoding/.test(url) || url === ''
    || /^wasm-to-js|^js-to-wasm|shim|captoken::bindings|wasm_bindgen|serde_wasm_bindgen|js_sys|__wbg|__externref|__wbindgen|base16ct/
      .test(name)],
];

function categorise(name, url) {
  for (const [category, test] of CATEGORIES) if (test(name, url)) return category;
  return 'other';
}

/** Self time by category and by function, under the function named `root`. */
export function summarise(profile, root) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const isUnderRoot = new Map();
  const underRoot = (id) => {
    if (!isUnderRoot.has(id)) {
      const { functionName, url } = byId.get(id).callFrame;
      const up = parent.get(id);
      isUnderRoot.set(id, (functionName === root && url.endsWith('/bench/cases.js')) || (up !== undefined && underRoot(up)));
    }
    return isUnderRoot.get(id);
  };
  const categories = new Map();
  const functions = new Map();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i + 1] ?? 0;
    if (!underRoot(id)) return;
    const { functionName, url } = byId.get(id).callFrame;
    const name = functionName.replace(/::h[0-9a-f]{16}$/, '') || '(anonymous)';
    const category = categorise(name, url);
    categories.set(category, (categories.get(category) ?? 0) + dt);
    const key = `${name}${url.endsWith('.js') ? ` (${url.split('/').pop()})` : ''}`;
    const f = functions.get(key) ?? { name: key, category, micros: 0 };
    f.micros += dt;
    functions.set(key, f);
    total += dt;
  });
  const share = (micros) => (total ? micros / total : 0);
  return {
    samples: profile.samples.length,
    categories: [...categories].map(([name, micros]) => ({ name, share: share(micros) }))
      .sort((a, b) => b.share - a.share),
    functions: [...functions.values()].map((f) => ({ name: f.name, category: f.category, share: share(f.micros) }))
      .sort((a, b) => b.share - a.share).slice(0, 15),
  };
}

/** Child task: profile `ops` of the captoken cases for about `ms` each. */
export async function profileCaptoken(cfg) {
  const captoken = createRequire(import.meta.url)(join(cfg.dir, 'js/index.cjs'));
  const { captokenCases } = await import('./cases.js');
  const cases = captokenCases(captoken, cfg);
  const session = new Session();
  session.connect();
  const post = (method, params) => new Promise((resolve, reject) => {
    session.post(method, params, (error, result) => (error ? reject(error) : resolve(result)));
  });
  const out = {};
  for (const op of cfg.ops) {
    const batch = cases[op];
    // Warm up (JIT tiers), then profile a timed stretch.
    const warmUntil = performance.now() + cfg.ms / 4;
    while (performance.now() < warmUntil) batch(1000);
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 50 });
    await post('Profiler.start');
    const until = performance.now() + cfg.ms;
    while (performance.now() < until) batch(1000);
    const { profile } = await post('Profiler.stop');
    await post('Profiler.disable');
    out[op] = summarise(profile, op);
  }
  session.disconnect();
  return out;
}
