// Real time, not marbles: the stage awaits the publisher's and the store's promises,
// which settle on the microtask queue that TestScheduler.run does not advance. Settings
// are milliseconds; the timeout mechanics are marble-tested in callStore.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { firstValueFrom, from, Subject, toArray } from 'rxjs';
import type { PurchasePublisher, PurchaseStore } from '../../core/ports.ts';
import { SpendstreamError, StoreUnavailableError } from '../../core/errors.ts';
import { hasControlCharacters, MAX_AMOUNT_CENTS, type Purchase } from '../../core/purchase.ts';
import {
  encodePurchaseEvent,
  estimatedRecordBytes,
  PURCHASE_ID_HEADER,
} from '../../core/purchaseEvent.ts';
import {
  createMemoryPurchasePublisher,
  createMemoryPurchaseStore,
  type MemoryPurchaseStore,
} from '../../testing/index.ts';
import type { BatchState } from '../types.ts';
import type { StoreCallConfig } from '../callStore.ts';
import { failBatch } from '../failBatch.ts';
import { publishBatch } from './publishBatch.ts';

// Where a call must succeed: a generous deadline (the Kafka send's only attempt gets
// all of it), so that a busy machine firing timers late does not fail the case.
const fast: StoreCallConfig = {
  attemptTimeoutMs: 1_000,
  retry: { initialDelayMs: 1, maxDelayMs: 2, deadlineMs: 2_000 },
};

// Where the stage must give up or wait out a deadline: short, to keep the case quick.
const short: StoreCallConfig = {
  attemptTimeoutMs: 10,
  retry: { initialDelayMs: 1, maxDelayMs: 2, deadlineMs: 30 },
};

const purchase = (id: string, amountCents = 100): Purchase => ({ id, userId: 'u1', amountCents });

/** A batch as persistBatch leaves it: saved by `store`. */
const savedBatch = async (
  store: MemoryPurchaseStore,
  purchases: Purchase[],
): Promise<BatchState<string>> => {
  const submissions = purchases.map((p, i) => ({ ref: `ref-${i}`, purchase: p }));
  return { submissions, saved: await store.save(purchases) };
};

const publish = (
  publisher: PurchasePublisher,
  store: PurchaseStore,
  batches: BatchState<string>[],
  config: StoreCallConfig = fast,
): Promise<BatchState<string>[]> =>
  firstValueFrom(from(batches).pipe(publishBatch<string>(publisher, store, config), toArray()));

const kafkaDown = () => new StoreUnavailableError('kafka', 'broker not available');

test('publishes only what the batch inserted, each purchase once, in arrival order', async () => {
  const store = createMemoryPurchaseStore({ purchases: [purchase('old')] });
  const publisher = createMemoryPurchasePublisher();
  const batch = await savedBatch(store, [
    purchase('b'),
    purchase('old'),
    purchase('a'),
    purchase('b'),
  ]);
  const [state] = await publish(publisher, store, [batch]);

  assert.deepEqual(publisher.calls, [[purchase('b'), purchase('a')]], 'one send for the batch');
  assert.deepEqual(publisher.published, [purchase('b'), purchase('a')]);
  assert.deepEqual(state, { ...batch, published: true });
});

test('batches are published one at a time, in order', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  let inFlight = 0;
  let mostInFlight = 0;
  const slow: PurchasePublisher = {
    publish: async (purchases) => {
      inFlight += 1;
      mostInFlight = Math.max(mostInFlight, inFlight);
      await sleep(5);
      inFlight -= 1;
      return publisher.publish(purchases);
    },
  };
  const batches = [
    await savedBatch(store, [purchase('a')]),
    await savedBatch(store, [purchase('b'), purchase('c')]),
    await savedBatch(store, [purchase('d')]),
  ];
  await publish(slow, store, batches);
  assert.equal(mostInFlight, 1);
  assert.deepEqual(
    publisher.published.map((p) => p.id),
    ['a', 'b', 'c', 'd'],
  );
});

test('batches saved while a send runs go together in the next send, in order', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  const sends: string[][] = [];
  const slow: PurchasePublisher = {
    publish: async (purchases) => {
      sends.push(purchases.map((p) => p.id));
      await sleep(10);
      return publisher.publish(purchases);
    },
  };
  const batches = [
    await savedBatch(store, [purchase('a')]),
    await savedBatch(store, [purchase('b'), purchase('c')]),
    await savedBatch(store, [purchase('d')]),
  ];
  const states = await publish(slow, store, batches);

  // The first batch went alone; the two that arrived meanwhile shared one send.
  assert.deepEqual(sends, [['a'], ['b', 'c', 'd']]);
  assert.deepEqual(
    states.map((state) => state.published),
    [true, true, true],
  );
  assert.deepEqual(
    store.calls.filter((call) => call.method === 'markPublished'),
    [
      { method: 'markPublished', outboxIds: ['1'] },
      { method: 'markPublished', outboxIds: ['2', '3'] },
    ],
  );
  assert.equal(store.outbox.size, 0);
});

