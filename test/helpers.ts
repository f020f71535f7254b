// Shared by the integration tests: every test works in names of its own and cleans up.
import { randomUUID } from 'node:crypto';
import { sql, type DatabasePool } from 'slonik';
import { createPostgresPool, ensureDatabase } from '../src/adapters/postgres/pool.ts';
import type { RedisClient } from '../src/adapters/redis/client.ts';
import { groupBySlot, scanClients } from '../src/adapters/redis/nodes.ts';
import { loadConfig, type Config } from '../src/config.ts';

/** The configuration the suite runs against (the same environment as `npm start`). */
export const testConfig: Config = loadConfig();

/** A name no other test run uses: `prefix_<8 hex>`. */
export const uniqueName = (prefix: string): string =>
  `${prefix}_${randomUUID().replaceAll('-', '').slice(0, 8)}`;

/** DATABASE_URL with its database replaced by `database`. */
export const databaseUrl = (database: string): string => {
  const url = new URL(testConfig.postgres.url);
  url.pathname = `/${database}`;
  return url.toString();
};

/** Creates a throw-away database; the returned function drops it again. */
export const createTestDatabase = async (): Promise<{ url: string; drop: () => Promise<void> }> => {
  const name = uniqueName('spendstream_test');
  const url = databaseUrl(name);
  await ensureDatabase(url);
  return {
    url,
    drop: async () => {
      const admin = await createPostgresPool({ url: databaseUrl('postgres'), poolSize: 1 });
      try {
        await admin.query(
          sql.unsafe`DROP DATABASE IF EXISTS ${sql.identifier([name])} WITH (FORCE)`,
        );
      } finally {
        await admin.end();
      }
    },
  };
};

// A wallet's metrics port is a free one unless a test says otherwise: several wallets run
// in one test, and a fixed port would also collide with an `npm start` on the machine.
const freeWalletHttpPort = { WALLET_HTTP_PORT: '0' };

/** The suite's configuration with some settings replaced, parsed like the real thing. */
export const configWith = (overrides: Record<string, string>): Config =>
  loadConfig({ ...process.env, ...freeWalletHttpPort, ...overrides });

/** The environment for a service started as a child process, with some settings replaced. */
export const childEnv = (overrides: Record<string, string>): NodeJS.ProcessEnv => ({
  ...process.env,
  ...freeWalletHttpPort,
  ...overrides,
});

/**
 * Deletes every key under a test's Redis key prefix (the client must use that prefix), on
 * every master of a Cluster.
 */
export const clearKeyPrefix = async (redis: RedisClient, prefix: string): Promise<void> => {
  for (const node of await scanClients(redis)) {
    const keys = await node.keys(`${prefix}*`);
    // KEYS returns full names; a client adds its own prefix again, so strip that first.
    const own = node.options.keyPrefix ?? '';
    for (const group of groupBySlot(redis, keys)) {
      if (group.length > 0) await node.del(...group.map((key) => key.slice(own.length)));
    }
  }
};

/**
 * Takes an ACCESS EXCLUSIVE lock on `purchases` in a transaction of `pool`'s, so every
 * insert waits on it; resolves once the lock is held, with the function that releases it
 * (safe to call more than once: a test's cleanup can call it again).
 */
export const lockPurchases = async (pool: DatabasePool): Promise<() => Promise<void>> => {
  let release = () => undefined as void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let locked = () => undefined as void;
  const isLocked = new Promise<void>((resolve) => {
    locked = resolve;
  });
  const holding = pool.transaction(async (transaction) => {
    await transaction.query(sql.unsafe`LOCK TABLE purchases IN ACCESS EXCLUSIVE MODE`);
    locked();
    await released;
  });
  // A lock that could not be taken rejects here rather than leaving the caller waiting.
  await Promise.race([isLocked, holding]);
  return async () => {
    release();
    await holding;
  };
};

/**
 * How much of the reliability suite runs: `reduced` inside `npm test` (short loads, the
 * scenarios that fit CI's budget), `full` under `npm run test:reliability`.
 */
export const reliabilityLevel: 'reduced' | 'full' =
  process.env['RELIABILITY_LEVEL'] === 'full' ? 'full' : 'reduced';

/**
 * The seed nodes of the Redis Cluster `npm test` started for the cluster variants of the
 * tests (TEST_REDIS_CLUSTER_NODES), if it did.
 */
export const givenRedisClusterNodes: readonly string[] | undefined =
  (process.env['TEST_REDIS_CLUSTER_NODES'] ?? '') === ''
    ? undefined
    : (process.env['TEST_REDIS_CLUSTER_NODES'] ?? '').split(',');
