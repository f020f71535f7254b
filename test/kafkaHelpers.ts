// Reads a whole topic, for tests that count what was published.
import type { Kafka } from 'kafkajs';
import { uniqueName } from './helpers.ts';

/** One record as a test sees it. */
export interface TopicRecord {
  readonly partition: number;
  readonly offset: string;
  readonly key: string;
  readonly value: Record<string, unknown>;
}

/** Every record now in `topic`, read up to each partition's high watermark. */
export const readTopic = async (kafka: Kafka, topic: string): Promise<TopicRecord[]> => {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  const remaining = new Map(
    ends.filter((end) => end.high !== end.low).map((end) => [end.partition, BigInt(end.high)]),
  );
  const records: TopicRecord[] = [];
  if (remaining.size > 0) {
    const groupId = uniqueName('test_reader');
    const consumer = kafka.consumer({ groupId });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await new Promise<void>((resolve) => {
      // Read-committed, as the wallet reads; the end counts transaction markers and
      // aborted records too, which only the batch offsets (and the event for batches of
      // nothing else) show.
      const reached = (partition: number, lastOffset: string) => {
        if (BigInt(lastOffset) + 1n >= (remaining.get(partition) ?? 0n)) {
          remaining.delete(partition);
          if (remaining.size === 0) resolve();
        }
      };
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) =>
        reached(payload.partition, payload.lastOffset),
      );
      void consumer.run({
        autoCommit: false,
        eachBatch: ({ batch }) => {
          for (const message of batch.messages) {
            records.push({
              partition: batch.partition,
              offset: message.offset,
              key: String(message.key),
              value: JSON.parse(String(message.value)) as Record<string, unknown>,
            });
          }
          reached(batch.partition, batch.lastOffset());
          return Promise.resolve();
        },
      });
    });
    await consumer.disconnect();
    await admin.deleteGroups([groupId]).catch(() => undefined);
  }
  await admin.disconnect();
  return records;
};

/** How many records carry each purchase id. */
export const countById = (records: readonly TopicRecord[]): Map<string, number> => {
  const counts = new Map<string, number>();
  for (const record of records) {
    const id = String(record.value['id']);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
};

/** Deletes test topics, ignoring ones already gone. */
export const deleteTopics = async (kafka: Kafka, topics: readonly string[]): Promise<void> => {
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [...topics] }).catch(() => undefined);
  await admin.disconnect();
};

/** Deletes consumer groups, ignoring ones already gone (or not empty). */
export const deleteGroups = async (kafka: Kafka, groupIds: readonly string[]): Promise<void> => {
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteGroups([...groupIds]).catch(() => undefined);
  await admin.disconnect();
};
