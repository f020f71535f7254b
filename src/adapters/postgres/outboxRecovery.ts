import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { SpendstreamError } from '../../core/errors.ts';
import type { Logger } from '../../logger.ts';
import { decimalToCents } from '../../core/purchase.ts';
import type {
  OutboxEntryProbe,
  PublishedPurchaseFinder,
  PurchasePublisher,
} from '../../core/ports.ts';
import { translatePostgresError } from './errors.ts';
import { type PurchaseEvent } from '../../core/purchaseEvent.ts';

/** The publisher one owner's entries go out through, for one recovery run. */
export interface OwnerPublisher {
  readonly publisher: PurchasePublisher;
  /** Called once the run is done with it. */
  release(): Promise<void>;
}

/** What outbox recovery needs. */
export interface OutboxRecoveryDeps {
  readonly pool: DatabasePool;
  /** Tells which of the entries' purchases the topic holds already. */
  readonly topicScan: PublishedPurchaseFinder;
  /** The topic's name, for the log. */
  readonly topic: string;
  /**
   * Entries younger than this may still be in the hands of a live ingest; leave them. An
   * instance silent for as long (see `ingest_instances`) has its entries taken over.
   */
  readonly minAgeMs: number;
  /** This ingest instance: its own entries are recovered without a takeover. */
  readonly instanceId: string;
  /**
   * Fences `owner` — makes final every Kafka transaction that may have published its
   * entries: for another instance, by initialising its transactional ids; for this one,
   * what its own pipeline left open — and resolves the publisher its entries go out
   * through, in transactions that a later takeover fences in turn. Entries without an
   * owner (from before owners were recorded) ask for `null`.
   */
  readonly takeOver: (owner: string | null) => Promise<OwnerPublisher>;
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
  /** Of `entries`, those another (silent) instance had saved. */
  readonly takenOver: number;
}

const ENTRY_LIMIT = 500;
// Any fixed 32-bit number: the namespace of the per-owner advisory locks.
const TAKEOVER_LOCK_SPACE = 7_315;

const NOTHING: OutboxRecoveryResult = Object.freeze({
  entries: 0,
  published: 0,
  alreadyInTopic: 0,
  failed: 0,
  takenOver: 0,
});
// An entry that failed waits 1, 2, 4 … s before its next try, at most this long.
const MAX_BACKOFF_SECONDS = 60;
const GIVE_UP_AFTER_FAILURES = 3;
const PUBLISH_BUDGET_MS = 20_000;
const retryRow = z.object({ attempts: z.number(), retry_in_seconds: z.number() });

const entryRow = z.object({
  batch_id: z.string(),
  created_ms: z.number(),
  owner: z.string().nullable(),
  scan_from: z.record(z.string(), z.string()).nullable(),
});
const lockedRow = z.object({ locked: z.boolean() });
const purchaseRow = z.object({
  batch_id: z.string(),
  id: z.string(),
  user_id: z.string(),
  amount: z.string(),
  created_at: z.number(),
});

/**
 * Publishes what PostgreSQL committed but Kafka may not have: outbox entries older than
 * `minAgeMs` — this instance's, those without an owner, and those of instances silent for
 * as long — minus the purchases the topic already holds, then removes the entries. Each
 * owner is fenced before the topic is read, so nothing it sends afterwards can land.
 * Safe to run from several instances at once: entries are locked and skipped by others,
 * and one owner is taken over by one instance at a time.
 */
