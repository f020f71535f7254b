import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSpendstreamError } from '../core/errors.ts';
import type { Purchase } from '../core/purchase.ts';
import { createMemoryPurchaseStore } from '../testing/memoryPurchaseStore.ts';
import { guardOwnedSends, type GenerationalPublisher } from './ownedSends.ts';

/** A publisher whose producer generation the test moves on, recording what it sent. */
const generational = () => {
  const sent: { readonly ids: string[]; readonly generation: number }[] = [];
  const publisher: GenerationalPublisher & { generation: number } = {
    generation: 1,
    ready: (): Promise<number> => Promise.resolve(publisher.generation),
    publishWith: (purchases: readonly Purchase[], generation: number) => {
      sent.push({ ids: purchases.map((p) => p.id), generation });
      return Promise.resolve();
    },
  };
  return { publisher, sent };
};

const purchases = (prefix: string): Purchase[] =>
  Array.from({ length: 3 }, (_, i) => ({ id: `${prefix}-${i}`, userId: 'u', amountCents: 1 }));

test('a batch saved under the ready generation goes out without asking', async () => {
  const { publisher, sent } = generational();
  const asked: string[][] = [];
  const guard = guardOwnedSends(publisher, (ids) => {
    asked.push([...ids]);
    return Promise.resolve(new Set(ids));
  });
  const store = guard.store(createMemoryPurchaseStore());
  const batch = purchases('fresh');
  await store.save(batch);
  await guard.publisher.publish(batch);
  assert.deepEqual(sent, [{ ids: ['fresh-0', 'fresh-1', 'fresh-2'], generation: 1 }]);
  assert.deepEqual(asked, []);
});

test('a batch saved before the producer was replaced goes out only if still owned', async () => {
  const { publisher, sent } = generational();
  const owned = new Set(['kept-0', 'kept-1', 'kept-2']);
  const guard = guardOwnedSends(publisher, (ids) =>
    Promise.resolve(new Set(ids.filter((id) => owned.has(id)))),
  );
  const store = guard.store(createMemoryPurchaseStore());
  const kept = purchases('kept');
  const taken = purchases('taken');
  await store.save(kept);
  await store.save(taken);
  // A failed send replaced the producer: the new one is not fenced by earlier takeovers.
  publisher.generation = 2;

  await guard.publisher.publish(kept);
  await assert.rejects(
    guard.publisher.publish(taken),
    (error: unknown) => isSpendstreamError(error) && error.code === 'unavailable',
  );
  assert.deepEqual(sent, [{ ids: ['kept-0', 'kept-1', 'kept-2'], generation: 2 }]);
});

test('a purchase the store did not insert (stored before) is not held to a generation', async () => {
  const { publisher, sent } = generational();
  const guard = guardOwnedSends(publisher, () => Promise.resolve(new Set()));
  const memory = createMemoryPurchaseStore();
  const batch = purchases('old');
  await memory.save(batch);
  const store = guard.store(memory);
  // Saved again: nothing inserted, so nothing of it waits to be sent by this instance.
  await store.save(batch);
  publisher.generation = 3;
  await guard.publisher.publish(batch);
  assert.equal(sent.length, 1);
});
