import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { SpendstreamError } from '../../core/errors.ts';
import { centsToDecimal, decimalToCents, type Purchase } from '../../core/purchase.ts';
import type { PurchaseStore, SaveResult, StoredPurchase } from '../../core/ports.ts';
import { translatePostgresError } from './errors.ts';

// Slonik 49 validates nothing at run time by default: these schemas only type the rows,
// so they cost nothing on the hot path.
const storedRow = z.object({
  id: z.string(),
  user_id: z.string(),
  amount: z.string(),
  outbox_id: z.string().nullable(),
});
const savedRow = z.object({
  batch_id: z.string().nullable(),
  ids: z.array(z.string()),
  stored: z.array(storedRow),
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
  const stored = { id: row.id, userId: row.user_id, amountCents };
  return row.outbox_id === null
    ? { ...stored, pendingPublish: false }
    : { ...stored, pendingPublish: true, pendingOutboxId: row.outbox_id };
};

/** Who writes the outbox entries of {@link createPurchaseStore}. */
export interface PurchaseStoreOptions {
  /** The ingest instance whose Kafka transactional ids publish the entries. */
  readonly owner?: string;
  /**
   * Per partition, an offset the topic has reached (read before each save), recorded on
   * the entry so that recovery reads the topic from there.
   */
  readonly scanFrom?: () => ReadonlyMap<number, string>;
}

const scanFromJson = (ends: ReadonlyMap<number, string> | undefined): string | null =>
  ends === undefined || ends.size === 0 ? null : JSON.stringify(Object.fromEntries(ends));

/**
 * Stores purchases with slonik: one multi-row insert and one outbox row per batch, in one
 * statement. An id repeated within a batch is stored as its first occurrence; it is then
 * in `inserted` (or `existing`, if stored before) and, for its later occurrences, in
 * `existing` as that first occurrence, so every purchase of the batch can be answered.
 */
export const createPurchaseStore = (
  pool: DatabasePool,
  { owner, scanFrom }: PurchaseStoreOptions = {},
): PurchaseStore => ({
  save: async (purchases: readonly Purchase[]): Promise<SaveResult> => {
    if (purchases.length === 0) return EMPTY;
    // Read before the statement runs: offsets the topic had reached before it commits.
    const from = scanFromJson(scanFrom?.());
    // Deduplicate here rather than in SQL: which occurrence wins is then defined (the
    // first), not whichever row unnest happens to offer PostgreSQL first.
    const unique = new Map<string, Purchase>();
    const repeated = new Set<string>();
    for (const purchase of purchases) {
      if (unique.has(purchase.id)) repeated.add(purchase.id);
      else unique.set(purchase.id, purchase);
    }
    // Sorted by id, so that two batches saved at once that share ids lock them in the
    // same order and cannot deadlock; `arrival` keeps the order the outbox entry records.
    let arrival = 0;
    const tuples = Array.from(unique.values(), (p) => [
      p.id,
      p.userId,
      centsToDecimal(p.amountCents),
      (arrival += 1),
    ]);
    tuples.sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1));
    try {
      // One statement, so one round trip and one implicit transaction: the purchases, the
      // outbox entry of those it inserted (same created_at), and — only when some ids
      // were already stored — those stored purchases as the statement's snapshot saw them,
      // with whether an outbox entry still holds them.
      const saved = await pool.one(sql.type(savedRow)`
        WITH input AS (
          SELECT * FROM ${sql.unnest(tuples, ['text', 'text', 'numeric', 'int4'])}
            AS input (id, user_id, amount, arrival)
        ), inserted AS (
          INSERT INTO purchases (id, user_id, amount)
          SELECT id, user_id, amount FROM input
          ON CONFLICT (id) DO NOTHING
          RETURNING id
        ), entry AS (
          INSERT INTO outbox (purchase_ids, owner, scan_from)
          SELECT array_agg(input.id ORDER BY input.arrival), ${owner ?? null}::text, ${from}::jsonb
          FROM inserted JOIN input USING (id)
          HAVING count(*) > 0
          RETURNING batch_id
        ), stored AS (
          SELECT p.id, p.user_id, p.amount::text AS amount, o.batch_id::text AS outbox_id
          FROM purchases p
          LEFT JOIN outbox o ON o.created_at = p.created_at AND p.id = ANY(o.purchase_ids)
          WHERE p.id IN (SELECT id FROM input)
            AND (SELECT count(*) FROM inserted) < (SELECT count(*) FROM input)
        )
        SELECT (SELECT batch_id::text FROM entry) AS batch_id,
               coalesce((SELECT array_agg(id) FROM inserted), '{}') AS ids,
               coalesce((SELECT json_agg(stored) FROM stored), '[]') AS stored`);
      const inserted = new Set(saved.ids);
      const existing = new Map<string, StoredPurchase>();
      for (const row of saved.stored) existing.set(row.id, toStored(row));
      if (inserted.size + existing.size < unique.size) {
        // Stored by a transaction that committed after this statement's snapshot was
        // taken (the insert waited for it): not in the snapshot, so asked for again.
        const late = [...unique.keys()].filter((id) => !inserted.has(id) && !existing.has(id));
        const rows = await pool.any(sql.type(storedRow)`
          SELECT p.id, p.user_id, p.amount, o.batch_id::text AS outbox_id
          FROM purchases p
          LEFT JOIN outbox o ON o.created_at = p.created_at AND p.id = ANY(o.purchase_ids)
          WHERE p.id = ANY(${sql.array(late, 'text')})`);
        for (const row of rows) existing.set(row.id, toStored(row));
      }
      // Later occurrences of an id inserted just now: stored as the first one, and
      // pending like the rest of this batch. Known without asking PostgreSQL.
      for (const id of repeated) {
        const first = unique.get(id);
        if (first !== undefined && inserted.has(id)) {
          existing.set(id, {
            ...first,
            pendingPublish: true,
            ...(saved.batch_id === null ? {} : { pendingOutboxId: saved.batch_id }),
          });
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

const backlogRow = z.object({
  entries: z.number(),
  oldest_age_seconds: z.number(),
  failing: z.number(),
});

/**
 * The outbox's size and the age of its oldest entry (PostgreSQL's clock). The outbox holds
 * only batches between commit and Kafka's ack, or left behind by a failure, so it is small.
 */
export const readOutboxBacklog = async (
  pool: DatabasePool,
): Promise<{ entries: number; oldestAgeSeconds: number; failing: number }> => {
  try {
    const row = await pool.one(sql.type(backlogRow)`
      SELECT count(*)::int AS entries,
             coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_age_seconds,
             count(*) FILTER (WHERE attempts > 0)::int AS failing
      FROM outbox`);
    return {
      entries: row.entries,
      oldestAgeSeconds: Math.max(0, row.oldest_age_seconds),
      failing: row.failing,
    };
  } catch (error) {
    throw translatePostgresError(error);
  }
};

const ownedRow = z.object({ id: z.string() });

/**
 * Which of `purchaseIds` are in outbox entries of `owner` that no recovery holds (entries
 * a recovery has locked are skipped, not waited for). An instance whose producer was made
 * ready after it saved a batch asks this before sending it: an entry found here can only
 * be taken over later, by a recovery that fences that producer first.
 */
export const readOwnedPending = async (
  pool: DatabasePool,
  owner: string,
  purchaseIds: readonly string[],
): Promise<Set<string>> => {
  if (purchaseIds.length === 0) return new Set();
  try {
    const rows = await pool.any(sql.type(ownedRow)`
      SELECT u.id
      FROM outbox o CROSS JOIN LATERAL unnest(o.purchase_ids) AS u(id)
      WHERE o.owner = ${owner}
        AND o.purchase_ids && ${sql.array(purchaseIds, 'text')}
        AND u.id = ANY(${sql.array(purchaseIds, 'text')})
      FOR SHARE OF o SKIP LOCKED`);
    return new Set(rows.map((row) => row.id));
  } catch (error) {
    throw translatePostgresError(error);
  }
};
