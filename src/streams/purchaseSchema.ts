import { z } from 'zod';
import {
  decimalToCents,
  MAX_AMOUNT_CENTS,
  numberToCents,
  userIdProblem,
} from '../core/purchase.ts';

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
  user_id: z.string({ error: 'must be a string' }).superRefine((value, ctx) => {
    const problem = userIdProblem(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  }),
  amount: amountCents,
  id: z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .max(64, 'must be at most 64 characters')
    .regex(/^[A-Za-z0-9._:-]+$/, 'may hold only letters, digits and . _ : -')
    .optional(),
});
