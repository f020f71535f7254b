// End to end through decoding and applying, with the memory fakes and the service's real
// decoder, in real time: the stages await the fakes' promises, which settle on the
// microtask queue that TestScheduler.run does not advance. Store delays are milliseconds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { from, lastValueFrom, Subject, toArray } from 'rxjs';
// The service's own codec, so these cases see the records the service will really see.
import { decodePurchaseEvent, encodePurchaseEvent } from '../core/purchaseEvent.ts';
import { StoreUnavailableError } from '../core/errors.ts';
import { centsToDecimal } from '../core/purchase.ts';
import { bucketOf } from '../core/buckets.ts';
import {
  createLogRepairer,
  createMemoryCommitter,
  createMemoryDeadLetters,
  createMemoryPartitionReader,
  createMemoryWalletStore,
} from '../testing/index.ts';
import { walletPipeline, type WalletDeps } from './walletPipeline.ts';
import type { AppliedBatch } from './walletTypes.ts';
import type { ConsumedBatch, ConsumedRecord } from '../core/records.ts';

const TOPIC = 'user_purchase';

const patient: WalletDeps['storeCall'] = {
  attemptTimeoutMs: 1_000,
  retry: { initialDelayMs: 1, maxDelayMs: 2, deadlineMs: 2_000 },
};

const fakes = () => {
  const store = createMemoryWalletStore();
  const log = createMemoryPartitionReader(7);
  return {
    store,
    deadLetters: createMemoryDeadLetters(),
    committer: createMemoryCommitter(),
    log,
    repairer: createLogRepairer(store, log, patient),
  };
};

type Fakes = ReturnType<typeof fakes>;

/**
 * Runs the pipeline over `batches` to completion; what it emitted. The topic holds the
 * batches' records (a repair may read them again).
 */
const runAll = <R>(
  batches: readonly ConsumedBatch<R>[],
  ports: Fakes,
  storeCall = patient,
): Promise<AppliedBatch<R>[]> => {
  ports.log.append(batches);
  return lastValueFrom(
    walletPipeline(from(batches), { ...ports, decode: decodePurchaseEvent, storeCall }).pipe(
      toArray(),
    ),
  );
};

/**
 * Runs one pipeline through `steps`, as a running wallet sees them: each batch is applied
 * (and emitted) before the next step, and a function step is something that happens to
 * the store in between.
 */
const runLive = async (
  steps: readonly (ConsumedBatch<string> | (() => void))[],
  ports: Fakes,
): Promise<AppliedBatch<string>[]> => {
  ports.log.append(steps.filter((step) => typeof step !== 'function'));
  const input = new Subject<ConsumedBatch<string>>();
  const out: AppliedBatch<string>[] = [];
  let emitted = () => undefined as void;
  let failed = (_error: Error) => undefined as void;
  const done = new Promise<void>((resolve, reject) => {
    walletPipeline(input, { ...ports, decode: decodePurchaseEvent, storeCall: patient }).subscribe({
      next: (batch) => {
        out.push(batch);
        emitted();
      },
      error: (error: Error) => {
        failed(error);
        reject(error);
      },
      complete: resolve,
    });
  });
  for (const step of steps) {
    if (typeof step === 'function') {
      step();
      continue;
    }
    await new Promise<void>((resolve, reject) => {
      emitted = resolve;
      failed = reject;
      input.next(step);
    });
  }
  input.complete();
  await done;
  return out;
};

/** A purchase event as the ingest service writes it. */
const event = (offset: number, userId: string, cents: number): ConsumedRecord => ({
  offset: String(offset),
  key: userId,
  value: Buffer.from(
    encodePurchaseEvent({ id: `p-${offset}-${userId}`, userId, amountCents: cents }),
  ),
});

/** A purchase event as the Go proof of concept wrote it: no id, amount a JSON number. */
const legacy = (offset: number, userId: string, cents: number): ConsumedRecord => ({
  offset: String(offset),
  key: userId,
  value: Buffer.from(`{"user_id":${JSON.stringify(userId)},"amount":${centsToDecimal(cents)}}`),
});

const junk = (offset: number, value: string | null): ConsumedRecord => ({
  offset: String(offset),
  key: null,
  value: value === null ? null : Buffer.from(value),
});

const batchOf = <R = string>(
  partition: number,
  records: readonly ConsumedRecord[],
  ref: R = `${partition}@${records[0].offset}` as R,
): ConsumedBatch<R> => ({ ref, topic: TOPIC, partition, records });

