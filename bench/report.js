// Rendering of the benchmark results: the stdout table, BENCHMARKS.md, the
// budgets and the SVG chart. Pure functions of the results object that
// bench/run.js builds (times in nanoseconds, memory in bytes).

export const IMPLS = {
  captoken: 'captoken (wasm, Node)',
  chromium: 'captoken (wasm, Chromium)',
  native: 'native Rust (criterion)',
  'peer-node': 'js + node:crypto',
  'peer-noble': 'js + @noble/hashes',
  jose: 'jose (HS256 JWT)',
};

const COLORS = {
  captoken: '#1f6feb',
  chromium: '#6ea8fe',
  native: '#2da44e',
  'peer-node': '#d4a72c',
  'peer-noble': '#e16f24',
  jose: '#8250df',
};

const COMPARED = ['native', 'peer-node', 'peer-noble', 'jose'];

const int = (n) => Math.round(n).toLocaleString('en-US');

/** The operations (rows), in order, labelled for the run's sizes. */
export function operations(cfg) {
  return [
    { id: 'verify', label: `verify (store of ${int(cfg.tokens)} live tokens)` },
    { id: 'check', label: 'check (same, nothing spent)' },
    { id: 'check_hmac', label: 'check, HMAC every call (restored store)' },
    { id: 'consume', label: 'consume on a CapTokenRecord' },
    { id: 'mint', label: 'mint a worker token (dispatchAttempt)' },
    { id: 'snapshot', label: `snapshot, ${int(cfg.records)} records` },
    { id: 'restore', label: `restore, ${int(cfg.records)} records` },
    { id: 'load', label: 'load in a fresh process (require/import)' },
    { id: 'instantiate', label: 'wasm compile + instantiate (Chromium: init())' },
    { id: 'memory', label: `memory per live record, ${int(cfg.records)} records`, bytes: true },
  ];
}

