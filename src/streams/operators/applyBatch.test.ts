// Real time, not marbles: the stage awaits the fakes' promises, which settle on the
// microtask queue that TestScheduler.run does not advance (even a scripted failure is a
// rejected promise). Delays are milliseconds, so each case finishes in tens of ms; the
// timeout and backoff arithmetic is marble-tested in callStore.test.ts and
// retryTransient.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { from, lastValueFrom, Subject, tap, toArray } from 'rxjs';
import type {
  BucketRepairer,
  DeadLetterPublisher,
  OffsetCommitter,
  WalletStore,
} from '../../core/ports.ts';
import type { WalletRecord } from '../../core/records.ts';
import { SpendstreamError, StoreUnavailableError } from '../../core/errors.ts';
import {
  createLogRepairer,
  createMemoryCommitter,
  createMemoryDeadLetters,
  createMemoryPartitionReader,
  createMemoryWalletStore,
} from '../../testing/index.ts';
import type { AppliedBatch, DecodedBatch } from '../walletTypes.ts';
import type { ConsumedRecord, PoisonRecord } from '../../core/records.ts';
import { applyBatch, type ApplyBatchDeps } from './applyBatch.ts';

const TOPIC = 'user_purchase';

// Tiny delays keep retries quick; a generous attempt timeout and deadline keep a busy
// machine from turning a slow answer into a retry or a give-up, while a stage that
// wrongly kept retrying still fails the case instead of hanging it.
const patient: ApplyBatchDeps['storeCall'] = {
  attemptTimeoutMs: 1_000,
  retry: { initialDelayMs: 1, maxDelayMs: 2, deadlineMs: 2_000 },
};

// The wallet service's own policy: a batch waits for Redis however long it is down.
const forever: ApplyBatchDeps['storeCall'] = {
  ...patient,
  retry: { ...patient.retry, deadlineMs: Number.POSITIVE_INFINITY },
};

type Item =
  | { readonly offset: string; readonly userId: string; readonly cents: number }
  | { readonly offset: string; readonly poison: string };

/** A purchase at `offset`. */
const buy = (offset: number | string, userId = 'u1', cents = 100): Item => ({
  offset: String(offset),
  userId,
  cents,
});

/** A record at `offset` that the decoder refused. */
const bad = (offset: number | string, reason = 'not JSON'): Item => ({
  offset: String(offset),
  poison: reason,
});

/** A decoded batch of `partition`, as decodeBatch makes it from these records. */
const batchOf = (ref: string, partition: number, items: readonly Item[]): DecodedBatch<string> => {
  const pairs = items.map((item): [Item, ConsumedRecord] => [
    item,
    { offset: item.offset, key: null, value: Buffer.from(`record ${item.offset}`) },
  ]);
  const records: WalletRecord[] = [];
  const poison: PoisonRecord[] = [];
  for (const [item, record] of pairs) {
    if ('poison' in item) {
      poison.push({ topic: TOPIC, partition, record, reason: item.poison });
    } else {
      records.push({
        partition,
        offset: item.offset,
        userId: item.userId,
        amountCents: item.cents,
      });
    }
  }
  return {
    batch: { ref, topic: TOPIC, partition, records: pairs.map(([, record]) => record) },
    records,
    poison,
  };
};

/**
 * A repairer over a log holding nothing before the batches: what a bucket lacks below a
 * batch's first offset is nothing, so a repair only moves the bucket's markers there.
 */

const fakes = () => {
  const store = createMemoryWalletStore();
  return {
    store,
    deadLetters: createMemoryDeadLetters(),
    committer: createMemoryCommitter(),
    repairer: createLogRepairer(store, createMemoryPartitionReader(), patient),
  };
};

interface Ports {
  readonly store: WalletStore;
  readonly deadLetters: DeadLetterPublisher;
  readonly committer: OffsetCommitter;
  readonly repairer?: BucketRepairer;
}

/** What the stage passes the store for a batch of `partition` from `from` to `to`. */
const spanned = (partition: number, from: string, to: string) => ({
  spans: [{ partition, from, to }],
});

