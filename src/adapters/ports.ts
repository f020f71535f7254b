// The ports: the only view src/streams has of the stores. Adapters implement them;
// tests and users may implement them with fakes (see src/testing).
import type { Purchase } from '../purchase.ts';

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
}

/** Durable storage of purchases with a transactional outbox (PostgreSQL). */
export interface PurchaseStore {
  /**
   * Inserts the purchases whose ids are new and records them in the outbox, in one
   * transaction; ids already stored are left alone and reported in `existing`.
   */
  save(purchases: readonly Purchase[]): Promise<SaveResult>;
  /** Removes an outbox entry once Kafka has acknowledged every purchase in it. */
  markPublished(outboxId: string): Promise<void>;
}

/** The event log (Kafka topic `user_purchase`). */
export interface PurchasePublisher {
  /** Publishes the purchases, keyed by user; resolves once the broker acknowledged all. */
  publish(purchases: readonly Purchase[]): Promise<void>;
}
