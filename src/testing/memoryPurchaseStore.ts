import type { PurchaseStore, SaveResult, StoredPurchase } from '../core/ports.ts';
import type { Purchase } from '../core/purchase.ts';
import { createFaultQueue, type HangOptions } from './faults.ts';

/** A method of {@link PurchaseStore}, to aim a fault at. */
export type PurchaseStoreMethod = keyof PurchaseStore;

/** One call made to a {@link MemoryPurchaseStore}, failed or not. */
export type MemoryPurchaseStoreCall =
  | { readonly method: 'save'; readonly purchases: readonly Purchase[] }
  | { readonly method: 'markPublished'; readonly outboxIds: readonly string[] };

/** An in-memory {@link PurchaseStore} that shows what it holds and fails on request. */
export interface MemoryPurchaseStore extends PurchaseStore {
  /** Stored purchases by id, in insertion order. */
  readonly rows: ReadonlyMap<string, Purchase>;
  /** Outbox entries not yet marked published: entry id → the purchase ids it records. */
  readonly outbox: ReadonlyMap<string, readonly string[]>;
  /** Every call, failed ones included, in the order they were made. */
  readonly calls: readonly MemoryPurchaseStoreCall[];
  /** The next `count` calls of `method` reject with `error`, without effect. */
  failNext(method: PurchaseStoreMethod, count: number, error: Error): void;
  /** The next `count` calls of `method` never answer (`applied`: after doing their work). */
  hangNext(method: PurchaseStoreMethod, count: number, options?: HangOptions): void;
  /** Every call of `method` rejects with `error` until called with undefined. */
  setFailure(method: PurchaseStoreMethod, error: Error | undefined): void;
}

/** Options of {@link createMemoryPurchaseStore}. */
export interface MemoryPurchaseStoreOptions {
  /** Purchases stored (and published) before the test starts. */
  readonly purchases?: readonly Purchase[];
}

const copy = ({ id, userId, amountCents }: Purchase): Purchase => ({ id, userId, amountCents });

/**
 * Creates a {@link MemoryPurchaseStore} keeping the port's contract: new ids are inserted
 * (the first occurrence of an id repeated in a batch wins) and recorded in one outbox
 * entry with an incrementing id; ids stored before the call come back in `existing`,
 * pending while an outbox entry still holds them.
 */
export const createMemoryPurchaseStore = ({
  purchases = [],
}: MemoryPurchaseStoreOptions = {}): MemoryPurchaseStore => {
  const rows = new Map<string, Purchase>(purchases.map((p) => [p.id, copy(p)]));
  const outbox = new Map<string, readonly string[]>();
  const calls: MemoryPurchaseStoreCall[] = [];
  const faults = { save: createFaultQueue(), markPublished: createFaultQueue() };
  let lastOutboxId = 0;

  /** The outbox entry still holding `id`, if any. */
  const pendingIn = (id: string): string | undefined =>
    [...outbox].find(([, ids]) => ids.includes(id))?.[0];

  const insert = (batch: readonly Purchase[]): SaveResult => {
    const inserted = new Set<string>();
    const existing = new Map<string, StoredPurchase>();
    for (const purchase of batch) {
      const stored = rows.get(purchase.id);
      if (stored === undefined) {
        rows.set(purchase.id, purchase);
        inserted.add(purchase.id);
      } else if (!inserted.has(purchase.id)) {
        const outboxId = pendingIn(purchase.id);
        existing.set(
          purchase.id,
          outboxId === undefined
            ? { ...stored, pendingPublish: false }
            : { ...stored, pendingPublish: true, pendingOutboxId: outboxId },
        );
      }
    }
    if (inserted.size === 0) return { outboxId: null, inserted, existing };
    lastOutboxId += 1;
    const outboxId = String(lastOutboxId);
    outbox.set(outboxId, [...inserted]);
    return { outboxId, inserted, existing };
  };

  return {
    rows,
    outbox,
    calls,
    save: (batch) => {
      const snapshot = batch.map(copy);
      calls.push({ method: 'save', purchases: snapshot });
      return faults.save.call(() => insert(snapshot));
    },
    markPublished: (outboxIds) => {
      calls.push({ method: 'markPublished', outboxIds: [...outboxIds] });
      return faults.markPublished.call(() => {
        for (const outboxId of outboxIds) outbox.delete(outboxId);
      });
    },
    failNext: (method, count, error) => faults[method].failNext(count, error),
    hangNext: (method, count, options) => faults[method].hangNext(count, options),
    setFailure: (method, error) => faults[method].setFailure(error),
  };
};
