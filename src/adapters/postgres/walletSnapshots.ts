// Snapshots of the wallet's totals in PostgreSQL (migration 0004): per bucket, its markers
// and its users' totals with the offsets they include, bound to the Kafka topic's id.
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { SpendstreamError } from '../../core/errors.ts';
import type { BucketSnapshot, SnapshotUser } from '../../core/ports.ts';
import { translatePostgresError } from './errors.ts';

/** Advisory lock space of snapshot writes: one writer per (topic id, bucket) at a time. */
const SNAPSHOT_LOCK_SPACE = 0x5357_4c54;
/** Users written per statement. */
const WRITE_CHUNK = 5_000;

const lockedRow = z.object({ locked: z.boolean() });
const markersRow = z.object({ markers: z.record(z.string(), z.string()) });
const bucketRow = z.object({ bucket: z.number(), markers: z.record(z.string(), z.string()) });
const userRow = z.object({
  user_id: z.string(),
  total_cents: z.string(),
  offsets: z.record(z.string(), z.string()),
});

const toMap = (record: Readonly<Record<string, string>>): Map<number, string> =>
  new Map(Object.entries(record).map(([partition, offset]) => [Number(partition), offset]));

const toRecord = (map: ReadonlyMap<number, string>): Record<string, string> =>
  Object.fromEntries([...map].map(([partition, offset]) => [String(partition), offset]));

/** What {@link writeBucketSnapshot} did. */
export type SnapshotWrite =
  | { readonly outcome: 'written'; readonly snapshot: BucketSnapshot }
  /** Another wallet is writing this bucket's snapshot now. */
  | { readonly outcome: 'busy' }
  /** The store no longer holds the bucket (it lost it): nothing to write. */
  | { readonly outcome: 'lost' }
  /** The store holds the bucket less far than the stored snapshot (it is being repaired). */
  | { readonly outcome: 'behind'; readonly snapshot: BucketSnapshot };

/**
 * Writes one bucket's snapshot: under a lock of the bucket, `take` reads it from the
 * store (its markers and the users changed since the last one); the users and the markers
 * are then written in one transaction. A snapshot whose markers are below the stored
 * ones is not written: the store lost records and the stored snapshot holds more. Once
 * this resolves `written`, the caller settles the users taken.
 */
export const writeBucketSnapshot = async (
  pool: DatabasePool,
  ids: { readonly topicId: string; readonly topic: string },
  bucket: number,
  take: () => Promise<BucketSnapshot | undefined>,
): Promise<SnapshotWrite> => {
  try {
    return await pool.transaction(async (tx) => {
      const { locked } = await tx.one(sql.type(lockedRow)`
        SELECT pg_try_advisory_xact_lock(${SNAPSHOT_LOCK_SPACE}, hashtext(${ids.topicId} || ':' || ${bucket}::text)) AS locked`);
      if (!locked) return { outcome: 'busy' } as const;
      // Taken under the lock: a second writer must not take (and then settle) users this
      // one has taken and not yet stored.
      const snapshot = await take();
      if (snapshot === undefined) return { outcome: 'lost' } as const;
      const stored = await tx.maybeOne(sql.type(markersRow)`
        SELECT markers FROM wallet_snapshot_buckets
        WHERE topic_id = ${ids.topicId} AND bucket = ${bucket}`);
      for (const [partition, offset] of toMap(stored?.markers ?? {})) {
        if (BigInt(snapshot.markers.get(partition) ?? '0') < BigInt(offset)) {
          return { outcome: 'behind', snapshot } as const;
        }
      }
      for (let i = 0; i < snapshot.users.length; i += WRITE_CHUNK) {
        const chunk = snapshot.users.slice(i, i + WRITE_CHUNK);
        await tx.query(sql.unsafe`
          INSERT INTO wallet_snapshot_users (topic_id, user_id, bucket, total_cents, offsets)
          SELECT ${ids.topicId}, u.user_id, ${bucket}, u.total_cents, u.offsets::jsonb
          FROM ${sql.unnest(
            chunk.map((user) => [
              user.userId,
              String(user.totalCents),
              JSON.stringify(toRecord(user.offsets)),
            ]),
            ['text', 'int8', 'text'],
          )} AS u(user_id, total_cents, offsets)
          ON CONFLICT (topic_id, user_id) DO UPDATE
            SET total_cents = EXCLUDED.total_cents, offsets = EXCLUDED.offsets`);
      }
      await tx.query(sql.unsafe`
        INSERT INTO wallet_snapshot_buckets (topic_id, bucket, topic, markers, users)
        VALUES (${ids.topicId}, ${bucket}, ${ids.topic},
                ${JSON.stringify(toRecord(snapshot.markers))}::jsonb,
                (SELECT count(*) FROM wallet_snapshot_users
                 WHERE topic_id = ${ids.topicId} AND bucket = ${bucket}))
        ON CONFLICT (topic_id, bucket) DO UPDATE
          SET markers = EXCLUDED.markers, users = EXCLUDED.users, taken_at = now()`);
      return { outcome: 'written', snapshot } as const;
    });
  } catch (error) {
    throw translatePostgresError(error);
  }
};

/** Per bucket with a snapshot of topic `topicId`, its markers. */
export const readSnapshotMarkers = async (
  pool: DatabasePool,
  topicId: string,
): Promise<Map<number, ReadonlyMap<number, string>>> => {
  try {
    const rows = await pool.any(sql.type(bucketRow)`
      SELECT bucket, markers FROM wallet_snapshot_buckets WHERE topic_id = ${topicId}`);
    return new Map(rows.map((row) => [row.bucket, toMap(row.markers)]));
  } catch (error) {
    throw translatePostgresError(error);
  }
};

/** One bucket's snapshot of topic `topicId`, or undefined if none was written. */
export const readBucketSnapshot = async (
  pool: DatabasePool,
  topicId: string,
  bucket: number,
): Promise<BucketSnapshot | undefined> => {
  try {
    // One transaction: the markers and the users as one snapshot left them.
    return await pool.transaction(async (tx) => {
      const head = await tx.maybeOne(sql.type(markersRow)`
        SELECT markers FROM wallet_snapshot_buckets
        WHERE topic_id = ${topicId} AND bucket = ${bucket}
        FOR SHARE`);
      if (head === null) return undefined;
      const rows = await tx.any(sql.type(userRow)`
        SELECT user_id, total_cents::text AS total_cents, offsets
        FROM wallet_snapshot_users WHERE topic_id = ${topicId} AND bucket = ${bucket}`);
      const users: SnapshotUser[] = rows.map((row) => {
        const cents = Number(row.total_cents);
        if (!Number.isSafeInteger(cents)) {
          throw new SpendstreamError('internal', `snapshot total of ${row.user_id} is unreadable`);
        }
        return { userId: row.user_id, totalCents: cents, offsets: toMap(row.offsets) };
      });
      return { bucket, markers: toMap(head.markers), users };
    });
  } catch (error) {
    throw translatePostgresError(error);
  }
};
