// The records that cross between the Kafka consumer, the wallet pipeline and its stores.
import { SpendstreamError } from './errors.ts';

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
  /**
   * The first offset the fetch returned, transaction markers included: where the batch
   * continues from. The first record's offset when not given.
   */
  readonly fromOffset?: string;
  /**
   * One past the last offset the fetch returned, transaction markers included: where the
   * next fetch begins, and the offset to commit. One past the last record when not given;
   * when given, the batch may hold no records at all (a fetch of nothing but transaction
   * markers and aborted records).
   */
  readonly nextOffset?: string;
  /**
   * Which assignment of the partition to this consumer the batch came in: a new number
   * after every rebalance, so that a batch is known to follow the previous one only
   * within the same assignment. 0 when not given.
   */
  readonly assignment?: number;
}

/** A record that is not a purchase event, and why. */
export interface PoisonRecord {
  readonly topic: string;
  readonly partition: number;
  readonly record: ConsumedRecord;
  readonly reason: string;
}

/** One purchase event as the wallet applies it. */
export interface WalletRecord {
  readonly partition: number;
  /** The Kafka offset, as kafkajs gives it (a decimal string). */
  readonly offset: string;
  readonly userId: string;
  readonly amountCents: number;
}

const OFFSET = /^\d{1,16}$/;

/**
 * Refuses a record the store cannot apply exactly. Checked before anything is sent, so a
 * malformed record fails the whole batch untouched instead of the users before it.
 */
export const checkWalletRecord = (record: WalletRecord): void => {
  if (
    !Number.isSafeInteger(record.amountCents) ||
    !Number.isSafeInteger(record.partition) ||
    record.partition < 0 ||
    !OFFSET.test(record.offset) ||
    !Number.isSafeInteger(Number(record.offset))
  ) {
    throw new SpendstreamError(
      'internal',
      `wallet record not applicable: partition ${record.partition}, offset ${record.offset}, ` +
        `cents ${record.amountCents}`,
    );
  }
};
