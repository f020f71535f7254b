import type { Admin, Kafka } from 'kafkajs';
import type {
  OutboxEntryProbe,
  PartitionReader,
  PublishedPurchaseFinder,
} from '../../core/ports.ts';
import type { ConsumedRecord } from '../../core/records.ts';
import { StoreUnavailableError } from '../../core/errors.ts';
import { decodePurchaseEvent } from '../../core/purchaseEvent.ts';
import { translateKafkaError } from './client.ts';
import { createPartitionReader } from './partitionReader.ts';
import { partitionForKey } from './partitioner.ts';

/** Offsets `[start, high)` of one partition to read. */
interface PartitionRange {
  readonly start: bigint;
  readonly high: bigint;
}

const purchaseIdOf = (record: ConsumedRecord): string | undefined => {
  if (record.value === null) return undefined;
  try {
    return decodePurchaseEvent(record.value).id;
  } catch {
    // Not a purchase this service can read, so not one of those looked for.
    return undefined;
  }
};

// Kafka timestamps come from the producer's clock, outbox times from PostgreSQL's.
const CLOCK_SLACK_MS = 60_000;

/**
 * Which ranges to read for `entries`, and which ids to look for in them. An atomic entry
 * with recorded offsets needs one partition: of those its purchases went to, the one with
 * the fewest records since its recorded offset. Any other entry needs every partition its
 * purchases went to, from a minute before it was committed.
 */
const planScan = async (
  admin: Admin,
  topic: string,
  partitions: number,
  entries: readonly OutboxEntryProbe[],
) => {
  const highs = new Map(
    (await admin.fetchTopicOffsets(topic)).map((h) => [h.partition, BigInt(h.high)] as const),
  );
  const starts = new Map<number, bigint>();
  const wanted = new Set<string>();
  const widen = (partition: number, start: bigint) => {
    const known = starts.get(partition);
    if (known === undefined || start < known) starts.set(partition, start);
  };
  let byTime: number | undefined;
  const timed = new Set<number>();
  for (const entry of entries) {
    const own = new Map<number, string[]>();
    for (const { id, userId } of entry.purchases) {
      const partition = partitionForKey(userId, partitions);
      own.set(partition, [...(own.get(partition) ?? []), id]);
    }
    let best: { partition: number; start: bigint; records: bigint } | undefined;
    if (entry.atomic && entry.scanFrom !== undefined) {
      for (const partition of own.keys()) {
        const from = entry.scanFrom.get(partition);
        const high = highs.get(partition);
        if (from === undefined || high === undefined) continue;
        const records = high - BigInt(from);
        if (best === undefined || records < best.records) {
          best = { partition, start: BigInt(from), records };
        }
      }
    }
    if (best !== undefined) {
      widen(best.partition, best.start);
      for (const id of own.get(best.partition) ?? []) wanted.add(id);
      continue;
    }
    byTime = Math.min(byTime ?? Infinity, entry.createdMs - CLOCK_SLACK_MS);
    for (const [partition, ids] of own) {
      timed.add(partition);
      for (const id of ids) wanted.add(id);
    }
  }
  if (byTime !== undefined) {
    for (const { partition, offset } of await admin.fetchTopicOffsetsByTimestamp(
      topic,
      Math.floor(byTime),
    )) {
      if (timed.has(partition)) widen(partition, BigInt(offset));
    }
  }
  const ranges = new Map<number, PartitionRange>();
  for (const [partition, start] of starts) {
    const high = highs.get(partition) ?? start;
    if (start < high) ranges.set(partition, { start, high });
  }
  return { ranges, wanted };
};

/** The ids of `entries`' purchases the topic holds: see {@link PublishedPurchaseFinder}. */
const findPublishedIds = async (
  kafka: Kafka,
  reader: PartitionReader,
  topic: string,
  partitions: number,
  entries: readonly OutboxEntryProbe[],
  timeoutMs: number,
): Promise<{ found: Set<string>; scanned: number }> => {
  const found = new Set<string>();
  let scanned = 0;
  if (entries.length === 0) return { found, scanned };
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { ranges, wanted } = await planScan(admin, topic, partitions, entries);
    // Every range at once, each through a throw-away group of its own, within the time.
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      [...ranges].map(async ([partition, { start, high }]) => {
        const pages = reader.read(topic, partition, start.toString(), high.toString());
        for await (const { records } of pages) {
          for (const record of records) {
            scanned += 1;
            const id = purchaseIdOf(record);
            if (id !== undefined && wanted.has(id)) found.add(id);
          }
          if (Date.now() > deadline) {
            throw new StoreUnavailableError('kafka', `checking topic ${topic} timed out`);
          }
        }
      }),
    );
    // All or none: one purchase of an atomic entry found means all of it is there.
    for (const entry of entries) {
      if (entry.atomic && entry.purchases.some(({ id }) => found.has(id))) {
        for (const { id } of entry.purchases) found.add(id);
      }
    }
    return { found, scanned };
  } catch (error) {
    throw translateKafkaError(error);
  } finally {
    await admin.disconnect();
  }
};

/** Settings of {@link createTopicScan}. */
export interface TopicScanConfig {
  readonly kafka: Kafka;
  readonly topic: string;
  /** Partition count of the topic, as the publisher assigns them. */
  readonly partitions: number;
  /**
   * Longest one scan may take (default 30 s). Outbox recovery keeps its rows locked in an
   * open transaction meanwhile, and slonik ends transactions idle for 60 s.
   */
  readonly timeoutMs?: number;
}

/**
 * Finds published purchases by reading ranges of `topic` up to its end, read-committed,
 * through the wallet's {@link createPartitionReader} (throw-away consumer groups).
 */
export const createTopicScan = ({
  kafka,
  topic,
  partitions,
  timeoutMs = 30_000,
}: TopicScanConfig): PublishedPurchaseFinder => {
  // A read that waits for a fetch longer than the whole scan may take has failed.
  const reader = createPartitionReader({
    kafka,
    idleTimeoutMs: timeoutMs,
    groupPrefix: 'spendstream-outbox-check',
  });
  return {
    findPublished: (entries) =>
      findPublishedIds(kafka, reader, topic, partitions, entries, timeoutMs),
  };
};