test('waiting batches coalesce up to maxSendBytes; a bigger batch goes in one call', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  const sends: string[][] = [];
  const slow: PurchasePublisher = {
    publish: async (purchases) => {
      sends.push(purchases.map((p) => p.id));
      await sleep(10);
      return publisher.publish(purchases);
    },
  };
  const batches = [
    await savedBatch(store, [purchase('a')]),
    await savedBatch(store, [purchase('b'), purchase('c')]),
    await savedBatch(store, [purchase('d')]),
    await savedBatch(store, [purchase('e'), purchase('f'), purchase('g'), purchase('h')]),
    await savedBatch(store, [purchase('i')]),
  ];
  await firstValueFrom(
    from(batches).pipe(
      publishBatch<string>(slow, store, {
        ...fast,
        // Room for three of these purchases, not four.
        maxSendBytes: 3 * estimatedRecordBytes(purchase('a')),
      }),
      toArray(),
    ),
  );
  // One call per batch at least, so each outbox entry is published whole or not at all.
  assert.deepEqual(sends, [['a'], ['b', 'c', 'd'], ['e', 'f', 'g', 'h'], ['i']]);
});

test('a failed coalesced send fails every batch it carried and marks none', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  let calls = 0;
  const flaky: PurchasePublisher = {
    publish: async (purchases) => {
      calls += 1;
      await sleep(10);
      if (calls === 2) throw kafkaDown();
      return publisher.publish(purchases);
    },
  };
  const batches = [
    await savedBatch(store, [purchase('a')]),
    await savedBatch(store, [purchase('b')]),
    await savedBatch(store, [purchase('c')]),
  ];
  const states = await publish(flaky, store, batches);

  assert.deepEqual(
    states.map((state) => state.failure?.code ?? 'published'),
    ['published', 'unavailable', 'unavailable'],
  );
  assert.deepEqual(
    publisher.published.map((p) => p.id),
    ['a'],
  );
  assert.deepEqual([...store.outbox.keys()], ['2', '3'], 'left for outbox recovery');
});

test('a publisher and a store that answer synchronously, even by throwing, still work', async () => {
  const store = createMemoryPurchaseStore();
  const published: string[] = [];
  let calls = 0;
  const immediate: PurchasePublisher = {
    // Not async: returns (or throws) before the stage's subscribe returns.
    publish: (purchases) => {
      calls += 1;
      if (calls === 1) throw kafkaDown();
      for (const p of purchases) published.push(p.id);
      return Promise.resolve();
    },
  };
  const throwingClear: PurchaseStore = {
    ...store,
    markPublished: () => {
      throw new StoreUnavailableError('postgres', 'down');
    },
  };
  const batches = [
    await savedBatch(store, [purchase('a')]),
    await savedBatch(store, [purchase('b')]),
    await savedBatch(store, [purchase('c')]),
  ];
  const states = await publish(immediate, throwingClear, batches, short);
  assert.deepEqual(
    states.map((state) => state.failure?.code ?? 'published'),
    ['unavailable', 'published', 'published'],
  );
  // b and c arrived while a's send was settling: they went together.
  assert.deepEqual(published, ['b', 'c']);
});

test('one outbox clear at a time: entries published meanwhile go in the next one', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  let clearing = 0;
  let mostClearing = 0;
  const slowClear: PurchaseStore = {
    ...store,
    markPublished: async (ids) => {
      clearing += 1;
      mostClearing = Math.max(mostClearing, clearing);
      await sleep(30);
      await store.markPublished(ids);
      clearing -= 1;
    },
  };
  const fastSend: PurchasePublisher = {
    publish: async (purchases) => {
      await sleep(5);
      return publisher.publish(purchases);
    },
  };
  const batches = await Promise.all(
    ['a', 'b', 'c', 'd'].map(async (id) => savedBatch(store, [purchase(id)])),
  );
  await publish(fastSend, slowClear, batches);
  assert.equal(mostClearing, 1);
  const clears = store.calls.filter((call) => call.method === 'markPublished');
  assert.deepEqual(clears[0], { method: 'markPublished', outboxIds: ['1'] });
  assert.ok(clears.length < 4, 'entries published during a clear were cleared together');
  assert.equal(store.outbox.size, 0);
});

test('completion waits for the outbox clear of the last send', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  let cleared = false;
  const slowClear: PurchaseStore = {
    ...store,
    markPublished: async (ids) => {
      await sleep(20);
      await store.markPublished(ids);
      cleared = true;
    },
  };
  await firstValueFrom(
    from([await savedBatch(store, [purchase('a')])]).pipe(
      publishBatch<string>(publisher, slowClear, fast),
      toArray(),
    ),
  );
  assert.equal(cleared, true);
  assert.equal(store.outbox.size, 0);
});

