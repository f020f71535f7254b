import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { SpendstreamError } from '../../core/errors.ts';
import type { Logger } from '../../logger.ts';
import { decimalToCents } from '../../core/purchase.ts';
import type { PublishedPurchaseFinder, PurchasePublisher } from '../../core/ports.ts';
import { translatePostgresError } from './errors.ts';
import { type PurchaseEvent } from '../../core/purchaseEvent.ts';

/** What outbox recovery needs. */
export interface OutboxRecoveryDeps {
  readonly pool: DatabasePool;
  /** Tells which of the entries' purchases the topic holds already. */
  readonly topicScan: PublishedPurchaseFinder;
  readonly publisher: PurchasePublisher;
  /** The topic's name, for the log. */
  readonly topic: string;
  /** Entries younger than this may still be in the hands of a live ingest; leave them. */
  readonly minAgeMs: number;
  readonly logger?: Logger;
  /**
   * Whether this process still has the purchase in its own pipeline (saved, publish not
   * settled). Entries holding such a purchase are left alone whatever their age: the
   * pipeline publishes them, or fails them back into the outbox.
   */
  readonly isInFlight?: (purchaseId: string) => boolean;
}

/** What one recovery run did. */
export interface OutboxRecoveryResult {
  /** Outbox entries (batches) recovered and removed. */
  readonly entries: number;
  /** Purchases published by this run. */
  readonly published: number;
  /** Purchases found in the topic already, so not published again. */
  readonly alreadyInTopic: number;
  /** Entries that could not be published, set aside to be tried again after a backoff. */
  readonly failed: number;
}

const ENTRY_LIMIT = 500;
// Kafka timestamps come from the producer's clock, outbox times from PostgreSQL's.
const CLOCK_SLACK_MS = 60_000;

const NOTHING: OutboxRecoveryResult = Object.freeze({
  entries: 0,
  published: 0,
  alreadyInTopic: 0,
  failed: 0,
});
// An entry that failed waits 1, 2, 4 … s before its next try, at most this long.
const MAX_BACKOFF_SECONDS = 60;
const GIVE_UP_AFTER_FAILURES = 3;
const PUBLISH_BUDGET_MS = 20_000;
const retryRow = z.object({ attempts: z.number(), retry_in_seconds: z.number() });

const entryRow = z.object({ batch_id: z.string(), created_ms: z.number() });
const purchaseRow = z.object({
  batch_id: z.string(),
  id: z.string(),
  user_id: z.string(),
  amount: z.string(),
  created_at: z.number(),
});

/**
 * Publishes what PostgreSQL committed but Kafka may not have: outbox entries older than
 * `minAgeMs`, minus the purchases the topic already holds, then removes the entries.
 * Safe to run from several instances at once (entries are locked, skipped by others).
 */
