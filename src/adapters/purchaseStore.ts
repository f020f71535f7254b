import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { SpendstreamError } from '../errors.ts';
import { centsToDecimal, decimalToCents, type Purchase } from '../purchase.ts';
import type { PurchaseStore, SaveResult, StoredPurchase } from './ports.ts';
import { translatePostgresError } from './postgresErrors.ts';

// Slonik 49 validates nothing at run time by default: these schemas only type the rows,
// so they cost nothing on the hot path.
const savedRow = z.object({ batch_id: z.string().nullable(), ids: z.array(z.string()) });
const storedRow = z.object({
  id: z.string(),
  user_id: z.string(),
  amount: z.string(),
  pending: z.boolean(),
});

const EMPTY: SaveResult = Object.freeze({
  outboxId: null,
  inserted: new Set<string>(),
  existing: new Map<string, StoredPurchase>(),
});

const toStored = (row: z.infer<typeof storedRow>): StoredPurchase => {
  const amountCents = decimalToCents(row.amount);
  if (amountCents === undefined) {
    throw new SpendstreamError(
      'internal',
      `purchase ${row.id} has an unreadable amount ${row.amount}`,
    );
  }
  return { id: row.id, userId: row.user_id, amountCents, pendingPublish: row.pending };
};

/**
 * Stores purchases with slonik: one multi-row insert and one outbox row per batch, in one
 * statement. An id repeated within a batch is stored as its first occurrence; it is then
 * in `inserted` (or `existing`, if stored before) and, for its later occurrences, in
 * `existing` as that first occurrence, so every purchase of the batch can be answered.
 */
export const createPurchaseStore = (pool: DatabasePool): PurchaseStore => ({
  save: async (purchases: readonly Purchase[]): Promise<SaveResult> => {
    if (purchases.length === 0) return EMPTY;
    // Deduplicate here rather than in SQL: which occurrence wins is then defined (the
    // first), not whichever row unnest happens to offer PostgreSQL first.
    const unique = new Map<string, Purchase>();
    const repeated = new Set<string>();
    for (const purchase of purchases) {
      if (unique.has(purchase.id)) repeated.add(purchase.id);
      else unique.set(purchase.id, purchase);
    }
    // Sorted by id, so that two batches saved at once that share ids lock them in the
    // same order and cannot deadlock.
    const tuples = Array.from(unique.values(), (p) => [
      p.id,
      p.userId,
      centsToDecimal(p.amountCents),
    ]);
    tuples.sort((a, b) => ((a[0] ?? '') < (b[0] ?? '') ? -1 : 1));
    try {
      // One statement, so one round trip and one implicit transaction: the purchases and
      // the outbox entry of those it inserted, with the same created_at.
      const saved = await pool.one(sql.type(savedRow)`
        WITH inserted AS (
          INSERT INTO purchases (id, user_id, amount)
          SELECT * FROM ${sql.unnest(tuples, ['text', 'text', 'numeric'])}
          ON CONFLICT (id) DO NOTHING
          RETURNING id
        ), entry AS (
          INSERT INTO outbox (purchase_ids)
          SELECT array_agg(id) FROM inserted HAVING count(*) > 0
          RETURNING batch_id
        )
        SELECT (SELECT batch_id::text FROM entry) AS batch_id,
               coalesce((SELECT array_agg(id) FROM inserted), '{}') AS ids`);
      const inserted = new Set(saved.ids);
      const existing = new Map<string, StoredPurchase>();
      if (inserted.size < purchases.length) {
        const known = [...unique.keys()].filter((id) => !inserted.has(id));
        if (known.length > 0) {
          // A purchase and its outbox entry get the same created_at (now() of the one
          // transaction that wrote both), so the join finds the entry by time rather than
          // by searching every pending array for the id, which is slow with a long outbox.
          const rows = await pool.any(sql.type(storedRow)`
            SELECT p.id, p.user_id, p.amount, o.batch_id IS NOT NULL AS pending
            FROM purchases p
            LEFT JOIN outbox o ON o.created_at = p.created_at AND p.id = ANY(o.purchase_ids)
            WHERE p.id = ANY(${sql.array(known, 'text')})`);
          for (const row of rows) existing.set(row.id, toStored(row));
        }
        // Later occurrences of an id inserted just now: stored as the first one, and
        // pending like the rest of this batch. Known without asking PostgreSQL.
        for (const id of repeated) {
          const first = unique.get(id);
          if (first !== undefined && inserted.has(id)) {
            existing.set(id, { ...first, pendingPublish: true });
          }
        }
      }
      return { outboxId: saved.batch_id, inserted, existing };
    } catch (error) {
      throw translatePostgresError(error);
    }
  },

  markPublished: async (outboxIds: readonly string[]): Promise<void> => {
    if (outboxIds.length === 0) return;
    try {
      await pool.query(
        sql.unsafe`DELETE FROM outbox WHERE batch_id = ANY(${sql.array(outboxIds, 'int8')})`,
      );
    } catch (error) {
      throw translatePostgresError(error);
    }
  },
});