/** A small deterministic generator (mulberry32), so a failing case can be replayed. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
};

test('totals equal the sums of every purchase, over many batches, partitions and users', async () => {
  const random = seeded(20_240_601);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const partitions = [0, 1, 2];
  // Each partition starts where its retention left it; `moved` was on every partition
  // (the topic was repartitioned), so its offsets on one say nothing about another.
  const firstOffset = [0, 1_000, 73];
  const usersOf = (p: number) => [`u${p}a`, `u${p}b`, `u${p}c`, 'moved'];
  const expected = new Map<string, number>();
  const pending = partitions.map((p) => {
    const records: ConsumedRecord[] = [];
    for (let i = 0; i < 80; i += 1) {
      const userId = pick(usersOf(p));
      const cents = 1 + Math.floor(random() * 100_000);
      const offset = firstOffset[p] + i;
      records.push(i % 3 === 0 ? legacy(offset, userId, cents) : event(offset, userId, cents));
      expected.set(userId, (expected.get(userId) ?? 0) + cents);
    }
    return records;
  });
  // The consumer's fetches: each partition in batches of 1 to 8, the partitions interleaved.
  const batches: ConsumedBatch<string>[] = [];
  while (pending.some((records) => records.length > 0)) {
    const p = pick(partitions.filter((q) => pending[q].length > 0));
    const records = pending[p].splice(0, 1 + Math.floor(random() * 8));
    batches.push(batchOf(p, records));
  }
  const f = fakes();
  const out = await runAll(batches, f);

  assert.deepEqual(f.store.totals, expected);
  assert.deepEqual(
    out.map((b) => b.ref),
    batches.map((b) => b.ref),
  );
  assert.equal(
    out.reduce((sum, b) => sum + b.applied, 0),
    240,
  );
  assert.ok(out.every((b) => b.skipped === 0 && b.poison === 0));
  assert.deepEqual(
    partitions.map((p) => f.committer.committed(TOPIC, p)),
    ['80', '1080', '153'],
  );
  assert.deepEqual(f.deadLetters.published, []);
});

test('a batch delivered twice counts once, also when redelivered from an earlier offset', async () => {
  const f = fakes();
  const first = batchOf(0, [event(0, 'u1', 100), event(1, 'u2', 200), event(2, 'u1', 300)]);
  const batches = [
    first,
    // The commit of `first` was lost: the consumer fetches it again.
    batchOf(0, first.records, 'again'),
    batchOf(0, [event(3, 'u1', 1_000), event(4, 'u2', 2_000)]),
    // A restart resumed from an older committed position: only offset 5 is new.
    batchOf(0, [event(2, 'u1', 300), event(3, 'u1', 1_000), event(4, 'u2', 2_000)]),
    batchOf(0, [event(5, 'u1', 7)], 'new'),
    // The same user on another partition: its own offsets, so nothing here is a repeat.
    batchOf(1, [event(0, 'u1', 10_000), event(1, 'u1', 20_000)]),
  ];
  const out = await runAll(batches, f);

  assert.deepEqual(
    out.map(({ ref, applied, skipped }) => [ref, applied, skipped]),
    [
      ['0@0', 3, 0],
      ['again', 0, 3],
      ['0@3', 2, 0],
      ['0@2', 0, 3],
      ['new', 1, 0],
      ['1@0', 2, 0],
    ],
  );
  assert.deepEqual(
    f.store.totals,
    new Map([
      ['u1', 100 + 300 + 1_000 + 7 + 10_000 + 20_000],
      ['u2', 200 + 2_000],
    ]),
  );
  assert.equal(f.committer.committed(TOPIC, 0), '6');
  assert.equal(f.committer.committed(TOPIC, 1), '2');
});

test('records that are not purchases go to the dead-letter topic; the partition goes on', async () => {
  const f = fakes();
  const nothing = junk(1, null);
  const garbage = junk(2, 'garbage');
  const nobody = junk(3, '{"amount":5}');
  const batches = [
    batchOf(0, [event(0, 'u1', 100), nothing, garbage, nobody, legacy(4, 'u1', 4999)]),
    batchOf(0, [junk(5, '{"user_id":"u1","amount":0}')]),
    batchOf(0, [event(6, 'u1', 1)]),
  ];
  const out = await runAll(batches, f);

  assert.deepEqual(
    f.deadLetters.published.map(({ topic, partition, record }) => [topic, partition, record]),
    [
      [TOPIC, 0, nothing],
      [TOPIC, 0, garbage],
      [TOPIC, 0, nobody],
      [TOPIC, 0, batches[1].records[0]],
    ],
  );
  assert.ok(f.deadLetters.published.every(({ reason }) => reason.length > 0));
  assert.deepEqual(
    out.map(({ applied, poison, nextOffset }) => [applied, poison, nextOffset]),
    [
      [2, 3, '5'],
      [0, 1, '6'],
      [1, 0, '7'],
    ],
  );
  assert.deepEqual(f.store.totals, new Map([['u1', 100 + 4999 + 1]]));
  assert.equal(f.committer.committed(TOPIC, 0), '7');
});

test("one AppliedBatch per consumed batch, in order, carrying that batch's ref", async () => {
  // Refs as the Kafka adapter makes them: a callback releasing the partition's next fetch.
  const released: string[] = [];
  const refOf = (name: string) => () => void released.push(name);
  const batches = [
    batchOf(2, [event(10, 'u1', 100)], refOf('a')),
    batchOf(0, [junk(0, 'garbage')], refOf('b')),
    batchOf(2, [event(10, 'u1', 100)], refOf('c')),
    batchOf(1, [event(3, 'u2', 5), junk(4, null)], refOf('d')),
  ];
  const f = fakes();
  const out = await runAll(batches, f);

  assert.equal(out.length, batches.length);
  out.forEach((applied, index) => {
    const batch = batches[index];
    assert.equal(applied.ref, batch.ref);
    assert.equal(applied.topic, TOPIC);
    assert.equal(applied.partition, batch.partition);
  });
  for (const { ref } of out) ref();
  assert.deepEqual(released, ['a', 'b', 'c', 'd']);
});

test('outages of Redis, the dead-letter topic and commits cost nothing: totals stay exact', async () => {
  const f = fakes();
  f.store.failNext('apply', 3, new StoreUnavailableError('redis', 'Redis unavailable'));
  f.deadLetters.failNext(2, new StoreUnavailableError('kafka', 'broker not available'));
  f.committer.failNext(1, new StoreUnavailableError('kafka', 'not coordinator'));
  const batches = [
    batchOf(0, [event(0, 'u1', 100), junk(1, 'garbage'), event(2, 'u2', 200)]),
    batchOf(1, [legacy(0, 'u1', 4999)]),
    batchOf(0, [event(3, 'u2', 1)]),
  ];
  const out = await runAll(batches, f);

  assert.deepEqual(
    out.map((b) => b.ref),
    ['0@0', '1@0', '0@3'],
  );
  assert.deepEqual(
    f.store.totals,
    new Map([
      ['u1', 100 + 4999],
      ['u2', 201],
    ]),
  );
  assert.equal(f.deadLetters.published.length, 1);
  assert.equal(f.store.calls.length, 3 + batches.length);
  assert.equal(f.committer.committed(TOPIC, 0), '4');
  assert.equal(f.committer.committed(TOPIC, 1), '1');
});

/** Batches of two partitions, 40 purchases each over 12 users, in batches of 5. */
const history = () => {
  const expected = new Map<string, number>();
  const batches: ConsumedBatch<string>[] = [];
  for (let b = 0; b < 8; b += 1) {
    for (const partition of [0, 1]) {
      const records = Array.from({ length: 5 }, (_, i) => {
        const offset = b * 5 + i;
        const userId = `u${(offset * 7 + partition) % 12}`;
        const cents = 100 + offset * 3 + partition;
        expected.set(userId, (expected.get(userId) ?? 0) + cents);
        return event(offset, userId, cents);
      });
      batches.push(batchOf(partition, records));
    }
  }
  return { batches, expected };
};

