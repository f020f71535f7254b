import { z } from 'zod';
import { decimalToCents, MAX_AMOUNT_CENTS, numberToCents } from '../purchase.ts';

// Control characters (C0, DEL, C1) have no business in an identifier and break logs.
// eslint-disable-next-line no-control-regex -- matching them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

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
    .max(128, 'must be at most 128 characters')
    .refine((value) => !CONTROL.test(value), 'must not contain control characters'),
  amount: amountCents,
  id: z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .max(64, 'must be at most 64 characters')
    .regex(/^[A-Za-z0-9._:-]+$/, 'may hold only letters, digits and . _ : -')
    .optional(),
});
