import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, beforeEach, test } from 'node:test';
import type { Redis } from 'ioredis';
import { sql, type DatabasePool } from 'slonik';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import type { WalletRecord } from '../../src/core/records.ts';
import { createPostgresPool } from '../../src/adapters/postgres/pool.ts';
import { createPurchaseStore } from '../../src/adapters/postgres/purchaseStore.ts';
import { reconcile } from '../../src/services/reconcile.ts';
import { createRedis } from '../../src/adapters/redis/client.ts';
import { createWalletStore } from '../../src/adapters/redis/walletStore.ts';
import { centsToDecimal, type Purchase } from '../../src/core/purchase.ts';
import { ROOT } from '../../scripts/infra.ts';
import {
  childEnv,
  createTestDatabase,
  testConfig,
  uniqueName,
  clearKeyPrefix,
} from '../helpers.ts';

// The CLI takes no key prefix, so its runs get a logical database of their own instead.
const CLI_REDIS_DB = 9;
const cliRedisUrl = (() => {
  const url = new URL(testConfig.redis.url);
  url.pathname = `/${CLI_REDIS_DB}`;
  return url.toString();
})();

const prefix = `${uniqueName('test')}:`;
const redis = createRedis({ url: testConfig.redis.url, keyPrefix: prefix });
const cliRedis = createRedis({ url: cliRedisUrl });
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let pool: DatabasePool;

before(async () => {
  database = await createTestDatabase();
  pool = await createPostgresPool({ url: database.url, poolSize: 2 });
  await migrate(pool);
  await cliRedis.flushdb();
});

beforeEach(async () => {
  await pool.query(sql.unsafe`TRUNCATE purchases, outbox`);
  await clearKeyPrefix(redis, prefix);
  await cliRedis.flushdb();
});

after(async () => {
  await clearKeyPrefix(redis, prefix);
  await redis.quit();
  await cliRedis.flushdb();
  await cliRedis.quit();
  await pool.end();
  await database.drop();
});

/** 600 purchases of 40 users, amounts from 0.01 to 1,000,000.00. */
const purchases: Purchase[] = Array.from({ length: 600 }, (_, i) => ({
  id: `p-${i}`,
  userId: `user-${i % 40}`,
  amountCents: i === 0 ? 100_000_000 : 1 + ((i * 7_919_993) % 100_000_000),
}));

/** The records the wallet would apply for `list`, as if read from one partition. */
const asRecords = (list: readonly Purchase[], firstOffset = 0): WalletRecord[] =>
  list.map((p, i) => ({
    partition: 0,
    offset: String(firstOffset + i),
    userId: p.userId,
    amountCents: p.amountCents,
  }));

/** PostgreSQL gets `purchases`; Redis the same, but user-1 one cent more, user-2 missing
 * and user-ghost, whom PostgreSQL does not know, present. */
const diverge = async (client: Redis): Promise<void> => {
  await createPurchaseStore(pool).save(purchases);
  const wallet = createWalletStore(client);
  await wallet.apply('t', asRecords(purchases.filter((p) => p.userId !== 'user-2')));
  await wallet.apply('t', [
    { partition: 1, offset: '0', userId: 'user-1', amountCents: 1 },
    { partition: 1, offset: '1', userId: 'user-ghost', amountCents: 4_999 },
  ]);
};

const sumOf = (userId: string): number =>
  purchases.filter((p) => p.userId === userId).reduce((sum, p) => sum + p.amountCents, 0);

test('totals that match give no differences', async () => {
  await createPurchaseStore(pool).save(purchases);
  await createWalletStore(redis).apply('t', asRecords(purchases));
  assert.deepEqual(await reconcile({ pool, redis }), { users: 40, differences: [] });
});

test('a cent off, a user missing from Redis and one only in Redis are exactly the differences', async () => {
  await diverge(redis);
  assert.deepEqual(await reconcile({ pool, redis }), {
    users: 41,
    differences: [
      { userId: 'user-1', postgresCents: sumOf('user-1'), redisCents: sumOf('user-1') + 1 },
      { userId: 'user-2', postgresCents: sumOf('user-2'), redisCents: 0 },
      { userId: 'user-ghost', postgresCents: 0, redisCents: 4_999 },
    ],
  });
});

test('no purchases and no totals: nothing to compare, nothing differs', async () => {
  assert.deepEqual(await reconcile({ pool, redis }), { users: 0, differences: [] });
});

/** Runs `npm run reconcile`'s entry point; resolves with its exit code and output. */
const runCli = async (env: Record<string, string>) => {
  const child = spawn(process.execPath, [`${ROOT}src/reconcile.ts`], {
    env: childEnv({ DATABASE_URL: database.url, REDIS_URL: cliRedisUrl, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'close')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
};

test('the CLI exits 1 listing the differences as decimals, and 0 once they are fixed', async () => {
  await diverge(cliRedis);
  const failed = await runCli({});
  assert.equal(failed.code, 1, failed.stderr);
  const lines = failed.stdout.split('\n');
  assert.match(lines[0] ?? '', /^3 of 41 users /);
  const rowOf = (userId: string) => lines.find((line) => line.startsWith(`"${userId}" `));
  assert.deepEqual(rowOf('user-1')?.split(/\s+/), [
    '"user-1"',
    centsToDecimal(sumOf('user-1')),
    centsToDecimal(sumOf('user-1') + 1),
  ]);
  assert.deepEqual(rowOf('user-2')?.split(/\s+/), [
    '"user-2"',
    centsToDecimal(sumOf('user-2')),
    '0.00',
  ]);
  assert.deepEqual(rowOf('user-ghost')?.split(/\s+/), ['"user-ghost"', '0.00', '49.99']);
  assert.equal(lines.filter((line) => line.startsWith('"')).length, 3);

  // Redis made to match: user-2's purchases applied, user-1's extra cent and the ghost
  // balanced by PostgreSQL purchases.
  await createWalletStore(cliRedis).apply(
    't',
    asRecords(
      purchases.filter((p) => p.userId === 'user-2'),
      10_000,
    ),
  );
  await createPurchaseStore(pool).save([
    { id: 'fix-1', userId: 'user-1', amountCents: 1 },
    { id: 'fix-ghost', userId: 'user-ghost', amountCents: 4_999 },
  ]);
  const fixed = await runCli({});
  assert.equal(fixed.code, 0, fixed.stderr);
  assert.equal(fixed.stdout, 'PostgreSQL and Redis agree on the totals of all 41 users.\n');
});

test('the CLI exits 2 with the reason on stderr when a store is unreachable', async () => {
  const result = await runCli({ REDIS_URL: 'redis://127.0.0.1:1' });
  assert.equal(result.code, 2);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /^reconcile failed: Redis unavailable: .*ECONNREFUSED/);
});
