// Renders a `BenchReport` as the chart and the page `docs/benchmarks.md` shows.
// Pure functions: they take the report and return text; the caller writes the files.
// The markdown comes out exactly as prettier would format it, so `npm run lint` passes
// on the generated page.
import type { BenchReport, LoadResult, Percentiles, StoreReference, SweepPoint } from './types.ts';

// --- Targets ----------------------------------------------------------------------------

const TARGET_THROUGHPUT = 50_000;
const TARGET_HALF_RATE = TARGET_THROUGHPUT / 2;
const TARGET_HALF_RATE_P99_MS = 100;
const TARGET_RATIO = 10;
const TARGET_FRESHNESS_P99_MS = 500;
const TARGET_GRPC_CALLS = 20_000;
const TARGET_GRPC_P99_MS = 10;

/** The line after which the hand-written analysis goes; `renderMarkdown` ends with it. */
export const ANALYSIS_MARKER = '<!-- analysis -->';

// --- Number formatting --------------------------------------------------------------------

const isNumber = (value: number | undefined): value is number =>
  value !== undefined && Number.isFinite(value);

function groupThousands(integer: number): string {
  const sign = integer < 0 ? '-' : '';
  return sign + String(Math.abs(integer)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Purchases or calls per second: thousands separators, no decimals, never rounded up. */
function formatRate(value: number | undefined): string {
  return isNumber(value) ? groupThousands(Math.floor(value)) : 'n/a';
}

/** Milliseconds: one decimal below 10 ms, none from there on. */
function formatMs(value: number | undefined): string {
  if (!isNumber(value)) return 'n/a';
  const tenths = Math.round(value * 10) / 10;
  return Math.abs(tenths) < 10 ? tenths.toFixed(1) : groupThousands(Math.round(value));
}

/** A ratio with one decimal, never rounded up: `12.3x`. */
function formatRatio(value: number): string {
  return isNumber(value) ? `${(Math.floor(value * 10) / 10).toFixed(1)}x` : 'n/a';
}

function formatCount(value: number | undefined): string {
  return isNumber(value) ? groupThousands(Math.round(value)) : 'n/a';
}

function formatMiB(value: number | undefined): string {
  return isNumber(value) ? `${groupThousands(Math.round(value))} MiB` : 'n/a';
}

/** Short numbers for the chart: 950, 52.3k, 1.2M. */
function formatCompact(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  const units: readonly [number, string][] = [
    [1e6, 'M'],
    [1e3, 'k'],
    [1, ''],
  ];
  for (const [scale, suffix] of units) {
    if (Math.abs(value) < scale && scale !== 1) continue;
    const scaled = value / scale;
    const rounded =
      Math.abs(scaled) >= 100
        ? Math.round(scaled)
        : Math.abs(scaled) < 1
          ? Number(scaled.toPrecision(2))
          : Math.round(scaled * 10) / 10;
    // 999,960 rounds to 1000k: say 1M instead.
    if (Math.abs(rounded) >= 1000 && suffix !== 'M') {
      return formatCompact(Math.sign(value) * scale * 1000);
    }
    return `${String(rounded)}${suffix}`;
  }
  return String(value);
}

function formatErrors(errors: Readonly<Record<string, number>>): string {
  const entries = Object.entries(errors)
    .filter(([, count]) => count > 0)
    .sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0
    ? 'none'
    : entries.map(([code, count]) => `${code} ${formatCount(count)}`).join(', ');
}

function formatDuration(totalSeconds: number): string {
  if (!isNumber(totalSeconds)) return 'n/a';
  const seconds = Math.round(totalSeconds);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s} s`;
  return `${s} s`;
}

function formatStartedAt(startedAt: string): string {
  const date = new Date(startedAt);
  if (Number.isNaN(date.getTime())) return startedAt;
  const iso = date.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

function percentOf(value: number, target: number): string {
  return `${Math.floor((value / target) * 100)}%`;
}

// --- Markdown helpers ---------------------------------------------------------------------

/** Plain text safe inside markdown prose and table cells. */
function mdText(text: string): string {
  return text.replace(/[\\`*_[\]<>&|~]/g, (char) => `\\${char}`);
}

