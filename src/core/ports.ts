// The ports: the only view src/streams has of the stores. Adapters implement them;
// tests and users may implement them with fakes (see src/testing).
import type { Purchase } from './purchase.ts';
import type { PoisonRecord, WalletRecord } from './records.ts';

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

/** Per-user totals in integer cents, with exactly-once application (Redis). */
export interface WalletStore {
  /**
   * Applies records (any partitions of `topic`) in one pipelined round trip; per user,
   * atomically, skipping records at or below that user's last applied offset for their partition.
   */
  apply(
    topic: string,
    records: readonly WalletRecord[],
  ): Promise<{ applied: number; skipped: number }>;
  /** Whether this Redis holds the totals of `topic` (false after data loss or on first start). */
  isInitialised(topic: string): Promise<boolean>;
  /** Records that this Redis now holds (or is rebuilding) the totals of `topic`. */
  markInitialised(topic: string): Promise<void>;
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
