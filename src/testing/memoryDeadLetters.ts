import type { DeadLetterPublisher } from '../adapters/ports.ts';
import type { PoisonRecord } from '../streams/walletTypes.ts';
import { createFaultQueue, type HangOptions } from './faults.ts';

/** An in-memory {@link DeadLetterPublisher} that shows what it published and fails on request. */
export interface MemoryDeadLetters extends DeadLetterPublisher {
  /** Every poison record acknowledged, in publish order; a record sent twice appears twice. */
  readonly published: readonly PoisonRecord[];
  /** The records of every call, failed ones included, in the order they were made. */
  readonly calls: readonly (readonly PoisonRecord[])[];
  /** The next `count` calls reject with `error`, without publishing. */
  failNext(count: number, error: Error): void;
  /** The next `count` calls never answer (`applied`: after publishing, a lost ack). */
  hangNext(count: number, options?: HangOptions): void;
  /** Every call rejects with `error` until called with undefined. */
  setFailure(error: Error | undefined): void;
}

/** Creates a {@link MemoryDeadLetters}: a dead-letter topic that records what it is sent. */
export const createMemoryDeadLetters = (): MemoryDeadLetters => {
  const published: PoisonRecord[] = [];
  const calls: (readonly PoisonRecord[])[] = [];
  const faults = createFaultQueue();
  return {
    published,
    calls,
    publish: (records) => {
      const snapshot = [...records];
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
