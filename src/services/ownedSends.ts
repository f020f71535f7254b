import { StoreUnavailableError } from '../core/errors.ts';
import type { PurchasePublisher, PurchaseStore } from '../core/ports.ts';
import type { Purchase } from '../core/purchase.ts';

/** The publisher {@link guardOwnedSends} works with. */
export interface GenerationalPublisher {
  readonly generation: number;
  ready(): Promise<number>;
  publishWith(purchases: readonly Purchase[], generation: number): Promise<void>;
}

/**
 * Keeps an ingest instance from publishing a batch another instance has taken over.
 *
 * A takeover fences the owner's producer before it reads the topic, so a send from that
 * producer afterwards cannot land. But the owner may make a new producer (after any
 * failed send), which fences the taker's fence in turn: a batch saved before that new
 * producer was made ready might meanwhile have been published by the taker. So a batch
 * is sent as it is only by the producer generation that was ready when its save began;
 * one saved under an earlier generation is sent only if its outbox entry is still this
 * instance's and held by no recovery (`stillOwned`, asked after the new producer is
 * ready: any takeover after that fences this producer first), and otherwise refused as
 * unavailable — outbox recovery publishes it, or has.
 */
export const guardOwnedSends = (
  kafka: GenerationalPublisher,
  stillOwned: (purchaseIds: readonly string[]) => Promise<ReadonlySet<string>>,
) => {
  const savedUnder = new Map<string, number>();
  return {
    /** `store`, remembering under which generation each inserted purchase was saved. */
    store: (store: PurchaseStore): PurchaseStore => ({
      save: async (purchases) => {
        const generation = kafka.generation;
        const result = await store.save(purchases);
        for (const id of result.inserted) savedUnder.set(id, generation);
        return result;
      },
      markPublished: (outboxIds) => store.markPublished(outboxIds),
    }),
    /** The guarded publisher. */
    publisher: {
      publish: async (purchases) => {
        try {
          const generation = await kafka.ready();
          const stale = purchases
            .filter((p) => (savedUnder.get(p.id) ?? generation) !== generation)
            .map((p) => p.id);
          if (stale.length > 0) {
            const owned = await stillOwned(stale);
            if (stale.some((id) => !owned.has(id))) {
              throw new StoreUnavailableError(
                'kafka',
                'outbox recovery holds this batch (the producer was replaced since it was saved)',
              );
            }
          }
          await kafka.publishWith(purchases, generation);
        } finally {
          for (const purchase of purchases) savedUnder.delete(purchase.id);
        }
      },
    } satisfies PurchasePublisher,
  };
};