/** Applies `batches` to completion; what the stage emitted. */
const applyAll = (
  batches: readonly DecodedBatch<string>[],
  ports: Ports,
  storeCall = patient,
): Promise<AppliedBatch<string>[]> =>
  lastValueFrom(from(batches).pipe(applyBatch<string>({ ...ports, storeCall }), toArray()));

const applied = (
  { batch }: DecodedBatch<string>,
  counts: { applied: number; skipped: number; poison: number },
  nextOffset: string,
): AppliedBatch<string> => ({
  ref: batch.ref,
  topic: batch.topic,
  partition: batch.partition,
  ...counts,
  nextOffset,
});

const redisDown = () => new StoreUnavailableError('redis', 'Redis unavailable: ECONNREFUSED');
const kafkaDown = () => new StoreUnavailableError('kafka', 'broker not available');

test('poison goes to the dead-letter topic, acknowledged, before the store is touched', async () => {
  const f = fakes();
  const log: string[] = [];
  const deadLetters: DeadLetterPublisher = {
    publish: async (records) => {
      log.push('dead letters sent');
      await sleep(5);
      await f.deadLetters.publish(records);
      log.push('dead letters acknowledged');
    },
  };
  const store: WalletStore = {
    ...f.store,
    apply: (topic, records) => {
      log.push('store apply');
      return f.store.apply(topic, records);
    },
  };
  const batch = batchOf('a', 0, [buy(0), bad(1, 'not JSON'), buy(2), bad(3, 'no user_id')]);
  await applyAll([batch], { ...f, deadLetters, store });

  assert.deepEqual(log, ['dead letters sent', 'dead letters acknowledged', 'store apply']);
  assert.deepEqual(f.deadLetters.published, batch.poison);
  assert.equal(f.deadLetters.calls.length, 1, 'one publish per batch');
});

test('the store is applied once per batch, with every purchase of the batch', async () => {
  const f = fakes();
  const first = batchOf('a', 0, [buy(0, 'u1', 100), bad(1), buy(2, 'u2', 250)]);
  const second = batchOf('b', 1, [buy(0, 'u1', 5)]);
  const out = await applyAll([first, second], f);

  assert.deepEqual(f.store.calls, [
    { method: 'apply', topic: TOPIC, records: first.records, options: spanned(0, '0', '3') },
    { method: 'apply', topic: TOPIC, records: second.records, options: spanned(1, '0', '1') },
  ]);
  assert.deepEqual(
    f.store.totals,
    new Map([
      ['u1', 105],
      ['u2', 250],
    ]),
  );
  assert.deepEqual(out, [
    applied(first, { applied: 2, skipped: 0, poison: 1 }, '3'),
    applied(second, { applied: 1, skipped: 0, poison: 0 }, '1'),
  ]);
});

test('commits one past the last offset of the batch, also when that record is poison', async () => {
  const f = fakes();
  const endsClean = batchOf('a', 0, [buy(5), buy(6)]);
  const endsPoisoned = batchOf('b', 2, [buy(41), bad(42)]);
  const out = await applyAll([endsClean, endsPoisoned], f);

  assert.deepEqual(f.committer.commits, [
    { topic: TOPIC, partition: 0, offset: '7' },
    { topic: TOPIC, partition: 2, offset: '43' },
  ]);
  assert.deepEqual(
    out.map((b) => b.nextOffset),
    ['7', '43'],
  );
});

test('the committed offset is exact past 2^53, where a double would round', async () => {
  const f = fakes();
  // A store that takes any offset: the stage's own arithmetic is what is tested.
  const store: WalletStore = {
    ...f.store,
    apply: () => Promise.resolve({ applied: 0, skipped: 0, lost: [] }),
  };
  await applyAll([batchOf('a', 0, [bad('9007199254740993')])], { ...f, store });
  assert.equal(f.committer.committed(TOPIC, 0), '9007199254740994');
});

