// The README is an index and docs/ holds the rest; these tests keep both true to the code:
// every setting the code reads documented once, every error code in the one table, every
// link and every path the README names resolving to something that exists.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SETTING_NAMES } from '../src/config.ts';
import { ERROR_CODES } from '../src/core/errors.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const README_LIMIT_BYTES = 10_240;

const read = (path: string) => readFile(join(ROOT, path), 'utf8');

/** README.md and every docs/*.md, by path from the repository root. */
const pages = new Map<string, string>([['README.md', await read('README.md')]]);
for (const name of (await readdir(join(ROOT, 'docs'))).filter((n) => n.endsWith('.md')).sort()) {
  pages.set(`docs/${name}`, await read(`docs/${name}`));
}
const readme = pages.get('README.md') ?? '';
const page = (path: string): string => {
  const text = pages.get(path);
  assert.ok(text !== undefined, `${path} is missing`);
  return text;
};

/** The page without its fenced code blocks (links and headings there are not markdown). */
const prose = (markdown: string): string => markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '');

/** The cells of a table row, unpadded; undefined for a line that is not a table row. */
const cells = (line: string): string[] | undefined =>
  /^\s*\|.*\|\s*$/.test(line)
    ? line
        .trim()
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim())
    : undefined;

/** Every table row of `markdown` whose first cell is one code span, by that span's text. */
const rowsByKey = (markdown: string): { key: string; cells: string[] }[] =>
  prose(markdown)
    .split('\n')
    .flatMap((line) => {
      const row = cells(line);
      const key = row?.[0]?.match(/^`([^`]+)`$/)?.[1];
      return row === undefined || key === undefined ? [] : [{ key, cells: row }];
    });

/** Where each key has a table row, over every page: key → the pages, once per row. */
const rowPages = (keys: readonly string[]): Map<string, string[]> => {
  const found = new Map<string, string[]>(keys.map((key) => [key, []]));
  for (const [path, text] of pages) {
    for (const { key } of rowsByKey(text)) found.get(key)?.push(path);
  }
  return found;
};

/** Keys whose rows are not exactly one, on `home`, with where they were found. */
const notOnceOn = (keys: readonly string[], home: string) =>
  [...rowPages(keys)]
    .filter(([, where]) => where.length !== 1 || where[0] !== home)
    .map(([key, where]) => `${key}: ${where.length === 0 ? 'nowhere' : where.join(', ')}`);

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
const slug = (heading: string): string =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');

const anchorsOf = (markdown: string): Set<string> => {
  const anchors = new Set<string>();
  for (const [, heading = ''] of prose(markdown).matchAll(/^#{1,6} +(.+?) *#*$/gm)) {
    const base = slug(heading);
    let anchor = base;
    for (let n = 1; anchors.has(anchor); n += 1) anchor = `${base}-${n}`;
    anchors.add(anchor);
  }
  return anchors;
};

// --- src/config.ts, read as source -----------------------------------------------------

const configSource = await read('src/config.ts');
/** The object literal of the settings schema: `NAME: <zod schema>,` entries. */
const settingsBlock = configSource.match(
  /const settingsShape = z\.object\(\{\n([\s\S]*?)\n\}\);/,
)?.[1];
const settingEntries = [
  ...(settingsBlock ?? '').matchAll(/^ {2}([A-Z][A-Z0-9_]*):([\s\S]*?)(?=^ {2}[A-Z]|(?![\s\S]))/gm),
];

/** Every environment variable src/config.ts reads: its schema's keys and any direct read. */
const configVariables = [
  ...new Set([
    ...SETTING_NAMES,
    ...settingEntries.map(([, name = '']) => name),
    ...[...configSource.matchAll(/env(?:\.|\[['"])([A-Z][A-Z0-9_]*)/g)].map(
      ([, name = '']) => name,
    ),
  ]),
];

/** A setting's default as src/config.ts writes it, as the docs show it: `'info'` → `info`. */
const defaultsInSource = new Map(
  settingEntries.flatMap(([, name = '', schema = '']) => {
    const literal = schema.match(/\.default\(\s*([\s\S]*?),?\s*\)\s*,?\s*$/)?.[1];
    if (literal === undefined) return [];
    const shown = literal
      .replace(/^\[(.*)\]$/s, '$1')
      .split(',')
      .map((part) => part.trim().replace(/^'(.*)'$/s, '$1'))
      .map((part) => (/^[\d_]+$/.test(part) ? part.replace(/_/g, '') : part))
      .join(',');
    return [[name, shown === '' ? '(empty)' : shown] as const];
  }),
);

// --- what the launchers and tests read beside src/config.ts ----------------------------

const sourceFiles = async (folder: string, ending: RegExp): Promise<string[]> =>
  (await readdir(join(ROOT, folder), { recursive: true }))
    .filter((path) => ending.test(path) && !path.includes('node_modules'))
    .map((path) => join(folder, path));

/** Variables of the system itself, not of spendstream. */
const SYSTEM_VARIABLES = new Set(['PATH']);

const otherVariables = async (): Promise<string[]> => {
  const found = new Set<string>();
  for (const path of await sourceFiles('scripts', /\.sh$/)) {
    for (const [, name = ''] of (await read(path)).matchAll(/\$\{([A-Z][A-Z0-9_]*):?[-+=]/g)) {
      found.add(name);
    }
  }
  const typescript = (
    await Promise.all(['src', 'scripts', 'test', 'bench'].map((f) => sourceFiles(f, /\.ts$/)))
  ).flat();
  for (const path of typescript) {
    const text = await read(path);
    for (const [, a, b] of text.matchAll(
      /process\.env(?:\.([A-Z][A-Z0-9_]*)|\[['"]([A-Z][A-Z0-9_]*)['"]\])/g,
    )) {
      found.add(a ?? b ?? '');
    }
  }
  return [...found]
    .filter((name) => !SYSTEM_VARIABLES.has(name) && !configVariables.includes(name))
    .sort();
};

// --- the tests ---------------------------------------------------------------------------

test(`the README is an index of at most ${README_LIMIT_BYTES} bytes`, () => {
  const bytes = Buffer.byteLength(readme, 'utf8');
  assert.ok(bytes <= README_LIMIT_BYTES, `README.md is ${bytes} bytes`);
});

test('the README shows the two commands a newcomer needs', () => {
  assert.match(readme, /^npm start\b/m);
  assert.match(readme, /^npm test\b/m);
});

test("the README's one apt-get line installs every package CI may install", async () => {
  const line = readme.match(/^sudo apt-get install -y (.+)$/m)?.[1];
  assert.ok(line !== undefined, 'no apt-get line in the README');
  const named = new Set(line.split(/\s+/));
  const ci = await read('.ci/run');
  const packages = [...ci.matchAll(/apt_packages\+=\(([^)]+)\)/g)].map(([, name = '']) => name);
  assert.ok(packages.length > 0, '.ci/run names no package');
  assert.deepEqual(
    packages.filter((name) => !named.has(name)),
    [],
  );
  assert.equal(readme.match(/apt-get install/g)?.length, 1, 'more than one apt-get line');
});

test('the README links every docs page', () => {
  const linked = new Set(
    [...prose(readme).matchAll(/\]\(([^)#\s]+)/g)].map(([, target = '']) => target),
  );
  const unlinked = [...pages.keys()].filter((path) => path !== 'README.md' && !linked.has(path));
  assert.deepEqual(unlinked, []);
});

test('every relative link in README.md and docs/*.md resolves, anchors included', async () => {
  const broken: string[] = [];
  for (const [path, text] of pages) {
    const body = prose(text).replace(/`[^`\n]*`/g, '');
    for (const [, target = ''] of body.matchAll(
      /!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g,
    )) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // http:, https:, mailto:
      const [file = '', anchor] = target.split('#');
      const resolved = file === '' ? path : relative(ROOT, join(ROOT, dirname(path), file));
      if (!existsSync(join(ROOT, resolved))) {
        broken.push(`${path}: ${target} (no ${resolved})`);
        continue;
      }
      if (anchor === undefined || !resolved.endsWith('.md')) continue;
      const targetText = pages.get(resolved) ?? (await read(resolved));
      if (!anchorsOf(targetText).has(anchor))
        broken.push(`${path}: ${target} (no heading #${anchor})`);
    }
  }
  assert.deepEqual(broken, []);
});

