import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  bucketDeltas,
  histogramBuckets,
  parseMetricsText,
  quantileFromBuckets,
  sumOf,
  summarize,
} from './metricsText.js';

test('parses samples with labels, escapes, special values and timestamps', () => {
  const samples = parseMetricsText(
    [
      '# HELP a_total Things',
      '# TYPE a_total counter',
      'a_total{code="x",note="say \\"hi\\", a\\\\b\\nc {}"} 3',
      'a_total{code="y"} 4 1700000000000',
      'b 1.5e3',
      'c{le="+Inf"} +Inf',
      'd NaN',
      'not a sample line at all',
      '',
    ].join('\n'),
  );
  assert.deepEqual(samples.get('a_total'), [
    { labels: { code: 'x', note: 'say "hi", a\\b\nc {}' }, value: 3 },
    { labels: { code: 'y' }, value: 4 },
  ]);
  assert.equal(sumOf(samples, 'a_total'), 7);
  assert.equal(sumOf(samples, 'a_total', { code: 'y' }), 4);
  assert.equal(sumOf(samples, 'a_total', { code: 'z' }), 0);
  assert.equal(sumOf(samples, 'b'), 1500);
  assert.equal(sumOf(samples, 'c'), Infinity);
  assert.ok(Number.isNaN(sumOf(samples, 'd')));
  assert.equal(sumOf(samples, 'missing'), undefined);
});

test('a declared counter without samples reads as zero', () => {
  const samples = parseMetricsText('# HELP x_total h\n# TYPE x_total counter\n');
  assert.equal(sumOf(samples, 'x_total'), 0);
  assert.equal(sumOf(samples, 'x_total', { duplicate: 'true' }), 0);
});

test('a quantile is interpolated inside its bucket, as histogram_quantile does', () => {
  const buckets = [
    { le: 0.001, count: 0 },
    { le: 0.005, count: 50 },
    { le: 0.01, count: 90 },
    { le: 0.1, count: 100 },
    { le: Infinity, count: 100 },
  ];
  // Rank 50 is the top of the 1–5 ms bucket; rank 99 is 9/10 into the 10–100 ms one.
  assert.equal(quantileFromBuckets(0.5, buckets), 0.005);
  assert.ok(Math.abs((quantileFromBuckets(0.99, buckets) ?? 0) - 0.091) < 1e-12);
  assert.ok(Math.abs((quantileFromBuckets(0.25, buckets) ?? 0) - 0.003) < 1e-12);
  assert.equal(quantileFromBuckets(0.5, [{ le: Infinity, count: 0 }]), undefined);
  assert.equal(quantileFromBuckets(0.5, []), undefined);
  // The first bucket starts at zero.
  assert.equal(
    quantileFromBuckets(0.5, [
      { le: 0.002, count: 4 },
      { le: Infinity, count: 4 },
    ]),
    0.001,
  );
  // Past the largest finite bound there is no upper edge to interpolate to.
  assert.equal(
    quantileFromBuckets(0.99, [
      { le: 1, count: 1 },
      { le: Infinity, count: 10 },
    ]),
    Infinity,
  );
});

test('bucket deltas cover one interval; a restart counts from zero', () => {
  const before = [
    { le: 0.01, count: 10 },
    { le: Infinity, count: 12 },
  ];
  const after = [
    { le: 0.01, count: 15 },
    { le: Infinity, count: 20 },
  ];
  assert.deepEqual(bucketDeltas(before, after), [
    { le: 0.01, count: 5 },
    { le: Infinity, count: 8 },
  ]);
  const restarted = [
    { le: 0.01, count: 1 },
    { le: Infinity, count: 2 },
  ];
  assert.deepEqual(bucketDeltas(before, restarted), restarted);
});

test("the page's figures from two scrapes of prom-client's own output", async () => {
  const registry = new Registry();
  const received = new Counter({
    name: 'spendstream_purchases_received_total',
    help: 'h',
    registers: [registry],
  });
  const acked = new Counter({
    name: 'spendstream_purchases_acked_total',
    help: 'h',
    labelNames: ['duplicate'],
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'spendstream_purchases_rejected_total',
    help: 'h',
    labelNames: ['code'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'spendstream_ack_latency_seconds',
    help: 'h',
    buckets: [0.001, 0.01, 0.1],
    registers: [registry],
  });
  const connections = new Gauge({
    name: 'spendstream_connections_open',
    help: 'h',
    registers: [registry],
  });
  new Gauge({ name: 'spendstream_purchases_unacked', help: 'h', registers: [registry] }).set(7);
  connections.set(3);
  received.inc(10);
  acked.inc({ duplicate: 'false' }, 9);
  latency.observe(5); // before the interval: must not weigh on its quantiles
  const first = parseMetricsText(await registry.metrics());

  received.inc(40);
  acked.inc({ duplicate: 'false' }, 38);
  acked.inc({ duplicate: 'true' }, 2);
  rejected.inc({ code: 'invalid_purchase' }, 3);
  for (let i = 0; i < 80; i += 1) latency.observe(0.0005);
  for (let i = 0; i < 20; i += 1) latency.observe(0.05);
  const second = parseMetricsText(await registry.metrics());

  const figures = summarize(first, second, 2);
  assert.equal(figures.purchasesPerSecond, 20);
  assert.equal(figures.received, 50);
  assert.equal(figures.acked, 49);
  assert.equal(figures.duplicates, 2);
  assert.equal(figures.rejected, 3);
  assert.deepEqual(figures.rejectedByCode, { invalid_purchase: 3 });
  assert.equal(figures.acksInInterval, 100);
  assert.ok(Math.abs((figures.p50 ?? 0) - 0.000625) < 1e-12); // rank 50 of 80 in 0–1 ms
  assert.ok(Math.abs((figures.p99 ?? 0) - 0.0955) < 1e-12); // rank 99: 19/20 into 10–100 ms
  assert.equal(figures.largestBound, 0.1);
  assert.equal(figures.connections, 3);
  assert.equal(figures.unacked, 7);
  assert.deepEqual(histogramBuckets(second, 'spendstream_ack_latency_seconds').at(-1), {
    le: Infinity,
    count: 101,
  });

  // Declared but never incremented: zero, not missing.
  assert.equal(summarize(undefined, first, 0).rejected, 0);
  const start = summarize(undefined, first, 0);
  assert.equal(start.purchasesPerSecond, undefined);
  assert.equal(start.p50, undefined);
  assert.equal(start.acked, 9);
});

test('figures a service does not export read as undefined, not zero', () => {
  const figures = summarize(parseMetricsText(''), parseMetricsText('other 1'), 1);
  assert.equal(figures.acked, undefined);
  assert.equal(figures.purchasesPerSecond, undefined);
  assert.equal(figures.connections, undefined);
  assert.equal(figures.p99, undefined);
});
