import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { format, resolveConfig } from 'prettier';
import { renderChart } from '../../bench/report/chart.ts';
import { ANALYSIS_MARKER, extractAnalysis, renderMarkdown } from '../../bench/report/page.ts';
import type {
  BenchReport,
  LoadResult,
  LoadSettings,
  OutageReport,
  Percentiles,
  RebuildReport,
  RebuildRun,
} from '../../bench/types.ts';

// --- A realistic report -------------------------------------------------------------------

interface LoadOptions {
  readonly settings?: Partial<LoadSettings>;
  readonly throughput: number;
  readonly latency: Partial<Percentiles> & { readonly p99: number };
  readonly errors?: Record<string, number>;
  readonly peakRssMiB?: number;
}

function loadResult(options: LoadOptions): LoadResult {
  const settings: LoadSettings = {
    connections: 64,
    window: 256,
    frameSize: 100,
    users: 10_000,
    seconds: 30,
    ...options.settings,
  };
  const acked = Math.round(options.throughput * settings.seconds);
  const { p99 } = options.latency;
  return {
    settings,
    throughput: options.throughput,
    sent: acked + 17,
    acked,
    errors: options.errors ?? {},
    latency: {
      count: acked,
      p50: options.latency.p50 ?? p99 * 0.4,
      p90: options.latency.p90 ?? p99 * 0.7,
      p99,
      max: options.latency.max ?? p99 * 2.5,
    },
    ...(options.peakRssMiB === undefined ? {} : { peakRssMiB: options.peakRssMiB }),
  };
}

function sampleReport(overrides: Partial<BenchReport> = {}): BenchReport {
  return {
    startedAt: '2025-06-02T09:15:42.123Z',
    durationSeconds: 1_385,
    command: 'npm run bench',
    smoke: false,
    machine: {
      cpus: 16,
      cpuModel: 'AMD Ryzen 9 7950X 16-Core Processor',
      memoryGiB: 62.6,
      node: 'v24.21.0',
      os: 'Linux 6.8.0-60-generic x64',
      postgres: '17.5',
      redis: '7.4.2',
      kafka: '3.9.1',
    },
    peak: loadResult({
      throughput: 61_234.7,
      latency: { p50: 18.2, p90: 31.9, p99: 48.3, max: 131.4 },
      peakRssMiB: 540.2,
    }),
    halfRate: loadResult({
      settings: { rate: 30_000 },
      throughput: 29_998.4,
      latency: { p50: 7.25, p90: 12.1, p99: 21.7, max: 64 },
      peakRssMiB: 402,
    }),
    baseline: {
      baseline: loadResult({
        settings: { frameSize: 1 },
        throughput: 4_812.3,
        latency: { p99: 180.4 },
      }),
      spendstream: loadResult({
        settings: { frameSize: 1 },
        throughput: 55_100.9,
        latency: { p99: 52.6 },
      }),
      ratio: 11.45,
    },
    overload: [
      {
        label: '4× the admission limit',
        result: loadResult({
          settings: { connections: 256, window: 1_024 },
          throughput: 58_002,
          latency: { p99: 95.5 },
          errors: { overloaded: 12_345, unavailable: 0 },
          peakRssMiB: 612.4,
        }),
      },
    ],
    freshness: {
      probes: 200,
      latency: { count: 200, p50: 41.2, p90: 98.7, p99: 212.3, max: 288.9 },
      timedOut: 0,
    },
    grpc: {
      callers: 64,
      servers: 4,
      seconds: 20,
      callsPerSecond: 24_310.6,
      errors: 0,
      latency: { count: 486_212, p50: 1.3, p90: 3.1, p99: 6.4, max: 22.8 },
    },
    sweeps: {
      batch: [
        { label: 'size 100, 1 ms', batchMaxSize: 100, batchMaxWaitMs: 1 },
        { label: 'size 500, 2 ms', batchMaxSize: 500, batchMaxWaitMs: 2 },
        { label: 'size 1000, 5 ms', batchMaxSize: 1_000, batchMaxWaitMs: 5 },
        { label: 'size 2000', batchMaxSize: 2_000 },
      ].map((point, index) => ({
        ...point,
        result: loadResult({
          throughput: 38_000 + index * 8_000,
          latency: { p99: 30 + index * 20 },
        }),
      })),
      connections: [
        { connections: 16, window: 128 },
        { connections: 64, window: 256 },
        { connections: 128, window: 512 },
      ].map((settings, index) => ({
        label: `${settings.connections} x ${settings.window}`,
        result: loadResult({
          settings,
          throughput: 42_000 + index * 9_000,
          latency: { p99: 25 + index * 30 },
          errors: index === 2 ? { overloaded: 3 } : {},
        }),
      })),
    },
    references: [
      {
        name: 'postgres-copy',
        mode: 'batched',
        description: 'COPY of purchase rows in batches of 1000, one connection',
        perSecond: 182_500.4,
      },
      {
        name: 'kafka-produce',
        mode: 'batched',
        description: 'acks=all produce of 1 KiB records, batches of 500',
        perSecond: 96_120,
      },
      {
        name: 'redis-incr',
        mode: 'batched',
        description: 'pipelined HINCRBY, 100 per round trip',
        perSecond: 410_000,
      },
    ],
    ...overrides,
  };
}

