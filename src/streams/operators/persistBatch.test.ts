// Real time, not marbles: the stage awaits the store's promises, which settle on the
// microtask queue that TestScheduler.run does not advance. The settings are milliseconds,
// so each case still finishes in a few tens of ms; timeouts themselves are marble-tested
// in callStore.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { firstValueFrom, from, toArray } from 'rxjs';
import type { PurchaseStore } from '../../core/ports.ts';
import { SpendstreamError, StoreUnavailableError } from '../../core/errors.ts';
import type { Purchase } from '../../core/purchase.ts';
import { createMemoryPurchaseStore } from '../../testing/index.ts';
import type { BatchState, Submission } from '../types.ts';
import type { StoreCallConfig } from '../callStore.ts';
import { persistBatch } from './persistBatch.ts';

// Where a call must succeed: tiny delays but a generous timeout and deadline, so that a
// busy machine firing timers late does not turn the case into a give-up.
const fast: StoreCallConfig = {
  attemptTimeoutMs: 1_000,
  retry: { initialDelayMs: 1, maxDelayMs: 2, deadlineMs: 2_000 },
};

// Where the stage must give up: a short deadline keeps the case quick.
const short: StoreCallConfig = {
  attemptTimeoutMs: 20,
  retry: { initialDelayMs: 1, maxDelayMs: 2, deadlineMs: 30 },
};

const purchase = (id: string, amountCents = 100): Purchase => ({ id, userId: 'u1', amountCents });

const batchOf = (...ids: string[]): Submission<string>[] =>
  ids.map((id) => ({ ref: `ref-${id}`, purchase: purchase(id) }));

const persist = (
  store: PurchaseStore,
  batches: Submission<string>[][],
  config: StoreCallConfig = fast,
): Promise<BatchState<string>[]> =>
  firstValueFrom(from(batches).pipe(persistBatch<string>(store, config), toArray()));

const down = () => new StoreUnavailableError('postgres', 'connection refused');

test('saves each batch once, in order, and reports what the store made of it', async () => {
  const store = createMemoryPurchaseStore({ purchases: [purchase('old')] });
  const batches = [batchOf('a', 'b'), batchOf('old', 'c')];
  const states = await persist(store, batches);

  assert.deepEqual(
    store.calls,
    batches.map((batch) => ({ method: 'save', purchases: batch.map((s) => s.purchase) })),
  );
  assert.deepEqual(states, [
    {
      submissions: batches[0],
      saved: { outboxId: '1', inserted: new Set(['a', 'b']), existing: new Map() },
    },
    {
      submissions: batches[1],
      saved: {
        outboxId: '2',
        inserted: new Set(['c']),
        existing: new Map([['old', { ...purchase('old'), pendingPublish: false }]]),
      },
    },
  ]);
});

test('by default saves one batch at a time: the next waits for the previous answer', async () => {
  const store = createMemoryPurchaseStore();
  let inFlight = 0;
  let mostInFlight = 0;
  const slow: PurchaseStore = {
    ...store,
    save: async (purchases) => {
      inFlight += 1;
      mostInFlight = Math.max(mostInFlight, inFlight);
      await sleep(5);
      inFlight -= 1;
      return store.save(purchases);
    },
  };
  await persist(slow, [batchOf('a'), batchOf('b'), batchOf('c')]);
  assert.equal(mostInFlight, 1);
  assert.deepEqual([...store.rows.keys()], ['a', 'b', 'c']);
});