/** Inline code that survives backticks in the text. */
function mdCode(text: string): string {
  const longestRun = Math.max(0, ...(text.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longestRun + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}

function mdDestination(path: string): string {
  return /[\s()<>]/.test(path) ? `<${path.replace(/[<>]/g, encodeURIComponent)}>` : path;
}

type Align = 'left' | 'right';

interface Column {
  readonly header: string;
  readonly align?: Align;
}

/** A GFM table padded the way prettier pads it (columns at least 3 wide). */
function mdTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((column, index) =>
    Math.max(3, column.header.length, ...rows.map((row) => (row[index] ?? '').length)),
  );
  const cell = (text: string, index: number) => {
    const width = widths[index] ?? 3;
    return columns[index]?.align === 'right' ? text.padStart(width) : text.padEnd(width);
  };
  const line = (cells: readonly string[]) =>
    `| ${columns.map((_, index) => cell(cells[index] ?? '', index)).join(' | ')} |`;
  const delimiter = `| ${widths
    .map((width, index) =>
      columns[index]?.align === 'right' ? `${'-'.repeat(width - 1)}:` : '-'.repeat(width),
    )
    .join(' | ')} |`;
  return [
    line(columns.map((column) => column.header)),
    delimiter,
    ...rows.map((row) => line(row)),
  ].join('\n');
}

const right = (header: string): Column => ({ header, align: 'right' });
const left = (header: string): Column => ({ header });

// --- Targets ------------------------------------------------------------------------------

interface TargetRow {
  readonly target: string;
  readonly measured: string;
  /** `undefined`: printed, not judged. */
  readonly met?: boolean;
}

function targetRows(report: BenchReport): TargetRow[] {
  const { peak, halfRate, baseline, freshness, grpc, overload, ingestOnly } = report;
  const halfRateRate = halfRate.settings.rate;
  const grpcErrors = grpc.errors > 0 ? `, ${formatCount(grpc.errors)} errors` : '';
  const timedOut =
    freshness.timedOut > 0
      ? `, ${formatCount(freshness.timedOut)} of ${formatCount(freshness.probes)} probes timed out`
      : '';
  return [
    {
      target: '>= 50,000 purchases/s sustained with durable acks',
      measured:
        `${formatRate(peak.throughput)} purchases/s` +
        (ingestOnly === undefined
          ? ''
          : ` (${formatRate(ingestOnly.throughput)} with the wallet stopped)`),
      met: isNumber(peak.throughput) && peak.throughput >= TARGET_THROUGHPUT,
    },
    {
      target: 'p99 ack latency < 100 ms at half that rate',
      measured:
        `${formatMs(halfRate.latency.p99)} ms ` +
        (isNumber(halfRateRate) ? `at ${formatRate(halfRateRate)} purchases/s` : '(no fixed rate)'),
      // At half of 50,000/s: a run paced slower than that does not show the target.
      met:
        isNumber(halfRate.latency.p99) &&
        halfRate.latency.p99 < TARGET_HALF_RATE_P99_MS &&
        isNumber(halfRateRate) &&
        halfRateRate >= TARGET_HALF_RATE,
    },
    {
      target: '>= 10x the per-message design in the same run',
      measured:
        `${formatRatio(baseline.ratio)} (${formatRate(baseline.spendstream.throughput)} vs ` +
        `${formatRate(baseline.baseline.throughput)} purchases/s)`,
      met: isNumber(baseline.ratio) && baseline.ratio >= TARGET_RATIO,
    },
    {
      target: 'freshness p99 < 500 ms',
      measured: `${formatMs(freshness.latency.p99)} ms${timedOut}`,
      // A probe that never showed has no latency in the histogram: it cannot count as fresh.
      met:
        isNumber(freshness.latency.p99) &&
        freshness.latency.p99 < TARGET_FRESHNESS_P99_MS &&
        freshness.timedOut === 0,
    },
    {
      target: 'GetBalance >= 20,000 calls/s with p99 < 10 ms',
      measured: `${formatRate(grpc.callsPerSecond)} calls/s, p99 ${formatMs(grpc.latency.p99)} ms${grpcErrors}`,
      met:
        isNumber(grpc.callsPerSecond) &&
        grpc.callsPerSecond >= TARGET_GRPC_CALLS &&
        isNumber(grpc.latency.p99) &&
        grpc.latency.p99 < TARGET_GRPC_P99_MS,
    },
    {
      target: 'ingest memory bounded under overload',
      measured:
        overload.length === 0
          ? 'n/a'
          : `peak RSS ${overload
              .map((entry) => `${formatMiB(entry.result.peakRssMiB)} (${entry.label})`)
              .join(', ')}; ${formatMiB(peak.peakRssMiB)} in the peak run`,
    },
  ];
}

const metCell = (met: boolean | undefined) =>
  met === undefined ? 'not judged' : met ? 'yes' : 'no';

// --- Sections -----------------------------------------------------------------------------

function intro(report: BenchReport): string {
  return (
    '`npm run bench` measures spendstream end to end. Load generators send purchases over ' +
    'WebSocket, and every ack is durable: it means the purchase is committed in PostgreSQL and ' +
    'acknowledged by Kafka with `acks=all`. The wallet consumes the topic in parallel and keeps ' +
    'the per-user totals in Redis; freshness is the time from a purchase’s ack until ' +
    '`GetBalance` shows it; gRPC reads are concurrent `GetBalance` calls. Every figure below is ' +
    `from one run on the machine described below: ${mdCode(report.command)}, started ` +
    `${mdText(formatStartedAt(report.startedAt))}, taking ` +
    `${formatDuration(report.durationSeconds)}` +
    (report.smoke ? ', as a short smoke run.' : ', as a full run (not a smoke run).')
  );
}

function smokeWarning(): string {
  return (
    '> **Warning:** these figures are from a short smoke run and are not representative ' +
    'of what spendstream does on this machine. Do not quote them.'
  );
}

function machineTable(report: BenchReport): string {
  const { machine } = report;
  const rows: [string, string][] = [
    ['CPUs', formatCount(machine.cpus)],
    ['CPU model', mdText(machine.cpuModel)],
    ['Memory', isNumber(machine.memoryGiB) ? `${machine.memoryGiB.toFixed(1)} GiB` : 'n/a'],
    ['Node.js', mdText(machine.node)],
    ['OS', mdText(machine.os)],
  ];
  if (machine.postgres !== undefined) rows.push(['PostgreSQL', mdText(machine.postgres)]);
  if (machine.redis !== undefined) rows.push(['Redis', mdText(machine.redis)]);
  if (machine.kafka !== undefined) rows.push(['Kafka', mdText(machine.kafka)]);
  return mdTable([left('Machine'), left('')], rows);
}

function targetsTable(report: BenchReport): string {
  return mdTable(
    [left('Target'), left('Measured'), left('Met?')],
    targetRows(report).map((row) => [row.target, row.measured, metCell(row.met)]),
  );
}

const latencyColumns = [right('p50 (ms)'), right('p90 (ms)'), right('p99 (ms)'), right('max (ms)')];

const latencyCells = (latency: Percentiles) => [
  formatMs(latency.p50),
  formatMs(latency.p90),
  formatMs(latency.p99),
  formatMs(latency.max),
];

function loadRunsTable(report: BenchReport): string {
  const runs: [string, LoadResult][] = [
    ['Peak', report.peak],
    ['Half rate', report.halfRate],
  ];
  if (report.ingestOnly !== undefined) runs.push(['Ingest alone', report.ingestOnly]);
  for (const entry of report.overload) runs.push([`Overload, ${entry.label}`, entry.result]);
  return mdTable(
    [
      left('Run'),
      right('Connections'),
      right('Window'),
      right('Frame size'),
      right('Users'),
      right('Seconds'),
      right('Rate (/s)'),
      right('Throughput (/s)'),
      ...latencyColumns,
      left('Errors'),
      right('Peak RSS'),
    ],
    runs.map(([name, run]) => [
      name,
      formatCount(run.settings.connections),
      formatCount(run.settings.window),
      formatCount(run.settings.frameSize),
      formatCount(run.settings.users),
      formatCount(run.settings.seconds),
      isNumber(run.settings.rate) ? formatRate(run.settings.rate) : 'unpaced',
      formatRate(run.throughput),
      ...latencyCells(run.latency),
      formatErrors(run.errors),
      formatMiB(run.peakRssMiB),
    ]),
  );
}

function baselineSection(report: BenchReport): string {
  const { baseline, spendstream, ratio } = report.baseline;
  const table = mdTable(
    [
      left('Design'),
      right('Connections'),
      right('Window'),
      right('Frame size'),
      right('Throughput (/s)'),
      right('p50 (ms)'),
      right('p99 (ms)'),
      left('Errors'),
    ],
    (
      [
        ['Per-message design (baseline)', baseline],
        ['spendstream', spendstream],
      ] as const
    ).map(([name, run]) => [
      name,
      formatCount(run.settings.connections),
      formatCount(run.settings.window),
      formatCount(run.settings.frameSize),
      formatRate(run.throughput),
      formatMs(run.latency.p50),
      formatMs(run.latency.p99),
      formatErrors(run.errors),
    ]),
  );
  return (
    `${table}\n\n` +
    `spendstream / per-message design: **${formatRatio(ratio)}** the throughput ` +
    `(target: >= ${TARGET_RATIO}x).`
  );
}

function freshnessTable(report: BenchReport): string {
  const { freshness } = report;
  return mdTable(
    [right('Probes'), ...latencyColumns, right('Timed out')],
    [
      [
        formatCount(freshness.probes),
        ...latencyCells(freshness.latency),
        formatCount(freshness.timedOut),
      ],
    ],
  );
}

function grpcTable(report: BenchReport): string {
  const { grpc } = report;
  return mdTable(
    [
      right('Callers'),
      right('Servers'),
      right('Seconds'),
      right('Calls/s'),
      ...latencyColumns,
      right('Errors'),
    ],
    [
      [
        formatCount(grpc.callers),
        formatCount(grpc.servers),
        formatCount(grpc.seconds),
        formatRate(grpc.callsPerSecond),
        ...latencyCells(grpc.latency),
        formatCount(grpc.errors),
      ],
    ],
  );
}

function sweepTable(points: readonly SweepPoint[]): string {
  if (points.length === 0) return '_No points in this run._';
  const hasSize = points.some((point) => point.batchMaxSize !== undefined);
  const hasWait = points.some((point) => point.batchMaxWaitMs !== undefined);
  const optional = (value: number | undefined) => (isNumber(value) ? formatCount(value) : '—');
  return mdTable(
    [
      left('Point'),
      ...(hasSize ? [right('Batch max size')] : []),
      ...(hasWait ? [right('Batch max wait (ms)')] : []),
      right('Connections'),
      right('Window'),
      right('Frame size'),
      right('Throughput (/s)'),
      right('p50 (ms)'),
      right('p99 (ms)'),
      left('Errors'),
    ],
    points.map((point) => [
      mdText(point.label),
      ...(hasSize ? [optional(point.batchMaxSize)] : []),
      ...(hasWait ? [optional(point.batchMaxWaitMs)] : []),
      formatCount(point.result.settings.connections),
      formatCount(point.result.settings.window),
      formatCount(point.result.settings.frameSize),
      formatRate(point.result.throughput),
      formatMs(point.result.latency.p50),
      formatMs(point.result.latency.p99),
      formatErrors(point.result.errors),
    ]),
  );
}

function referencesTable(report: BenchReport): string {
  if (report.references.length === 0) return '_No store references in this run._';
  return mdTable(
    [left('Store'), left('What it measures'), right('Per second')],
    report.references.map((reference) => [
      mdText(reference.name),
      mdText(reference.description),
      formatRate(reference.perSecond),
    ]),
  );
}

/** Sentences about the targets not met, built from the figures alone. */
function limits(report: BenchReport): string {
  const { peak, halfRate, baseline, freshness, grpc, references } = report;
  const paragraphs: string[] = [];

  if (!(isNumber(peak.throughput) && peak.throughput >= TARGET_THROUGHPUT)) {
    const s = peak.settings;
    let text =
      `Peak throughput was ${formatRate(peak.throughput)} purchases/s, ` +
      `${percentOf(peak.throughput, TARGET_THROUGHPUT)} of the ` +
      `${formatRate(TARGET_THROUGHPUT)} purchases/s target (${formatCount(s.connections)} ` +
      `connections, window ${formatCount(s.window)}, frame size ${formatCount(s.frameSize)}; ` +
      `errors: ${formatErrors(peak.errors)}).`;
    if (references.length === 0) {
      text += ' No store references were measured in this run.';
    } else {
      const batched = references.filter((reference) => reference.mode === 'batched');
      const below = batched.filter((reference) => reference.perSecond < TARGET_THROUGHPUT);
      const list = (items: readonly StoreReference[]) =>
        items
          .map((reference) => `${mdText(reference.name)} ${formatRate(reference.perSecond)}/s`)
          .join(', ');
      text +=
        below.length === 0
          ? ` Used in batches, as spendstream uses them, each store alone takes more than ` +
            `${formatRate(TARGET_THROUGHPUT)}/s on this machine (${list(batched)}): no single ` +
            'store is the limit; the stores, the services and the load generator share the ' +
            'same CPUs.'
          : ` Used in batches, these stores alone take less than ` +
            `${formatRate(TARGET_THROUGHPUT)}/s on this machine: ${list(below)}.`;
    }
    paragraphs.push(text);
  }

  const rate = halfRate.settings.rate;
  const p99 = halfRate.latency.p99;
  if (!(isNumber(p99) && p99 < TARGET_HALF_RATE_P99_MS)) {
    paragraphs.push(
      `In the half-rate run the p99 ack latency was ${formatMs(p99)} ms, against the ` +
        `${TARGET_HALF_RATE_P99_MS} ms target (p50 ${formatMs(halfRate.latency.p50)} ms, ` +
        `p90 ${formatMs(halfRate.latency.p90)} ms, max ${formatMs(halfRate.latency.max)} ms; ` +
        `errors: ${formatErrors(halfRate.errors)}).`,
    );
  }
  if (!isNumber(rate)) {
    paragraphs.push(
      'The half-rate run had no fixed rate, so it does not test the latency target at ' +
        `${formatRate(TARGET_HALF_RATE)} purchases/s.`,
    );
  } else if (rate < TARGET_HALF_RATE) {
    paragraphs.push(
      `The half-rate run was paced at ${formatRate(rate)} purchases/s, below the ` +
        `${formatRate(TARGET_HALF_RATE)} purchases/s (half of ${formatRate(TARGET_THROUGHPUT)}) ` +
        'the latency target names, so that target is not counted as met.',
    );
  }

  if (!(isNumber(baseline.ratio) && baseline.ratio >= TARGET_RATIO)) {
    paragraphs.push(
      `With single-purchase frames spendstream acked ${formatRate(baseline.spendstream.throughput)} ` +
        `purchases/s and the per-message design ${formatRate(baseline.baseline.throughput)}: ` +
        `${formatRatio(baseline.ratio)}, short of ${TARGET_RATIO}x.`,
    );
  }

  const freshP99Met =
    isNumber(freshness.latency.p99) && freshness.latency.p99 < TARGET_FRESHNESS_P99_MS;
  if (!freshP99Met || freshness.timedOut > 0) {
    paragraphs.push(
      `Freshness p99 was ${formatMs(freshness.latency.p99)} ms against the ` +
        `${TARGET_FRESHNESS_P99_MS} ms target (p50 ${formatMs(freshness.latency.p50)} ms, ` +
        `max ${formatMs(freshness.latency.max)} ms); ${formatCount(freshness.timedOut)} of ` +
        `${formatCount(freshness.probes)} probes timed out` +
        (freshP99Met
          ? ', never showing within the timeout, so the target is not counted as met.'
          : '.'),
    );
  }

  const callsMet = isNumber(grpc.callsPerSecond) && grpc.callsPerSecond >= TARGET_GRPC_CALLS;
  const grpcP99Met = isNumber(grpc.latency.p99) && grpc.latency.p99 < TARGET_GRPC_P99_MS;
  if (!(callsMet && grpcP99Met)) {
    paragraphs.push(
      `GetBalance served ${formatRate(grpc.callsPerSecond)} calls/s ` +
        `(target >= ${formatRate(TARGET_GRPC_CALLS)}) with p99 ${formatMs(grpc.latency.p99)} ms ` +
        `(target < ${TARGET_GRPC_P99_MS} ms), from ${formatCount(grpc.callers)} callers against ` +
        `${formatCount(grpc.servers)} server process${grpc.servers === 1 ? '' : 'es'}; ` +
        `${formatCount(grpc.errors)} errors.`,
    );
  }

  if (paragraphs.length === 0) paragraphs.push('Every judged target was met in this run.');
  return paragraphs.join('\n\n');
}

// --- Markdown -----------------------------------------------------------------------------

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
    ...profilesSection(report),
    '## Where the limits are',
    limits(report),
  ];
  const analysis = options.analysis?.trim() ?? '';
  return (
    `${blocks.join('\n\n')}\n\n${ANALYSIS_MARKER}\n` + (analysis === '' ? '' : `\n${analysis}\n`)
  );
}

