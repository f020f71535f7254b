// Puts the figures of the last reliability run (test-results/reliability/*.json, written by
// the scenarios) into docs/reliability.md, between its figures markers.
// `npm run test:reliability` runs it after the full suite.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import type { ScenarioFigures } from '../test/reliability/results.ts';
import { ROOT } from './infra.ts';

const RESULTS = join(ROOT, 'test-results', 'reliability');
const PAGE = join(ROOT, 'docs', 'reliability.md');
const START = '<!-- figures:start -->';
const END = '<!-- figures:end -->';

type Recorded = ScenarioFigures & { readonly level: string; readonly at: string };

const cell = (value: number | string | undefined) =>
  value === undefined ? '—' : typeof value === 'number' ? value.toLocaleString('en-US') : value;

const figures: Recorded[] = existsSync(RESULTS)
  ? readdirSync(RESULTS)
      .filter((file) => file.endsWith('.json'))
      .map((file) => JSON.parse(readFileSync(join(RESULTS, file), 'utf8')) as Recorded)
      .sort((a, b) => a.scenario.localeCompare(b.scenario))
  : [];
if (figures.length === 0) {
  console.error(`no figures in ${RESULTS}: run the reliability suite first`);
  process.exit(1);
}

const rows = figures.map((f) => {
  const extra = Object.entries(f.extra ?? {})
    .map(([name, value]) => `${name} ${cell(value)}`)
    .join(', ');
  return `| ${f.scenario} | ${f.level} | ${cell(f.sent)} | ${cell(f.acked)} | ${cell(f.refused)} | ${cell(f.lost)} | ${cell(f.doubleCounted)} | ${cell(f.recoveryMs)} | ${cell(f.peakRssMiB)} | ${extra} |`;
});
const dates = figures.map((f) => f.at).sort();
const table = [
  `Recorded ${dates[0] ?? ''} to ${dates.at(-1) ?? ''} (levels: ${[...new Set(figures.map((f) => f.level))].join(', ')}).`,
  '',
  '| Scenario | Level | Sent | Acked | Refused | Lost | Double-counted | Recovery (ms) | Peak RSS (MiB) | Other figures |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ...rows,
].join('\n');

const page = readFileSync(PAGE, 'utf8');
const from = page.indexOf(START);
const to = page.indexOf(END);
if (from < 0 || to < from) {
  console.error(`${PAGE} has no ${START} … ${END} block`);
  process.exit(1);
}
const updated = `${page.slice(0, from + START.length)}\n\n${table}\n\n${page.slice(to)}`;
writeFileSync(PAGE, await format(updated, { ...(await resolveConfig(PAGE)), filepath: PAGE }));
console.log(`wrote the figures of ${figures.length} scenarios into docs/reliability.md`);
