// Renders a `BenchReport` as the page `docs/benchmarks.md`: the sections in order, then
// the hand-written analysis carried over from the page it replaces. Pure functions: they
// take the report and return text; the caller writes the files. The markdown comes out
// exactly as prettier would format it, so `npm run lint` passes on the generated page.
import type { BenchReport } from '../types.ts';
import { limits } from './limits.ts';
import { mdCode, mdDestination } from './markdown.ts';
import { recoverySections } from './recovery.ts';
import {
  baselineSection,
  freshnessTable,
  grpcTable,
  intro,
  loadRunsTable,
  machineTable,
  profilesSection,
  referencesTable,
  smokeWarning,
  sweepTable,
  targetsTable,
} from './sections.ts';

/** The line after which the hand-written analysis goes; `renderMarkdown` ends with it. */
export const ANALYSIS_MARKER = '<!-- analysis -->';

/** Where the page links the chart and the raw figures, and the analysis it carries. */
export interface RenderMarkdownOptions {
  /** The chart's path as the page links it (relative to docs/). */
  readonly chartPath: string;
  /** The raw JSON's path as the page links it (relative to docs/). */
  readonly jsonPath: string;
  /** The hand-written analysis kept below `ANALYSIS_MARKER`. */
  readonly analysis?: string;
}

/** The full text of docs/benchmarks.md, formatted as prettier formats it. */
export function renderMarkdown(report: BenchReport, options: RenderMarkdownOptions): string {
  const jsonName = options.jsonPath.split('/').pop() || options.jsonPath;
  const blocks = [
    '# Benchmarks',
    intro(report),
    ...(report.smoke ? [smokeWarning()] : []),
    `The raw figures: [${mdCode(jsonName)}](${mdDestination(options.jsonPath)}).`,
    '## Machine',
    machineTable(report),
    '## Targets',
    targetsTable(report),
    `![Throughput vs p99 ack latency](${mdDestination(options.chartPath)})`,
    '## Peak and half rate',
    'Peak is paced by the window alone; half rate sends at a fixed rate, half the peak.',
    loadRunsTable(report),
    '## Against the per-message design',
    'The same load, single-purchase frames, against the per-message design and spendstream.',
    baselineSection(report),
    '## Freshness',
    'From a purchase’s ack until `GetBalance` shows it.',
    freshnessTable(report),
    '## gRPC reads',
    grpcTable(report),
    '## Sweep: batch size and wait',
    sweepTable(report.sweeps.batch),
    '## Sweep: connections and window',
    sweepTable(report.sweeps.connections),
    '## Store references',
    'Each store measured on this machine without spendstream around it, to show which stage ' +
      'limits a target.',
    referencesTable(report),
    ...recoverySections(report),
    ...profilesSection(report),
    '## Where the limits are',
    limits(report),
  ];
  const analysis = options.analysis?.trim() ?? '';
  return (
    `${blocks.join('\n\n')}\n\n${ANALYSIS_MARKER}\n` + (analysis === '' ? '' : `\n${analysis}\n`)
  );
}

/** The hand-written analysis of an existing page, to carry over when re-rendering it. */
export function extractAnalysis(markdown: string): string | undefined {
  const index = markdown.lastIndexOf(ANALYSIS_MARKER);
  return index === -1 ? undefined : markdown.slice(index + ANALYSIS_MARKER.length).trim();
}
