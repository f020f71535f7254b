import type { WalletRecord } from '../core/ports.ts';

/** One record as the consumer read it, before decoding. */
export interface ConsumedRecord {
  readonly offset: string;
  readonly key: string | null;
  readonly value: Buffer | null;
}

/** The records one fetch returned for one partition, with where its reply goes (`ref`). */
export interface ConsumedBatch<R> {
  readonly ref: R;
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly ConsumedRecord[];
}

/** A record that is not a purchase event, and why. */
export interface PoisonRecord {
  readonly topic: string;
  readonly partition: number;
  readonly record: ConsumedRecord;
  readonly reason: string;
}

/** A consumed batch, decoded. */
export interface DecodedBatch<R> {
  readonly batch: ConsumedBatch<R>;
  readonly records: readonly WalletRecord[];
  readonly poison: readonly PoisonRecord[];
}

/** What applying one batch did; emitted once its offsets may be committed. */
export interface AppliedBatch<R> {
  readonly ref: R;
  readonly topic: string;
  readonly partition: number;
  readonly applied: number;
  readonly skipped: number;
  readonly poison: number;
  /** The offset to commit: one past the batch's last record. */
  readonly nextOffset: string;
}