test('commits only once the store has answered', async () => {
  const f = fakes();
  const totalsAtCommit: Map<string, number>[] = [];
  const store: WalletStore = {
    ...f.store,
    apply: async (topic, records) => {
      await sleep(10);
      return f.store.apply(topic, records);
    },
  };
  const committer: OffsetCommitter = {
    commit: (topic, partition, offset) => {
      totalsAtCommit.push(new Map(f.store.totals));
      return f.committer.commit(topic, partition, offset);
    },
  };
  await applyAll([batchOf('a', 0, [buy(0, 'u1', 100), buy(1, 'u2', 200)])], {
    ...f,
    store,
    committer,
  });

  assert.deepEqual(totalsAtCommit, [
    new Map([
      ['u1', 100],
      ['u2', 200],
    ]),
  ]);
});

// A stage that stopped retrying, or never resumed, would wait forever: the timeout ends it.
test(
  'a store that is down is retried until it answers: the batch waits, none is skipped',
  { timeout: 5_000 },
  async (t) => {
    const f = fakes();
    f.store.setFailure('apply', redisDown());
    const batches = new Subject<DecodedBatch<string>>();
    const emitted: AppliedBatch<string>[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const subscription = batches
        .pipe(applyBatch<string>({ ...f, storeCall: forever }))
        .subscribe({ next: (batch) => emitted.push(batch), error: reject, complete: resolve });
      // Should an assertion fail while the store is down, the retries must not outlive the test.
      t.after(() => subscription.unsubscribe());
    });
    const first = batchOf('a', 0, [buy(0, 'u1', 100), buy(1, 'u1', 200)]);
    const second = batchOf('b', 1, [buy(0, 'u2', 50)]);
    batches.next(first);
    batches.next(second);
    await sleep(50);

    assert.ok(f.store.calls.length >= 3, `retried meanwhile (${f.store.calls.length} calls)`);
    for (const call of f.store.calls) {
      assert.deepEqual(
        call,
        { method: 'apply', topic: TOPIC, records: first.records, options: spanned(0, '0', '2') },
        'only the first batch was tried: the second waits its turn',
      );
    }
    assert.deepEqual(emitted, [], 'nothing reported as applied');
    assert.deepEqual(f.committer.calls, [], 'nothing committed');
    assert.equal(f.store.totals.size, 0);

    f.store.setFailure('apply', undefined);
    batches.complete();
    await done;
    assert.deepEqual(emitted, [
      applied(first, { applied: 2, skipped: 0, poison: 0 }, '2'),
      applied(second, { applied: 1, skipped: 0, poison: 0 }, '1'),
    ]);
    assert.deepEqual(
      f.store.totals,
      new Map([
        ['u1', 300],
        ['u2', 50],
      ]),
    );
    assert.deepEqual(f.committer.commits, [
      { topic: TOPIC, partition: 0, offset: '2' },
      { topic: TOPIC, partition: 1, offset: '1' },
    ]);
  },
);

test(
  'a store reply that is lost is retried, and its records count once',
  { timeout: 5_000 },
  async () => {
    const f = fakes();
    f.store.hangNext('apply', 1, { applied: true });
    const batch = batchOf('a', 0, [buy(0, 'u1', 100), buy(1, 'u1', 200)]);
    const out = await applyAll([batch], f, { ...patient, attemptTimeoutMs: 20 });

    assert.equal(f.store.calls.length, 2, 'the attempt timed out and was retried');
    assert.deepEqual(f.store.totals, new Map([['u1', 300]]));
    // The retry finds the records already applied; the stage reports what the retry saw.
    assert.deepEqual(out, [applied(batch, { applied: 0, skipped: 2, poison: 0 }, '2')]);
    assert.equal(f.committer.committed(TOPIC, 0), '2');
  },
);

test('a dead-letter topic that is down is retried, and the store waits for it', async () => {
  const f = fakes();
  f.deadLetters.failNext(2, kafkaDown());
  const batch = batchOf('a', 0, [bad(0), buy(1)]);
  const out = await applyAll([batch], f);

  assert.equal(f.deadLetters.calls.length, 3);
  assert.deepEqual(f.deadLetters.published, batch.poison);
  assert.deepEqual(out, [applied(batch, { applied: 1, skipped: 0, poison: 1 }, '2')]);
});

