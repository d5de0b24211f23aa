// The TypeScript contract: tests/types compiles under strict node16
// resolution, reaching the package's own declarations by name through
// package.json `exports` (self-reference), and the shipped declarations
// contain no `any`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = realpathSync(fileURLToPath(new URL('../../', import.meta.url)));
const tsc = join(root, 'node_modules/.bin/tsc');

function runTsc(args, cwd = root) {
  return spawnSync(tsc, args, { cwd, encoding: 'utf8', timeout: 60000 });
}

describe('TypeScript', () => {
  it('tests/types type-checks (exit 0), reaching the declarations through the package exports', () => {
    const result = runTsc(['-p', 'tests/types', '--listFiles', '--traceResolution']);
    assert.equal(result.status, 0, `tsc failed:\n${result.stdout.split('\n').filter((l) => /error TS/.test(l)).join('\n')}\n${result.stderr}`);
    const lines = result.stdout.split('\n').map((f) => f.trim()).filter(Boolean);
    for (const f of ['js/index.d.ts', 'js/index.d.cts', 'js/web.d.ts', 'js/types.d.cts',
      'tests/types/consumer.mts', 'tests/types/consumer.cts', 'tests/types/web.mts']) {
      assert.ok(lines.includes(join(root, f)), `tsc did not load ${f}`);
    }
    // self-reference by name: 'captoken' is index.d.ts for import, index.d.cts for require
    const trace = result.stdout;
    assert.match(trace, /Module name 'captoken' was successfully resolved to '[^']*\/js\/index\.d\.ts'/);
    assert.match(trace, /Module name 'captoken' was successfully resolved to '[^']*\/js\/index\.d\.cts'/);
    assert.match(trace, /Module name 'captoken\/web' was successfully resolved to '[^']*\/js\/web\.d\.ts'/);
    for (const f of ['consumer.mts', 'consumer.cts', 'web.mts']) {
      const text = readFileSync(join(root, 'tests/types', f), 'utf8');
      assert.match(text, /from 'captoken(\/web)?'|require\('captoken'\)/);
      assert.doesNotMatch(text, /from '\.\.?\//, 'no relative imports');
      assert.match(text, /@ts-expect-error/, 'wrong usage is exercised too');
    }
  });

  it('tsc exits non-zero on a type error (the check above can fail)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'captoken-tsc-'));
    try {
      writeFileSync(join(dir, 'bad.ts'), 'const n: number = "text";\nexport {};\n');
      const result = runTsc(['--noEmit', '--strict', '--lib', 'es5', join(dir, 'bad.ts')], dir);
      assert.notEqual(result.status, 0);
      assert.match(result.stdout, /TS2322/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the shipped declarations contain no `any`', () => {
    const declarations = readdirSync(join(root, 'js')).filter((f) => /\.d\.c?ts$/.test(f));
    for (const required of ['index.d.cts', 'index.d.ts', 'types.d.cts', 'web.d.ts']) {
      assert.ok(declarations.includes(required), `js/${required} is missing`);
    }
    let declared = 0;
    for (const name of declarations) {
      const text = readFileSync(join(root, 'js', name), 'utf8');
      const source = ts.createSourceFile(name, text, ts.ScriptTarget.Latest, true);
      const anys = [];
      const visit = (node) => {
        if (node.kind === ts.SyntaxKind.AnyKeyword) {
          const { line } = source.getLineAndCharacterOfPosition(node.getStart());
          anys.push(`${name}:${line + 1}`);
        }
        if (ts.isClassDeclaration(node) || ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node)) declared++;
        ts.forEachChild(node, visit);
      };
      visit(source);
      assert.deepEqual(anys, [], `\`any\` in ${anys.join(', ')}`);
      assert.deepEqual(source.parseDiagnostics ?? [], []);
    }
    assert.ok(declared >= 15, `only ${declared} declarations seen`);
  });
});
