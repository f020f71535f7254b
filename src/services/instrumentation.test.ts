import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { createOutcomeTally } from './instrumentation.ts';
import { createLogger } from '../logger.ts';
import { createIngestMetrics } from '../metrics.ts';
import type { PurchaseResult } from '../streams/types.ts';

const refusal = (code: 'overloaded' | 'unavailable'): PurchaseResult => ({
  status: 'error',
  code,
  message: code,
});

test('refusals are logged throttled per code: one code does not hold back another', async () => {
  const lines: string[] = [];
  const logger = createLogger('warn', {}, (line) => lines.push(line));
  const metrics = createIngestMetrics(new Registry());
  let now = 0;
  const tally = createOutcomeTally(metrics, logger, () => now);
  const refuse = (code: 'overloaded' | 'unavailable', count: number) => {
    for (let i = 0; i < count; i += 1) tally.add(refusal(code));
    tally.flush();
  };
  const logged = () =>
    lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .map((entry) => [entry['msg'], entry['code'], entry['count'], entry['suppressed']]);

  refuse('overloaded', 3);
  now += 1_000;
  // Within the interval of the first code's line: a code of its own is written at once.
  refuse('unavailable', 2);
  now += 1_000;
  refuse('overloaded', 1);
  refuse('overloaded', 4);
  assert.deepEqual(logged(), [
    ['purchases refused', 'overloaded', 3, 0],
    ['purchases refused', 'unavailable', 2, 0],
  ]);

  // Past the interval, each code's next line counts only its own held-back flushes.
  now += 10_000;
  refuse('unavailable', 5);
  refuse('overloaded', 6);
  assert.deepEqual(logged().slice(2), [
    ['purchases refused', 'unavailable', 5, 0],
    ['purchases refused', 'overloaded', 6, 2],
  ]);

  // Throttled or not, every refusal is counted.
  const rejected = await metrics.rejected.get();
  assert.deepEqual(
    Object.fromEntries(rejected.values.map(({ labels, value }) => [labels['code'], value])),
    { overloaded: 14, unavailable: 7 },
  );
});

test('acks are counted by whether they were duplicates, once per flush', async () => {
  const logger = createLogger('warn', {}, () => undefined);
  const metrics = createIngestMetrics(new Registry());
  const tally = createOutcomeTally(metrics, logger);
  tally.add({ status: 'ack', id: 'a', duplicate: false });
  tally.add({ status: 'ack', id: 'b', duplicate: true });
  tally.add({ status: 'ack', id: 'c', duplicate: false });
  tally.flush();
  tally.flush();
  const acked = await metrics.acked.get();
  assert.deepEqual(
    Object.fromEntries(acked.values.map(({ labels, value }) => [labels['duplicate'], value])),
    { false: 2, true: 1 },
  );
});
