import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { migrate, readMigrations } from '../../src/adapters/postgres/migrations.ts';
import { createPostgresPool, ensureDatabase } from '../../src/adapters/postgres/pool.ts';
import { StoreUnavailableError } from '../../src/core/errors.ts';
import { createTestDatabase } from '../helpers.ts';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let pool: DatabasePool;

before(async () => {
  database = await createTestDatabase();
  pool = await createPostgresPool({ url: database.url, poolSize: 2 });
});

after(async () => {
  await pool.end();
  await database.drop();
});

test('ensureDatabase creates a missing database once', async () => {
  // createTestDatabase made it already: a second call finds it.
  assert.equal(await ensureDatabase(database.url), false);
  assert.equal(await pool.oneFirst(sql.type(z.object({ ok: z.number() }))`SELECT 1 AS ok`), 1);
});

test('migrations apply in order, are recorded, and apply only once', async () => {
  const files = await readMigrations();
  assert.ok(files.length > 0);
  assert.deepEqual(
    await migrate(pool),
    files.map((file) => file.version),
  );
  assert.deepEqual(await migrate(pool), []);
  const recorded = await pool.anyFirst(
    sql.type(
      z.object({ version: z.string() }),
    )`SELECT version FROM schema_migrations ORDER BY version`,
  );
  assert.deepEqual(
    recorded,
    files.map((file) => file.version),
  );
  const columns = await pool.anyFirst(
    sql.type(z.object({ column_name: z.string() }))`
      SELECT column_name FROM information_schema.columns WHERE table_name = 'purchases'`,
  );
  for (const column of ['id', 'user_id', 'amount', 'created_at']) {
    assert.ok(columns.includes(column), `purchases.${column} exists`);
  }
});

test('a migration edited after it was applied stops start-up', async () => {
  const [first, ...rest] = await readMigrations();
  assert.ok(first);
  await assert.rejects(
    migrate(pool, [{ ...first, text: `${first.text}\n-- edited`, checksum: 'edited' }, ...rest]),
    /changed after it was applied/,
  );
});

test('numeric money comes back exact, as a decimal string', async () => {
  await pool.query(sql.unsafe`
    INSERT INTO purchases (id, user_id, amount)
    VALUES ('exact-1', 'exact-user', 0.1), ('exact-2', 'exact-user', 0.2)`);
  const total = await pool.oneFirst(
    sql.type(z.object({ total: z.string() }))`
      SELECT sum(amount) AS total FROM purchases WHERE user_id = 'exact-user'`,
  );
  // With slonik's default preset this would be the float 0.30000000000000004 or 0.3.
  assert.equal(total, '0.30');
  const huge = await pool.oneFirst(
    sql.type(z.object({ value: z.string() }))`SELECT 90071992547409.93::numeric(16, 2) AS value`,
  );
  assert.equal(huge, '90071992547409.93');
});

test('an unreachable server is reported as a retryable unavailable error', async () => {
  await assert.rejects(
    async () => {
      const dead = await createPostgresPool({ url: 'postgres://postgres@127.0.0.1:1/pocdb' });
      try {
        await dead.query(sql.unsafe`SELECT 1`);
      } finally {
        await dead.end();
      }
    },
    (error: unknown) => {
      assert.ok(error instanceof StoreUnavailableError, String(error));
      assert.equal(error.code, 'unavailable');
      assert.equal(error.retryable, true);
      return true;
    },
  );
});