export function fmtTime(ns) {
  if (!Number.isFinite(ns)) return '—';
  const units = [[1e9, 's'], [1e6, 'ms'], [1e3, 'µs'], [1, 'ns']];
  const [scale, unit] = units.find(([s]) => ns >= s) ?? [1, 'ns'];
  const v = ns / scale;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${unit}`;
}

export const fmtBytes = (b) => (Number.isFinite(b) ? `${b >= 100 ? int(b) : b.toFixed(1)} B` : '—');

const fmt = (op, value) => (op.bytes ? fmtBytes(value) : fmtTime(value));

/** "3.20× faster" when other/captoken > 1, "1.80× slower" otherwise. */
function ratio(captoken, other, bytes) {
  if (!Number.isFinite(captoken) || !Number.isFinite(other) || captoken <= 0 || other <= 0) return '—';
  const r = other / captoken;
  const [better, worse] = bytes ? ['less', 'more'] : ['faster', 'slower'];
  return r >= 1 ? `${r.toFixed(2)}× ${better}` : `${(1 / r).toFixed(2)}× ${worse}`;
}

const value = (results, op, impl) => results.ops[op]?.[impl]?.median;

/** The issue's budgets, each with its measured value and PASS/FAIL (null: not measured). */
export function budgets(results) {
  const cap = (op) => value(results, op, 'captoken');
  const records = int(results.config.records);
  const list = [
    { what: 'verify from JavaScript', budget: '≤ 1.5 µs per call', measured: cap('verify'), show: fmtTime,
      pass: (x) => x <= 1500 },
    { what: 'verify vs the node:crypto peer', budget: '≥ 3× faster',
      measured: value(results, 'verify', 'peer-node') / cap('verify'), show: (x) => `${x.toFixed(2)}× faster`,
      pass: (x) => x >= 3 },
    { what: 'verify vs native Rust', budget: '≤ 2× the native time',
      measured: cap('verify') / value(results, 'verify', 'native'), show: (x) => `${x.toFixed(2)}× native`,
      pass: (x) => x <= 2 },
    { what: 'check vs verify', budget: 'check no slower than verify', measured: cap('check') / cap('verify'),
      show: (x) => `check = ${x.toFixed(2)}× verify (${fmtTime(cap('check'))} vs ${fmtTime(cap('verify'))})`,
      pass: (x) => x <= 1 },
    { what: 'consume on a CapTokenRecord (from JavaScript)', budget: '≤ 50 ns per call', measured: cap('consume'),
      show: fmtTime, pass: (x) => x <= 50 },
    { what: 'release .wasm, gzipped', budget: '≤ 40 KB (40,000 bytes)', measured: results.size?.gzip,
      show: (x) => `${int(x)} bytes (raw ${int(results.size.raw)})`, pass: (x) => x <= 40_000 },
    { what: `wasm linear memory per live record at ${records} records`, budget: '≤ 200 bytes',
      measured: cap('memory'), show: fmtBytes, pass: (x) => x <= 200 },
    { what: `snapshot of ${records} records`, budget: '< 1.5 s', measured: cap('snapshot'), show: fmtTime,
      pass: (x) => x < 1.5e9 },
    { what: `restore of ${records} records`, budget: '< 1.5 s', measured: cap('restore'), show: fmtTime,
      pass: (x) => x < 1.5e9 },
    ...(results.redis?.rows ?? []).flatMap((r) => [
      { what: `verify over Redis, one at a time (${r.client})`, budget: '≤ 1.5× one PING round trip',
        measured: r.latencyRatio, show: (x) => `${x.toFixed(2)}× (${r.verifyUs.toFixed(1)} µs vs ${r.pingUs.toFixed(1)} µs)`,
        pass: (x) => x <= 1.5 },
      { what: `verify over Redis, 64 in flight (${r.client})`, budget: '≥ 40% of redis-benchmark\'s EVALSHA -P 64',
        measured: r.shareOfCeiling, show: (x) => `${(100 * x).toFixed(1)}% (${int(r.perSecOne)}/s of ${int(r.ceiling)}/s)`,
        pass: (x) => x >= 0.4 },
    ]),
  ];
  return list.map(({ what, budget, measured, show, pass }) => {
    const ok = Number.isFinite(measured);
    return { what, budget, value: ok ? show(measured) : 'not measured', pass: ok ? pass(measured) : null };
  });
}

const verdict = (b) => (b.pass === null ? 'n/a' : b.pass ? 'PASS' : 'FAIL');

/** Padded pipe table (valid Markdown, readable as plain text). */
function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function implsPresent(results) {
  return Object.keys(IMPLS).filter((impl) => !results.skipped?.[impl]);
}

export function resultsTable(results) {
  const impls = Object.keys(IMPLS);
  const rows = operations(results.config).map((op) => [op.label,
    ...impls.map((impl) => (results.skipped?.[impl] ? 'skipped' : fmt(op, value(results, op.id, impl))))]);
  rows.push(['release .wasm (raw / gzip -9)', `${int(results.size.raw)} / ${int(results.size.gzip)} B`,
    ...impls.slice(1).map(() => '—')]);
  return table(['operation', ...impls.map((impl) => IMPLS[impl])], rows);
}

export function ratioTable(results) {
  const rows = operations(results.config)
    .filter((op) => Number.isFinite(value(results, op.id, 'captoken')))
    .map((op) => [op.label, ...COMPARED.map((impl) => ratio(value(results, op.id, 'captoken'),
      value(results, op.id, impl), op.bytes))]);
  return table(['captoken (wasm, Node) vs', ...COMPARED.map((impl) => IMPLS[impl])], rows);
}

export function budgetTable(budgetList) {
  return table(['budget', 'limit', 'measured', 'verdict'],
    budgetList.map((b) => [b.what, b.budget, b.value, verdict(b)]));
}

export function textReport(results, budgetList) {
  const m = results.machine;
  const parts = [
    '',
    `captoken benchmarks${results.config.quick ? ' (quick smoke run: tiny sizes, few runs; numbers mean nothing)' : ''}`,
    `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB; Node ${m.node}; ${m.rustc}; ${m.date}`,
    '',
    `Medians (${results.config.runs} runs each):`,
    resultsTable(results),
    '',
    'Ratios, measured in the same run:',
    ratioTable(results),
    '',
    'Budgets:',
    budgetTable(budgetList),
    '',
  ];
  if (results.redis) {
    const { hot, cold } = redisTables(results.redis);
    parts.push('captoken/redis (one bearer, verified over and over):', hot, '', 'captoken/redis (a different bearer every call):', cold, '');
  }
  if (results.profile) parts.push('Where the time goes (CPU profile):', profileTable(results), profileReading(results), '');
  for (const [impl, why] of Object.entries(results.skipped ?? {})) parts.push(`note: ${IMPLS[impl] ?? impl} ${why}`);
  if (busy(results)) parts.push(`note: the machine was busy (${busy(results)}): timings are noisy`);
  return `${parts.join('\n')}\n`;
}

const pct = (share) => `${(100 * share).toFixed(1)}%`;
const BOUNDARY = 'JS ↔ wasm boundary (arguments, clock, Grant)';
const OUTSIDE_CORE = [BOUNDARY, 'benchmark loop', 'garbage collection'];

/** The CPU profile's categories for verify and check, as a table. */
export function profileTable(results) {
  const profile = results.profile;
  if (!profile?.verify) return '';
  const names = profile.verify.categories.map((c) => c.name);
  for (const c of profile.check?.categories ?? []) if (!names.includes(c.name)) names.push(c.name);
  const share = (op, name) => profile[op]?.categories.find((c) => c.name === name)?.share ?? 0;
  return table(['where the time goes (self time)', 'verify', 'check'],
    names.map((name) => [name, pct(share('verify', name)), pct(share('check', name))]));
}

/** What the profile says about the verify budgets, in figures of this run. */
function profileReading(results) {
  const verify = results.profile?.verify;
  const median = value(results, 'verify', 'captoken');
  const native = value(results, 'verify', 'native');
  if (!verify || !median) return '';
  const share = (names) => verify.categories.filter((c) => names.includes(c.name)).reduce((s, c) => s + c.share, 0);
  const boundary = share([BOUNDARY]) * median;
  const core = (1 - share(OUTSIDE_CORE)) * median;
  const lines = [
    `At the verify median of ${fmtTime(median)}, the JS ↔ wasm boundary takes ${fmtTime(boundary)} of each call and `
      + `the Rust core running as WebAssembly about ${fmtTime(core)}`
      + (native ? `, ${(core / native).toFixed(1)}× the same core natively (${fmtTime(native)}).` : '.'),
  ];
  const budget = BUDGET_LINES.verify;
  if (core > budget) {
    lines.push(`The core alone, as WebAssembly, takes more than the ${fmtTime(budget)} budget: no work on the boundary`
      + ' can bring verify within it.');
  } else if (median > budget) {
    lines.push(`Within the ${fmtTime(budget)} budget, the boundary could take at most ${fmtTime(budget - core)}.`);
  }
  return lines.join(' ');
}

/** The functions with the most self time in verify. */
function topFunctions(results) {
  const verify = results.profile?.verify;
  if (!verify) return '';
  return table(['function (verify)', 'what', 'self time'],
    verify.functions.map((f) => [`\`${f.name.replace(/\|/g, '\\|').slice(0, 90)}\``, f.category, pct(f.share)]));
}

