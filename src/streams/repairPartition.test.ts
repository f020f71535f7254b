// Real time, with the memory fakes: the repair awaits the fakes' promises and the reader's
// pages, which settle on the microtask queue.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lastValueFrom } from 'rxjs';
import { bucketOf } from '../core/buckets.ts';
import type { LostBucket, PartitionPage, PartitionReader } from '../core/ports.ts';
import { decodePurchaseEvent, encodePurchaseEvent } from '../core/purchaseEvent.ts';
import type { ConsumedRecord } from '../core/records.ts';
import { createMemoryPartitionReader, createMemoryWalletStore } from '../testing/index.ts';
import { repairPartition, RepairInterruptedError, type RepairDeps } from './repairPartition.ts';

const TOPIC = 'user_purchase';
const storeCall: RepairDeps['storeCall'] = {
  attemptTimeoutMs: 1_000,
  retry: { initialDelayMs: 1, maxDelayMs: 2, deadlineMs: 2_000 },
};

const event = (offset: number, userId: string, cents: number): ConsumedRecord => ({
  offset: String(offset),
  key: userId,
  value: Buffer.from(
    encodePurchaseEvent({ id: `p-${offset}-${userId}`, userId, amountCents: cents }),
  ),
});

/** `count` users of `bucket`. */
const usersOf = (bucket: number, count: number): string[] => {
  const found: string[] = [];
  for (let i = 0; found.length < count; i += 1) {
    if (bucketOf(`r-${i}`) === bucket) found.push(`r-${i}`);
  }
  return found;
};

const [a = '', b = ''] = usersOf(4, 2);
const [c = ''] = usersOf(9, 1);

/** 60 records of partition 0 over users a, b (bucket 4) and c (bucket 9). */
const log = Array.from({ length: 60 }, (_, i) => event(i, [a, b, c][i % 3] ?? '', 10 + i));

const setUp = async (pageSize = 8) => {
  const store = createMemoryWalletStore();
  await store.markInitialised(TOPIC);
  const reader = createMemoryPartitionReader(pageSize);
  reader.append([{ ref: null, topic: TOPIC, partition: 0, records: log }]);
  const records = log.map((record, i) => ({
    partition: 0,
    offset: record.offset,
    userId: [a, b, c][i % 3] ?? '',
    amountCents: 10 + i,
  }));
  return { store, reader, records };
};

const lostAt = (bucket: number, marker: string): LostBucket => ({
  bucket,
  partition: 0,
  marker,
  reason: 'behind',
});

test("reads from the lowest marker up to `to`, applying only the lost buckets' users", async () => {
  const { store, reader, records } = await setUp();
  // Everything up to 30 was applied; then Redis went back to when bucket 4 stood at 12.
  await store.apply(TOPIC, records.slice(0, 12), {
    spans: [{ partition: 0, from: '0', to: '12' }],
  });
  const restore = store.snapshot();
  await store.apply(TOPIC, records.slice(12, 30), {
    spans: [{ partition: 0, from: '12', to: '30' }],
  });
  restore();
  const report = await lastValueFrom(
    repairPartition(
      { topic: TOPIC, partition: 0, lost: [lostAt(4, '12')], to: '30' },
      { reader, store, decode: decodePurchaseEvent, storeCall },
    ),
  );

  assert.deepEqual(reader.reads, [[TOPIC, 0, '12', '30']]);
  assert.equal(report.records, 18);
  // a and b's records from 12 to 29, not c's: bucket 9 was not asked for.
  assert.equal(report.applied, 12);
  assert.deepEqual(report.buckets, [4]);
  const sum = (user: string, to: number) =>
    records.slice(0, to).reduce((s, r) => s + (r.userId === user ? r.amountCents : 0), 0);
  assert.equal(store.totals.get(a), sum(a, 30));
  assert.equal(store.totals.get(b), sum(b, 30));
  assert.equal(store.totals.get(c), sum(c, 12));
  const markers = await store.readMarkers(TOPIC, [0]);
  assert.equal(markers.get(4)?.get(0), '30');
  assert.equal(markers.get(9)?.get(0), '12');
});

test('buckets short by different amounts are read once, from the lowest marker', async () => {
  const { store, reader, records } = await setUp();
  await store.apply(TOPIC, records.slice(0, 20), {
    spans: [{ partition: 0, from: '0', to: '20' }],
  });
  const report = await lastValueFrom(
    repairPartition(
      // Bucket 9 still holds up to 20, bucket 4 lost everything.
      { topic: TOPIC, partition: 0, lost: [lostAt(9, '20'), lostAt(4, '0')], to: '40' },
      { reader, store, decode: decodePurchaseEvent, storeCall },
    ),
  );
  assert.deepEqual(reader.reads, [[TOPIC, 0, '0', '40']]);
  assert.equal(report.from, '0');
  // What each still held was skipped: records 20 to 39 of all three users are new.
  assert.equal(report.applied, 20);
  const markers = await store.readMarkers(TOPIC, [0]);
  assert.equal(markers.get(4)?.get(0), '40');
  assert.equal(markers.get(9)?.get(0), '40');
});

test('buckets already at `to` need nothing read', async () => {
  const { store, reader } = await setUp();
  const report = await lastValueFrom(
    repairPartition(
      { topic: TOPIC, partition: 0, lost: [lostAt(4, '30')], to: '30' },
      { reader, store, decode: decodePurchaseEvent, storeCall },
    ),
  );
  assert.deepEqual(reader.reads, []);
  assert.equal(report.records, 0);
});

test('pages are read as they are applied, never ahead, and the reader is closed', async () => {
  const { store } = await setUp();
  let asked = 0;
  let closed = false;
  let applying = 0;
  const pages: PartitionPage[] = [0, 10, 20].map((start) => ({
    records: log.slice(start, start + 10),
    next: String(start + 10),
  }));
  const reader: PartitionReader = {
    read: () => ({
      [Symbol.asyncIterator]: () => ({
        next: () => {
          assert.equal(applying, 0, 'no page is asked for while one is applied');
          const page = pages[asked];
          asked += 1;
          return Promise.resolve(
            page === undefined ? { done: true, value: undefined } : { done: false, value: page },
          );
        },
        return: () => {
          closed = true;
          return Promise.resolve({ done: true, value: undefined });
        },
      }),
    }),
  };
  const counting = {
    ...store,
    apply: async (...args: Parameters<typeof store.apply>) => {
      applying += 1;
      await new Promise((resolve) => setTimeout(resolve, 5));
      applying -= 1;
      return store.apply(...args);
    },
  };
  await lastValueFrom(
    repairPartition(
      { topic: TOPIC, partition: 0, lost: [lostAt(4, '0')], to: '30' },
      { reader, store: counting, decode: decodePurchaseEvent, storeCall },
    ),
  );
  assert.equal(asked, 4);
  assert.ok(closed);
});

test('a bucket found short again meanwhile interrupts the repair', async () => {
  const { store, reader, records } = await setUp(5);
  await store.apply(TOPIC, records.slice(0, 10), {
    spans: [{ partition: 0, from: '0', to: '10' }],
  });
  store.deleteUser(a);
  await assert.rejects(
    lastValueFrom(
      repairPartition(
        { topic: TOPIC, partition: 0, lost: [lostAt(4, '5')], to: '20' },
        { reader, store, decode: decodePurchaseEvent, storeCall },
      ),
    ),
    (error: unknown) =>
      error instanceof RepairInterruptedError &&
      error.retryable &&
      error.lost.some((l) => l.bucket === 4 && l.reason === 'user'),
  );
});
