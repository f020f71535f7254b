// The PurchasePublisher contract: what every implementation of the port keeps, the
// published fake and the Kafka adapter alike. Each runner calls it once per implementation.
import assert from 'node:assert/strict';
import type { PurchasePublisher } from '../../src/core/ports.ts';
import type { Purchase } from '../../src/core/purchase.ts';
import { contractSuite } from './contractSuite.ts';

/** One implementation under test, with an empty log when opened. */
export interface PurchasePublisherUnderTest {
  readonly publisher: PurchasePublisher;
  /** Every purchase the log now holds, as a reader of the log decodes it. */
  readonly readBack: () => Promise<readonly Purchase[]>;
  readonly close: () => Promise<void>;
}

const purchase = (id: string, userId: string, amountCents: number): Purchase => ({
  id,
  userId,
  amountCents,
});

/**
 * Each user's purchases in log order. Keyed by user, the log orders each user's purchases;
 * it promises no order between users (Kafka's partitions interleave).
 */
const perUser = (purchases: readonly Purchase[]): Map<string, Purchase[]> => {
  const byUser = new Map<string, Purchase[]>();
  for (const p of purchases) byUser.set(p.userId, [...(byUser.get(p.userId) ?? []), p]);
  return byUser;
};

/**
 * Registers the PurchasePublisher contract's tests, each on a fresh implementation from
 * `open`.
 */
export const purchasePublisherContract = (
  name: string,
  open: () => Promise<PurchasePublisherUnderTest>,
): void => {
  contractSuite(`PurchasePublisher contract: ${name}`, open, (test) => {
    test('once publish resolves, the purchases are in the log exactly as sent', async ({
      publisher,
      readBack,
    }) => {
      const purchases = [
        purchase('exact-1', '123', 4_999),
        purchase('exact-2', '123', 10),
        // The largest amount a purchase may carry, and user ids beyond ASCII.
        purchase('exact-3', 'ユーザー', 100_000_000),
        purchase('exact-4', 'user-🙂', 1),
      ];
      await publisher.publish(purchases);
      assert.deepEqual(perUser(await readBack()), perUser(purchases));
    });

    test("each user's purchases are in the log in the order they were published", async ({
      publisher,
      readBack,
    }) => {
      const batches = Array.from({ length: 3 }, (_, b) =>
        Array.from({ length: 40 }, (_, i) =>
          purchase(`order-${b}-${i}`, `order-user-${(i * 7 + b) % 12}`, 1 + b * 100 + i),
        ),
      );
      for (const batch of batches) await publisher.publish(batch);
      const logged = await readBack();
      assert.equal(logged.length, 120);
      assert.deepEqual(perUser(logged), perUser(batches.flat()));
    });

    test('a purchase published again is in the log again: publish does not deduplicate', async ({
      publisher,
      readBack,
    }) => {
      const once = purchase('again-1', 'again-user', 250);
      await publisher.publish([once]);
      await publisher.publish([once, purchase('again-2', 'again-user', 300)]);
      // Whoever publishes must not publish twice: the log would count it twice.
      assert.deepEqual(await readBack(), [once, once, purchase('again-2', 'again-user', 300)]);
    });

    test('an empty batch resolves and appends nothing', async ({ publisher, readBack }) => {
      await publisher.publish([]);
      const after = purchase('after-empty', 'empty-user', 1);
      await publisher.publish([after]);
      assert.deepEqual(await readBack(), [after]);
    });

    test('publish takes the purchases as they were when it was called', async ({
      publisher,
      readBack,
    }) => {
      const batch = [
        purchase('reuse-1', 'reuse-user', 100),
        purchase('reuse-2', 'reuse-user', 200),
      ];
      const publishing = publisher.publish(batch);
      // A caller reusing its buffer for the next batch must not change this one.
      batch.length = 0;
      batch.push(purchase('reuse-3', 'reuse-user', 300));
      await publishing;
      assert.deepEqual(await readBack(), [
        purchase('reuse-1', 'reuse-user', 100),
        purchase('reuse-2', 'reuse-user', 200),
      ]);
    });
  });
};