test('with concurrency, saves overlap up to the limit and batches still leave in order', async () => {
  const store = createMemoryPurchaseStore();
  let inFlight = 0;
  let mostInFlight = 0;
  // The first batch's save is the slowest, so later ones finish before it.
  const delays = new Map([
    ['a', 30],
    ['b', 5],
    ['c', 1],
    ['d', 1],
  ]);
  const slow: PurchaseStore = {
    ...store,
    save: async (purchases) => {
      inFlight += 1;
      mostInFlight = Math.max(mostInFlight, inFlight);
      await sleep(delays.get(purchases[0]?.id ?? '') ?? 1);
      inFlight -= 1;
      return store.save(purchases);
    },
  };
  const batches = [batchOf('a'), batchOf('b'), batchOf('c'), batchOf('d')];
  const states = await firstValueFrom(
    from(batches).pipe(persistBatch<string>(slow, { ...fast, concurrency: 2 }), toArray()),
  );

  assert.equal(mostInFlight, 2);
  assert.deepEqual(
    states.map((state) => state.submissions),
    batches,
  );
  assert.deepEqual([...store.rows.keys()].sort(), ['a', 'b', 'c', 'd']);
});

test('with concurrency, a failed batch keeps its place and the others are saved', async () => {
  const store = createMemoryPurchaseStore();
  store.failNext('save', 1, new SpendstreamError('internal', 'bug'));
  const states = await firstValueFrom(
    from([batchOf('a'), batchOf('b'), batchOf('c')]).pipe(
      persistBatch<string>(store, { ...fast, concurrency: 3 }),
      toArray(),
    ),
  );
  assert.deepEqual(
    states.map((state) => [state.submissions[0]?.purchase.id, state.failure?.code]),
    [
      ['a', 'internal'],
      ['b', undefined],
      ['c', undefined],
    ],
  );
});

test('a retryable failure is retried and the batch is saved', async () => {
  const store = createMemoryPurchaseStore();
  store.failNext('save', 2, down());
  const [state] = await persist(store, [batchOf('a', 'b')]);

  assert.equal(state?.failure, undefined);
  assert.deepEqual(state?.saved?.inserted, new Set(['a', 'b']));
  assert.equal(store.calls.length, 3);
  assert.deepEqual([...store.outbox.values()], [['a', 'b']]);
});

test('a store that stays down fails that batch as unavailable, and the next is saved', async () => {
  const store = createMemoryPurchaseStore();
  const downForA: PurchaseStore = {
    ...store,
    save: (purchases) =>
      purchases.some((p) => p.id === 'a') ? Promise.reject(down()) : store.save(purchases),
  };
  const [first, second] = await persist(downForA, [batchOf('a'), batchOf('b')], short);

  assert.deepEqual(first?.submissions, batchOf('a'));
  assert.equal(first?.saved, undefined);
  assert.equal(first?.failure?.code, 'unavailable');
  assert.match(first?.failure?.message ?? '', /retry it with the same id/);
  assert.equal(second?.failure, undefined);
  assert.deepEqual(second?.saved?.inserted, new Set(['b']));
});

test('a store that never answers fails the batch as unavailable by the deadline', async () => {
  const store = createMemoryPurchaseStore();
  store.hangNext('save', 1000);
  const started = performance.now();
  const [state] = await persist(store, [batchOf('a')], {
    attemptTimeoutMs: 5,
    retry: { initialDelayMs: 1, maxDelayMs: 1, deadlineMs: 200 },
  });
  assert.equal(state?.failure?.code, 'unavailable');
  assert.ok(store.calls.length > 1, 'each timed-out attempt was retried');
  assert.ok(performance.now() - started < 2_000, 'gave up near the deadline');
});

test('a non-retryable error fails the batch as internal without a retry', async () => {
  const store = createMemoryPurchaseStore();
  store.failNext('save', 1, new SpendstreamError('internal', 'numeric field overflow'));
  const [state, next] = await persist(store, [batchOf('a'), batchOf('b')]);

  assert.deepEqual(state?.failure, {
    status: 'error',
    code: 'internal',
    message: 'internal error',
  });
  assert.deepEqual(
    store.calls.map((call) => call.method === 'save' && call.purchases.map((p) => p.id)),
    [['a'], ['b']],
  );
  assert.equal(next?.failure, undefined);
});