test('a store error that is not retryable stops the stream, and nothing is committed', async () => {
  const f = fakes();
  const bug = new SpendstreamError('internal', 'Redis error: ERR wallet apply: bad record');
  f.store.failNext('apply', 1, bug);
  const emitted: AppliedBatch<string>[] = [];
  await assert.rejects(
    lastValueFrom(
      from([batchOf('a', 0, [buy(0)]), batchOf('b', 0, [buy(1)])]).pipe(
        applyBatch<string>({ ...f, storeCall: patient }),
        tap((batch) => emitted.push(batch)),
      ),
    ),
    bug,
  );
  assert.equal(f.store.calls.length, 1, 'not retried, and the next batch is not applied');
  assert.deepEqual(emitted, []);
  assert.deepEqual(f.committer.calls, []);
});

test('a commit that fails does not fail the stream, and the next batch still goes', async () => {
  const f = fakes();
  f.committer.failNext(1, kafkaDown());
  const first = batchOf('a', 0, [buy(0, 'u1', 100)]);
  const second = batchOf('b', 0, [buy(1, 'u1', 200)]);
  const out = await applyAll([first, second], f);

  assert.deepEqual(out, [
    applied(first, { applied: 1, skipped: 0, poison: 0 }, '1'),
    applied(second, { applied: 1, skipped: 0, poison: 0 }, '2'),
  ]);
  assert.deepEqual(
    f.committer.calls.map((c) => c.offset),
    ['1', '2'],
    'the failed commit is not retried',
  );
  assert.deepEqual(f.committer.commits, [{ topic: TOPIC, partition: 0, offset: '2' }]);
  assert.deepEqual(f.store.totals, new Map([['u1', 300]]));
});

test('batches are applied strictly one at a time, in order, each committed before the next', async () => {
  const f = fakes();
  const log: string[] = [];
  let inFlight = 0;
  let mostInFlight = 0;
  const store: WalletStore = {
    ...f.store,
    apply: async (topic, records) => {
      inFlight += 1;
      mostInFlight = Math.max(mostInFlight, inFlight);
      log.push(`apply ${records.map((r) => `${r.partition}/${r.offset}`).join(' ')}`);
      await sleep(5);
      inFlight -= 1;
      return f.store.apply(topic, records);
    },
  };
  const committer: OffsetCommitter = {
    commit: async (topic, partition, offset) => {
      await sleep(5);
      await f.committer.commit(topic, partition, offset);
      log.push(`committed ${partition}@${offset}`);
    },
  };
  const batches = [
    batchOf('a', 0, [buy(0), buy(1)]),
    batchOf('b', 1, [buy(0, 'u2')]),
    batchOf('c', 0, [buy(2)]),
    batchOf('d', 1, [buy(1, 'u2')]),
  ];
  const out = await applyAll(batches, { ...f, store, committer });

  assert.equal(mostInFlight, 1);
  assert.deepEqual(log, [
    'apply 0/0 0/1',
    'committed 0@2',
    'apply 1/0',
    'committed 1@1',
    'apply 0/2',
    'committed 0@3',
    'apply 1/1',
    'committed 1@2',
  ]);
  assert.deepEqual(
    out.map((b) => b.ref),
    ['a', 'b', 'c', 'd'],
  );
});

test("a batch of nothing but poison moves every bucket's markers, then is committed", async () => {
  const f = fakes();
  const batch = batchOf('a', 4, [bad(0), bad(1)]);
  const out = await applyAll([batch], f);

  // Committed offsets never pass the markers, or every bucket would look short of them.
  assert.deepEqual(f.store.calls, [
    { method: 'apply', topic: TOPIC, records: [], options: spanned(4, '0', '2') },
  ]);
  for (const [, markers] of await f.store.readMarkers(TOPIC, [4])) {
    assert.equal(markers?.get(4), '2');
  }
  assert.deepEqual(f.deadLetters.published, batch.poison);
  assert.deepEqual(f.committer.commits, [{ topic: TOPIC, partition: 4, offset: '2' }]);
  assert.deepEqual(out, [applied(batch, { applied: 0, skipped: 0, poison: 2 }, '2')]);
});

