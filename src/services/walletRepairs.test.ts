// The wallet's repairs over the memory fakes: what a check finds, who repairs what, what
// reads are told meanwhile, what is logged and counted.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { bucketOf, WALLET_BUCKETS } from '../core/buckets.ts';
import { decodePurchaseEvent, encodePurchaseEvent } from '../core/purchaseEvent.ts';
import type { WalletRecord } from '../core/records.ts';
import { createLogger } from '../logger.ts';
import { createWalletMetrics } from '../metrics.ts';
import type { BucketSnapshot } from '../core/ports.ts';
import {
  createMemoryPartitionReader,
  createMemoryWalletStore,
  type MemoryWalletStore,
} from '../testing/index.ts';
import { createWalletRepairs } from './walletRepairs.ts';

const TOPIC = 'user_purchase';

/** Two partitions of 40 purchases each, over 20 users; the store has applied them all. */
const setUp = async (
  owned: ReadonlySet<number> = new Set([0, 1]),
  extra: Pick<Parameters<typeof createWalletRepairs>[0], 'snapshots' | 'logStarts'> = {},
) => {
  const store = createMemoryWalletStore();
  await store.markInitialised(TOPIC);
  const reader = createMemoryPartitionReader(10);
  const records: WalletRecord[] = [];
  for (const partition of [0, 1]) {
    const consumed = Array.from({ length: 40 }, (_, offset) => {
      const userId = `user-${(offset * 3 + partition) % 20}`;
      const amountCents = 1 + offset + partition * 100;
      records.push({ partition, offset: String(offset), userId, amountCents });
      return {
        offset: String(offset),
        key: userId,
        value: Buffer.from(
          encodePurchaseEvent({ id: `${partition}-${offset}`, userId, amountCents }),
        ),
      };
    });
    reader.append([{ ref: null, topic: TOPIC, partition, records: consumed }]);
  }
  const byPartition = (p: number) => records.filter((r) => r.partition === p);
  const applyUpTo = async (to: number) => {
    for (const p of [0, 1]) {
      await store.apply(TOPIC, byPartition(p).slice(0, to), {
        spans: [{ partition: p, from: '0', to: String(to) }],
      });
    }
  };
  const lines: Record<string, unknown>[] = [];
  const metrics = createWalletMetrics(new Registry());
  const committed = new Map([
    [0, 40n],
    [1, 40n],
  ]);
  const repairs = createWalletRepairs({
    topic: TOPIC,
    store,
    reader,
    decode: decodePurchaseEvent,
    storeCall: {
      attemptTimeoutMs: 1_000,
      retry: { initialDelayMs: 1, maxDelayMs: 2, deadlineMs: 2_000 },
    },
    committed: () => Promise.resolve(committed),
    owned: () => owned,
    metrics,
    ...extra,
    logger: createLogger('info', {}, (line) =>
      lines.push(JSON.parse(line) as Record<string, unknown>),
    ),
  });
  const expected = new Map<string, number>();
  for (const r of records) expected.set(r.userId, (expected.get(r.userId) ?? 0) + r.amountCents);
  const settled = async () => {
    for (let i = 0; i < 200 && repairs.incompleteCount() > 0; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      await repairs.check();
    }
  };
  return { store, reader, repairs, metrics, lines, applyUpTo, expected, settled };
};

test('a check finds every bucket behind the committed offsets and repairs them', async () => {
  const f = await setUp();
  await f.applyUpTo(20);
  const restore = f.store.snapshot();
  await f.applyUpTo(40);
  restore();
  await f.repairs.check();

  // Incomplete from the check on, until repaired: reads of those users wait.
  assert.equal(f.repairs.isComplete(bucketOf('user-1')), false);
  assert.deepEqual(
    f.repairs.committedOffsets(),
    new Map([
      [0, '40'],
      [1, '40'],
    ]),
  );
  await f.settled();
  assert.equal(f.repairs.incompleteCount(), 0);
  assert.ok(f.repairs.isComplete(bucketOf('user-1')));
  assert.deepEqual(f.store.totals, f.expected);
  // One read of each partition, every bucket at once, from where the snapshot left them.
  assert.deepEqual(f.reader.reads, [
    [TOPIC, 0, '20', '40'],
    [TOPIC, 1, '20', '40'],
  ]);

  const lost = f.lines.filter((l) => l['msg'] === 'Redis lost records of a bucket: repairing it');
  assert.equal(lost.length, WALLET_BUCKETS * 2, 'each loss logged once');
  assert.deepEqual(
    Object.keys(lost[0] ?? {}).filter((key) =>
      ['bucket', 'partition', 'marker', 'committed', 'reason'].includes(key),
    ),
    ['bucket', 'partition', 'marker', 'committed', 'reason'],
  );
  assert.ok(lost.every((l) => l['marker'] === '20' && l['committed'] === '40'));
  const repaired = f.lines.filter((l) => l['msg'] === 'buckets repaired');
  assert.deepEqual(
    repaired.map((l) => [l['partition'], l['from'], l['to'], l['records']]),
    [
      [0, '20', '40', 20],
      [1, '20', '40', 20],
    ],
  );
  assert.ok(repaired.every((l) => typeof l['durationMs'] === 'number'));
  const counted = await f.metrics.bucketLosses.get();
  assert.equal(counted.values.length, WALLET_BUCKETS * 2);
  assert.ok(counted.values.every(({ value }) => value === 1));

  // Checked again once whole: nothing more to log or count.
  await f.repairs.check();
  assert.equal(
    f.lines.filter((l) => l['msg'] === 'Redis lost records of a bucket: repairing it').length,
    WALLET_BUCKETS * 2,
  );
});

