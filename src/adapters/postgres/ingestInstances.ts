import { sql, type DatabasePool } from 'slonik';
import { translatePostgresError } from './errors.ts';

/**
 * Records that ingest instance `id` is alive (now, by PostgreSQL's clock). Outbox entries
 * of an instance silent for the takeover age are recovered by the others.
 */
export const recordAlive = async (pool: DatabasePool, id: string): Promise<void> => {
  try {
    // Instances that died without a word are forgotten after a week of silence.
    await pool.query(sql.unsafe`
      WITH forgotten AS (
        DELETE FROM ingest_instances WHERE seen_at < now() - interval '7 days'
      )
      INSERT INTO ingest_instances (id) VALUES (${id})
      ON CONFLICT (id) DO UPDATE SET seen_at = now()`);
  } catch (error) {
    throw translatePostgresError(error);
  }
};

/** Forgets instance `id` (it stopped): its entries, if any, are taken over at once. */
export const forgetInstance = async (pool: DatabasePool, id: string): Promise<void> => {
  try {
    await pool.query(sql.unsafe`DELETE FROM ingest_instances WHERE id = ${id}`);
  } catch (error) {
    throw translatePostgresError(error);
  }
};
