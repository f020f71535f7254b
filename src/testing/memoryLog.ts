import { createFaultQueue, type HangOptions } from './faults.ts';

/** An in-memory publisher of `T`s that shows what it published and fails on request. */
export interface MemoryLog<T> {
  /** Publishes the items, or fails as told. */
  publish(items: readonly T[]): Promise<void>;
  /** Every item acknowledged, in publish order; an item sent twice appears twice. */
  readonly published: readonly T[];
  /** The items of every call, failed ones included, in the order they were made. */
  readonly calls: readonly (readonly T[])[];
  /** The next `count` calls reject with `error`, without publishing. */
  failNext(count: number, error: Error): void;
  /** The next `count` calls never answer (`applied`: after publishing, a lost ack). */
  hangNext(count: number, options?: HangOptions): void;
  /** Every call rejects with `error` until called with undefined. */
  setFailure(error: Error | undefined): void;
}

/**
 * Creates a {@link MemoryLog}; `copy` takes each item as it was at call time, so a caller
 * reusing its objects cannot rewrite what was published.
 */
export const createMemoryLog = <T>(copy: (item: T) => T = (item) => item): MemoryLog<T> => {
  const published: T[] = [];
  const calls: (readonly T[])[] = [];
  const faults = createFaultQueue();
  return {
    published,
    calls,
    publish: (items) => {
      const snapshot = items.map(copy);
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
