import { randomUUID } from 'node:crypto';
import type { Consumer, Kafka, KafkaMessage } from 'kafkajs';
import type { PublishedPurchaseFinder } from '../../core/ports.ts';
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
    consumer
      .run({
        autoCommit: false,
        partitionsConsumedConcurrently: ranges.size,
        eachBatch: ({ batch }) => {
          const range = ranges.get(batch.partition);
          const first = batch.messages[0];
          if (range === undefined || first === undefined) return Promise.resolve();
          if (!range.started && BigInt(first.offset) > range.start) return Promise.resolve();
          range.started = true;
          let last = range.start;
          for (const message of batch.messages) {
            last = BigInt(message.offset);
            if (last >= range.start && last < range.high) onMessage(message);
          }
          if (last + 1n >= range.high) {
            ranges.delete(batch.partition);
            if (ranges.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          }
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

/**
 * Ids among `wanted` that the topic holds at or after `sinceMs`, reading every partition
 * from that time up to the high watermark seen when the check began.
 */
const findPublishedIds = async (
  kafka: Kafka,
  topic: string,
  sinceMs: number,
  wanted: ReadonlySet<string>,
  timeoutMs: number,
): Promise<{ found: Set<string>; scanned: number }> => {
  const found = new Set<string>();
  let scanned = 0;
  const admin = kafka.admin();
  await admin.connect();
  try {
    const starts = await admin.fetchTopicOffsetsByTimestamp(topic, sinceMs);
    const highs = await admin.fetchTopicOffsets(topic);
    const ranges = new Map<number, PartitionRange>();
    for (const { partition, offset } of starts) {
      const high = BigInt(highs.find((h) => h.partition === partition)?.high ?? offset);
      if (BigInt(offset) < high)
        ranges.set(partition, { start: BigInt(offset), high, started: false });
    }
    if (ranges.size === 0) return { found, scanned };
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
      return { found, scanned };
    } finally {
      await consumer.disconnect().catch(() => undefined);
      await admin.deleteGroups([groupId]).catch(() => undefined);
    }
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
  /**
   * Longest one scan may take (default 30 s). Outbox recovery keeps its rows locked in an
   * open transaction meanwhile, and slonik ends transactions idle for 60 s.
   */
  readonly timeoutMs?: number;
}

/**
 * Finds published purchases by reading `topic` from a time to its high watermark, through
 * a throw-away consumer group.
 */
export const createTopicScan = ({
  kafka,
  topic,
  timeoutMs = 30_000,
}: TopicScanConfig): PublishedPurchaseFinder => ({
  findPublished: (sinceMs, wanted) => findPublishedIds(kafka, topic, sinceMs, wanted, timeoutMs),
});
