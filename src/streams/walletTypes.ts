import type { ConsumedBatch, PoisonRecord, WalletRecord } from '../core/records.ts';

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
