// End to end through every stage with the memory fakes, in real time: the stages await
// the fakes' promises, which settle on the microtask queue that TestScheduler.run does
// not advance. Batching waits a few milliseconds; store deadlines are generous except in
// the cases about giving up.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { firstValueFrom, from, lastValueFrom, Subject, tap, toArray } from 'rxjs';
import type { PurchasePublisher, PurchaseStore } from '../core/ports.ts';
import { StoreUnavailableError } from '../core/errors.ts';
import type { Purchase } from '../core/purchase.ts';
import { createMemoryPurchasePublisher, createMemoryPurchaseStore } from '../testing/index.ts';
import { ingestPipeline, type IngestDeps } from './ingestPipeline.ts';
import type { Outcome, PurchaseResult, Submission } from './types.ts';

const purchase = (id: string, userId = 'u1', amountCents = 100): Purchase => ({
  id,
  userId,
  amountCents,
});

// Generous bounds by default, so that a busy machine firing timers late does not turn a
// case into a give-up; cases about giving up pass a short deadline.
const patient: IngestDeps['storeCall'] = {
  attemptTimeoutMs: 1_000,
  retry: { initialDelayMs: 1, maxDelayMs: 2, deadlineMs: 2_000 },
};

const deps = (
  store: PurchaseStore,
  publisher: PurchasePublisher,
  batch: IngestDeps['batch'] = { maxSize: 3, maxWaitMs: 5 },
  storeCall: IngestDeps['storeCall'] = patient,
): IngestDeps => ({ store, publisher, batch, storeCall });

const submit = (purchases: Purchase[]): Submission<number>[] =>
  purchases.map((p, ref) => ({ ref, purchase: p }));

/** Runs the pipeline over `purchases` to completion; the replies, flattened. */
const runAll = async (purchases: Purchase[], ingest: IngestDeps): Promise<Outcome<number>[]> =>
  (await lastValueFrom(ingestPipeline(from(submit(purchases)), ingest).pipe(toArray()))).flat();

const ack = (id: string, duplicate = false): PurchaseResult => ({ status: 'ack', id, duplicate });

const codeOf = ({ result }: Outcome<unknown>) =>
  result.status === 'ack' ? 'ack' : `error:${result.code}`;

const kafkaDown = () => new StoreUnavailableError('kafka', 'broker not available');

test('every submission gets exactly one reply; acks come in submission order', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
  const outcomes = await runAll(
    ids.map((id) => purchase(id)),
    deps(store, publisher),
  );

  assert.deepEqual(
    outcomes,
    ids.map((id, ref) => ({ ref, result: ack(id) })),
  );
  assert.deepEqual(
    publisher.published.map((p) => p.id),
    ids,
  );
  assert.deepEqual([...store.rows.keys()], ids);
  assert.equal(store.outbox.size, 0, 'every outbox entry was cleared');
});

test('a purchase is acknowledged only once the publisher has it', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  // The publisher takes a while to acknowledge, and records only when it does.
  const slow: PurchasePublisher = {
    publish: async (purchases) => {
      await sleep(5);
      return publisher.publish(purchases);
    },
  };
  const ackedTooEarly: string[] = [];
  const source = from(submit(['a', 'b', 'c', 'd'].map((id) => purchase(id))));
  await lastValueFrom(
    ingestPipeline(source, deps(store, slow)).pipe(
      tap((outcomes) => {
        for (const { result } of outcomes) {
          if (result.status === 'ack' && !publisher.published.some((p) => p.id === result.id)) {
            ackedTooEarly.push(result.id);
          }
        }
      }),
      toArray(),
    ),
  );
  assert.deepEqual(ackedTooEarly, []);
  assert.equal(publisher.published.length, 4);
});

test('replies keep submission order across mixed results and batches', async () => {
  const store = createMemoryPurchaseStore({ purchases: [purchase('old')] });
  const publisher = createMemoryPurchasePublisher();
  const outcomes = await runAll(
    [
      purchase('a'),
      purchase('old'),
      purchase('old', 'u2'),
      purchase('b'),
      purchase('c'),
      purchase('c'),
      purchase('d', 'u3'),
    ],
    deps(store, publisher, { maxSize: 2, maxWaitMs: 5 }),
  );

  assert.deepEqual(
    outcomes.map((o) => o.ref),
    [0, 1, 2, 3, 4, 5, 6],
  );
  assert.deepEqual(outcomes, [
    { ref: 0, result: ack('a') },
    { ref: 1, result: ack('old', true) }, // a resend of a published purchase
    {
      ref: 2,
      result: {
        status: 'error',
        code: 'id_conflict',
        id: 'old',
        message: 'this id is already used by a different purchase',
      },
    },
    { ref: 3, result: ack('b') },
    { ref: 4, result: ack('c') },
    { ref: 5, result: ack('c', true) }, // the same purchase twice in one batch
    { ref: 6, result: ack('d') },
  ]);
  assert.deepEqual(
    publisher.published.map((p) => p.id),
    ['a', 'b', 'c', 'd'],
  );
});

