// The ports: the only view src/streams has of the stores. Adapters implement them;
// tests and users may implement them with fakes (see src/testing).
import type { Purchase } from './purchase.ts';
import type { ConsumedRecord, PoisonRecord, WalletRecord } from './records.ts';

/** What PostgreSQL made of one batch. */
export interface SaveResult {
  /** The outbox entry recording the newly inserted purchases; null when none were new. */
  readonly outboxId: string | null;
  /** Ids inserted by this call. */
  readonly inserted: ReadonlySet<string>;
  /**
   * Purchases of this batch whose id was not new to this call, as they are stored: ids
   * stored before, and repeats of an id this call inserted (its first occurrence).
   */
  readonly existing: ReadonlyMap<string, StoredPurchase>;
}

/** A purchase as PostgreSQL holds it. */
export interface StoredPurchase extends Purchase {
  /** True while the purchase is committed but not yet acknowledged by Kafka. */
  readonly pendingPublish: boolean;
  /**
   * While pending, the outbox entry that holds it: the ingest that published that entry
   * itself knows the purchase is in Kafka even before the entry is cleared.
   */
  readonly pendingOutboxId?: string;
}

/** Durable storage of purchases with a transactional outbox (PostgreSQL). */
export interface PurchaseStore {
  /**
   * Inserts the purchases whose ids are new and records them in the outbox, in one
   * transaction; ids already stored are left alone and reported in `existing`.
   */
  save(purchases: readonly Purchase[]): Promise<SaveResult>;
  /** Removes outbox entries once Kafka has acknowledged every purchase in them. */
  markPublished(outboxIds: readonly string[]): Promise<void>;
}

/** The event log (Kafka topic `user_purchase`). */
export interface PurchasePublisher {
  /** Publishes the purchases, keyed by user; resolves once the broker acknowledged all. */
  publish(purchases: readonly Purchase[]): Promise<void>;
}

/** One outbox entry, as outbox recovery asks the event log about it. */
export interface OutboxEntryProbe {
  readonly purchases: readonly { readonly id: string; readonly userId: string }[];
  /** When the entry was committed (ms, PostgreSQL's clock). */
  readonly createdMs: number;
  /**
   * Per partition, an offset the topic had reached before the entry was committed: its
   * records, if any, lie above. Absent for entries from before offsets were recorded.
   */
  readonly scanFrom?: ReadonlyMap<number, string>;
  /**
   * Whether every publish of the entry was one transaction, so the topic holds all of
   * its purchases or none: finding one of them (in one partition) tells for all.
   */
  readonly atomic: boolean;
}

/** What the event log already holds, so outbox recovery publishes only what it lacks. */
export interface PublishedPurchaseFinder {
  /**
   * The ids of the entries' purchases found in the topic (read-committed, up to its end
   * when asked), and how many records were read to find them.
   */
  findPublished(
    entries: readonly OutboxEntryProbe[],
  ): Promise<{ readonly found: ReadonlySet<string>; readonly scanned: number }>;
}

/** Per-user spend totals as the wallet keeps them (Redis). */
export interface BalanceReader {
  /** The user's total in integer cents; 0 for a user never seen. */
  totalCents(userId: string): Promise<number>;
}

/** Where one partition's records in a call to {@link WalletStore.apply} begin and end. */
export interface PartitionSpan {
  readonly partition: number;
  /**
   * Where the records continue from: every bucket must already hold each record of the
   * partition before this offset, or it is reported lost and left untouched.
   */
  readonly from: string;
  /** One past them (the offset committed next): every bucket's marker is raised to it. */
  readonly to: string;
}

/** How {@link WalletStore.apply} applies a call's records. */
export interface ApplyOptions {
  /**
   * Per partition, where the records begin and end; checked against, then raised on,
   * every bucket's marker. Without spans no marker is checked or moved.
   */
  readonly spans?: readonly PartitionSpan[];
  /**
   * Only these buckets, as a repair does: records of other buckets' users are left out,
   * and every user seen is entered in its bucket's register again.
   */
  readonly buckets?: readonly number[];
}

/** A bucket found short of records it had held; the call applied nothing to it. */
export interface LostBucket {
  readonly bucket: number;
  readonly partition: number;
  /** The bucket's marker now: it holds every record of the partition before this offset. */
  readonly marker: string;
  /**
   * `behind`: the marker is below the span's `from` (writes lost, as a snapshot or a
   * replica behind loses them); `user`: a user it had is gone, so the store has put every
   * marker of the bucket back to 0, to be replayed from the start.
   */
  readonly reason: 'behind' | 'user';
}

