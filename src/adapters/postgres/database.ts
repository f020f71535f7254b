import type { DatabasePool } from 'slonik';
import { migrate } from './migrations.ts';
import { createPostgresPool, ensureDatabase, type PostgresConfig } from './pool.ts';

/**
 * Start-up step of every service that touches PostgreSQL: creates the database when
 * missing, applies pending migrations, and hands back the pool.
 */
export const openMigratedDatabase = async (
  config: PostgresConfig,
): Promise<{ pool: DatabasePool; applied: string[] }> => {
  await ensureDatabase(config.url);
  const pool = await createPostgresPool(config);
  try {
    return { pool, applied: await migrate(pool) };
  } catch (error) {
    await pool.end();
    throw error;
  }
};