test('a resend while the first copy is still being published is refused, not acked', async () => {
  // Persisting batch 2 overlaps publishing batch 1, so the resend finds `a` stored and
  // pending: it is answered `unavailable` (retry later) rather than acked before Kafka
  // has it. The first copy is acked once published; the refusal, needing no send, may
  // be answered first (connections put replies back in order).
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  const slow: PurchasePublisher = {
    publish: async (purchases) => {
      await sleep(10);
      return publisher.publish(purchases);
    },
  };
  const outcomes = await runAll(
    [purchase('a'), purchase('a')],
    deps(store, slow, { maxSize: 1, maxWaitMs: 5 }),
  );
  const byRef = [...outcomes].sort((x, y) => x.ref - y.ref);
  assert.deepEqual(byRef.map(codeOf), ['ack', 'error:unavailable']);
  assert.deepEqual(publisher.published, [purchase('a')]);
});

test('completing the source flushes the open batch and answers it before completing', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  const submissions = new Subject<Submission<number>>();
  // Neither cut would come for a minute: only the drain can answer these.
  const done = lastValueFrom(
    ingestPipeline(submissions, deps(store, publisher, { maxSize: 100, maxWaitMs: 60_000 })).pipe(
      toArray(),
    ),
  );
  const started = performance.now();
  for (const submission of submit([purchase('a'), purchase('b')])) submissions.next(submission);
  submissions.complete();

  assert.deepEqual((await done).flat(), [
    { ref: 0, result: ack('a') },
    { ref: 1, result: ack('b') },
  ]);
  assert.ok(performance.now() - started < 1_000, 'answered at once, not at the time cut');
});

test('PostgreSQL down: the batch is refused as unavailable, and the pipeline lives on', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  const submissions = new Subject<Submission<number>>();
  const replies = new Subject<Outcome<number>[]>();
  const giveUpSoon = { ...patient, retry: { ...patient.retry, deadlineMs: 30 } };
  const subscription = ingestPipeline(
    submissions,
    deps(store, publisher, undefined, giveUpSoon),
  ).subscribe(replies);

  store.setFailure('save', new StoreUnavailableError('postgres', 'connection refused'));
  const refused = firstValueFrom(replies);
  submissions.next({ ref: 0, purchase: purchase('a') });
  assert.deepEqual((await refused).map(codeOf), ['error:unavailable']);
  assert.deepEqual(publisher.calls, []);

  store.setFailure('save', undefined);
  const retried = firstValueFrom(replies);
  submissions.next({ ref: 1, purchase: purchase('a') });
  assert.deepEqual(await retried, [{ ref: 1, result: ack('a') }]);
  subscription.unsubscribe();
});

test('Kafka down: stored purchases are refused until published, then acked as duplicates', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  publisher.setFailure(kafkaDown());
  const first = await runAll([purchase('a')], deps(store, publisher));
  assert.deepEqual(first.map(codeOf), ['error:unavailable']);
  assert.deepEqual([...store.rows.keys()], ['a'], 'stored');
  assert.deepEqual([...store.outbox.values()], [['a']], 'left for outbox recovery');

  // Kafka is back, but the purchase is still pending in the outbox: a resend must not
  // be acknowledged before the purchase is really in the topic.
  publisher.setFailure(undefined);
  const resent = await runAll([purchase('a')], deps(store, publisher));
  assert.deepEqual(resent.map(codeOf), ['error:unavailable']);
  assert.deepEqual(publisher.published, [], 'the pipeline leaves it to outbox recovery');

  // Outbox recovery publishes it and clears the entry; now the resend is a duplicate ack.
  await publisher.publish([purchase('a')]);
  await store.markPublished(['1']);
  const afterRecovery = await runAll([purchase('a')], deps(store, publisher));
  assert.deepEqual(afterRecovery, [{ ref: 0, result: ack('a', true) }]);
});

test('a save whose reply is lost is retried, and its purchases are refused as unavailable', async () => {
  // The first attempt commits but never answers; the retry finds every id stored and
  // pending in that attempt's outbox entry, so nothing is new: the batch is not published
  // by the pipeline and the client is asked to retry. Outbox recovery publishes it later.
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  store.hangNext('save', 1, { applied: true });
  const outcomes = await runAll(
    [purchase('a'), purchase('b')],
    deps(store, publisher, undefined, { ...patient, attemptTimeoutMs: 20 }),
  );

  assert.deepEqual(outcomes.map(codeOf), ['error:unavailable', 'error:unavailable']);
  assert.equal(store.calls.filter((call) => call.method === 'save').length, 2);
  assert.deepEqual([...store.outbox.values()], [['a', 'b']]);
  assert.deepEqual(publisher.published, []);
});
