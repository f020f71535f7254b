// docs/composing.md is a test: its ```ts blocks, in order, make one file, which must pass
// under node --test with at least as many tests as the page shows, and type-check. The
// file goes in a folder inside the repository (git-, lint- and typecheck-ignored), so that
// the page's `spendstream` imports resolve through package.json's exports, to the
// sources under the `source` condition.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ROOT } from '../../scripts/infra.ts';
import { childEnv } from '../helpers.ts';

/** The tests the page shows; fewer passing means some went missing. */
const EXPECTED_TESTS = 5;

const page = await readFile(`${ROOT}docs/composing.md`, 'utf8');
const blocks = [...page.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1] ?? '');

let dir: string;
let file: string;

before(async () => {
  dir = await mkdtemp(join(ROOT, 'test', 'docs', '.generated-'));
  file = join(dir, 'composing.example.ts');
  await writeFile(file, blocks.join('\n'));
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      extends: '../../../tsconfig.json',
      compilerOptions: { customConditions: ['source'], noEmit: true },
      include: ['composing.example.ts'],
      // Not the root's, which leaves this folder out of the project's own typecheck.
      exclude: [],
    }),
  );
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = async (args: readonly string[]) => {
  const env = childEnv({});
  // Set for the test runner's own children; a nested runner seeing it would report to us
  // in the runner's internal format instead of TAP.
  delete env['NODE_TEST_CONTEXT'];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, output };
};

test('the page holds the example, code block by code block', () => {
  assert.ok(blocks.length >= 4, `${blocks.length} ts blocks`);
  assert.ok(blocks.some((block) => /from 'spendstream'/.test(block)));
  assert.ok(blocks.some((block) => /from 'spendstream\/testing'/.test(block)));
});

test("the page's code passes as a test file", async () => {
  const { code, output } = await run([
    '--conditions=source',
    '--test',
    '--test-reporter=tap',
    file,
  ]);
  const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(output)?.[1]);
  assert.equal(code, 0, output);
  assert.equal(count('fail'), 0, output);
  assert.ok(count('pass') >= EXPECTED_TESTS, `${count('pass')} passed:\n${output}`);
});

test("the page's code type-checks", async () => {
  const { code, output } = await run([
    `${ROOT}node_modules/typescript/bin/tsc`,
    '-p',
    join(dir, 'tsconfig.json'),
  ]);
  assert.equal(code, 0, output);
});