/** A rebuild section as a full run writes it. */
function sampleRebuild(): RebuildReport {
  const run = (
    scenario: RebuildRun['scenario'],
    design: RebuildRun['design'],
    users: number,
    records: number,
    seconds: number,
  ): RebuildRun => ({
    scenario,
    design,
    users,
    records,
    replayedRecords: design === 'replay' ? records : 50_000,
    snapshotUsers: design === 'replay' ? 0 : users,
    restoreMs: 10_412,
    seconds,
    usersChecked: users,
  });
  const runs = [
    run('short-history', 'replay', 10_000, 1_000_000, 41.2),
    run('short-history', 'snapshot', 10_000, 1_000_000, 12.5),
    run('full-history', 'replay', 10_000, 5_000_000, 190.74),
    run('full-history', 'snapshot', 10_000, 5_000_000, 12.8),
    run('few-users', 'snapshot', 1_000, 5_000_000, 11.9),
  ];
  const ratios = {
    replayOverSnapshot: 14.9,
    replayOverSnapshotShortHistory: 3.3,
    replayFullOverShortHistory: 4.63,
    snapshotFullOverShortHistory: 1.02,
    snapshotManyOverFewUsers: 1.08,
  };
  return { partitions: 6, tail: 50_000, writtenPerSecond: 61_000, runs, ratios };
}

/** An outage section as a full run writes it. */
function sampleOutage(): OutageReport {
  return {
    rate: 9_000,
    users: 10_000,
    outageSeconds: 60.4,
    outbox: { minAgeMs: 60_000, recoveryIntervalMs: 15_000 },
    storedDuringOutage: 420_000,
    backlog: { entries: 4_200, purchases: 420_000 },
    backlogDrainedSeconds: 74.25,
    drainPerSecond: 5_656,
    outboxEmptySeconds: 75.5,
    consistentSeconds: 78.02,
    replies: { ack: 1_200_000, unavailable: 420_000 },
    usersChecked: 10_000,
  };
}

/** Every target that misses, the others as in the sample. */
function failingReport(): BenchReport {
  const report = sampleReport();
  return {
    ...report,
    peak: loadResult({
      throughput: 31_000.9,
      latency: { p99: 72 },
      errors: { unavailable: 4 },
      peakRssMiB: 500,
    }),
    halfRate: loadResult({
      settings: { rate: 15_500 },
      throughput: 15_499,
      latency: { p99: 140.2 },
    }),
    baseline: { ...report.baseline, ratio: 7.46 },
    freshness: { ...report.freshness, timedOut: 3 },
    grpc: { ...report.grpc, latency: { ...report.grpc.latency, p99: 12.4 } },
    references: [
      ...report.references,
      {
        name: 'kafka-acks-all',
        mode: 'batched',
        description: 'batched sends to a slow broker',
        perSecond: 41_800,
      },
      { name: 'kafka-single', mode: 'single', description: 'one per send', perSecond: 900 },
    ],
  };
}

const OPTIONS = { chartPath: 'benchmarks.svg', jsonPath: '../bench/results/latest.json' };

// --- Helpers ------------------------------------------------------------------------------

