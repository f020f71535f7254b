import type { PurchasePublisher } from '../adapters/ports.ts';
import type { Purchase } from '../purchase.ts';
import { createFaultQueue, type HangOptions } from './faults.ts';

/** An in-memory {@link PurchasePublisher} that shows what it published and fails on request. */
export interface MemoryPurchasePublisher extends PurchasePublisher {
  /** Every purchase acknowledged, in publish order; a purchase sent twice appears twice. */
  readonly published: readonly Purchase[];
  /** The purchases of every call, failed ones included, in the order they were made. */
  readonly calls: readonly (readonly Purchase[])[];
  /** The next `count` calls reject with `error`, without publishing. */
  failNext(count: number, error: Error): void;
  /** The next `count` calls never answer (`applied`: after publishing, a lost ack). */
  hangNext(count: number, options?: HangOptions): void;
  /** Every call rejects with `error` until called with undefined. */
  setFailure(error: Error | undefined): void;
}

/** Creates a {@link MemoryPurchasePublisher}: a topic that records, in order, what it is sent. */
export const createMemoryPurchasePublisher = (): MemoryPurchasePublisher => {
  const published: Purchase[] = [];
  const calls: (readonly Purchase[])[] = [];
  const faults = createFaultQueue();
  return {
    published,
    calls,
    publish: (purchases) => {
      const snapshot = purchases.map(({ id, userId, amountCents }) => ({
        id,
        userId,
        amountCents,
      }));
      calls.push(snapshot);
      return faults.call(() => {
        published.push(...snapshot);
      });
    },
    failNext: (count, error) => faults.failNext(count, error),
    hangNext: (count, options) => faults.hangNext(count, options),
    setFailure: (error) => faults.setFailure(error),
  };
};
