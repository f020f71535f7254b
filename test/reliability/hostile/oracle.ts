// The documented contract (docs/protocol.md), written out on its own: given the JSON the
// server received, which replies are allowed. Where the documentation leaves a case open
// (see `userIdVerdicts` and `amountVerdicts`), every documented answer is allowed, and the
// stored data is still checked exactly.
import assert from 'node:assert/strict';
import type { Reply } from '../../wsClient.ts';
import { CLIENT_ID, UUID_V7 } from '../hostileServices.ts';

const MAX_CENTS = 100_000_000n;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const DECIMAL = /^(\d+)(?:\.(\d{1,2}))?$/;

/** What one element may be answered. */
type Outcome =
  | { readonly kind: 'ack'; readonly userId: string; readonly cents: number; readonly id?: string }
  | { readonly kind: 'invalid'; readonly field?: 'user_id' | 'amount' | 'id' };

/** The replies allowed to one element of a frame. */
export interface ElementExpectation {
  readonly outcomes: readonly Outcome[];
  /** The element's string `id`, echoed in an `invalid_purchase` reply (even if invalid). */
  readonly echoId?: string;
}

/** What a frame may be answered: an error for the frame, one element's reply, or a batch. */
export type FrameExpectation =
  | { readonly kind: 'frameError'; readonly code: string }
  | { readonly kind: 'single'; readonly element: ElementExpectation }
  | { readonly kind: 'batch'; readonly elements: readonly ElementExpectation[] };

// The values a field may be taken as; null means refused. Two entries: the docs allow both.
const userIdVerdicts = (value: unknown): Array<string | null> => {
  // "1–128 characters": counted in characters (code points), not UTF-16 units.
  if (typeof value !== 'string' || value.length === 0 || [...value].length > 128) return [null];
  if (CONTROL.test(value)) return [null];
  // A lone surrogate is not a character the docs speak of (nor valid UTF-8 when stored).
  return value.isWellFormed() ? [value] : [value, null];
};

const decimalCents = (text: string): bigint | undefined => {
  const match = DECIMAL.exec(text);
  if (match === null) return undefined;
  return BigInt(match[1] ?? '') * 100n + BigInt((match[2] ?? '').padEnd(2, '0'));
};

/** The cents an amount may be read as; null means refused. */
export const amountVerdicts = (value: unknown): Array<number | null> => {
  if (typeof value === 'number') {
    // Read by its shortest decimal text; one with an exponent is refused.
    if (!(value > 0)) return [null];
    const cents = decimalCents(String(value));
    return cents === undefined || cents > MAX_CENTS ? [null] : [Number(cents)];
  }
  if (typeof value === 'string') {
    const cents = decimalCents(value);
    if (cents === undefined || cents === 0n || cents > MAX_CENTS) return [null];
    // The docs put no bound on leading zeros; the service reads at most 15 integer digits.
    return value.split('.')[0].length > 15 ? [Number(cents), null] : [Number(cents)];
  }
  return [null];
};

type IdVerdict = { readonly id: string | undefined } | null;
const idVerdicts = (element: object): IdVerdict[] => {
  if (!Object.hasOwn(element, 'id')) return [{ id: undefined }];
  const value = (element as Record<string, unknown>)['id'];
  return typeof value === 'string' && CLIENT_ID.test(value) ? [{ id: value }] : [null];
};

const classifyElement = (element: unknown): ElementExpectation => {
  if (typeof element !== 'object' || element === null || Array.isArray(element)) {
    return { outcomes: [{ kind: 'invalid' }] };
  }
  const record = element as Record<string, unknown>;
  const echo = record['id'];
  const outcomes = new Map<string, Outcome>();
  for (const userId of userIdVerdicts(record['user_id'])) {
    for (const cents of amountVerdicts(record['amount'])) {
      for (const id of idVerdicts(element)) {
        // One problem is reported, the first of user_id, amount, id.
        const outcome: Outcome =
          userId === null
            ? { kind: 'invalid', field: 'user_id' }
            : cents === null
              ? { kind: 'invalid', field: 'amount' }
              : id === null
                ? { kind: 'invalid', field: 'id' }
                : { kind: 'ack', userId, cents, ...(id.id === undefined ? {} : { id: id.id }) };
        outcomes.set(JSON.stringify(outcome), outcome);
      }
    }
  }
  return {
    outcomes: [...outcomes.values()],
    ...(typeof echo === 'string' ? { echoId: echo } : {}),
  };
};

