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

// The record value's JSON without its two strings, at the largest amount and a creation
// time, plus the header's name and Kafka's per-record framing (varint lengths, deltas).
const FIXED_RECORD_BYTES =
  Buffer.byteLength(
    encodePurchaseEvent({
      id: '',
      userId: '',
      amountCents: MAX_AMOUNT_CENTS,
      createdAt: new Date(),
    }),
  ) +
  Buffer.byteLength(PURCHASE_ID_HEADER) +
  48;

/**
 * An upper bound of a purchase's record on the wire, in UTF-8 bytes: the user id as key
 * and the id as header, both again in the JSON value, where escaping at most doubles
 * them, and the fixed rest. Counting UTF-16 units instead would undercount a user id of
 * four-byte characters by half, and a send the estimate let through would exceed the
 * broker's limit.
 */
export const estimatedRecordBytes = (purchase: Purchase): number =>
  3 * (Buffer.byteLength(purchase.id) + Buffer.byteLength(purchase.userId)) + FIXED_RECORD_BYTES;

/** Cuts `purchases`, in order, into runs of at most `maxBytes` (at least one purchase each). */
export const chunksOf = <P extends Purchase>(purchases: readonly P[], maxBytes: number): P[][] => {
  const chunks: P[][] = [];
  let chunk: P[] = [];
  let bytes = 0;
  for (const purchase of purchases) {
    const size = estimatedRecordBytes(purchase);
    if (chunk.length > 0 && bytes + size > maxBytes) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(purchase);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
};