function notes(results) {
  const lines = [];
  for (const impl of Object.keys(IMPLS)) {
    const noted = operations(results.config)
      .map((op) => [op, results.ops[op.id]?.[impl]?.note])
      .filter(([, note]) => note);
    if (noted.length > 1 && noted.every(([, note]) => note === noted[0][1])) {
      lines.push(`- ${IMPLS[impl]}, every row: ${noted[0][1]}`);
    } else {
      for (const [op, note] of noted) lines.push(`- ${op.label}, ${IMPLS[impl]}: ${note}`);
    }
  }
  const variants = results.ops.verify?.jose?.variants;
  if (variants) {
    lines.push(`- jose variants (verify medians): ${Object.entries(variants)
      .map(([name, ns]) => `${name} ${fmtTime(ns)}`).join('; ')}`);
  }
  if (results.snapshotBytes) lines.push(`- captoken snapshot text: ${int(results.snapshotBytes)} characters.`);
  if (results.peakMemoryBytes) {
    lines.push(`- captoken linear memory after the snapshot and restore runs: ${int(results.peakMemoryBytes)} bytes `
      + '(linear memory never shrinks; the per-record figure is taken before them).');
  }
  for (const [impl, why] of Object.entries(results.skipped ?? {})) lines.push(`- ${IMPLS[impl] ?? impl}: ${why}.`);
  return lines.join('\n');
}

/** Why the run's machine counts as busy (1-minute load average above half its cores), or ''. */
function busy(results) {
  const m = results.machine;
  const loads = [m.loadavg, m.loadavgEnd].filter(Boolean).map((l) => Number(l.split(' ')[0]));
  const worst = Math.max(...loads);
  return worst > m.cores / 2 ? `1-minute load average up to ${worst.toFixed(2)} on ${m.cores} cores` : '';
}

