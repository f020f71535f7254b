// The topic's event codec: how a purchase is written to and read from `user_purchase`.
import { SpendstreamError } from './errors.ts';
import {
  centsToDecimal,
  decimalToCents,
  MAX_AMOUNT_CENTS,
  numberToCents,
  type Purchase,
} from './purchase.ts';

/** The header carrying the purchase id, so a reader can find ids without parsing values. */
export const PURCHASE_ID_HEADER = 'purchase-id';

/** A purchase as it goes to Kafka; `createdAt` is known only when it comes from PostgreSQL. */
export interface PurchaseEvent extends Purchase {
  readonly createdAt?: Date;
}

/**
 * The record value: `user_id` and `amount` (a JSON number) exactly as the Go proof of
 * concept sent them, plus the id and the exact `amount_cents` that readers should prefer.
 */
export const encodePurchaseEvent = (purchase: PurchaseEvent): string =>
  JSON.stringify({
    id: purchase.id,
    user_id: purchase.userId,
    // The shortest text of this double is the decimal itself, so readers of the proof of
    // concept's format get 49.99, never 49.990000000000002.
    amount: Number(centsToDecimal(purchase.amountCents)),
    amount_cents: purchase.amountCents,
    ...(purchase.createdAt === undefined ? {} : { created_at: purchase.createdAt.toISOString() }),
  });

const invalid = (reason: string): SpendstreamError =>
  new SpendstreamError('invalid_purchase', `invalid purchase event: ${reason}`);

const centsOf = (record: Record<string, unknown>): number | undefined => {
  const cents = record['amount_cents'];
  if (cents !== undefined) return Number.isSafeInteger(cents) ? (cents as number) : undefined;
  const amount = record['amount'];
  if (typeof amount === 'number') return numberToCents(amount);
  if (typeof amount === 'string') return decimalToCents(amount);
  return undefined;
};

/**
 * Reads a record value written by {@link encodePurchaseEvent} or by the proof of concept
 * (`{"user_id":"123","amount":49.99}`, no id: `fallbackId` is used, e.g. the record's
 * topic/partition/offset). Throws a SpendstreamError `invalid_purchase` on anything else.
 */
export const decodePurchaseEvent = (value: Buffer | string, fallbackId = ''): Purchase => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof value === 'string' ? value : value.toString('utf8'));
  } catch {
    throw invalid('not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalid('not a JSON object');
  }
  const record = parsed as Record<string, unknown>;
  const userId = record['user_id'];
  if (typeof userId !== 'string' || userId === '') throw invalid('user_id is not a string');
  const id = record['id'] ?? fallbackId;
  if (typeof id !== 'string') throw invalid('id is not a string');
  const amountCents = centsOf(record);
  if (amountCents === undefined || amountCents <= 0) {
    throw invalid('amount is not a positive decimal with at most two places');
  }
  // The ingest service never publishes more; a larger amount is not ours to count.
  if (amountCents > MAX_AMOUNT_CENTS) throw invalid('amount is over the per-purchase limit');
  return { id, userId, amountCents };
};