test('every file path the README and docs quote exists', () => {
  const roots = '(?:src|test|scripts|proto|migrations|docker|bench|docs|\\.ci)/';
  const quoted = new RegExp(`(?<![\\w./:-])${roots}[\\w./{}-]*`, 'g');
  const missing: string[] = [];
  for (const [path, text] of pages) {
    // The README's diagram and map name files outside code spans too; docs quote them.
    const spans =
      path === 'README.md' ? [text] : [...text.matchAll(/`([^`\n]+)`/g)].map(([, s = '']) => s);
    for (const span of spans) {
      for (const [match] of span.matchAll(quoted)) {
        const file = match.replace(/[.]+$/, '');
        if (/[*<{]/.test(file)) continue; // a glob or a placeholder
        if (!existsSync(join(ROOT, file))) missing.push(`${path}: ${file}`);
      }
    }
  }
  assert.deepEqual(missing, []);
});

test('the README maps one purchase through the code in five steps', () => {
  const map = readme.match(/^## Follow one purchase\n\n((?:\d\. .+\n)+)/m)?.[1];
  assert.ok(map !== undefined, 'no "Follow one purchase" list in the README');
  const steps = map.trimEnd().split('\n');
  assert.equal(steps.length, 5);
  const files = steps.flatMap((step) =>
    [...step.matchAll(/`(src\/[^`]+\.ts)`/g)].map(([, f = '']) => f),
  );
  for (const file of [
    'src/servers/websocket.ts',
    'src/streams/ingestPipeline.ts',
    'src/servers/grpc.ts',
  ]) {
    assert.ok(files.includes(file), `the map does not name ${file}`);
  }
  assert.deepEqual(
    files.filter((file) => !existsSync(join(ROOT, file))),
    [],
  );
});