/** With `--profile`: the heaviest packages and functions of each profiled process. */
function profilesSection(report: BenchReport): string[] {
  const profiles = report.profiles ?? [];
  if (profiles.length === 0) return [];
  return [
    '## Where the CPU goes',
    'Self time in the CPU profiles (`node --cpu-prof`) of the ingest and wallet processes ' +
      'over the runs above; each `.cpuprofile` opens as a flame graph in Chrome DevTools or ' +
      'speedscope.',
    ...profiles.flatMap((profile) => [
      `### ${mdText(profile.service)} (${formatCount(profile.seconds)} s of samples)`,
      mdTable(
        [left('Package'), right('Self %'), left('Function'), right('Self %')],
        Array.from(
          { length: Math.max(profile.byPackage.length, profile.byFunction.length) },
          (_, i) => [
            mdText(profile.byPackage[i]?.name ?? ''),
            profile.byPackage[i] === undefined ? '' : `${profile.byPackage[i]?.percent}`,
            mdText(profile.byFunction[i]?.name ?? ''),
            profile.byFunction[i] === undefined ? '' : `${profile.byFunction[i]?.percent}`,
          ],
        ),
      ),
    ]),
  ];
}

/** The hand-written analysis of an existing page, to carry over when re-rendering it. */
export function extractAnalysis(markdown: string): string | undefined {
  const index = markdown.lastIndexOf(ANALYSIS_MARKER);
  return index === -1 ? undefined : markdown.slice(index + ANALYSIS_MARKER.length).trim();
}

