import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { SpendstreamError } from '../../core/errors.ts';
import { decimalToCents } from '../../core/purchase.ts';
import { translatePostgresError } from './errors.ts';

const totalRow = z.object({ user_id: z.string(), total: z.string() });

/** Every user's sum of purchases in PostgreSQL, in integer cents. */
export const readPurchaseTotals = async (pool: DatabasePool): Promise<Map<string, number>> => {
  let rows: readonly z.infer<typeof totalRow>[];
  try {
    // ::text keeps the sum exact whatever type parsers the caller's pool has.
    rows = await pool.any(sql.type(totalRow)`
      SELECT user_id, sum(amount)::text AS total FROM purchases GROUP BY user_id`);
  } catch (error) {
    throw translatePostgresError(error);
  }
  const totals = new Map<string, number>();
  for (const row of rows) {
    const cents = decimalToCents(row.total);
    // decimalToCents takes 15 integer digits, more than a double holds exactly in cents.
    if (cents === undefined || !Number.isSafeInteger(cents)) {
      throw new SpendstreamError(
        'internal',
        `the purchases of user ${JSON.stringify(row.user_id)} sum to ${row.total}, ` +
          'which cannot be compared exactly in cents',
      );
    }
    totals.set(row.user_id, cents);
  }
  return totals;
};