const duration = (secs) => (secs < 120 ? `${secs} s` : `${Math.round(secs / 60)} minutes`);

export function markdown(results, budgetList, chartPath) {
  const m = results.machine;
  const c = results.config;
  return `# Benchmarks

${c.quick ? '> **Quick smoke run** (`node bench/run.js --quick`): tiny sizes and few runs; the numbers mean nothing.\n\n' : ''}\
Generated by ${c.quick ? '\`node bench/run.js --quick\`' : '\`npm run bench\` (\`node bench/run.js\`)'} on ${m.date.slice(0, 10)}; every
number below comes from that one run, so the ratios compare measurements taken side by side. Rerun it with one
command: \`npm run bench\` (after \`npm run setup\`; \`bash scripts/setup.sh --browser\` installs Chromium). This run
took ${duration(results.elapsedSecs)}; \`node bench/run.js --quick\` is the smoke run that \`npm test\` includes.

## Machine
${busy(results) ? `\n> **The machine was busy** during this run (${busy(results)}): its timings are noisy. Rerun on a quiet machine.\n` : ''}
| | |
|---|---|
| CPU | ${m.cpu} |
| cores | ${m.cores} |
| memory | ${m.memoryGiB} GiB |
| OS | ${m.os} |
| Node | ${m.node} |
| Rust | ${m.rustc} (native: ${results.nativeProfile ?? 'not run'}) |
| Chromium | ${m.chromium ?? 'not run'} (headless) |
| load average (1, 5, 15 min) at start / end | ${m.loadavg} / ${m.loadavgEnd} |
| date | ${m.date} |
| run time | ${results.elapsedSecs} s |

## Method

- **verify**: \`store.verify(bearer, 'fetch_prompt', taskId)\` from JavaScript, round-robin over the bearers of a store
  holding ${int(c.tokens)} live Worker tokens (minted by \`dispatchAttempt\`, unlimited uses, bound to the task, so
  every step runs: decode, signature, expiry, gate, lookup, ownership, consume). **check** is the same call
  spending nothing. The store's clock is fixed (as \`FixedClock\` natively), so no token expires mid-run.
- **check, HMAC every call**: captoken skips the HMAC for a token identical to a record whose token already passed
  it in this process (tokens it minted, adopted or verified once since a restore); a store restored from a
  snapshot has no such record, and \`check\` never marks one, so this row is the decision with the HMAC on every
  call: the work the JavaScript peers always do.
- **consume**: \`record.consume()\` on a \`CapTokenRecord\` with 4,294,967,295 uses (a use is really spent).
- **mint**: \`store.dispatchAttempt(operatorBearer, taskId)\` (the peers: the operator's decision, then a mint).
- **snapshot / restore**: \`store.snapshot()\` and \`TokenStore.restore(text, options)\` of a store of ${int(c.records)}
  records, one call per run, after a GC.
- **memory per live record**: captoken: \`__memoryBytes()\` (wasm linear memory) after minting ${int(c.records)}
  tokens minus before, divided by ${int(c.records)}; the peers: V8 \`heapUsed\` after GC, the same way.
- **load**: \`require('captoken')\` (reads, compiles and instantiates the .wasm) or \`import\` of the peer or jose, timed
  inside a fresh Node process; median of ${c.loads} processes. **wasm compile + instantiate**:
  \`WebAssembly.compile\` + \`WebAssembly.instantiate\` of the release bytes in a fresh process; in Chromium, the
  time of \`await init()\` in a fresh browser context (fetch, compile, instantiate; no cache).
- **Medians**: every JavaScript figure is the median of ${c.runs} runs, each run long enough to last at least
  ${c.minRunMs} ms (the first, calibrating runs double as warm-up). Each implementation runs in its own fresh Node
  process. Native figures are criterion's median estimates (\`cargo bench --bench core\`, benches/core.rs), with the
  same sizes, secret, clock and verb.
- **Peers**: bench/peers/ is a pure-JavaScript store with the same semantics (v2 signing format, fingerprint-keyed
  records, the same seven steps), once over node:crypto and once over @noble/hashes. jose verifies an HS256 JWT
  (awaited, one at a time); the fastest of its variants is reported (all are listed under Notes).
- **Ratios** read "captoken is N× faster/slower" (time) or "uses N× less/more" (memory) than the other, from the
  medians above.

## Results (medians)

${resultsTable(results)}

## Ratios (same run)

${ratioTable(results)}

## Budgets

${budgetTable(budgetList)}

## Chart

![chart](${chartPath})
${redisSection(results)}${results.profile ? `
## Where verify's time goes

A CPU profile of the verify and check loops above (Node's sampling profiler at 50 µs, after a warm-up, against a
build of the same release .wasm that keeps its function names; bench/profile.js). Self time summed by what each
function does; "boundary" is everything that exists only because the call comes from JavaScript: the entry
module, the generated glue and its shims, TextEncoder/TextDecoder, the \`now\` callback and the Grant object.

${profileTable(results)}

${profileReading(results)}

${topFunctions(results)}
` : ''}
## Notes

