import { map, type OperatorFunction } from 'rxjs';
import { uuidv7, type Purchase } from '../../core/purchase.ts';
import { purchaseSchema } from '../purchaseSchema.ts';
import type { PurchaseResult } from '../types.ts';

/** Limits and id source of {@link decodeFrame}. */
export interface DecodeFrameConfig {
  /** Most purchases one array frame may hold. */
  readonly maxArrayLength: number;
  /** Assigns ids to purchases sent without one; a UUIDv7 by default. */
  readonly newId?: () => string;
}

/** One element of a frame: a valid purchase, or the reason it is not one. */
export type DecodedItem =
  | { readonly ok: true; readonly purchase: Purchase }
  | { readonly ok: false; readonly error: PurchaseResult };

/** A text frame, decoded: one purchase, an array of them, or one error for the frame. */
export interface DecodedFrame {
  readonly array: boolean;
  readonly items: readonly DecodedItem[];
  /** Set when the frame as a whole is refused (bad JSON, too many elements). */
  readonly frameError?: PurchaseResult;
}

const frameError = (code: 'invalid_json' | 'too_large' | 'invalid_purchase', message: string) => ({
  array: false,
  items: [],
  frameError: { status: 'error', code, message } as const,
});

const decodeItem = (value: unknown, newId: () => string): DecodedItem => {
  const parsed = purchaseSchema.safeParse(value);
  if (parsed.success) {
    const { id, user_id: userId, amount: amountCents } = parsed.data;
    return { ok: true, purchase: { id: id ?? newId(), userId, amountCents } };
  }
  const issue = parsed.error.issues[0];
  const field = issue?.path.length ? String(issue.path[0]) : undefined;
  const clientId =
    typeof value === 'object' && value !== null && 'id' in value && typeof value.id === 'string'
      ? value.id
      : undefined;
  return {
    ok: false,
    error: {
      status: 'error',
      code: 'invalid_purchase',
      message:
        field === undefined ? 'a purchase must be a JSON object' : `${field} ${issue?.message}`,
      ...(field === undefined ? {} : { field }),
      ...(clientId === undefined ? {} : { id: clientId }),
    },
  };
};

/** Decodes one text frame: JSON, then each purchase validated against the schema. */
export const decodeFrameText = (text: string, config: DecodeFrameConfig): DecodedFrame => {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return frameError('invalid_json', 'the frame is not valid JSON');
  }
  const newId = config.newId ?? uuidv7;
  if (!Array.isArray(value)) return { array: false, items: [decodeItem(value, newId)] };
  if (value.length > config.maxArrayLength) {
    return frameError(
      'too_large',
      `an array frame may hold at most ${config.maxArrayLength} purchases, not ${value.length}`,
    );
  }
  return { array: true, items: value.map((item: unknown) => decodeItem(item, newId)) };
};

/** Decodes each text frame into purchases and per-purchase validation errors. */
export const decodeFrame = (config: DecodeFrameConfig): OperatorFunction<string, DecodedFrame> =>
  map((text) => decodeFrameText(text, config));
