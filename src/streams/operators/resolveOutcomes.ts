import { map, type OperatorFunction } from 'rxjs';
import type { StoredPurchase } from '../../core/ports.ts';
import type { Purchase } from '../../core/purchase.ts';
import type { BatchState, Outcome, PurchaseResult } from '../types.ts';

const samePurchase = (a: Purchase, b: Purchase) =>
  a.userId === b.userId && a.amountCents === b.amountCents;

const conflict = (id: string): PurchaseResult => ({
  status: 'error',
  code: 'id_conflict',
  id,
  message: 'this id is already used by a different purchase',
});

/** The reply for a purchase whose id was already stored before this batch. */
const replyToResend = (purchase: Purchase, stored: StoredPurchase): PurchaseResult => {
  if (!samePurchase(purchase, stored)) return conflict(purchase.id);
  if (stored.pendingPublish) {
    // Stored but not yet in Kafka (an earlier attempt failed): outbox recovery will
    // publish it; acknowledging now would claim more than is true.
    return {
      status: 'error',
      code: 'unavailable',
      id: purchase.id,
      message: 'stored, not yet published; retry it with the same id',
    };
  }
  return { status: 'ack', id: purchase.id, duplicate: true };
};

/**
 * Turns each finished batch into one reply per submission: an ack only for purchases
 * now in PostgreSQL and Kafka, a duplicate ack for ids stored before, an error otherwise.
 */
export const resolveOutcomes = <R>(): OperatorFunction<BatchState<R>, Outcome<R>[]> =>
  map((batch) => {
    const first = new Map<string, Purchase>();
    return batch.submissions.map(({ ref, purchase }): Outcome<R> => {
      if (batch.failure !== undefined) {
        return { ref, result: { ...batch.failure, id: purchase.id } };
      }
      // Inserted by this batch: the first occurrence is new, later ones repeat it.
      if (batch.saved?.inserted.has(purchase.id) === true) {
        const earlier = first.get(purchase.id);
        if (earlier === undefined) first.set(purchase.id, purchase);
        else if (!samePurchase(earlier, purchase)) return { ref, result: conflict(purchase.id) };
        return {
          ref,
          result: { status: 'ack', id: purchase.id, duplicate: earlier !== undefined },
        };
      }
      const stored = batch.saved?.existing.get(purchase.id);
      if (stored !== undefined) return { ref, result: replyToResend(purchase, stored) };
      return {
        ref,
        result: { status: 'error', code: 'internal', id: purchase.id, message: 'internal error' },
      };
    });
  });
