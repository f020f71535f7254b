import { z } from 'zod';
import {
  decimalToCents,
  hasControlCharacters,
  MAX_AMOUNT_CENTS,
  MAX_USER_ID_LENGTH,
  numberToCents,
} from '../purchase.ts';

const amountCents = z
  .union([z.number(), z.string()], { error: 'must be a JSON number or a decimal string' })
  .transform((value, ctx) => {
    const negative = typeof value === 'number' ? value <= 0 : /^\s*-/.test(value);
    const cents = typeof value === 'number' ? numberToCents(value) : decimalToCents(value);
    if (negative || cents === 0) {
      ctx.addIssue({ code: 'custom', message: 'must be greater than 0' });
      return z.NEVER;
    }
    if (cents === undefined) {
      ctx.addIssue({ code: 'custom', message: 'must be a decimal with at most 2 decimal places' });
      return z.NEVER;
    }
    if (cents > MAX_AMOUNT_CENTS) {
      ctx.addIssue({ code: 'custom', message: 'must be at most 1000000.00' });
      return z.NEVER;
    }
    return cents;
  });

/**
 * One purchase as a client sends it: `{"user_id": "123", "amount": 49.99, "id"?: "…"}`.
 * Unknown fields are ignored, as the Go proof of concept ignored them.
 */
export const purchaseSchema = z.object({
  user_id: z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .max(MAX_USER_ID_LENGTH, `must be at most ${MAX_USER_ID_LENGTH} characters`)
    .refine((value) => !hasControlCharacters(value), 'must not contain control characters'),
  amount: amountCents,
  id: z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .max(64, 'must be at most 64 characters')
    .regex(/^[A-Za-z0-9._:-]+$/, 'may hold only letters, digits and . _ : -')
    .optional(),
});