// --- Chart --------------------------------------------------------------------------------

const WIDTH = 720;
const HEIGHT = 420;
const PLOT = { left: 72, right: 696, top: 52, bottom: 296 } as const;
const FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";
const TEXT_COLOR = '#1f2328';
const MUTED_COLOR = '#59636e';
const GRID_COLOR = '#e6e8eb';

type Shape = 'circle' | 'square' | 'triangleUp' | 'triangleDown' | 'cross' | 'diamond';

interface Series {
  readonly key: string;
  readonly name: string;
  readonly color: string;
  readonly shape: Shape;
  readonly points: readonly { x: number; y: number; label?: string }[];
  readonly line: boolean;
}

/** Text and attribute values safe in XML. */
function xml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => {
    switch (char) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '&#39;';
    }
  });
}

const coordinate = (value: number) => String(Math.round(value * 10) / 10);

function marker(shape: Shape, x: number, y: number, color: string, attributes = ''): string {
  const cx = coordinate(x);
  const cy = coordinate(y);
  const at = (dx: number, dy: number) => `${coordinate(x + dx)},${coordinate(y + dy)}`;
  const fill = `fill="${color}" stroke="#ffffff" stroke-width="1"`;
  switch (shape) {
    case 'circle':
      return `<circle${attributes} cx="${cx}" cy="${cy}" r="4.5" ${fill}/>`;
    case 'square':
      return `<rect${attributes} x="${coordinate(x - 4)}" y="${coordinate(y - 4)}" width="8" height="8" ${fill}/>`;
    case 'triangleUp':
      return `<polygon${attributes} points="${at(0, -7)} ${at(6.5, 5)} ${at(-6.5, 5)}" ${fill}/>`;
    case 'triangleDown':
      return `<polygon${attributes} points="${at(0, 7)} ${at(6.5, -5)} ${at(-6.5, -5)}" ${fill}/>`;
    case 'diamond':
      return `<polygon${attributes} points="${at(0, -7)} ${at(6, 0)} ${at(0, 7)} ${at(-6, 0)}" ${fill}/>`;
    case 'cross':
      return (
        `<path${attributes} d="M${at(-5, -5)} L${at(5, 5)} M${at(-5, 5)} L${at(5, -5)}" ` +
        `stroke="${color}" stroke-width="2.5" fill="none"/>`
      );
  }
}

