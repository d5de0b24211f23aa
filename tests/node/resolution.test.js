// `tsc --strict` in a consumer project, for every entry of the package, under
// each moduleResolution a user may have: node10 (what a bare `tsc --strict`
// picks, which ignores `exports` and needs `typesVersions`), node16, nodenext
// and bundler. The package is linked into the project's node_modules, as an
// install puts it there; tests/types covers the API itself.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tsc = join(root, 'node_modules/.bin/tsc');

// Each file uses one entry for real and misuses it once: if an entry resolved
// to an untyped module, the @ts-expect-error would be unused and tsc fails.
const USES = {
  main: `import { TokenStore, CapTokenError, type Grant } from 'captoken';
export function decide(store: TokenStore, bearer: string): Grant {
  return store.verify(bearer, 'fetch_prompt');
}
export const isError = (e: unknown): boolean => e instanceof CapTokenError;
// @ts-expect-error not a verb
export const bad = (store: TokenStore) => store.verify('b', 'fly');
`,
  web: `import init, { TokenStore } from 'captoken/web';
export async function make(secret: Uint8Array): Promise<TokenStore> {
  await init();
  return new TokenStore({ secret });
}
// @ts-expect-error not a format
export const bad = () => new TokenStore({ secret: new Uint8Array(32), format: 'v9' });
`,
  node: `import { DurableTokenStore } from 'captoken/node';
export const open = (dir: string, secret: Uint8Array): DurableTokenStore => DurableTokenStore.open(dir, { secret });
// @ts-expect-error the directory is required
export const bad = () => DurableTokenStore.open({ secret: new Uint8Array(32) });
`,
};
// The same uses written with require, for CommonJS files under node16/nodenext.
const REQUIRES = {
  main: `import captoken = require('captoken');
export const decide = (store: captoken.TokenStore, bearer: string): captoken.Grant => store.verify(bearer, 'fetch_prompt');
// @ts-expect-error not a verb
export const bad = (store: captoken.TokenStore) => store.verify('b', 'fly');
`,
  node: `import durable = require('captoken/node');
export const open = (dir: string, secret: Uint8Array) => durable.DurableTokenStore.open(dir, { secret });
// @ts-expect-error the directory is required
export const bad = () => durable.DurableTokenStore.open({ secret: new Uint8Array(32) });
`,
};

let project;

function check(name, compilerOptions, files) {
  const dir = join(project, name);
  mkdirSync(dir);
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, lib: ['ES2022', 'DOM'], types: [], ...compilerOptions },
    files: Object.keys(files),
  }));
  const result = spawnSync(tsc, ['-p', dir], { cwd: dir, encoding: 'utf8', timeout: 60000 });
  assert.equal(result.status, 0, `tsc (${name}) failed:\n${result.stdout}${result.stderr}`);
}

describe('TypeScript resolves every entry', { timeout: 120000 }, () => {
  before(() => {
    project = mkdtempSync(join(tmpdir(), 'captoken-resolution-'));
    mkdirSync(join(project, 'node_modules'));
    symlinkSync(root, join(project, 'node_modules/captoken'), 'dir');
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
  });

  after(() => {
    if (project) rmSync(project, { recursive: true, force: true });
  });

  const asTs = Object.fromEntries(Object.entries(USES).map(([entry, text]) => [`${entry}.ts`, text]));

  it('with no target or module options (bare `tsc --strict`: node10)', () => {
    check('default', {}, asTs);
  });

  it('under node10', () => {
    check('node10', { target: 'ES2022', module: 'commonjs', moduleResolution: 'node10' }, asTs);
  });

  for (const mode of ['node16', 'nodenext']) {
    it(`under ${mode}, from ES modules and from CommonJS`, () => {
      // captoken/web is an ES module only: CommonJS files do not require it.
      check(mode, { target: 'ES2022', module: mode, moduleResolution: mode }, {
        ...Object.fromEntries(Object.entries(USES).map(([entry, text]) => [`${entry}.mts`, text])),
        ...Object.fromEntries(Object.entries(REQUIRES).map(([entry, text]) => [`${entry}-require.cts`, text])),
      });
    });
  }

  it('under bundler', () => {
    check('bundler', { target: 'ES2022', module: 'esnext', moduleResolution: 'bundler' }, asTs);
  });

  it('a wrong entry name fails (the checks above can fail)', () => {
    assert.throws(() => check('missing', { moduleResolution: 'node10' }, { 'missing.ts': "import { x } from 'captoken/nowhere';\nexport { x };\n" }), /TS2307/);
  });
});
