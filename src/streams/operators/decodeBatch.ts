import { map, type OperatorFunction } from 'rxjs';
import type { WalletRecord } from '../../core/records.ts';
import type { Purchase } from '../../core/purchase.ts';
import type { DecodedBatch } from '../walletTypes.ts';
import type { ConsumedBatch, PoisonRecord } from '../../core/records.ts';

/** Reads one record value as a purchase; throws on anything else. */
export type PurchaseDecoder = (value: Buffer, fallbackId: string) => Purchase;

/**
 * Decodes each consumed batch into wallet records, setting aside the records that are
 * not purchase events (poison) instead of failing: one bad record must not block its
 * partition.
 */
export const decodeBatch = <R>(
  decode: PurchaseDecoder,
): OperatorFunction<ConsumedBatch<R>, DecodedBatch<R>> =>
  map((batch) => {
    const records: WalletRecord[] = [];
    const poison: PoisonRecord[] = [];
    for (const record of batch.records) {
      try {
        if (record.value === null) throw new Error('the record has no value');
        const purchase = decode(record.value, `${batch.topic}/${batch.partition}/${record.offset}`);
        records.push({
          partition: batch.partition,
          offset: record.offset,
          userId: purchase.userId,
          amountCents: purchase.amountCents,
        });
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        poison.push({ topic: batch.topic, partition: batch.partition, record, reason });
      }
    }
    return { batch, records, poison };
  });