test('src/config.ts is read as expected: the parsed settings are the ones loadConfig reads', () => {
  assert.ok(
    settingsBlock !== undefined,
    'no `const settingsShape = z.object({ … });` in src/config.ts',
  );
  assert.deepEqual(settingEntries.map(([, name]) => name).sort(), [...SETTING_NAMES].sort());
});

test('docs/configuration.md documents every setting src/config.ts reads, once in all the docs', () => {
  assert.deepEqual(notOnceOn(configVariables, 'docs/configuration.md'), []);
});

test('docs/configuration.md gives each setting the default src/config.ts has', () => {
  const rows = new Map(rowsByKey(page('docs/configuration.md')).map((row) => [row.key, row.cells]));
  const wrong = [...defaultsInSource].flatMap(([name, expected]) => {
    const shown = rows.get(name)?.[1]?.replace(/`/g, '');
    return shown === expected ? [] : [`${name}: docs say ${shown}, src/config.ts ${expected}`];
  });
  assert.ok(defaultsInSource.size > 0, 'no defaults parsed from src/config.ts');
  assert.deepEqual(wrong, []);
});

test('docs/configuration.md documents the variables the launchers and tests read, once', async () => {
  const variables = await otherVariables();
  assert.ok(variables.includes('KAFKA_PORT'), 'scripts/kafka/start.sh not parsed');
  assert.deepEqual(notOnceOn(variables, 'docs/configuration.md'), []);
});

test('every error code is in the one table, in docs/protocol.md', () => {
  assert.deepEqual(notOnceOn(ERROR_CODES, 'docs/protocol.md'), []);
  const section = page('docs/protocol.md').match(/^#+ Error codes\n([\s\S]*?)(?=^#)/m)?.[1];
  assert.ok(section !== undefined, 'docs/protocol.md has no "Error codes" section');
  const tabled = rowsByKey(section).map(({ key }) => key);
  const known = new Set<string>(ERROR_CODES);
  assert.deepEqual(
    tabled.filter((code) => !known.has(code)),
    [],
    'codes in the table that src/core/errors.ts does not have',
  );
  assert.deepEqual(tabled.sort(), [...ERROR_CODES].sort());
});