${notes(results)}
`;
}

/** The captoken/redis rows: bench/redis.js, run by this harness as a child. */
export function redisTables(redis) {
  const f = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const hot = table(['client', 'PING round trip', 'verify, one at a time', 'ratio (budget ≤ 1.5)',
    'verify, 64 in flight, 1 process', 'redis-benchmark EVALSHA -P 64', 'share (budget ≥ 40%)',
    'trivial EVALSHA, same client, 64 in flight', 'verify, 4 processes × 64'],
  redis.rows.map((r) => [r.client, `${f(r.pingUs, 1)} µs`, `${f(r.verifyUs, 1)} µs`, f(r.latencyRatio, 2),
    `${f(r.perSecOne)}/s`, `${f(r.ceiling)}/s`, `${f(100 * r.shareOfCeiling, 1)}%`, `${f(r.clientCeiling)}/s`,
    `${f(r.perSecFour)}/s`]));
  const cold = table(['client', 'verify, one at a time', 'ratio to PING', 'verify, 64 in flight, 1 process',
    'share of the redis-benchmark ceiling'],
  redis.rows.map((r) => [r.client, `${f(r.verifyColdUs, 1)} µs`, f(r.verifyColdUs / r.pingUs, 2),
    `${f(r.perSecOneCold)}/s`, `${f(100 * r.perSecOneCold / r.ceiling, 1)}%`]));
  return { hot, cold };
}

function redisSection(results) {
  const redis = results.redis;
  if (!redis) return '';
  const { hot, cold } = redisTables(redis);
  return `
## captoken/redis: verify over a real Redis

\`bench/redis.js\` (also alone: \`npm run bench:redis\`) starts its own \`redis-server\` ${redis.redisVersion ?? ''} on a free
loopback port (\`appendonly yes\`, \`appendfsync everysec\`) and measures, for node-redis and ioredis
(\`enableAutoPipelining\`): one bare PING round trip and one verify, alternating, one at a time (medians of
${int(redis.latN ?? 3000)}); ${int(redis.n)} verifies with 64 in flight from one process; the ceiling \`redis-benchmark -c 1 -P 64\`
reports for a trivial \`EVALSHA\` (\`return 1\`) on the same server; the same trivial EVALSHA from the same Node
client, 64 in flight; and verify from 4 processes with 64 in flight each. One Worker bearer is verified over and
over (a store remembers the bearers it admitted: steps 1 and 2 run once, expiry, gate and everything in Redis on
every call):

${hot}

The same with a different bearer every call (${int(redis.distinct ?? 5000)} in turn${(redis.distinct ?? 5000) > 4096
    ? ', more than the 4,096 a store remembers: every call decodes its bearer and checks its HMAC, and touches a\ndifferent record in Redis'
    : ', fewer than the 4,096 a store remembers: a quick run'}):

${cold}

Calls made in the same turn of the event loop share \`FCALL\` commands (the store's Lua runs as Redis Functions), their calls packed into one argument and
their answers into one reply: the first 32 go at once and the rest a macrotask later, so with 64 in flight two
batches of 32 alternate, and Redis decides one while the process settles the other and makes the next calls. On a
2-core machine the four peer processes and redis-server share the two cores, so four processes do not add
throughput here.
`;
}

// ───────────────────────── SVG chart ─────────────────────────

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const BUDGET_LINES = { verify: 1500, consume: 50, snapshot: 1.5e9, restore: 1.5e9, memory: 200 };

/**
 * Horizontal bars, one panel per operation, one bar per implementation, on a
 * shared logarithmic time axis (shorter is faster); memory per record on a
 * linear axis of its own. Budgets are red dashed lines.
 */
