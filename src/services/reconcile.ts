import type { RedisClient } from '../adapters/redis/client.ts';
import type { DatabasePool } from 'slonik';
import { readPurchaseTotals } from '../adapters/postgres/purchaseTotals.ts';
import { scanTotals } from '../adapters/redis/totalsScan.ts';
import { compareTotals, type ReconcileReport } from '../core/reconcile.ts';

/**
 * Compares every user's Redis total with the sum of their purchases in PostgreSQL. Redis
 * is streamed through SCAN, but every PostgreSQL total is held in a Map (and every user
 * seen in Redis in a Set), so memory grows with the number of users: roughly 150 bytes
 * each, about 150 MB per million. Run it while the wallet is caught up: purchases it has
 * not applied yet show as differences.
 */
export const reconcile = async ({
  pool,
  redis,
}: {
  readonly pool: DatabasePool;
  readonly redis: RedisClient;
}): Promise<ReconcileReport> => compareTotals(await readPurchaseTotals(pool), scanTotals(redis));
