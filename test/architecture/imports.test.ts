// The layout is the architecture: these tests read every module's imports and fail on a
// cycle anywhere, or on streams and adapters reaching into each other.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { glob } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SOURCES = ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'];
// Static imports and re-exports, and dynamic import() of a literal path.
const IMPORT =
  /(?:^|\n)\s*(?:import|export)\b[^'"]*?\bfrom\s*['"](\.[^'"]+)['"]|\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g;

/** Every module of the project, with the project modules it imports (relative to ROOT). */
const readGraph = async (): Promise<Map<string, string[]>> => {
  const graph = new Map<string, string[]>();
  for await (const file of glob(SOURCES, {
    cwd: ROOT,
    exclude: ['**/node_modules/**', 'test/docs/.generated-*/**'],
  })) {
    const text = await readFile(join(ROOT, file), 'utf8');
    const targets: string[] = [];
    for (const match of text.matchAll(IMPORT)) {
      const specifier = match[1] ?? match[2];
      if (specifier === undefined || !specifier.endsWith('.ts')) continue;
      targets.push(relative(ROOT, resolve(ROOT, dirname(file), specifier)));
    }
    graph.set(file, targets);
  }
  return graph;
};

/** The strongly connected components of more than one module, or of one importing itself. */
const cycles = (graph: Map<string, string[]>): string[][] => {
  // Tarjan's algorithm, iterative so a deep import chain cannot overflow the stack.
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work: { node: string; next: number }[] = [{ node: start, next: 0 }];
    index.set(start, counter);
    low.set(start, counter);
    counter += 1;
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const edges = graph.get(frame.node) ?? [];
      if (frame.next < edges.length) {
        const target = edges[frame.next];
        frame.next += 1;
        if (!graph.has(target)) continue;
        if (!index.has(target)) {
          index.set(target, counter);
          low.set(target, counter);
          counter += 1;
          stack.push(target);
          onStack.add(target);
          work.push({ node: target, next: 0 });
        } else if (onStack.has(target)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(target)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) {
        low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        if (component.length > 1 || edges.includes(frame.node)) found.push(component.sort());
      }
    }
  }
  return found;
};

test('no module imports itself, directly or through others', async () => {
  assert.deepEqual(cycles(await readGraph()), []);
});

test('the cycle finder finds a cycle (so the test above can fail)', () => {
  const graph = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
    ['d.ts', ['a.ts', 'd.ts']],
  ]);
  assert.deepEqual(cycles(graph), [['a.ts', 'b.ts', 'c.ts'], ['d.ts']]);
});

const layer = (file: string): string | undefined =>
  /^src\/(core|streams|adapters)\//.exec(file)?.[1];
/** The technology folder of an adapter module: `src/adapters/<folder>/…`. */
const adapterFolder = (file: string): string | undefined =>
  /^src\/adapters\/([^/]+)\//.exec(file)?.[1];

test('streams and adapters import each other nowhere, nor one adapter folder another', async () => {
  const crossings: string[] = [];
  for (const [file, targets] of await readGraph()) {
    const from = layer(file);
    if (from === undefined) continue;
    for (const target of targets) {
      const to = layer(target);
      const forbidden =
        (from === 'core' && to !== 'core' && target.startsWith('src/')) ||
        (from === 'streams' && to === 'adapters') ||
        (from === 'adapters' && to === 'streams') ||
        (from === 'adapters' && to === 'adapters' && adapterFolder(file) !== adapterFolder(target));
      if (forbidden) crossings.push(`${file} → ${target}`);
    }
  }
  assert.deepEqual(crossings, []);
});

test('every adapter lives in the folder of its technology', async () => {
  const misplaced: string[] = [];
  for (const file of (await readGraph()).keys()) {
    if (!file.startsWith('src/adapters/')) continue;
    const folder = adapterFolder(file);
    if (folder === undefined || !['postgres', 'kafka', 'redis', 'grpc'].includes(folder)) {
      misplaced.push(file);
    }
  }
  assert.deepEqual(misplaced, []);
});