/** What the server must answer to a text frame, given the text it decoded. */
export const expectText = (text: string, maxArrayLength: number): FrameExpectation => {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'frameError', code: 'invalid_json' };
  }
  if (!Array.isArray(value)) return { kind: 'single', element: classifyElement(value) };
  if (value.length > maxArrayLength) return { kind: 'frameError', code: 'too_large' };
  return { kind: 'batch', elements: value.map((element: unknown) => classifyElement(element)) };
};

/**
 * The model of the service's store: every id acked so far, with what it holds. Acks,
 * duplicates and id conflicts are checked against it, and the database against it at the end.
 */
export class Ledger {
  readonly acked = new Map<string, { userId: string; cents: number }>();
  replies = 0;
  errors = 0;

  private keys(reply: Reply, allowed: readonly string[], context: string) {
    const extra = Object.keys(reply).filter((key) => !allowed.includes(key));
    assert.deepEqual(extra, [], `${context}: unexpected keys in ${JSON.stringify(reply)}`);
  }

  checkElement(reply: Reply, expected: ElementExpectation, context: string): void {
    this.replies += 1;
    const ack = expected.outcomes.find((o) => o.kind === 'ack');
    const shown = `${context}: ${JSON.stringify(reply)}, expected one of ${JSON.stringify(expected)}`;
    if (reply.status === 'ack') {
      this.keys(reply, ['status', 'id', 'duplicate'], context);
      assert.ok(ack?.kind === 'ack', `acked an invalid purchase — ${shown}`);
      const id = String(reply.id);
      if (ack.id === undefined) {
        assert.match(id, UUID_V7, shown);
        assert.equal(reply.duplicate, false, shown);
        assert.ok(!this.acked.has(id), `assigned id reused — ${shown}`);
        this.acked.set(id, { userId: ack.userId, cents: ack.cents });
        return;
      }
      assert.equal(id, ack.id, shown);
      const known = this.acked.get(id);
      if (known === undefined) {
        assert.equal(reply.duplicate, false, shown);
        this.acked.set(id, { userId: ack.userId, cents: ack.cents });
      } else {
        assert.ok(
          known.userId === ack.userId && known.cents === ack.cents,
          `acked a purchase whose id holds ${JSON.stringify(known)} — ${shown}`,
        );
        assert.equal(reply.duplicate, true, shown);
      }
      return;
    }
    this.errors += 1;
    assert.equal(reply.status, 'error', shown);
    assert.equal(typeof reply.message, 'string', shown);
    if (reply.code === 'id_conflict') {
      this.keys(reply, ['status', 'code', 'message', 'id'], context);
      assert.ok(ack?.kind === 'ack' && ack.id !== undefined, shown);
      const known = this.acked.get(ack.id);
      assert.ok(
        known !== undefined && (known.userId !== ack.userId || known.cents !== ack.cents),
        `id_conflict, but the id holds ${JSON.stringify(known)} — ${shown}`,
      );
      assert.equal(reply.id, ack.id, shown);
      return;
    }
    assert.equal(reply.code, 'invalid_purchase', shown);
    this.keys(reply, ['status', 'code', 'message', 'field', 'id'], context);
    assert.ok(
      expected.outcomes.some((o) => o.kind === 'invalid' && o.field === reply.field),
      `refused with field ${String(reply.field)} — ${shown}`,
    );
    assert.equal(reply.id, expected.echoId, `id echo — ${shown}`);
  }

  checkFrame(reply: Reply | undefined, expected: FrameExpectation, context: string): void {
    assert.ok(reply !== undefined, `${context}: no reply`);
    if (expected.kind === 'frameError') {
      this.replies += 1;
      this.errors += 1;
      assert.equal(reply.status, 'error', `${context}: ${JSON.stringify(reply)}`);
      assert.equal(reply.code, expected.code, `${context}: ${JSON.stringify(reply)}`);
      assert.equal(typeof reply.message, 'string');
      this.keys(reply, ['status', 'code', 'message'], context);
      return;
    }
    if (expected.kind === 'single') {
      this.checkElement(reply, expected.element, context);
      return;
    }
    assert.equal(reply.status, 'batch', `${context}: ${JSON.stringify(reply).slice(0, 500)}`);
    this.keys(reply, ['status', 'acked', 'failed', 'results'], context);
    const results = reply.results as Reply[];
    assert.equal(results.length, expected.elements.length, `${context}: one result per element`);
    expected.elements.forEach((element, i) =>
      this.checkElement(results[i], element, `${context} element ${i}`),
    );
    const acked = results.filter((r) => r.status === 'ack').length;
    assert.equal(reply.acked, acked, context);
    assert.equal(reply.failed, results.length - acked, context);
  }
}