test("marks the batch's outbox entry published, only after Kafka acknowledged it", async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  const batch = await savedBatch(store, [purchase('a')]);
  const outboxAtPublish: string[][] = [];
  const watching: PurchasePublisher = {
    publish: (purchases) => {
      outboxAtPublish.push([...store.outbox.keys()]);
      return publisher.publish(purchases);
    },
  };
  await publish(watching, store, [batch]);

  assert.deepEqual(outboxAtPublish, [['1']], 'the entry was still there when publishing');
  assert.deepEqual(
    store.calls.filter((call) => call.method === 'markPublished'),
    [{ method: 'markPublished', outboxIds: ['1'] }],
  );
  assert.equal(store.outbox.size, 0);
});

test('a failed batch passes through untouched: nothing is published or marked', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  const neverSaved = failBatch<string>(
    { submissions: [{ ref: 'r', purchase: purchase('a') }] },
    new StoreUnavailableError('postgres', 'down'),
  );
  // Failed after its save (say by an earlier stage of a user's pipeline): its outbox
  // entry exists, yet it must not be published.
  const failedAfterSave = failBatch(
    await savedBatch(store, [purchase('b')]),
    new StoreUnavailableError('kafka', 'down'),
  );
  const states = await publish(publisher, store, [neverSaved, failedAfterSave]);

  assert.equal(states[0], neverSaved);
  assert.equal(states[1], failedAfterSave);
  assert.deepEqual(publisher.calls, []);
  assert.equal(
    store.calls.some((call) => call.method === 'markPublished'),
    false,
  );
});

test('a batch with nothing new passes through without a publish', async () => {
  const store = createMemoryPurchaseStore({ purchases: [purchase('a'), purchase('b')] });
  const publisher = createMemoryPurchasePublisher();
  const resent = await savedBatch(store, [purchase('a'), purchase('b')]);
  assert.equal(resent.saved?.outboxId, null);
  const [state] = await publish(publisher, store, [resent]);

  assert.equal(state, resent);
  assert.deepEqual(publisher.calls, []);
  assert.equal(
    store.calls.some((call) => call.method === 'markPublished'),
    false,
  );
});

test('a failed send is not repeated: the batch fails as unavailable, its outbox entry kept', async () => {
  // The idempotent producer retries inside one send; a second send could duplicate
  // records, so the stage leaves a failed batch to outbox recovery.
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  publisher.failNext(1, kafkaDown());
  const [state] = await publish(publisher, store, [await savedBatch(store, [purchase('a')])]);

  assert.equal(state?.failure?.code, 'unavailable');
  assert.notEqual(state?.published, true);
  assert.equal(publisher.calls.length, 1);
  assert.deepEqual(publisher.published, []);
  assert.deepEqual([...store.outbox.entries()], [['1', ['a']]], 'left for outbox recovery');
  assert.equal(
    store.calls.some((call) => call.method === 'markPublished'),
    false,
  );
});

test('Kafka silent past the deadline fails the batch as unavailable; the entry is not marked', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  publisher.hangNext(1);
  const started = performance.now();
  const [state] = await publish(
    publisher,
    store,
    [await savedBatch(store, [purchase('a')])],
    short,
  );

  assert.equal(state?.failure?.code, 'unavailable');
  assert.ok(performance.now() - started >= short.retry.deadlineMs - 2, 'waited for the deadline');
  assert.deepEqual(publisher.published, []);
  assert.deepEqual([...store.outbox.keys()], ['1']);
  assert.equal(
    store.calls.some((call) => call.method === 'markPublished'),
    false,
  );
});

test('the one send may take the whole deadline, not just one attempt timeout', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  const slow: PurchasePublisher = {
    publish: async (purchases) => {
      await sleep(20);
      return publisher.publish(purchases);
    },
  };
  const [state] = await publish(slow, store, [await savedBatch(store, [purchase('a')])], {
    attemptTimeoutMs: 5,
    retry: { initialDelayMs: 1, maxDelayMs: 1, deadlineMs: 200 },
  });
  assert.equal(state?.failure, undefined);
  assert.equal(state?.published, true);
  assert.deepEqual(publisher.published, [purchase('a')]);
});

test('a send whose acknowledgement is lost is not sent again: no duplicate in Kafka', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  publisher.hangNext(1, { applied: true });
  const [state] = await publish(
    publisher,
    store,
    [await savedBatch(store, [purchase('a')])],
    short,
  );

  assert.equal(state?.failure?.code, 'unavailable', 'not acknowledged: the send is unconfirmed');
  assert.deepEqual(publisher.published, [purchase('a')]);
  assert.equal(store.outbox.size, 1, 'recovery checks the topic before republishing');
});

