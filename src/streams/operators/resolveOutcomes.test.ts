// resolveOutcomes is a synchronous map with no time in it: each case pushes one batch
// through the operator and reads the replies; one marble test checks batches stay apart.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { of } from 'rxjs';
import type { SaveResult, StoredPurchase } from '../../core/ports.ts';
import { StoreUnavailableError } from '../../core/errors.ts';
import type { Purchase } from '../../core/purchase.ts';
import { createMarbleScheduler } from '../../testing/index.ts';
import type { BatchState, Outcome } from '../types.ts';
import { failBatch } from '../failBatch.ts';
import { resolveOutcomes } from './resolveOutcomes.ts';

const purchase = (id: string, userId = 'u1', amountCents = 100): Purchase => ({
  id,
  userId,
  amountCents,
});

const stored = (p: Purchase, pendingPublish: boolean): StoredPurchase => ({ ...p, pendingPublish });

const saved = (inserted: string[], existing: StoredPurchase[] = []): SaveResult => ({
  outboxId: inserted.length > 0 ? '1' : null,
  inserted: new Set(inserted),
  existing: new Map(existing.map((s) => [s.id, s])),
});

const batch = (purchases: Purchase[], rest: Omit<BatchState<number>, 'submissions'>) => ({
  submissions: purchases.map((p, ref) => ({ ref, purchase: p })),
  ...rest,
});

const resolve = (state: BatchState<number>): Outcome<number>[] => {
  let outcomes: Outcome<number>[] | undefined;
  of(state)
    .pipe(resolveOutcomes<number>())
    .subscribe((value) => (outcomes = value));
  assert.ok(outcomes !== undefined);
  return outcomes;
};

const ack = (id: string, duplicate = false) => ({ status: 'ack', id, duplicate }) as const;

test('purchases the batch inserted and published are acknowledged, in submission order', () => {
  const outcomes = resolve(
    batch([purchase('b'), purchase('a')], { saved: saved(['b', 'a']), published: true }),
  );
  assert.deepEqual(outcomes, [
    { ref: 0, result: ack('b') },
    { ref: 1, result: ack('a') },
  ]);
});

test('a resend of a published purchase is acknowledged as a duplicate', () => {
  const old = purchase('old');
  const outcomes = resolve(
    batch([old, purchase('new')], {
      saved: saved(['new'], [stored(old, false)]),
      published: true,
    }),
  );
  assert.deepEqual(outcomes, [
    { ref: 0, result: ack('old', true) },
    { ref: 1, result: ack('new') },
  ]);
});

test('a stored id sent with another user or amount is an id_conflict', () => {
  for (const resent of [purchase('x', 'u2', 100), purchase('x', 'u1', 101)]) {
    const [outcome] = resolve(
      batch([resent], { saved: saved([], [stored(purchase('x'), false)]) }),
    );
    assert.equal(outcome?.result.status, 'error');
    assert.deepEqual(outcome?.result, {
      status: 'error',
      code: 'id_conflict',
      id: 'x',
      message: 'this id is already used by a different purchase',
    });
  }
});

test('a resend of a purchase stored but not yet published is refused as unavailable', () => {
  const pending = purchase('p');
  const [outcome] = resolve(batch([pending], { saved: saved([], [stored(pending, true)]) }));
  assert.equal(outcome?.result.status, 'error');
  assert.equal(outcome?.result.status === 'error' && outcome.result.code, 'unavailable');
  assert.equal(outcome?.result.id, 'p');
});

test('a failed batch refuses every submission with its error and the purchase id', () => {
  const failed = failBatch(
    batch([purchase('a'), purchase('b'), purchase('a')], {}),
    new StoreUnavailableError('postgres', 'down'),
  );
  const outcomes = resolve(failed);
  assert.deepEqual(
    outcomes,
    ['a', 'b', 'a'].map((id, ref) => ({ ref, result: { ...failed.failure, id } })),
  );
  assert.ok(
    outcomes.every(({ result }) => result.status === 'error' && result.code === 'unavailable'),
  );
});

test('a failure wins over what the store said: nothing of a failed batch is acknowledged', () => {
  const state = failBatch(
    batch([purchase('a'), purchase('old')], {
      saved: saved(['a'], [stored(purchase('old'), false)]),
    }),
    new StoreUnavailableError('kafka', 'down'),
  );
  assert.ok(resolve(state).every(({ result }) => result.status === 'error'));
});

test('the same purchase twice in a batch: the first is acked, the second as a duplicate', () => {
  const outcomes = resolve(
    batch([purchase('a'), purchase('a')], { saved: saved(['a']), published: true }),
  );
  assert.deepEqual(outcomes, [
    { ref: 0, result: ack('a') },
    { ref: 1, result: ack('a', true) },
  ]);
});

test('the same id twice in a batch with different contents: the second is an id_conflict', () => {
  const outcomes = resolve(
    batch([purchase('a', 'u1', 100), purchase('a', 'u1', 999)], {
      saved: saved(['a']),
      published: true,
    }),
  );
  assert.deepEqual(outcomes[0], { ref: 0, result: ack('a') });
  assert.equal(outcomes[1]?.result.status === 'error' && outcomes[1].result.code, 'id_conflict');
});

// The PostgreSQL store (src/adapters/purchaseStore.ts) also lists the later occurrences
// of an id it just inserted in `existing`, as that first occurrence with pendingPublish:
// true. Map keys cannot tell occurrences apart, so `inserted` must be consulted first,
// or the purchase this batch inserted and published would be refused as `unavailable`.
test('an id this batch inserted is acked even when the store also lists it in existing', () => {
  const a = purchase('a');
  const outcomes = resolve(
    batch([a, a], { saved: saved(['a'], [stored(a, true)]), published: true }),
  );
  assert.deepEqual(outcomes, [
    { ref: 0, result: ack('a') },
    { ref: 1, result: ack('a', true) },
  ]);
});

test('a purchase the store reported neither inserted nor stored is not acknowledged', () => {
  const [outcome] = resolve(batch([purchase('lost')], { saved: saved([]) }));
  assert.equal(outcome?.result.status, 'error');
  assert.equal(outcome?.result.id, 'lost');
});

test('each batch becomes one array of replies, emitted when the batch arrives', () => {
  createMarbleScheduler().run(({ cold, expectObservable }) => {
    const x = batch([purchase('a')], { saved: saved(['a']), published: true });
    const y = batch([purchase('b'), purchase('c')], { saved: saved(['b', 'c']), published: true });
    expectObservable(cold('-x--y|', { x, y }).pipe(resolveOutcomes<number>())).toBe('-X--Y|', {
      X: [{ ref: 0, result: ack('a') }],
      Y: [
        { ref: 0, result: ack('b') },
        { ref: 1, result: ack('c') },
      ],
    });
  });
});