export const recoverOutbox = async (deps: OutboxRecoveryDeps): Promise<OutboxRecoveryResult> => {
  const { pool, topicScan, topic, minAgeMs, instanceId, logger } = deps;
  const publishers = new Map<string | null, OwnerPublisher>();
  try {
    // One attempt only: a retried run would scan the topic again, which is safe but slow,
    // and the next periodic run does the same.
    return await pool.transaction(async (tx) => {
      const entries = await tx.any(sql.type(entryRow)`
        SELECT o.batch_id::text AS batch_id,
               (extract(epoch FROM o.created_at) * 1000)::float8 AS created_ms,
               o.owner, o.scan_from
        FROM outbox o
        WHERE o.created_at <= now() - ${minAgeMs}::float8 * interval '1 millisecond'
          AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= now())
          AND (o.owner IS NULL OR o.owner = ${instanceId} OR NOT EXISTS (
            SELECT 1 FROM ingest_instances i
            WHERE i.id = o.owner
              AND i.seen_at > now() - ${minAgeMs}::float8 * interval '1 millisecond'))
        ORDER BY o.batch_id
        LIMIT ${ENTRY_LIMIT}
        FOR UPDATE OF o SKIP LOCKED`);
      if (entries.length === 0) return NOTHING;
      // One taker per silent owner: two would fence each other's sends.
      const owners = new Set(entries.map((entry) => entry.owner));
      for (const owner of owners) {
        if (owner === null || owner === instanceId) continue;
        const { locked } = await tx.one(sql.type(lockedRow)`
          SELECT pg_try_advisory_xact_lock(${TAKEOVER_LOCK_SPACE}, hashtext(${owner})) AS locked`);
        if (!locked) owners.delete(owner);
      }
      const lockedIds = entries
        .filter((entry) => owners.has(entry.owner))
        .map((entry) => entry.batch_id);
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
      const chosen = entries.filter(
        (entry) => owners.has(entry.owner) && !busy.has(entry.batch_id),
      );
      if (chosen.length === 0) return NOTHING;
      // In the order they were saved, so each user's purchases keep their order in the topic.
      const byEntry = new Map<string, PurchaseEvent[]>(chosen.map((e) => [e.batch_id, []]));
      for (const row of allRows) {
        const amountCents = decimalToCents(row.amount);
        if (amountCents === undefined) {
          throw new SpendstreamError('internal', `purchase ${row.id} has an unreadable amount`);
        }
        byEntry.get(row.batch_id)?.push({
          id: row.id,
          userId: row.user_id,
          amountCents,
          createdAt: new Date(row.created_at),
        });
      }
      // Fenced first, read after: whatever an owner sent before is final by then.
      for (const owner of new Set(chosen.map((entry) => entry.owner))) {
        publishers.set(owner, await deps.takeOver(owner));
      }
      const { found, scanned } = await topicScan.findPublished(
        chosen.map((entry): OutboxEntryProbe => ({
          purchases: byEntry.get(entry.batch_id) ?? [],
          createdMs: entry.created_ms,
          atomic: entry.owner !== null,
          ...(entry.scan_from === null
            ? {}
            : {
                scanFrom: new Map(
                  Object.entries(entry.scan_from).map(([p, offset]) => [Number(p), offset]),
                ),
              }),
        })),
      );
      const done: string[] = [];
      const failed: { readonly batchId: string; readonly error: unknown }[] = [];
      let published = 0;
      let takenOver = 0;
      let failedInARow = 0;
      // The entries stay locked in this open transaction, which slonik ends after 60 s
      // idle: entries not reached in time wait, untouched, for the next run.
      const until = Date.now() + PUBLISH_BUDGET_MS;
      for (const entry of chosen) {
        if (Date.now() > until) break;
        const missing = (byEntry.get(entry.batch_id) ?? []).filter((p) => !found.has(p.id));
        try {
          // The publisher cuts it into sends the broker takes.
          await publishers.get(entry.owner)?.publisher.publish(missing);
          done.push(entry.batch_id);
          published += missing.length;
          if (entry.owner !== null && entry.owner !== instanceId) takenOver += 1;
          failedInARow = 0;
        } catch (error) {
          failed.push({ batchId: entry.batch_id, error });
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
        takenOver,
      };
      logger?.info('outbox recovered', { ...result, topic, scannedRecords: scanned });
      return result;
    }, 1);
  } catch (error) {
    logger?.warn('outbox recovery failed', { topic, error });
    throw translatePostgresError(error);
  } finally {
    for (const owner of publishers.values()) await owner.release().catch(() => undefined);
  }
};
