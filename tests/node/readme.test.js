// README's code runs as written: the "Use it from Node" example in a project
// that has the package installed (linked, as `npm install ./captoken` does),
// as CommonJS and, with its import line, as an ES module.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
let project;

/** The first ```js block of a README section. */
function example(heading) {
  const section = readme.slice(readme.indexOf(`\n## ${heading}\n`));
  assert.ok(section.length < readme.length, `README has "## ${heading}"`);
  return section.match(/```js\n([\s\S]*?)```/)[1];
}

before(() => {
  project = mkdtempSync(join(tmpdir(), 'captoken-readme-'));
  mkdirSync(join(project, 'node_modules'));
  symlinkSync(root, join(project, 'node_modules/captoken'), 'dir');
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'readme', version: '1.0.0', private: true }));
});

after(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

test('"Use it from Node" runs as written, in CommonJS and as an ES module', () => {
  const code = example('Use it from Node');
  const run = (file, text) => {
    writeFileSync(join(project, file), text);
    return execFileSync(process.execPath, [file], { cwd: project, encoding: 'utf8', timeout: 30000 });
  };
  // It prints the grant's agent and uses left (10 - 1).
  assert.match(run('example.cjs', code), /^worker-of-task-[0-9a-f]{12} 9\n$/);
  // The ES module spelling its comment gives.
  const esm = code
    .replace(/const \{ TokenStore, CapTokenError \} = require\('captoken'\);.*\n/, "import { TokenStore, CapTokenError } from 'captoken';\n")
    .replace(/const \{ randomBytes \} = require\('node:crypto'\);\n/, "import { randomBytes } from 'node:crypto';\n");
  assert.doesNotMatch(esm, /require\(/);
  assert.match(run('example.mjs', esm), /^worker-of-task-[0-9a-f]{12} 9\n$/);
});