/** What {@link WalletStore.apply} did. */
export interface ApplyResult {
  /** Records added to their user's total. */
  readonly applied: number;
  /** Records at or below their user's offset: applied before. */
  readonly skipped: number;
  /** Buckets that lost records; their records in the call are in neither count. */
  readonly lost: readonly LostBucket[];
}

/**
 * Per bucket, its marker of each partition asked for ('0' where it has none yet), or
 * undefined for a bucket whose own state is gone.
 */
export type BucketMarkers = ReadonlyMap<number, ReadonlyMap<number, string> | undefined>;

/** One user in a snapshot: their total and, per partition, the last offset it includes. */
export interface SnapshotUser {
  readonly userId: string;
  readonly totalCents: number;
  readonly offsets: ReadonlyMap<number, string>;
}

/**
 * A bucket's totals as a snapshot holds them: every record of a partition before its
 * marker is included in its users' totals (the users listed, or those of an earlier
 * snapshot of the bucket not changed since).
 */
export interface BucketSnapshot {
  readonly bucket: number;
  readonly markers: ReadonlyMap<number, string>;
  readonly users: readonly SnapshotUser[];
}

/** Per-user totals in integer cents, with exactly-once application (Redis). */
export interface WalletStore {
  /**
   * Applies records (any partitions of `topic`) in one pipelined round trip, atomically per
   * bucket: skips records at or below their user's last applied offset for the partition,
   * and with `spans` checks and raises every bucket's markers (see {@link ApplyOptions}).
   */
  apply(
    topic: string,
    records: readonly WalletRecord[],
    options?: ApplyOptions,
  ): Promise<ApplyResult>;
  /** Every bucket's markers of `partitions` of `topic`. */
  readMarkers(topic: string, partitions: readonly number[]): Promise<BucketMarkers>;
  /**
   * Whether this store holds the totals of `topic` in its current layout (false after data
   * loss, on first start, or for totals kept in an older layout).
   */
  isInitialised(topic: string): Promise<boolean>;
  /** Records that this store now holds (or is rebuilding) the totals of `topic`. */
  markInitialised(topic: string): Promise<void>;
  /**
   * The bucket's markers of `partitions` and the users changed since the last
   * {@link settleSnapshot} of them, read in one atomic step; undefined when the bucket's
   * own state is gone. Users taken and not settled are taken again by the next call.
   */
  takeSnapshot(
    topic: string,
    bucket: number,
    partitions: readonly number[],
  ): Promise<BucketSnapshot | undefined>;
  /** The users of a taken snapshot are stored: they count as changed no more. */
  settleSnapshot(bucket: number, userIds: readonly string[]): Promise<void>;
  /**
   * Brings the bucket up to `snapshot`: each user the snapshot holds further on than the
   * store gets the snapshot's total and offsets, then each marker is raised to the
   * snapshot's. A user the store holds further on is kept.
   */
  restore(topic: string, snapshot: BucketSnapshot): Promise<void>;
}

/** One fetch's worth of a stretch of a partition, as {@link PartitionReader} reads it. */
export interface PartitionPage {
  /** The records of the stretch in this fetch, in offset order. */
  readonly records: readonly ConsumedRecord[];
  /** One past the last offset the page covers, transaction markers included. */
  readonly next: string;
}

/** Reads stretches of the event log (Kafka) again, as the wallet's repairs do. */
export interface PartitionReader {
  /**
   * The records of `partition` at offsets from `from` up to `to` (excluded), one page per
   * fetch, read as the wallet's consumer reads them (committed transactions only); the
   * last page's `next` is `to`. Pages come as they are asked for.
   */
  read(topic: string, partition: number, from: string, to: string): AsyncIterable<PartitionPage>;
}

/** Brings buckets that lost records of a partition back up (the wallet's repair). */
export interface BucketRepairer {
  /**
   * Re-applies to the `lost` buckets of `partition` what they lack up to `to`; resolves
   * once each of their markers has reached it.
   */
  repair(topic: string, partition: number, lost: readonly LostBucket[], to: string): Promise<void>;
}

/** Where records that are not purchase events go (a Kafka dead-letter topic). */
export interface DeadLetterPublisher {
  /** Publishes the records with their origin and reason; resolves once acknowledged. */
  publish(records: readonly PoisonRecord[]): Promise<void>;
}

/** Commits a consumer group's position in a partition. */
export interface OffsetCommitter {
  /** Records that the group has applied everything before `offset`. */
  commit(topic: string, partition: number, offset: string): Promise<void>;
}
