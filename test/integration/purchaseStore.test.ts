import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import { createPostgresPool } from '../../src/adapters/postgres/pool.ts';
import { createPurchaseStore } from '../../src/adapters/postgres/purchaseStore.ts';
import type { PurchaseStore } from '../../src/core/ports.ts';
import { centsToDecimal, type Purchase } from '../../src/core/purchase.ts';
import { createTestDatabase } from '../helpers.ts';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let pool: DatabasePool;
let store: PurchaseStore;

before(async () => {
  database = await createTestDatabase();
  pool = await createPostgresPool({ url: database.url, poolSize: 4 });
  await migrate(pool);
  store = createPurchaseStore(pool);
});

after(async () => {
  await pool.end();
  await database.drop();
});

const outboxIds = async (outboxId: string): Promise<string[]> =>
  pool.oneFirst(
    sql.type(z.object({ purchase_ids: z.array(z.string()) }))`
      SELECT purchase_ids FROM outbox WHERE batch_id = ${outboxId}::bigint`,
  );

const outboxCount = async (): Promise<number> =>
  pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM outbox`);

test('batches are stored exactly, each with an outbox entry of exactly its ids', async () => {
  const purchases: Purchase[] = Array.from({ length: 2_000 }, (_, i) => ({
    id: `bulk-${i}`,
    userId: `user-${i % 37}`,
    // 1 cent up to 1,000,000.00: every amount shape, including 0.01 and round units.
    amountCents: i === 0 ? 100_000_000 : 1 + ((i * 7_919) % 2_500_000),
  }));
  const batches = [purchases.slice(0, 700), purchases.slice(700, 1_700), purchases.slice(1_700)];
  for (const batch of batches) {
    const result = await store.save(batch);
    assert.equal(result.inserted.size, batch.length);
    assert.equal(result.existing.size, 0);
    assert.ok(result.outboxId !== null);
    assert.deepEqual((await outboxIds(result.outboxId)).sort(), batch.map((p) => p.id).sort());
  }
  assert.equal(await outboxCount(), 3);

  const rows = await pool.any(
    sql.type(z.object({ id: z.string(), user_id: z.string(), amount: z.string() }))`
      SELECT id, user_id, amount FROM purchases WHERE id LIKE 'bulk-%'`,
  );
  const stored = new Map(rows.map((row) => [row.id, row]));
  assert.equal(stored.size, purchases.length);
  for (const purchase of purchases) {
    const row = stored.get(purchase.id);
    assert.deepEqual(row, {
      id: purchase.id,
      user_id: purchase.userId,
      amount: centsToDecimal(purchase.amountCents),
    });
  }
  assert.equal(stored.get('bulk-0')?.amount, '1000000.00');
});

test('a re-sent id is reported as stored, pending until its batch is marked published', async () => {
  const original = { id: 'resend-1', userId: 'resend-user', amountCents: 4_999 };
  const first = await store.save([original]);
  assert.deepEqual([...first.inserted], ['resend-1']);
  assert.ok(first.outboxId !== null);

  // The client retries with a different amount: the stored purchase wins, as stored.
  const fresh = { id: 'resend-2', userId: 'resend-user', amountCents: 100 };
  const second = await store.save([{ ...original, amountCents: 1 }, fresh]);
  assert.deepEqual([...second.inserted], ['resend-2']);
  // Pending in the entry the first save wrote, which the store names.
  assert.deepEqual(second.existing.get('resend-1'), {
    ...original,
    pendingPublish: true,
    pendingOutboxId: first.outboxId,
  });
  assert.ok(second.outboxId !== null);
  assert.deepEqual(await outboxIds(second.outboxId), ['resend-2']);

  await store.markPublished([first.outboxId]);
  const third = await store.save([original]);
  assert.equal(third.outboxId, null);
  assert.equal(third.inserted.size, 0);
  assert.deepEqual(third.existing.get('resend-1'), { ...original, pendingPublish: false });
  // resend-2's batch was never marked: still pending.
  const fourth = await store.save([fresh]);
  assert.equal(fourth.existing.get('resend-2')?.pendingPublish, true);
  await store.markPublished([second.outboxId]);
  const fifth = await store.save([fresh]);
  assert.equal(fifth.existing.get('resend-2')?.pendingPublish, false);
});

test('an id repeated within one batch is stored once, as its first occurrence', async () => {
  const result = await store.save([
    { id: 'twice-1', userId: 'twice-user', amountCents: 250 },
    { id: 'twice-2', userId: 'twice-user', amountCents: 300 },
    { id: 'twice-1', userId: 'twice-user', amountCents: 999 },
  ]);
  assert.deepEqual([...result.inserted].sort(), ['twice-1', 'twice-2']);
  assert.ok(result.outboxId !== null);
  assert.deepEqual((await outboxIds(result.outboxId)).sort(), ['twice-1', 'twice-2']);
  // The later occurrence learns what was stored for its id.
  assert.deepEqual(result.existing.get('twice-1'), {
    id: 'twice-1',
    userId: 'twice-user',
    amountCents: 250,
    pendingPublish: true,
    pendingOutboxId: result.outboxId,
  });
  const amounts = await pool.anyFirst(
    sql.type(z.object({ amount: z.string() }))`
      SELECT amount FROM purchases WHERE user_id = 'twice-user' ORDER BY id`,
  );
  assert.deepEqual(amounts, ['2.50', '3.00']);
});

test('money adds up exactly in SQL: 0.10 + 0.20 = 0.30', async () => {
  await store.save([
    { id: 'exact-a', userId: 'exact-user', amountCents: 10 },
    { id: 'exact-b', userId: 'exact-user', amountCents: 20 },
  ]);
  const total = await pool.oneFirst(
    sql.type(z.object({ total: z.string() }))`
      SELECT sum(amount)::text AS total FROM purchases WHERE user_id = 'exact-user'`,
  );
  assert.equal(total, '0.30');
});

test('an empty batch touches nothing', async () => {
  const before = await outboxCount();
  const result = await store.save([]);
  assert.deepEqual(result, { outboxId: null, inserted: new Set(), existing: new Map() });
  assert.equal(await outboxCount(), before);
});

test('a purchase PostgreSQL refuses fails the whole batch, translated', async () => {
  const before = await outboxCount();
  await assert.rejects(
    store.save([
      { id: 'refused-ok', userId: 'refused-user', amountCents: 100 },
      { id: 'refused-zero', userId: 'refused-user', amountCents: 0 },
    ]),
    (error: unknown) => {
      assert.ok(error instanceof Error && 'code' in error, String(error));
      assert.equal(error.code, 'internal');
      return true;
    },
  );
  assert.equal(await outboxCount(), before);
  assert.equal(
    await pool.exists(sql.unsafe`SELECT 1 FROM purchases WHERE id = 'refused-ok'`),
    false,
  );
});

test('the outbox entry lists the purchases in arrival order, whatever their ids', async () => {
  const batch: Purchase[] = ['order-z', 'order-b', 'order-m', 'order-a'].map((id, i) => ({
    id,
    userId: 'order-user',
    amountCents: 100 + i,
  }));
  const result = await store.save(batch);
  assert.ok(result.outboxId !== null);
  // Recovery publishes an entry in this order, so a user's purchases keep theirs.
  assert.deepEqual(await outboxIds(result.outboxId), ['order-z', 'order-b', 'order-m', 'order-a']);
});

test('saves that run at once and share ids neither deadlock nor lose an answer', async () => {
  const shared = Array.from({ length: 300 }, (_, i) => ({
    id: `race-${String(i).padStart(3, '0')}`,
    userId: `race-user-${i % 5}`,
    amountCents: 500 + i,
  }));
  // The same purchases in opposite orders, plus some of each save's own.
  const first = [...shared, { id: 'race-own-1', userId: 'race-user-0', amountCents: 1 }];
  const second = [...shared]
    .reverse()
    .concat({ id: 'race-own-2', userId: 'race-user-1', amountCents: 2 });
  const [a, b] = await Promise.all([store.save(first), store.save(second)]);
  for (const purchase of shared) {
    const insertedOnce = Number(a.inserted.has(purchase.id)) + Number(b.inserted.has(purchase.id));
    assert.equal(insertedOnce, 1, `${purchase.id} inserted by exactly one save`);
    const other = a.inserted.has(purchase.id) ? b : a;
    const winner = a.inserted.has(purchase.id) ? a : b;
    assert.deepEqual(other.existing.get(purchase.id), {
      ...purchase,
      pendingPublish: true,
      pendingOutboxId: winner.outboxId,
    });
  }
  assert.ok(a.inserted.has('race-own-1') && b.inserted.has('race-own-2'));
});
