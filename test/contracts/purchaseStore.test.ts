// The PurchaseStore contract against the published fake and against PostgreSQL (a database
// of this run's own, dropped afterwards).
import { after } from 'node:test';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import { createPostgresPool } from '../../src/adapters/postgres/pool.ts';
import { createPurchaseStore } from '../../src/adapters/postgres/purchaseStore.ts';
import { decimalToCents, type Purchase } from '../../src/core/purchase.ts';
import { createMemoryPurchaseStore } from '../../src/testing/index.ts';
import { createTestDatabase } from '../helpers.ts';
import { purchaseStoreContract, type StoredState } from './purchaseStore.contract.ts';

purchaseStoreContract('memory', () => {
  const store = createMemoryPurchaseStore();
  return Promise.resolve({
    store,
    readBack: () =>
      Promise.resolve({ purchases: new Map(store.rows), outbox: new Map(store.outbox) }),
    close: () => Promise.resolve(),
  });
});

// Created by the first PostgreSQL test, so the fake's tests need no server.
let database: Promise<{ pool: DatabasePool; drop: () => Promise<void> }> | undefined;
const migrated = () =>
  (database ??= (async () => {
    const { url, drop } = await createTestDatabase();
    const pool = await createPostgresPool({ url, poolSize: 4 });
    await migrate(pool);
    return { pool, drop };
  })());

after(async () => {
  if (database === undefined) return;
  const { pool, drop } = await database;
  await pool.end();
  await drop();
});

const purchaseRow = z.object({ id: z.string(), user_id: z.string(), amount: z.string() });
const outboxRow = z.object({ batch_id: z.string(), purchase_ids: z.array(z.string()) });

const readBack = async (pool: DatabasePool): Promise<StoredState> => {
  const rows = await pool.any(
    sql.type(purchaseRow)`SELECT id, user_id, amount::text AS amount FROM purchases`,
  );
  const entries = await pool.any(
    sql.type(outboxRow)`SELECT batch_id::text AS batch_id, purchase_ids FROM outbox`,
  );
  return {
    purchases: new Map(
      rows.map((row): [string, Purchase] => [
        row.id,
        { id: row.id, userId: row.user_id, amountCents: decimalToCents(row.amount) ?? NaN },
      ]),
    ),
    outbox: new Map(entries.map((entry) => [entry.batch_id, entry.purchase_ids])),
  };
};

purchaseStoreContract('postgres', async () => {
  const { pool } = await migrated();
  // Each test starts from empty tables; the tests of one file run one after another.
  await pool.query(sql.unsafe`TRUNCATE purchases, outbox`);
  return {
    store: createPurchaseStore(pool),
    readBack: () => readBack(pool),
    close: () => Promise.resolve(),
  };
});