export const recoverOutbox = async (deps: OutboxRecoveryDeps): Promise<OutboxRecoveryResult> => {
  const { pool, topicScan, publisher, topic, minAgeMs, logger } = deps;
  try {
    // One attempt only: a retried run would scan the topic again, which is safe but slow,
    // and the next periodic run does the same.
    return await pool.transaction(async (tx) => {
      const entries = await tx.any(sql.type(entryRow)`
        SELECT batch_id::text AS batch_id,
               (extract(epoch FROM created_at) * 1000)::float8 AS created_ms
        FROM outbox
        WHERE created_at <= now() - ${minAgeMs}::float8 * interval '1 millisecond'
          AND (next_attempt_at IS NULL OR next_attempt_at <= now())
        ORDER BY batch_id
        LIMIT ${ENTRY_LIMIT}
        FOR UPDATE SKIP LOCKED`);
      if (entries.length === 0) return NOTHING;
      const lockedIds = entries.map((entry) => entry.batch_id);
      const allRows = await tx.any(sql.type(purchaseRow)`
        SELECT o.batch_id::text AS batch_id, p.id, p.user_id, p.amount, p.created_at
        FROM outbox o
        CROSS JOIN LATERAL unnest(o.purchase_ids) WITH ORDINALITY AS u(id, position)
        JOIN purchases p ON p.id = u.id
        WHERE o.batch_id = ANY(${sql.array(lockedIds, 'int8')})
        ORDER BY o.batch_id, u.position`);
      const busy = new Set(
        allRows.filter((row) => deps.isInFlight?.(row.id) === true).map((row) => row.batch_id),
      );
      const batchIds = lockedIds.filter((id) => !busy.has(id));
      if (batchIds.length === 0) return NOTHING;
      const rows = allRows.filter((row) => !busy.has(row.batch_id));
      // In the order they were saved, so each user's purchases keep their order in the topic.
      const purchases = rows.map((row): PurchaseEvent => {
        const amountCents = decimalToCents(row.amount);
        if (amountCents === undefined) {
          throw new SpendstreamError('internal', `purchase ${row.id} has an unreadable amount`);
        }
        return {
          id: row.id,
          userId: row.user_id,
          amountCents,
          createdAt: new Date(row.created_at),
        };
      });
      const oldest = Math.min(
        ...entries.filter((entry) => !busy.has(entry.batch_id)).map((entry) => entry.created_ms),
      );
      const { found, scanned } = await topicScan.findPublished(
        Math.floor(oldest) - CLOCK_SLACK_MS,
        new Set(purchases.map((purchase) => purchase.id)),
      );
      // Entry by entry, so one that cannot be published holds up none of the others.
      const missing = new Map<string, PurchaseEvent[]>(batchIds.map((id) => [id, []]));
      for (const [index, purchase] of purchases.entries()) {
        if (!found.has(purchase.id)) missing.get(rows[index]?.batch_id ?? '')?.push(purchase);
      }
      const done: string[] = [];
      const failed: { readonly batchId: string; readonly error: unknown }[] = [];
      let published = 0;
      let failedInARow = 0;
      // The entries stay locked in this open transaction, which slonik ends after 60 s
      // idle: entries not reached in time wait, untouched, for the next run.
      const until = Date.now() + PUBLISH_BUDGET_MS;
      for (const [batchId, own] of missing) {
        if (Date.now() > until) break;
        try {
          // The publisher cuts it into sends the broker takes.
          await publisher.publish(own);
          done.push(batchId);
          published += own.length;
          failedInARow = 0;
        } catch (error) {
          failed.push({ batchId, error });
          failedInARow += 1;
          // Entries failing one after another say Kafka is down, not that they are bad:
          // the rest wait for the next run untouched.
          if (failedInARow >= GIVE_UP_AFTER_FAILURES) break;
        }
      }
      await tx.query(
        sql.unsafe`DELETE FROM outbox WHERE batch_id = ANY(${sql.array(done, 'int8')})`,
      );
      for (const { batchId, error } of failed) {
        const reason = error instanceof Error ? error.message : String(error);
        const retry = await tx.one(sql.type(retryRow)`
          UPDATE outbox
          SET attempts = attempts + 1,
              next_attempt_at = now() + least(2 ^ attempts, ${MAX_BACKOFF_SECONDS}) * interval '1 second',
              last_error = ${reason.slice(0, 1_000)}
          WHERE batch_id = ${batchId}::int8
          RETURNING attempts, extract(epoch FROM next_attempt_at - now())::float8 AS retry_in_seconds`);
        logger?.warn('outbox entry could not be published; set aside to retry', {
          topic,
          batchId,
          attempts: retry.attempts,
          retryInSeconds: Math.round(retry.retry_in_seconds),
          error,
        });
      }
      const result = {
        entries: done.length,
        published,
        alreadyInTopic: found.size,
        failed: failed.length,
      };
      logger?.info('outbox recovered', { ...result, topic, scannedRecords: scanned });
      return result;
    }, 1);
  } catch (error) {
    logger?.warn('outbox recovery failed', { topic, error });
    throw translatePostgresError(error);
  }
};