test('after a failed batch the next one is still published', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  const first = await savedBatch(store, [purchase('a')]);
  const second = await savedBatch(store, [purchase('b')]);
  const failingForA: PurchasePublisher = {
    publish: (purchases) =>
      purchases.some((p) => p.id === 'a')
        ? Promise.reject(kafkaDown())
        : publisher.publish(purchases),
  };
  const [one, two] = await publish(failingForA, store, [first, second]);

  assert.equal(one?.failure?.code, 'unavailable');
  assert.equal(two?.published, true);
  assert.deepEqual(publisher.published, [purchase('b')]);
});

test('a non-retryable publish error fails the batch as internal, without a retry', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  publisher.failNext(1, new SpendstreamError('internal', 'topic does not exist'));
  const [state] = await publish(publisher, store, [await savedBatch(store, [purchase('a')])]);

  assert.equal(state?.failure?.code, 'internal');
  assert.equal(publisher.calls.length, 1);
  assert.equal(store.outbox.size, 1);
});

test('a failed outbox clear does not fail a published batch; the entry stays for recovery', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  store.setFailure('markPublished', new StoreUnavailableError('postgres', 'down'));
  const [state] = await publish(
    publisher,
    store,
    [await savedBatch(store, [purchase('a')])],
    short,
  );

  assert.equal(state?.failure, undefined);
  assert.equal(state?.published, true);
  assert.equal(store.outbox.size, 1);
});

test('a resend racing the clear of its published outbox entry is settled as published', async () => {
  const store = createMemoryPurchaseStore();
  const publisher = createMemoryPurchasePublisher();
  // The clear of the first entry does not finish: the entry stays, as in the moment
  // between an ack and its clear.
  store.hangNext('markPublished', 1);
  const source = new Subject<BatchState<string>>();
  const out: BatchState<string>[] = [];
  const subscription = source
    .pipe(publishBatch<string>(publisher, store, fast))
    .subscribe((batch) => out.push(batch));
  try {
    source.next(await savedBatch(store, [purchase('acked')]));
    while (out.length < 1) await sleep(1);
    assert.equal(out[0]?.published, true);

    // Stored before, published by another instance or not at all: still pending.
    const foreign = { ...purchase('elsewhere'), pendingPublish: true, pendingOutboxId: '99' };
    const resend = await savedBatch(store, [purchase('acked')]);
    assert.equal(resend.saved?.existing.get('acked')?.pendingPublish, true, 'entry not cleared');
    source.next({
      ...resend,
      saved: {
        outboxId: null,
        inserted: new Set(),
        existing: new Map([...(resend.saved?.existing ?? []), ['elsewhere', foreign]]),
      },
    });
    while (out.length < 2) await sleep(1);
    assert.deepEqual(out[1]?.saved?.existing.get('acked'), {
      ...purchase('acked'),
      pendingPublish: false,
    });
    assert.deepEqual(out[1]?.saved?.existing.get('elsewhere'), foreign);
  } finally {
    subscription.unsubscribe();
  }
});

// Kafka's per-record framing in a v2 batch: attributes, timestamp and offset deltas, the
// key, value and header lengths as varints (at most 5 bytes each), the header count.
const RECORD_FRAMING_BYTES = 1 + 10 + 5 + 5 + 5 + 1 + 5 + 5 + 5;

test('the size estimate is at least the record Kafka gets, in UTF-8, for any ids', () => {
  const text = (maxLength: number) =>
    fc
      .string({ unit: 'grapheme', minLength: 1, maxLength })
      .filter((value) => value.isWellFormed() && !hasControlCharacters(value));
  fc.assert(
    fc.property(
      text(128),
      text(200),
      fc.integer({ min: 1, max: MAX_AMOUNT_CENTS }),
      (userId, id, amountCents) => {
        const purchase = { id, userId, amountCents };
        const value = encodePurchaseEvent({ ...purchase, createdAt: new Date() });
        const onTheWire =
          Buffer.byteLength(userId) +
          Buffer.byteLength(value) +
          Buffer.byteLength(PURCHASE_ID_HEADER) +
          Buffer.byteLength(id) +
          RECORD_FRAMING_BYTES;
        assert.ok(
          estimatedRecordBytes(purchase) >= onTheWire,
          `${estimatedRecordBytes(purchase)} < ${onTheWire} for ${JSON.stringify(purchase)}`,
        );
      },
    ),
    { numRuns: 2_000 },
  );
});

test('a user id of 128 four-byte characters is estimated in bytes, not UTF-16 units', () => {
  const purchase = { id: 'p-1', userId: '\u{1d11e}'.repeat(128), amountCents: 4999 };
  // The key and the value's user_id alone are 2 × 512 bytes.
  assert.ok(estimatedRecordBytes(purchase) >= 2 * 512);
});