/** Fails unless `svg` is well-formed XML as far as tags, attributes and entities go. */
function assertWellFormed(svg: string): void {
  assert.ok(svg.startsWith('<svg '), 'starts with <svg');
  assert.ok(svg.trimEnd().endsWith('</svg>'), 'ends with </svg>');
  const stack: string[] = [];
  const tag = /<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let index = 0;
  while (index < svg.length) {
    const next = svg.indexOf('<', index);
    const text = svg.slice(index, next === -1 ? svg.length : next);
    // Character data: `&` only as an entity, no stray `>`.
    assert.doesNotMatch(text, /&(?!(?:amp|lt|gt|quot|#39);)|>/, `bad text: ${text}`);
    if (next === -1) break;
    tag.lastIndex = next;
    const match = tag.exec(svg);
    assert.ok(match, `malformed tag at ${svg.slice(next, next + 60)}`);
    const [whole, closing, name, attributes, selfClosing] = match;
    assert.doesNotMatch(
      attributes ?? '',
      /&(?!(?:amp|lt|gt|quot|#39);)/,
      `bad attribute in ${whole}`,
    );
    if (closing === '/') {
      assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    } else if (selfClosing !== '/') {
      stack.push(name ?? '');
    }
    index = next + whole.length;
  }
  assert.deepEqual(stack, [], 'every element is closed');
}

const count = (text: string, needle: string) => text.split(needle).length - 1;

/** The targets table as target -> [measured, met]. */
function targets(markdown: string): Map<string, [string, string]> {
  const section = markdown.split('## Targets')[1]?.split('\n\n')[1] ?? '';
  const rows = section.split('\n').slice(2);
  return new Map(
    rows.map((row) => {
      const [target = '', measured = '', met = ''] = row
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim());
      return [target, [measured, met]];
    }),
  );
}

const TARGET_NAMES = [
  '>= 50,000 purchases/s sustained with durable acks',
  'p99 ack latency < 100 ms at half that rate',
  '>= 10x the per-message design in the same run',
  'freshness p99 < 500 ms',
  'GetBalance >= 20,000 calls/s with p99 < 10 ms',
  'ingest memory bounded under overload',
];

async function prettierFormat(markdown: string): Promise<string> {
  const config = await resolveConfig(new URL('../../docs/benchmarks.md', import.meta.url));
  return format(markdown, { ...config, parser: 'markdown' });
}

// --- Chart --------------------------------------------------------------------------------

describe('renderChart', () => {
  test('is a well-formed, self-contained SVG with a white background and a title', () => {
    const svg = renderChart(sampleReport());
    assertWellFormed(svg);
    assert.equal(count(svg, '<text'), count(svg, '</text>'));
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="720" height="420"/);
    assert.match(svg, /<rect x="0" y="0" width="720" height="420" fill="#ffffff"\/>/);
    assert.match(svg, />Throughput vs p99 ack latency<\/text>/);
    assert.match(svg, />Throughput \(purchases\/s\)<\/text>/);
    assert.doesNotMatch(svg, /<script|<image|@import|url\(|href=/);
  });

  test('plots one marker per sweep entry and one for each single run', () => {
    const svg = renderChart(sampleReport());
    assert.equal(count(svg, 'data-series="batch"'), 4);
    assert.equal(count(svg, 'data-series="connections"'), 3);
    for (const key of ['peak', 'half-rate', 'baseline', 'spendstream']) {
      assert.equal(count(svg, `data-series="${key}"`), 1, key);
    }
    assert.match(svg, />size 1000, 5 ms<\/text>/);
    assert.match(svg, />128 x 512<\/text>/);
  });

  test('labels the legend with compact figures', () => {
    const svg = renderChart(sampleReport());
    assert.match(svg, />Peak run: 61\.2k\/s, p99 48 ms<\/text>/);
    assert.match(svg, />Half rate: 30k\/s, p99 22 ms<\/text>/);
    assert.match(svg, />Per-message design: 4\.8k\/s, p99 180 ms<\/text>/);
    // x ticks in compact form.
    assert.match(svg, />20k<\/text>/);
  });

  test('escapes labels', () => {
    const report = sampleReport();
    const [first, ...rest] = report.sweeps.batch;
    assert.ok(first);
    const svg = renderChart({
      ...report,
      sweeps: { ...report.sweeps, batch: [{ ...first, label: 'a <&> "b"' }, ...rest] },
    });
    assertWellFormed(svg);
    assert.match(svg, />a &lt;&amp;&gt; &quot;b&quot;<\/text>/);
    assert.ok(!svg.includes('<&>'));
  });

  test('uses a linear latency axis for a narrow range and a log axis for a wide one', () => {
    const linear = renderChart(sampleReport());
    assert.match(linear, />p99 ack latency \(ms\)<\/text>/);
    const report = sampleReport();
    const wide = renderChart({
      ...report,
      baseline: {
        ...report.baseline,
        baseline: loadResult({ throughput: 900, latency: { p99: 2_400 } }),
      },
    });
    assertWellFormed(wide);
    assert.match(wide, />p99 ack latency \(ms, log scale\)<\/text>/);
    assert.match(wide, />1k<\/text>/);
  });

  test('copes with empty sweeps', () => {
    const svg = renderChart(sampleReport({ sweeps: { batch: [], connections: [] } }));
    assertWellFormed(svg);
    assert.equal(count(svg, 'data-series="batch"'), 0);
    assert.equal(count(svg, 'data-series="peak"'), 1);
  });
});

// --- Markdown -----------------------------------------------------------------------------

describe('renderMarkdown', () => {
  test('judges every target as met when the figures meet them', () => {
    const rows = targets(renderMarkdown(sampleReport(), OPTIONS));
    assert.deepEqual([...rows.keys()], TARGET_NAMES);
    assert.deepEqual(rows.get(TARGET_NAMES[0] ?? ''), ['61,234 purchases/s', 'yes']);
    assert.deepEqual(rows.get(TARGET_NAMES[1] ?? ''), ['22 ms at 30,000 purchases/s', 'yes']);
    assert.deepEqual(rows.get(TARGET_NAMES[2] ?? ''), [
      '11.4x (55,100 vs 4,812 purchases/s)',
      'yes',
    ]);
    assert.deepEqual(rows.get(TARGET_NAMES[3] ?? ''), ['212 ms', 'yes']);
    assert.deepEqual(rows.get(TARGET_NAMES[4] ?? ''), ['24,310 calls/s, p99 6.4 ms', 'yes']);
    assert.deepEqual(rows.get(TARGET_NAMES[5] ?? ''), [
      'peak RSS 612 MiB (4× the admission limit); 540 MiB in the peak run',
      'not judged',
    ]);
  });

  test('judges every target as missed when the figures miss them', () => {
    const markdown = renderMarkdown(failingReport(), OPTIONS);
    const rows = targets(markdown);
    assert.deepEqual(rows.get(TARGET_NAMES[0] ?? ''), ['31,000 purchases/s', 'no']);
    assert.deepEqual(rows.get(TARGET_NAMES[1] ?? ''), ['140 ms at 15,500 purchases/s', 'no']);
    assert.deepEqual(rows.get(TARGET_NAMES[2] ?? ''), ['7.4x (55,100 vs 4,812 purchases/s)', 'no']);
    assert.deepEqual(rows.get(TARGET_NAMES[3] ?? ''), ['212 ms, 3 of 200 probes timed out', 'no']);
    assert.deepEqual(rows.get(TARGET_NAMES[4] ?? ''), ['24,310 calls/s, p99 12 ms', 'no']);
  });

  test('does not count the latency target as met below 25,000 purchases/s', () => {
    const report = sampleReport();
    const markdown = renderMarkdown(
      {
        ...report,
        halfRate: loadResult({
          settings: { rate: 20_000 },
          throughput: 20_000,
          latency: { p99: 9.84 },
        }),
      },
      OPTIONS,
    );
    assert.deepEqual(targets(markdown).get(TARGET_NAMES[1] ?? ''), [
      '9.8 ms at 20,000 purchases/s',
      'no',
    ]);
    assert.match(markdown, /paced at 20,000 purchases\/s, below the 25,000 purchases\/s/);
  });

  test('prints n/a for memory without an overload run', () => {
    const rows = targets(renderMarkdown(sampleReport({ overload: [] }), OPTIONS));
    assert.deepEqual(rows.get(TARGET_NAMES[5] ?? ''), ['n/a', 'not judged']);
  });

  test('explains only the targets missed, from the figures', () => {
    const met = renderMarkdown(sampleReport(), OPTIONS);
    const metLimits = met.split('## Where the limits are')[1] ?? '';
    assert.match(metLimits, /Every judged target was met in this run\./);
    assert.doesNotMatch(metLimits, /Peak throughput was/);

    const missed = renderMarkdown(failingReport(), OPTIONS);
    const limits = missed.split('## Where the limits are')[1] ?? '';
    assert.match(limits, /Peak throughput was 31,000 purchases\/s, 62% of the 50,000 purchases\/s/);
    assert.doesNotMatch(limits, /kafka-single/, 'single-operation references are not limits');
    assert.match(
      limits,
      /these stores alone take less than 50,000\/s on this machine: kafka-acks-all 41,800\/s\./,
    );
    assert.match(limits, /p99 ack latency was 140 ms, against the 100 ms target/);
    assert.match(limits, /acked 55,100 purchases\/s and the per-message design 4,812: 7\.4x/);
    assert.match(
      limits,
      /Freshness p99 was 212 ms .*3 of 200 probes timed out, never showing within the timeout/,
    );
    assert.match(limits, /GetBalance served 24,310 calls\/s .* with p99 12 ms/);
    assert.doesNotMatch(limits, /Every judged target was met/);
  });

  test('links the chart and the raw JSON', () => {
    const markdown = renderMarkdown(sampleReport(), OPTIONS);
    assert.ok(markdown.includes('![Throughput vs p99 ack latency](benchmarks.svg)\n'));
    assert.ok(markdown.includes('[`latest.json`](../bench/results/latest.json)'));
  });

  test('states the command, date and duration, and warns only for smoke runs', () => {
    const full = renderMarkdown(sampleReport(), OPTIONS);
    assert.ok(full.startsWith('# Benchmarks\n\n`npm run bench` measures'));
    assert.match(full, /`npm run bench`, started 2025-06-02 09:15 UTC, taking 23 min 5 s/);
    assert.doesNotMatch(full, /smoke run and are not representative/);

    const smoke = renderMarkdown(
      sampleReport({ smoke: true, command: 'npm run bench -- --smoke' }),
      OPTIONS,
    );
    assert.match(smoke, /^> \*\*Warning:\*\* these figures are from a short smoke run/m);
    assert.match(smoke, /`npm run bench -- --smoke`/);
  });

  test('tabulates the runs with the agreed number formats', () => {
    const markdown = renderMarkdown(sampleReport(), OPTIONS);
    assert.match(
      markdown,
      /^\| Peak +\| +64 \| +256 \| +100 \| +10,000 \| +30 \| +unpaced \| +61,234 \| +18 \| +32 \| +48 \| +131 \| none +\| +540 MiB \|$/m,
    );
    assert.match(
      markdown,
      /^\| Half rate +\| .*\| +30,000 \| +29,998 \| +7\.3 \| +12 \| +22 \| +64 \|/m,
    );
    assert.match(
      markdown,
      /^\| Overload, 4× the admission limit +\| .*\| overloaded 12,345 \| +612 MiB \|$/m,
    );
    assert.match(markdown, /\*\*11\.4x\*\* the throughput/);
    assert.match(markdown, /^\| +200 \| +41 \| +99 \| +212 \| +289 \| +0 \|$/m);
    assert.match(
      markdown,
      /^\| +64 \| +4 \| +20 \| +24,310 \| +1\.3 \| +3\.1 \| +6\.4 \| +23 \| +0 \|$/m,
    );
    assert.match(markdown, /^\| size 2000 +\| +2,000 \| +— \|/m);
    assert.match(markdown, /^\| 128 x 512 \| +128 \| +512 \| .*\| overloaded 3 \|$/m);
    assert.match(
      markdown,
      /^\| redis-incr +\| pipelined HINCRBY, 100 per round trip +\| +410,000 \|$/m,
    );
    assert.match(markdown, /^\| Kafka +\| 3\.9\.1 +\|$/m);
  });

  test('escapes labels in tables', () => {
    const report = sampleReport();
    const [first, ...rest] = report.sweeps.batch;
    assert.ok(first);
    const markdown = renderMarkdown(
      {
        ...report,
        sweeps: { ...report.sweeps, batch: [{ ...first, label: 'a <&> |b|' }, ...rest] },
      },
      OPTIONS,
    );
    assert.match(markdown, /^\| a \\<\\&\\> \\\|b\\\| +\| +100 \|/m);
  });

  test('ends with the analysis marker and the analysis after it', () => {
    const bare = renderMarkdown(sampleReport(), OPTIONS);
    assert.ok(bare.endsWith(`\n\n${ANALYSIS_MARKER}\n`));
    assert.equal(extractAnalysis(bare), '');

    const analysis = 'The Kafka produce reference is the lowest stage.';
    const withAnalysis = renderMarkdown(sampleReport(), {
      ...OPTIONS,
      analysis: `\n${analysis}\n\n`,
    });
    assert.ok(withAnalysis.endsWith(`\n\n${ANALYSIS_MARKER}\n\n${analysis}\n`));
    assert.equal(extractAnalysis(withAnalysis), analysis);
    assert.equal(renderMarkdown(sampleReport(), { ...OPTIONS, analysis }), withAnalysis);
    assert.equal(extractAnalysis('# No marker'), undefined);
  });

  test('shows where the CPU went only when the run was profiled', () => {
    assert.doesNotMatch(renderMarkdown(sampleReport(), OPTIONS), /Where the CPU goes/);
    const profiled = sampleReport({
      profiles: [
        {
          service: 'ingest',
          file: 'bench/results/profiles/CPU.1.cpuprofile',
          seconds: 120,
          byPackage: [
            { name: 'kafkajs', percent: 18.6 },
            { name: '(garbage collector)', percent: 7 },
          ],
          byFunction: [
            { name: 'decodeFrameText src/streams/operators/decodeFrame.ts:58', percent: 2.5 },
          ],
        },
      ],
    });
    const markdown = renderMarkdown(profiled, OPTIONS);
    assert.match(markdown, /^### ingest \(120 s of samples\)$/m);
    assert.match(
      markdown,
      /^\| kafkajs +\| +18\.6 \| decodeFrameText src\/streams\/operators\/decodeFrame\.ts:58 \| +2\.5 \|$/m,
    );
    assert.match(markdown, /^\| \(garbage collector\) +\| +7 \| +\| +\|$/m);
  });

  test('tabulates rebuilds and the outage only when the run measured them', () => {
    assert.doesNotMatch(renderMarkdown(sampleReport(), OPTIONS), /Rebuild after a Redis wipe/);
    const markdown = renderMarkdown(
      sampleReport({ rebuild: sampleRebuild(), outage: sampleOutage() }),
      OPTIONS,
    );
    assert.match(
      markdown,
      /^\| Full history +\| Replay from offset 0 \| 10,000 \| 5,000,000 \| 5,000,000 \| +0 \| +10,412 \| +190\.74 \| +10,000 \|$/m,
    );
    assert.match(markdown, /^\| Replay \/ snapshot, full history +\| +14\.9x \|$/m);
    assert.match(markdown, /^\| Snapshot, full \/ a fifth of the history +\| +1\.0x \|$/m);
    assert.match(
      markdown,
      /^\| Backlog when back \(purchases in entries\) +\| +420,000 in 4,200 \|$/m,
    );
    assert.match(markdown, /^\| Totals = PostgreSQL sums after \(s\) +\| +78\.02 \|$/m);
  });

  test('comes out exactly as prettier formats it', async () => {
    const report = sampleReport({ rebuild: sampleRebuild(), outage: sampleOutage() });
    const [first, ...rest] = report.sweeps.batch;
    assert.ok(first);
    const odd = {
      ...failingReport(),
      smoke: true,
      machine: { ...report.machine, postgres: undefined, kafka: undefined },
      sweeps: { ...report.sweeps, batch: [{ ...first, label: 'a <&> |b| *c*' }, ...rest] },
    };
    for (const input of [report, odd]) {
      const markdown = renderMarkdown(input, { ...OPTIONS, analysis: 'Hand-written.' });
      assert.equal(await prettierFormat(markdown), markdown);
    }
  });
});
