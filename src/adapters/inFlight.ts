import type { PurchasePublisher } from './ports.ts';

/**
 * Knows which purchases an ingest process still holds: submitted to its pipeline and not
 * yet answered, or inside a Kafka send that has not settled (a send the pipeline stopped
 * waiting for still runs). Outbox recovery in the same process leaves entries holding
 * such purchases alone, however old, so a batch queued behind a slow Kafka is never
 * published both by its pipeline and by recovery.
 */
export const trackInFlight = (publisher: PurchasePublisher) => {
  const holds = new Map<string, number>();
  const hold = (id: string) => holds.set(id, (holds.get(id) ?? 0) + 1);
  const release = (id: string) => {
    const left = (holds.get(id) ?? 1) - 1;
    if (left > 0) holds.set(id, left);
    else holds.delete(id);
  };
  return {
    /** The publisher, holding each purchase until its send settles. */
    publisher: {
      publish: async (purchases) => {
        for (const { id } of purchases) hold(id);
        try {
          await publisher.publish(purchases);
        } finally {
          for (const { id } of purchases) release(id);
        }
      },
    } satisfies PurchasePublisher,
    /** Counts a purchase entering the pipeline. */
    hold,
    /** Counts a purchase answered by the pipeline. */
    release,
    /** Whether this process still holds the purchase. */
    isInFlight: (id: string): boolean => holds.has(id),
  };
};
