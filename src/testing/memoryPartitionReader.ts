import type { PartitionPage, PartitionReader } from '../core/ports.ts';
import type { ConsumedBatch, ConsumedRecord } from '../core/records.ts';

/** An in-memory event log that a repair reads stretches of again. */
export interface MemoryPartitionReader extends PartitionReader {
  /** Appends the batches' records to their partitions (as the topic held them). */
  append(batches: readonly ConsumedBatch<unknown>[]): void;
  /** Every read asked for, in order: `[topic, partition, from, to]`. */
  readonly reads: readonly (readonly [string, number, string, string])[];
}

/**
 * Creates a {@link MemoryPartitionReader}: pages of at most `pageSize` records, each
 * ending one past its last record, the last one at `to`. Like a topic whose retention
 * removed its oldest records, a stretch begins no lower than the partition's first
 * record.
 */
export const createMemoryPartitionReader = (pageSize = 100): MemoryPartitionReader => {
  const partitions = new Map<string, ConsumedRecord[]>();
  const reads: [string, number, string, string][] = [];
  return {
    reads,
    append: (batches) => {
      for (const batch of batches) {
        const key = `${batch.topic}:${batch.partition}`;
        const log = partitions.get(key) ?? [];
        log.push(...batch.records);
        log.sort((a, b) => (BigInt(a.offset) < BigInt(b.offset) ? -1 : 1));
        partitions.set(key, log);
      }
    },
    read: async function* (topic, partition, from, to) {
      reads.push([topic, partition, from, to]);
      const end = BigInt(to);
      const log = (partitions.get(`${topic}:${partition}`) ?? []).filter(
        (record) => BigInt(record.offset) >= BigInt(from) && BigInt(record.offset) < end,
      );
      if (BigInt(from) >= end) return;
      for (let i = 0; i < log.length; i += pageSize) {
        const records = log.slice(i, i + pageSize);
        const isLast = i + pageSize >= log.length;
        const lastRecord = records[records.length - 1];
        const page: PartitionPage = {
          records,
          next:
            isLast || lastRecord === undefined ? to : (BigInt(lastRecord.offset) + 1n).toString(),
        };
        await Promise.resolve();
        yield page;
      }
      if (log.length === 0) yield { records: [], next: to };
    },
  };
};
