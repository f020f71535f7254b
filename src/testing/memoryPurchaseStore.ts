import { SpendstreamError } from '../core/errors.ts';
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

// What PostgreSQL's `purchases` table takes: `numeric(14, 2)` with `CHECK (amount > 0)`,
// and text without NUL, which PostgreSQL's text type cannot hold.
const MAX_STORED_CENTS = 99_999_999_999_999;

/** Why PostgreSQL would refuse `purchase`, or undefined when it would store it. */
const refusal = ({ id, userId, amountCents }: Purchase): string | undefined => {
  if (!Number.isSafeInteger(amountCents) || amountCents <= 0 || amountCents > MAX_STORED_CENTS) {
    return `amount of ${amountCents} cents is not a positive numeric(14, 2)`;
  }
  if (id.includes('\u0000') || userId.includes('\u0000')) return 'text holds a NUL character';
  return undefined;
};

/**
 * Creates a {@link MemoryPurchaseStore} keeping the port's contract: new ids are inserted
 * and recorded in one outbox entry with an incrementing id; ids stored before the call
 * come back in `existing`, pending while an outbox entry still holds them; an id repeated
 * within a batch is stored as its first occurrence, and its repeats come back in
 * `existing` as that occurrence, pending in this call's entry. A batch holding a purchase
 * PostgreSQL would refuse (no positive amount in whole cents, a NUL) is refused whole.
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
    for (const purchase of batch) {
      const reason = refusal(purchase);
      if (reason !== undefined) {
        throw new SpendstreamError(
          'internal',
          `PostgreSQL error: purchase ${purchase.id}: ${reason}`,
        );
      }
    }
    // The first occurrence of each id, in arrival order, and the ids that came again.
    const firsts = new Map<string, Purchase>();
    const repeated = new Set<string>();
    for (const purchase of batch) {
      if (firsts.has(purchase.id)) repeated.add(purchase.id);
      else firsts.set(purchase.id, purchase);
    }
    const fresh: Purchase[] = [];
    const existing = new Map<string, StoredPurchase>();
    for (const purchase of firsts.values()) {
      const stored = rows.get(purchase.id);
      if (stored === undefined) {
        fresh.push(purchase);
        continue;
      }
      const outboxId = pendingIn(purchase.id);
      existing.set(
        purchase.id,
        outboxId === undefined
          ? { ...stored, pendingPublish: false }
          : { ...stored, pendingPublish: true, pendingOutboxId: outboxId },
      );
    }
    const inserted = new Set(fresh.map((p) => p.id));
    if (fresh.length === 0) return { outboxId: null, inserted, existing };
    lastOutboxId += 1;
    const outboxId = String(lastOutboxId);
    for (const purchase of fresh) {
      rows.set(purchase.id, purchase);
      if (repeated.has(purchase.id)) {
        existing.set(purchase.id, { ...purchase, pendingPublish: true, pendingOutboxId: outboxId });
      }
    }
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