export function chart(results) {
  const W = 980;
  const LABEL = 190;
  const X0 = 200;
  const X1 = 800;
  const BAR = 13;
  const GAP = 3;
  const impls = implsPresent(results);
  const ops = operations(results.config);
  const timeOps = ops.filter((op) => !op.bytes && impls.some((i) => Number.isFinite(value(results, op.id, i))));
  const memOp = ops.find((op) => op.bytes);
  const times = timeOps.flatMap((op) => impls.map((i) => value(results, op.id, i))).filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...times, 1e3)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...times, 1e3)));
  const xLog = (v) => X0 + ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (X1 - X0);

  const out = [];
  const m = results.machine;
  let y = 28;
  out.push(`<text x="16" y="${y}" class="title">captoken benchmarks: median time per operation (log scale, shorter is faster)</text>`);
  y += 18;
  out.push(`<text x="16" y="${y}" class="sub">${esc(`${m.cpu}, ${m.cores} cores; Node ${m.node}; ${m.rustc}; ${m.date.slice(0, 10)}`
    + `${results.config.quick ? ' (quick smoke run: numbers mean nothing)' : ''}`)}</text>`);
  y += 18;
  let lx = 16;
  const legend = [...impls.map((impl) => [impl, IMPLS[impl]]), ['budget', 'budget']];
  for (const [key, name] of legend) {
    const width = 28 + name.length * 6.8;
    if (lx + width > W - 16) {
      lx = 16;
      y += 18;
    }
    out.push(key === 'budget'
      ? `<line x1="${lx}" y1="${y - 4}" x2="${lx + 12}" y2="${y - 4}" class="budget"/>`
      : `<rect x="${lx}" y="${y - 10}" width="12" height="12" fill="${COLORS[key]}"/>`);
    out.push(`<text x="${lx + 16}" y="${y}" class="legend">${esc(name)}</text>`);
    lx += width;
  }
  y += 22;

  // Decade gridlines and labels for the time section.
  const top = y;
  const decades = [];
  for (let d = lo; d <= hi * 1.0001; d *= 10) decades.push(d);
  const decadeLabel = (d) => fmtTime(d).replace(/\.0+ /, ' ').replace(/(\.\d*[1-9])0+ /, '$1 ');
  const axisLabels = (yy) => decades.map((d) => `<text x="${xLog(d)}" y="${yy}" class="axis" text-anchor="middle">${esc(decadeLabel(d))}</text>`).join('');
  out.push(axisLabels(y));
  y += 8;

  const body = [];
  for (const op of timeOps) {
    const present = impls.filter((i) => Number.isFinite(value(results, op.id, i)));
    body.push(`<text x="16" y="${y + 12}" class="op">${esc(op.label)}</text>`);
    let by = y + 18;
    const panelTop = y;
    for (const impl of present) {
      const v = value(results, op.id, impl);
      const w = Math.max(1, xLog(Math.max(v, lo)) - X0);
      body.push(`<text x="${LABEL}" y="${by + BAR - 3}" class="impl" text-anchor="end">${esc(IMPLS[impl])}</text>`
        + `<rect x="${X0}" y="${by}" width="${w.toFixed(1)}" height="${BAR}" fill="${COLORS[impl]}"/>`
        + `<text x="${X0 + w + 5}" y="${by + BAR - 3}" class="val">${esc(fmtTime(v))}${COMPARED.includes(impl)
          && Number.isFinite(value(results, op.id, 'captoken')) ? esc(`  (captoken ${ratio(value(results, op.id, 'captoken'), v)})`) : ''}</text>`);
      by += BAR + GAP;
    }
    if (BUDGET_LINES[op.id] && BUDGET_LINES[op.id] >= lo && BUDGET_LINES[op.id] <= hi) {
      const bx = xLog(BUDGET_LINES[op.id]);
      body.push(`<line x1="${bx}" y1="${panelTop + 16}" x2="${bx}" y2="${by}" class="budget"/>`
        + `<text x="${bx + 4}" y="${panelTop + 12}" class="blabel">budget ${esc(decadeLabel(BUDGET_LINES[op.id]))}</text>`);
    }
    y = by + 10;
  }
  const grid = decades.map((d) => `<line x1="${xLog(d)}" y1="${top + 4}" x2="${xLog(d)}" y2="${y - 6}" class="grid"/>`);
  out.push(...grid, ...body);
  out.push(axisLabels(y + 4));
  y += 26;

  // Memory per live record: linear bytes.
  const mem = impls.filter((i) => Number.isFinite(value(results, 'memory', i)));
  if (mem.length) {
    const maxB = Math.max(...mem.map((i) => value(results, 'memory', i)), BUDGET_LINES.memory) * 1.1;
    const xLin = (v) => X0 + (v / maxB) * (X1 - X0);
    out.push(`<text x="16" y="${y}" class="title2">${esc(memOp.label)} (linear scale, bytes; smaller is better)</text>`);
    y += 10;
    const memTop = y;
    for (const impl of mem) {
      const v = value(results, 'memory', impl);
      out.push(`<text x="${LABEL}" y="${y + BAR - 3}" class="impl" text-anchor="end">${esc(IMPLS[impl])}</text>`
        + `<rect x="${X0}" y="${y}" width="${Math.max(1, xLin(v) - X0).toFixed(1)}" height="${BAR}" fill="${COLORS[impl]}"/>`
        + `<text x="${xLin(v) + 5}" y="${y + BAR - 3}" class="val">${esc(fmtBytes(v))}</text>`);
      y += BAR + GAP;
    }
    const bx = xLin(BUDGET_LINES.memory);
    out.push(`<line x1="${bx}" y1="${memTop - 4}" x2="${bx}" y2="${y}" class="budget"/>`
      + `<text x="${bx}" y="${y + 12}" class="axis" text-anchor="middle">200 B budget</text>`);
    y += 26;
  }
  // captoken/redis: verifies per second with 64 in flight against 40% of
  // redis-benchmark's ceiling (linear).
  const redisRows = results.redis?.rows ?? [];
  if (redisRows.length) {
    const ceiling = redisRows[0].ceiling;
    const bars = redisRows.flatMap((r) => [[`${r.client}, one bearer`, r.perSecOne], [`${r.client}, a new bearer each call`, r.perSecOneCold]]);
    const maxV = Math.max(ceiling, ...bars.map(([, v]) => v)) * 1.05;
    const xLin = (v) => X0 + (v / maxV) * (X1 - X0);
    out.push(`<text x="16" y="${y}" class="title2">${esc('captoken/redis: verifies per second, 64 in flight from one process (linear; longer is better)')}</text>`);
    y += 10;
    const panelTop = y;
    for (const [label, v] of bars) {
      out.push(`<text x="${LABEL}" y="${y + BAR - 3}" class="impl" text-anchor="end">${esc(label)}</text>`
        + `<rect x="${X0}" y="${y}" width="${Math.max(1, xLin(v) - X0).toFixed(1)}" height="${BAR}" fill="${COLORS.captoken}"/>`
        + `<text x="${xLin(v) + 5}" y="${y + BAR - 3}" class="val">${esc(`${int(v)}/s (${(100 * v / ceiling).toFixed(1)}% of the ceiling)`)}</text>`);
      y += BAR + GAP;
    }
    const bx = xLin(0.4 * ceiling);
    out.push(`<line x1="${bx}" y1="${panelTop - 4}" x2="${bx}" y2="${y}" class="budget"/>`
      + `<text x="${bx}" y="${y + 12}" class="axis" text-anchor="middle">${esc(`40% budget of redis-benchmark's ${int(ceiling)}/s`)}</text>`);
    y += 26;
  }
  if (results.size) {
    out.push(`<text x="16" y="${y}" class="sub">${esc(`release .wasm: ${int(results.size.raw)} bytes raw, `
      + `${int(results.size.gzip)} bytes gzipped (${results.size.tool}); budget 40,000 bytes gzipped`)}</text>`);
    y += 20;
  }
  const H = y;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="captoken benchmark chart">
<style>
text { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; fill: #1f2328; }
.title { font-size: 16px; font-weight: 600; } .title2 { font-size: 13px; font-weight: 600; }
.sub { font-size: 12px; fill: #59636e; } .legend { font-size: 12px; } .op { font-size: 13px; font-weight: 600; }
.impl { font-size: 11px; fill: #59636e; } .axis { font-size: 10px; fill: #59636e; }
.val { font-size: 11px; paint-order: stroke; stroke: #ffffff; stroke-width: 3px; }
.blabel { font-size: 10px; fill: #cf222e; }
.grid { stroke: #d1d9e0; stroke-width: 1; } .budget { stroke: #cf222e; stroke-width: 2; stroke-dasharray: 4 3; }
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
${out.join('\n')}
</svg>
`;
}
