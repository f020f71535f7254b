import { randomUUID } from 'node:crypto';
import type { Admin, Consumer, Kafka, KafkaMessage } from 'kafkajs';
import type { OutboxEntryProbe, PublishedPurchaseFinder } from '../../core/ports.ts';
import { partitionForKey } from './partitioner.ts';
import { StoreUnavailableError } from '../../core/errors.ts';
import { translateKafkaError } from './client.ts';
import { decodePurchaseEvent, PURCHASE_ID_HEADER } from '../../core/purchaseEvent.ts';

interface PartitionRange {
  readonly start: bigint;
  readonly high: bigint;
  /** Set by the first batch from `start`: batches fetched before the seek do not count. */
  started: boolean;
}

const purchaseIdOf = (message: KafkaMessage): string | undefined => {
  const header = message.headers?.[PURCHASE_ID_HEADER];
  if (header !== undefined) return String(header);
  if (message.value === null) return undefined;
  try {
    return decodePurchaseEvent(message.value).id;
  } catch {
    // Not a purchase this service can read, so not one of those looked for.
    return undefined;
  }
};

/** Reads `ranges` of `topic` through `consumer`, calling `onMessage` for each record in them. */
const readRanges = (
  consumer: Consumer,
  topic: string,
  ranges: Map<number, PartitionRange>,
  onMessage: (message: KafkaMessage) => void,
  timeoutMs: number,
): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    const fail = (error: unknown) => {
      clearTimeout(timer);
      reject(translateKafkaError(error));
    };
    const timer = setTimeout(
      () => fail(new StoreUnavailableError('kafka', `checking topic ${topic} timed out`)),
      timeoutMs,
    );
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) fail(payload.error);
    });
    /** Takes one fetched batch of `partition`; resolves once every range is read. */
    const take = (
      partition: number,
      first: string | null,
      last: string,
      messages: readonly KafkaMessage[],
    ) => {
      const range = ranges.get(partition);
      if (range === undefined || first === null) return;
      if (!range.started && BigInt(first) > range.start) return;
      range.started = true;
      for (const message of messages) {
        const offset = BigInt(message.offset);
        if (offset >= range.start && offset < range.high) onMessage(message);
      }
      if (BigInt(last) + 1n >= range.high) {
        ranges.delete(partition);
        if (ranges.size === 0) {
          clearTimeout(timer);
          resolve();
        }
      }
    };
    // A fetch of nothing but aborted records and transaction markers never reaches
    // eachBatch; only this event tells how far it went.
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.batchSize === 0) {
        take(payload.partition, payload.firstOffset, payload.lastOffset, []);
      }
    });
    consumer
      .run({
        autoCommit: false,
        partitionsConsumedConcurrently: ranges.size,
        // Offsets of everything fetched, including what a read-committed consumer does
        // not show (aborted records, transaction markers), so the end is recognised.
        eachBatch: ({ batch }) => {
          take(batch.partition, batch.firstOffset(), batch.lastOffset(), batch.messages);
          return Promise.resolve();
        },
      })
      // kafkajs takes seeks only once `run` has created the group membership.
      .then(() => {
        for (const [partition, { start }] of ranges) {
          consumer.seek({ topic, partition, offset: start.toString() });
        }
      })
      .catch(fail);
  });

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
    if (start < high) ranges.set(partition, { start, high, started: false });
  }
  return { ranges, wanted };
};

/** The ids of `entries`' purchases the topic holds: see {@link PublishedPurchaseFinder}. */
const findPublishedIds = async (
  kafka: Kafka,
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
    if (ranges.size > 0) {
      // A throw-away group: kafkajs seeks only within a group, and nothing must remember it.
      const groupId = `spendstream-outbox-check-${randomUUID()}`;
      const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
      try {
        await consumer.connect();
        await consumer.subscribe({ topics: [topic], fromBeginning: false });
        await readRanges(
          consumer,
          topic,
          ranges,
          (message) => {
            scanned += 1;
            const id = purchaseIdOf(message);
            if (id !== undefined && wanted.has(id)) found.add(id);
          },
          timeoutMs,
        );
      } finally {
        await consumer.disconnect().catch(() => undefined);
        await admin.deleteGroups([groupId]).catch(() => undefined);
      }
    }
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
 * through a throw-away consumer group.
 */
export const createTopicScan = ({
  kafka,
  topic,
  partitions,
  timeoutMs = 30_000,
}: TopicScanConfig): PublishedPurchaseFinder => ({
  findPublished: (entries) => findPublishedIds(kafka, topic, partitions, entries, timeoutMs),
});
