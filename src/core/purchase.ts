import { randomBytes } from 'node:crypto';

/** A validated purchase, its amount in integer cents. */
export interface Purchase {
  /** The client's idempotency key, or a time-ordered UUIDv7 the server assigned. */
  readonly id: string;
  readonly userId: string;
  readonly amountCents: number;
}

/** Longest `user_id`, in characters (Unicode code points), wherever one is accepted. */
export const MAX_USER_ID_LENGTH = 128;

// Control characters (C0, DEL, C1) have no business in an identifier and break logs.
// eslint-disable-next-line no-control-regex -- matching them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Whether `text` holds a control character, which no user id may. */
export const hasControlCharacters = (text: string): boolean => CONTROL.test(text);

const codePoints = (text: string): number => {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
};

/**
 * Why `userId` cannot be a user id, or undefined when it can: the one rule the WebSocket
 * schema and GetBalance share, so every user who can buy can read their total. A lone
 * surrogate (valid in JSON as `"\ud800"`, but not a character) is refused: PostgreSQL and
 * Kafka would store it as U+FFFD, merging distinct ids into one.
 */
export const userIdProblem = (userId: string): string | undefined => {
  if (userId.length === 0) return 'must not be empty';
  if (!userId.isWellFormed()) return 'must be valid Unicode (no lone surrogates)';
  if (codePoints(userId) > MAX_USER_ID_LENGTH) {
    return `must be at most ${MAX_USER_ID_LENGTH} characters`;
  }
  if (hasControlCharacters(userId)) return 'must not contain control characters';
  return undefined;
};

/** Largest amount one purchase may carry: 1,000,000.00. */
export const MAX_AMOUNT_CENTS = 100_000_000;

/** Formats integer cents as an exact decimal string: 4999 → "49.99". */
export const centsToDecimal = (cents: number): string => {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${Math.trunc(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
};

const DECIMAL = /^(\d{1,15})(?:\.(\d{1,2}))?$/;

/**
 * Parses a non-negative decimal with at most two places into integer cents without
 * passing through a float; undefined when the text is not such a decimal.
 */
export const decimalToCents = (text: string): number | undefined => {
  const match = DECIMAL.exec(text);
  if (match === null) return undefined;
  const [, units = '0', fraction = ''] = match;
  const cents = Number(units) * 100 + Number(fraction.padEnd(2, '0'));
  // Past 2^53 a double no longer holds every integer: refuse rather than round.
  return Number.isSafeInteger(cents) ? cents : undefined;
};

/**
 * A JSON number's cents: its shortest round-trip text (what `JSON.stringify` prints,
 * and what the client most likely typed) read as a decimal. 49.99 → 4999, 0.1 → 10.
 */
export const numberToCents = (value: number): number | undefined =>
  Number.isFinite(value) ? decimalToCents(String(value)) : undefined;

/** A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits; sorts by time. */
export const uuidv7 = (now: number = Date.now()): string => {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = 0x70 | ((bytes[6] ?? 0) & 0x0f);
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};
