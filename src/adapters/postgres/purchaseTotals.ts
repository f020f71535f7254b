import type { Redis } from 'ioredis';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { SpendstreamError } from '../../core/errors.ts';
import { decimalToCents } from '../../core/purchase.ts';
import { translatePostgresError } from './errors.ts';
import { scanTotals } from '../redis/walletStore.ts';

/** One user whose Redis total is not the sum of their purchases in PostgreSQL. */
export interface TotalDifference {
  readonly userId: string;
  /** Sum of the user's purchases; 0 when PostgreSQL has none. */
  readonly postgresCents: number;
  /** The wallet's total; 0 when Redis has none. */
  readonly redisCents: number;
}

/** What {@link reconcile} found. */
export interface ReconcileReport {
  /** Users known to either store. */
  readonly users: number;
  /** The users whose totals differ, by user id. */
  readonly differences: TotalDifference[];
}

const totalRow = z.object({ user_id: z.string(), total: z.string() });

const postgresTotals = async (pool: DatabasePool): Promise<Map<string, number>> => {
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

/**
 * Compares every user's Redis total with the sum of their purchases in PostgreSQL; a user
 * on one side only counts as 0 on the other. Redis is streamed through SCAN, but every
 * PostgreSQL total is held in a Map (and every user seen in Redis in a Set), so memory
 * grows with the number of users: roughly 150 bytes each, about 150 MB per million.
 * Run it while the wallet is caught up: purchases it has not applied yet show as differences.
 */
export const reconcile = async ({
  pool,
  redis,
}: {
  readonly pool: DatabasePool;
  readonly redis: Redis;
}): Promise<ReconcileReport> => {
  const expected = await postgresTotals(pool);
  // SCAN may yield a user twice; without this the second sighting of a user PostgreSQL
  // also knows would look like a Redis-only one.
  const seen = new Set<string>();
  const differences: TotalDifference[] = [];
  for await (const [userId, redisCents] of scanTotals(redis)) {
    if (seen.has(userId)) continue;
    seen.add(userId);
    const postgresCents = expected.get(userId) ?? 0;
    if (postgresCents !== redisCents) differences.push({ userId, postgresCents, redisCents });
  }
  let users = seen.size;
  for (const [userId, postgresCents] of expected) {
    if (seen.has(userId)) continue;
    users += 1;
    differences.push({ userId, postgresCents, redisCents: 0 });
  }
  differences.sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
  return { users, differences };
};