interface Scale {
  readonly toPixel: (value: number) => number;
  readonly ticks: readonly number[];
  readonly log: boolean;
}

function niceStep(range: number, count: number): number {
  const raw = range / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / magnitude;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * magnitude;
}

function linearScale(max: number, from: number, to: number): Scale {
  const safeMax = max > 0 ? max : 1;
  const step = niceStep(safeMax, 5);
  const top = Math.ceil(safeMax / step) * step;
  const ticks: number[] = [];
  for (let index = 0; index * step <= top + step / 1e6; index += 1) ticks.push(index * step);
  return { toPixel: (value) => from + (value / top) * (to - from), ticks, log: false };
}

function logScale(min: number, max: number, from: number, to: number): Scale {
  const clean = (value: number) => Number(value.toPrecision(12));
  const low = 10 ** Math.floor(Math.log10(min));
  // The top is the first 1, 2 or 5 times a power of ten at or above the largest value.
  const topDecade = 10 ** Math.floor(Math.log10(max));
  const high = clean(([1, 2, 5, 10].find((step) => step * topDecade >= max) ?? 10) * topDecade);
  const span = Math.log10(high) - Math.log10(low);
  const steps = span <= 2.5 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let decade = low; decade <= high * (1 + 1e-9); decade = clean(decade * 10)) {
    for (const step of steps) {
      const tick = clean(step * decade);
      if (tick <= high * (1 + 1e-9)) ticks.push(tick);
    }
  }
  if (ticks.at(-1) !== high) ticks.push(high);
  return {
    toPixel: (value) => from + (Math.log10(value / low) / span) * (to - from),
    ticks,
    log: true,
  };
}