test("a partition another instance consumes is that one's to repair; its buckets wait here", async () => {
  const f = await setUp(new Set([1]));
  await f.applyUpTo(40);
  const bucket = bucketOf('user-7');
  f.store.deleteBucket(bucket);
  await f.repairs.check();
  for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setTimeout(resolve, 5));
  // Partition 1 repaired here; partition 0 left to its consumer, so the bucket waits.
  assert.deepEqual(f.reader.reads, [[TOPIC, 1, '0', '40']]);
  await f.repairs.check();
  assert.equal(f.repairs.isComplete(bucket), false);
  assert.equal(f.repairs.incompleteCount(), 1);
});

test('a second repair of a partition waits for the first and reads only what is left', async () => {
  const f = await setUp(new Set());
  // Everything applied up to 10; the batch in hand begins at 25, the next one at 40.
  await f.applyUpTo(10);
  const bucket = bucketOf('user-3');
  const lost = [{ bucket, partition: 0, marker: '10', reason: 'behind' as const }];
  await Promise.all([
    f.repairs.repair(TOPIC, 0, lost, '25'),
    f.repairs.repair(TOPIC, 0, lost, '40'),
  ]);
  assert.deepEqual(f.reader.reads, [
    [TOPIC, 0, '10', '25'],
    [TOPIC, 0, '25', '40'],
  ]);
  const markers = await f.store.readMarkers(TOPIC, [0]);
  assert.equal(markers.get(bucket)?.get(0), '40');
});

test('a read that finds a bucket short makes it incomplete until a check finds it whole', async () => {
  const f = await setUp(new Set());
  await f.applyUpTo(40);
  await f.repairs.check();
  f.repairs.markIncomplete(5);
  assert.equal(f.repairs.isComplete(5), false);
  await f.repairs.check();
  assert.equal(f.repairs.isComplete(5), true);
});

test('a lost bucket is put back from the snapshot first: only the tail after it is read', async () => {
  const snapshots = new Map<number, BucketSnapshot>();
  const restored: number[][] = [];
  const held: { store?: MemoryWalletStore } = {};
  const f = await setUp(new Set([0, 1]), {
    snapshots: {
      restore: async (buckets = []) => {
        restored.push([...buckets]);
        for (const bucket of buckets) {
          const snapshot = snapshots.get(bucket);
          if (snapshot !== undefined) await held.store?.restore(TOPIC, snapshot);
        }
        return { buckets: buckets.length, users: 0, from: new Map() };
      },
    },
  });
  held.store = f.store;
  await f.applyUpTo(30);
  for (let bucket = 0; bucket < WALLET_BUCKETS; bucket += 1) {
    const taken = await f.store.takeSnapshot(TOPIC, bucket, [0, 1]);
    if (taken !== undefined) snapshots.set(bucket, taken);
  }
  await f.applyUpTo(40);
  const bucket = bucketOf('user-4');
  f.store.deleteBucket(bucket);
  await f.repairs.check();
  await f.settled();
  assert.deepEqual(restored, [[bucket], [bucket]]);
  assert.deepEqual(f.reader.reads, [
    [TOPIC, 0, '30', '40'],
    [TOPIC, 1, '30', '40'],
  ]);
  assert.deepEqual(f.store.totals, f.expected);
  assert.ok(f.lines.some((l) => l['msg'] === 'buckets restored from the snapshot'));
});

test('a repair whose records were deleted is refused, loudly, and the bucket stays out', async () => {
  const f = await setUp(new Set([0, 1]), {
    logStarts: () =>
      Promise.resolve(
        new Map([
          [0, 35n],
          [1, 0n],
        ]),
      ),
  });
  await f.applyUpTo(40);
  const bucket = bucketOf('user-4');
  f.store.deleteBucket(bucket);
  await f.repairs.check();
  for (let i = 0; i < 200; i += 1) {
    if (
      f.lines.some((l) => l['msg'] === 'cannot repair buckets: the records they need were deleted')
    )
      break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const refused = f.lines.find(
    (l) => l['msg'] === 'cannot repair buckets: the records they need were deleted',
  );
  assert.equal(refused?.['level'], 'error');
  assert.equal(refused?.['partition'], 0);
  assert.equal(f.repairs.isComplete(bucket), false, 'its users read UNAVAILABLE');
  assert.match(
    await f.metrics.registry.metrics(),
    /spendstream_wallet_records_deleted_refusals_total\{partition="0"\} [1-9]/,
  );
  // Nothing of partition 0 was read: it would start past the records the bucket needs.
  assert.ok(f.reader.reads.every(([, partition]) => partition !== 0));
  f.repairs.close();
});
