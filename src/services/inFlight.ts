import type { PurchasePublisher } from '../core/ports.ts';

/**
 * Knows which purchases an ingest process still holds: submitted to its pipeline and not
 * yet answered, or inside a Kafka send that has not settled (a send the pipeline stopped
 * waiting for still runs). Outbox recovery in the same process leaves entries holding
 * such purchases alone, however old, so a batch queued behind a slow Kafka is never
 * published both by its pipeline and by recovery.
 *
 * The hot path only adds and removes objects by identity (a submission's reply ref, a
 * send's array); the ids are gathered into a set only when recovery asks, once per run
 * of questions.
 */
export const trackInFlight = (publisher: PurchasePublisher) => {
  const submitted = new Map<object, string>();
  const sending = new Set<readonly { readonly id: string }[]>();
  let ids: Set<string> | undefined;
  return {
    /** The publisher, holding each purchase until its send settles. */
    publisher: {
      publish: async (purchases) => {
        sending.add(purchases);
        ids = undefined;
        try {
          await publisher.publish(purchases);
        } finally {
          sending.delete(purchases);
          ids = undefined;
        }
      },
    } satisfies PurchasePublisher,
    /** Counts a purchase entering the pipeline, under a key only it uses (its reply ref). */
    hold: (key: object, purchaseId: string) => {
      submitted.set(key, purchaseId);
      ids = undefined;
    },
    /** Counts the purchase held under `key` answered by the pipeline. */
    release: (key: object) => {
      submitted.delete(key);
      ids = undefined;
    },
    /** Whether this process still holds the purchase. */
    isInFlight: (id: string): boolean => {
      if (ids === undefined) {
        ids = new Set(submitted.values());
        for (const purchases of sending) for (const purchase of purchases) ids.add(purchase.id);
      }
      return ids.has(id);
    },
  };
};