const point = (run: LoadResult, label?: string) => ({
  x: run.throughput,
  y: run.latency.p99,
  ...(label === undefined ? {} : { label }),
});

const describeRun = (run: LoadResult) =>
  `${formatCompact(run.throughput)}/s, p99 ${formatMs(run.latency.p99)} ms`;

/** Throughput against p99 ack latency for every load run in the report, as a standalone SVG. */
export function renderChart(report: BenchReport): string {
  const series: Series[] = [
    {
      key: 'batch',
      name: 'Sweep: batch size and wait',
      color: '#0969da',
      shape: 'circle',
      points: report.sweeps.batch.map((entry) => point(entry.result, entry.label)),
      line: true,
    },
    {
      key: 'connections',
      name: 'Sweep: connections and window',
      color: '#bc4c00',
      shape: 'square',
      points: report.sweeps.connections.map((entry) => point(entry.result, entry.label)),
      line: true,
    },
    {
      key: 'peak',
      name: `Peak run: ${describeRun(report.peak)}`,
      color: '#1a7f37',
      shape: 'triangleUp',
      points: [point(report.peak)],
      line: false,
    },
    {
      key: 'half-rate',
      name: `Half rate: ${describeRun(report.halfRate)}`,
      color: '#8250df',
      shape: 'triangleDown',
      points: [point(report.halfRate)],
      line: false,
    },
    {
      key: 'baseline',
      name: `Per-message design: ${describeRun(report.baseline.baseline)}`,
      color: '#cf222e',
      shape: 'cross',
      points: [point(report.baseline.baseline)],
      line: false,
    },
    {
      key: 'spendstream',
      name: `spendstream, single frames: ${describeRun(report.baseline.spendstream)}`,
      color: '#6e5500',
      shape: 'diamond',
      points: [point(report.baseline.spendstream)],
      line: false,
    },
  ];

  // Points without a finite throughput or latency cannot be placed; the legend still shows them.
  const plotted = series.flatMap((entry) =>
    entry.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)),
  );
  const maxX = Math.max(0, ...plotted.map((p) => p.x));
  const latencies = plotted.map((p) => p.y);
  const maxY = Math.max(0, ...latencies);
  const positive = latencies.filter((y) => y > 0);
  const minY = positive.length === 0 ? 0 : Math.min(...positive);
  // Log scale when the latencies span more than a factor of 20; linear otherwise.
  const useLog = minY > 0 && maxY / minY > 20;
  const x = linearScale(maxX * 1.05, PLOT.left, PLOT.right);
  const y = useLog
    ? logScale(minY, maxY, PLOT.bottom, PLOT.top)
    : linearScale(maxY * 1.1, PLOT.bottom, PLOT.top);
  const yFloor = useLog ? (y.ticks[0] ?? minY) : 0;
  const px = (value: number) => x.toPixel(Math.max(0, value));
  const py = (value: number) => y.toPixel(Math.max(yFloor, value));

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" ` +
      `viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" font-family="${xml(FONT)}">`,
    '<title>Throughput vs p99 ack latency</title>',
    `<rect x="0" y="0" width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="26" text-anchor="middle" font-size="16" font-weight="600" ` +
      `fill="${TEXT_COLOR}">Throughput vs p99 ack latency</text>`,
  );
  if (report.smoke) {
    out.push(
      `<text x="${WIDTH / 2}" y="43" text-anchor="middle" font-size="11" fill="#cf222e">` +
        'Smoke run: figures are not representative</text>',
    );
  }

  // Grid, ticks and tick labels.
  out.push('<g font-size="11">');
  for (const tick of x.ticks) {
    const at = coordinate(x.toPixel(tick));
    out.push(
      `<line x1="${at}" y1="${PLOT.top}" x2="${at}" y2="${PLOT.bottom}" stroke="${GRID_COLOR}"/>`,
      `<line x1="${at}" y1="${PLOT.bottom}" x2="${at}" y2="${PLOT.bottom + 5}" stroke="${MUTED_COLOR}"/>`,
      `<text x="${at}" y="${PLOT.bottom + 18}" text-anchor="middle" fill="${MUTED_COLOR}">` +
        `${xml(formatCompact(tick))}</text>`,
    );
  }
  for (const tick of y.ticks) {
    const at = coordinate(y.toPixel(tick));
    out.push(
      `<line x1="${PLOT.left}" y1="${at}" x2="${PLOT.right}" y2="${at}" stroke="${GRID_COLOR}"/>`,
      `<line x1="${PLOT.left - 5}" y1="${at}" x2="${PLOT.left}" y2="${at}" stroke="${MUTED_COLOR}"/>`,
      `<text x="${PLOT.left - 8}" y="${at}" dy="0.35em" text-anchor="end" fill="${MUTED_COLOR}">` +
        `${xml(formatCompact(tick))}</text>`,
    );
  }
  out.push('</g>');

  // Axes and their titles.
  out.push(
    `<path d="M${PLOT.left},${PLOT.top} V${PLOT.bottom} H${PLOT.right}" fill="none" ` +
      `stroke="${MUTED_COLOR}"/>`,
    `<text x="${(PLOT.left + PLOT.right) / 2}" y="${PLOT.bottom + 38}" text-anchor="middle" ` +
      `font-size="12" fill="${TEXT_COLOR}">Throughput (purchases/s)</text>`,
    `<text transform="translate(20 ${(PLOT.top + PLOT.bottom) / 2}) rotate(-90)" ` +
      `text-anchor="middle" font-size="12" fill="${TEXT_COLOR}">` +
      `${useLog ? 'p99 ack latency (ms, log scale)' : 'p99 ack latency (ms)'}</text>`,
  );

  // Series: lines first, then markers, then point labels on top.
  for (const entry of series) {
    const points = entry.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    out.push(`<g data-series-group="${xml(entry.key)}">`);
    if (entry.line && points.length > 1) {
      const path = points.map((p) => `${coordinate(px(p.x))},${coordinate(py(p.y))}`).join(' ');
      out.push(
        `<polyline points="${path}" fill="none" stroke="${entry.color}" stroke-width="1.5" ` +
          'stroke-opacity="0.6"/>',
      );
    }
    for (const p of points) {
      // Single-point series carry the figures in their name already.
      const title =
        p.label === undefined
          ? entry.name
          : `${p.label}: ${formatCompact(p.x)}/s, p99 ${formatMs(p.y)} ms`;
      out.push(
        `<g>${marker(entry.shape, px(p.x), py(p.y), entry.color, ` data-series="${xml(entry.key)}"`)}` +
          `<title>${xml(title)}</title></g>`,
      );
    }
    for (const p of points) {
      if (p.label === undefined) continue;
      const atRight = px(p.x) > PLOT.right - 90;
      // Batch labels above their points, connection labels below, so the two sweeps collide less.
      const dy = entry.key === 'connections' ? 15 : -7;
      out.push(
        `<text x="${coordinate(px(p.x) + (atRight ? -8 : 8))}" y="${coordinate(py(p.y) + dy)}" ` +
          `text-anchor="${atRight ? 'end' : 'start'}" font-size="10" fill="${TEXT_COLOR}" ` +
          'stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke">' +
          `${xml(p.label)}</text>`,
      );
    }
    out.push('</g>');
  }

  // Legend: two columns, three rows, below the x-axis title.
  out.push('<g font-size="11">');
  series.forEach((entry, index) => {
    const column = index % 2;
    const row = Math.floor(index / 2);
    const lx = PLOT.left + column * 320;
    const ly = PLOT.bottom + 62 + row * 21;
    if (entry.line) {
      out.push(
        `<line x1="${lx - 8}" y1="${ly}" x2="${lx + 8}" y2="${ly}" stroke="${entry.color}" ` +
          'stroke-width="1.5" stroke-opacity="0.6"/>',
      );
    }
    out.push(
      marker(entry.shape, lx, ly, entry.color),
      `<text x="${lx + 14}" y="${ly}" dy="0.35em" fill="${TEXT_COLOR}">${xml(entry.name)}</text>`,
    );
  });
  out.push('</g>');

  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