test('Redis going back to a snapshot mid-stream: the lost buckets are repaired, totals exact', async () => {
  const f = fakes();
  const { batches, expected } = history();
  let restore = () => undefined as void;
  // Snapshot after 3 batches of each partition; back to it after 6, their commits done.
  const steps = [
    ...batches.slice(0, 6),
    () => {
      restore = f.store.snapshot();
    },
    ...batches.slice(6, 12),
    () => restore(),
    ...batches.slice(12),
  ];
  const out = await runLive(steps, f);

  assert.deepEqual(f.store.totals, expected);
  assert.equal(out.length, batches.length);
  // Each partition was read again from where the snapshot left it to where the batch in
  // hand began: 15 to 30, every bucket at once.
  assert.deepEqual(
    f.log.reads.map(([, partition, fromOffset, to]) => [partition, fromOffset, to]),
    [
      [0, '15', '30'],
      [1, '15', '30'],
    ],
  );
  assert.ok(f.repairer.reports.every((r) => r.buckets.length === 64 && r.records === 15));
  assert.deepEqual(
    [0, 1].map((p) => f.committer.committed(TOPIC, p)),
    ['40', '40'],
  );
});

test("a user's hash lost mid-stream: the bucket is replayed from the start, totals exact", async () => {
  const f = fakes();
  const { batches, expected } = history();
  const steps = [...batches.slice(0, 8), () => f.store.deleteUser('u3'), ...batches.slice(8)];
  await runLive(steps, f);

  assert.deepEqual(f.store.totals, expected);
  // The user's bucket alone, from offset 0, on every partition that bucket has records of.
  const bucket = bucketOf('u3');
  assert.ok(f.repairer.reports.length >= 1);
  for (const report of f.repairer.reports) {
    assert.deepEqual(report.buckets, [bucket]);
    assert.equal(report.from, '0');
  }
  assert.deepEqual([...new Set(f.repairer.reports.map((r) => r.partition))].sort(), [0, 1]);
});

test("a bucket's markers lost mid-stream: replayed from the start, nothing counted twice", async () => {
  const f = fakes();
  const { batches, expected } = history();
  const bucket = bucketOf('u5');
  const steps = [...batches.slice(0, 8), () => f.store.deleteBucket(bucket), ...batches.slice(8)];
  await runLive(steps, f);

  assert.deepEqual(f.store.totals, expected);
  assert.deepEqual(
    f.repairer.reports.map((r) => [r.partition, r.buckets, r.from, r.applied]),
    [
      // Every user of the bucket still held its records: read again, applied none.
      [0, [bucket], '0', 0],
      [1, [bucket], '0', 0],
    ],
  );
});