test('a batch delivered again applies nothing and leaves the totals as they were', async () => {
  const f = fakes();
  const batch = batchOf('a', 0, [buy(0, 'u1', 100), buy(1, 'u2', 200), buy(2, 'u1', 300)]);
  const again = { ...batch, batch: { ...batch.batch, ref: 'again' } };
  const out = await applyAll([batch, again], f);

  assert.deepEqual(out, [
    applied(batch, { applied: 3, skipped: 0, poison: 0 }, '3'),
    applied(again, { applied: 0, skipped: 3, poison: 0 }, '3'),
  ]);
  assert.deepEqual(
    f.store.totals,
    new Map([
      ['u1', 400],
      ['u2', 200],
    ]),
  );
  assert.deepEqual(
    f.committer.commits.map((c) => c.offset),
    ['3', '3'],
  );
});

/** `decoded` as fetched: where the fetch began and ended, in which assignment. */
const fetched = (
  decoded: DecodedBatch<string>,
  fromOffset: string,
  nextOffset: string,
  assignment = 1,
): DecodedBatch<string> => ({
  ...decoded,
  batch: { ...decoded.batch, fromOffset, nextOffset, assignment },
});

test('within one assignment a batch continues where the last ended, past transaction markers', async () => {
  const f = fakes();
  // Offset 2 is a commit marker; 3 is a fetch of markers alone, which never reaches the
  // stage: the second batch begins at 4, yet continues from 3.
  const first = fetched(batchOf('a', 0, [buy(0), buy(1)]), '0', '3');
  const second = fetched(batchOf('b', 0, [buy(4)]), '4', '5');
  const out = await applyAll([first, second], f);

  assert.deepEqual(
    f.store.calls.map((call) => (call.method === 'apply' ? call.options : undefined)),
    [spanned(0, '0', '3'), spanned(0, '3', '5')],
  );
  assert.deepEqual(f.repairer.reports, [], 'nothing was short');
  // The committed offset is past the markers: where the next fetch begins.
  assert.deepEqual(
    out.map((b) => b.nextOffset),
    ['3', '5'],
  );
  assert.deepEqual(
    f.committer.commits.map((c) => c.offset),
    ['3', '5'],
  );
});

test('after a rebalance a batch continues from its own first offset, and a gap is repaired first', async () => {
  const f = fakes();
  const first = fetched(batchOf('a', 0, [buy(0, 'u1', 10)]), '0', '1', 1);
  // Another member had the partition meanwhile, and Redis lost what it applied (1 to 6).
  const later = fetched(batchOf('b', 0, [buy(7, 'u1', 5)]), '7', '8', 2);
  const log: string[] = [];
  const repairer: BucketRepairer = {
    repair: async (topic, partition, lost, to) => {
      log.push(`repair ${lost.length} buckets of ${partition} from ${lost[0]?.marker} to ${to}`);
      await f.repairer.repair(topic, partition, lost, to);
    },
  };
  const store: WalletStore = {
    ...f.store,
    apply: async (topic, records, options) => {
      const result = await f.store.apply(topic, records, options);
      const limited =
        options?.buckets === undefined ? 'every bucket' : `${options.buckets.length} buckets`;
      log.push(`apply ${records.length} to ${limited}: ${result.lost.length} short`);
      return result;
    },
  };
  const out = await applyAll([first, later], { ...f, store, repairer });

  assert.deepEqual(log, [
    'apply 1 to every bucket: 0 short',
    'apply 1 to every bucket: 64 short',
    // The batch waits for the repair, then goes to the buckets that were short.
    'repair 64 buckets of 0 from 1 to 7',
    'apply 1 to 64 buckets: 0 short',
  ]);
  assert.deepEqual(f.store.totals, new Map([['u1', 15]]));
  assert.deepEqual(out.at(-1), applied(later, { applied: 1, skipped: 0, poison: 0 }, '8'));
  assert.equal(f.committer.committed(TOPIC, 0), '8');
});

test('without a repairer, a bucket found short fails the stream and nothing is committed', async () => {
  const f = fakes();
  const gap = fetched(batchOf('a', 0, [buy(5)]), '5', '6');
  await assert.rejects(
    applyAll([gap], { store: f.store, deadLetters: f.deadLetters, committer: f.committer }),
    (error: unknown) => error instanceof SpendstreamError && error.code === 'internal',
  );
  assert.deepEqual(f.committer.calls, []);
  assert.equal(f.store.totals.size, 0);
});
