// The page's tables and fixed paragraphs, one function per section.
import type { BenchReport, LoadResult, Percentiles, SweepPoint } from '../types.ts';
import {
  formatCount,
  formatDuration,
  formatErrors,
  formatMiB,
  formatMs,
  formatRate,
  formatRatio,
  formatStartedAt,
  isNumber,
} from './format.ts';
import { left, mdCode, mdTable, mdText, right } from './markdown.ts';
import { metCell, TARGET_RATIO, targetRows } from './targets.ts';

/** The opening paragraph: what is measured, and which run the figures are from. */
export function intro(report: BenchReport): string {
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

/** The warning a smoke run's page carries. */
export function smokeWarning(): string {
  return (
    '> **Warning:** these figures are from a short smoke run and are not representative ' +
    'of what spendstream does on this machine. Do not quote them.'
  );
}

/** The machine and the store versions the run was on. */
export function machineTable(report: BenchReport): string {
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

/** Every target, its measured figure, and whether it was met. */
export function targetsTable(report: BenchReport): string {
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

/** The peak, half-rate, ingest-alone and overload runs, with their settings. */
export function loadRunsTable(report: BenchReport): string {
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

/** spendstream against the per-message design under the same load, and the ratio. */
export function baselineSection(report: BenchReport): string {
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

/** Freshness percentiles and probes timed out. */
export function freshnessTable(report: BenchReport): string {
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

/** GetBalance calls per second and their latency. */
export function grpcTable(report: BenchReport): string {
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

/** One sweep's points, with the settings that vary in it. */
export function sweepTable(points: readonly SweepPoint[]): string {
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

/** What each store does on its own on this machine. */
export function referencesTable(report: BenchReport): string {
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

/** With `--profile`: the heaviest packages and functions of each profiled process. */
export function profilesSection(report: BenchReport): string[] {
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
