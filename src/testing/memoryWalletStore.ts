import type { WalletStore } from '../core/ports.ts';
import { checkWalletRecord, type WalletRecord } from '../core/records.ts';
import { createFaultQueue, type HangOptions } from './faults.ts';

/** A method of {@link WalletStore}, to aim a fault at. */
export type WalletStoreMethod = keyof WalletStore;

/** One call made to a {@link MemoryWalletStore}, failed or not. */
export type MemoryWalletStoreCall =
  | { readonly method: 'apply'; readonly topic: string; readonly records: readonly WalletRecord[] }
  | { readonly method: 'isInitialised' | 'markInitialised'; readonly topic: string };

/** An in-memory {@link WalletStore} that shows what it holds and fails on request. */
export interface MemoryWalletStore extends WalletStore {
  /** Each user's total in integer cents; a user never applied to is absent. */
  readonly totals: ReadonlyMap<string, number>;
  /** Per user, the last offset applied from each partition, keyed `topic:partition`. */
  readonly offsets: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** The topics marked initialised. */
  readonly initialised: ReadonlySet<string>;
  /** Every call, failed ones included, in the order they were made. */
  readonly calls: readonly MemoryWalletStoreCall[];
  /** The next `count` calls of `method` reject with `error`, without effect. */
  failNext(method: WalletStoreMethod, count: number, error: Error): void;
  /** The next `count` calls of `method` never answer (`applied`: after doing their work). */
  hangNext(method: WalletStoreMethod, count: number, options?: HangOptions): void;
  /** Every call of `method` rejects with `error` until called with undefined. */
  setFailure(method: WalletStoreMethod, error: Error | undefined): void;
}

const copy = ({ partition, offset, userId, amountCents }: WalletRecord): WalletRecord => ({
  partition,
  offset,
  userId,
  amountCents,
});

/**
 * Creates a {@link MemoryWalletStore} keeping the port's contract: per user, a total and
 * the last applied offset of each `topic:partition`; a record at or below that offset is
 * skipped, so applying the same records again changes nothing.
 */
export const createMemoryWalletStore = (): MemoryWalletStore => {
  const totals = new Map<string, number>();
  const offsets = new Map<string, Map<string, string>>();
  const initialised = new Set<string>();
  const calls: MemoryWalletStoreCall[] = [];
  const faults = {
    apply: createFaultQueue(),
    isInitialised: createFaultQueue(),
    markInitialised: createFaultQueue(),
  };

  const apply = (topic: string, records: readonly WalletRecord[]) => {
    records.forEach(checkWalletRecord);
    let applied = 0;
    for (const record of records) {
      const field = `${topic}:${record.partition}`;
      let userOffsets = offsets.get(record.userId);
      const last = userOffsets?.get(field);
      if (last !== undefined && BigInt(record.offset) <= BigInt(last)) continue;
      if (userOffsets === undefined) {
        userOffsets = new Map();
        offsets.set(record.userId, userOffsets);
      }
      userOffsets.set(field, record.offset);
      totals.set(record.userId, (totals.get(record.userId) ?? 0) + record.amountCents);
      applied += 1;
    }
    return { applied, skipped: records.length - applied };
  };

  return {
    totals,
    offsets,
    initialised,
    calls,
    apply: (topic, records) => {
      const snapshot = records.map(copy);
      calls.push({ method: 'apply', topic, records: snapshot });
      // The adapter answers an empty batch without a round trip, so Redis cannot fail it.
      if (snapshot.length === 0) return Promise.resolve({ applied: 0, skipped: 0 });
      return faults.apply.call(() => apply(topic, snapshot));
    },
    isInitialised: (topic) => {
      calls.push({ method: 'isInitialised', topic });
      return faults.isInitialised.call(() => initialised.has(topic));
    },
    markInitialised: (topic) => {
      calls.push({ method: 'markInitialised', topic });
      return faults.markInitialised.call(() => {
        initialised.add(topic);
      });
    },
    failNext: (method, count, error) => faults[method].failNext(count, error),
    hangNext: (method, count, options) => faults[method].hangNext(count, options),
    setFailure: (method, error) => faults[method].setFailure(error),
  };
};
