import type { Admin, Consumer, Kafka, Producer } from 'kafkajs';
import { Observable } from 'rxjs';
import type { ConsumedBatch, PoisonRecord } from '../../streams/walletTypes.ts';
import { translateKafkaError } from './client.ts';
import type { DeadLetterPublisher, OffsetCommitter } from '../../core/ports.ts';

/** Called by the pipeline once a consumed batch is applied (or abandoned at shutdown). */
export type Settle = () => void;

// kafkajs ends a member's session after 30 s without a heartbeat; a batch held up by a
// Redis outage must not cost the partition.
const HEARTBEAT_EVERY_MS = 3_000;

/**
 * Turns a subscribed kafkajs consumer into an Observable of per-partition batches. Each
 * `eachBatch` waits until the batch's `ref` is called, so the consumer fetches a
 * partition again only after its previous batch was applied: backpressure from Redis
 * reaches Kafka. Nothing is auto-committed; the pipeline commits what it applied.
 */
export const consumeBatches = (
  consumer: Consumer,
  options: { readonly partitionsConsumedConcurrently?: number } = {},
): Observable<ConsumedBatch<Settle>> =>
  new Observable((subscriber) => {
    const waiting = new Set<Settle>();
    consumer
      .run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 1,
        eachBatch: async (payload) => {
          const { batch } = payload;
          if (batch.isEmpty()) return;
          const beating = setInterval(
            () => void payload.heartbeat().catch(() => undefined),
            HEARTBEAT_EVERY_MS,
          );
          try {
            await new Promise<void>((resolve) => {
              waiting.add(resolve);
              subscriber.next({
                ref: () => {
                  waiting.delete(resolve);
                  resolve();
                },
                topic: batch.topic,
                partition: batch.partition,
                records: batch.messages.map((message) => ({
                  offset: message.offset,
                  key: message.key === null ? null : message.key.toString('utf8'),
                  value: message.value,
                })),
              });
            });
          } finally {
            clearInterval(beating);
          }
          // Moves the fetch position past the batch; the commit is the pipeline's.
          payload.resolveOffset(batch.lastOffset());
        },
      })
      .catch((error: unknown) => subscriber.error(translateKafkaError(error)));
    return () => {
      // Batches still waiting are released unapplied and uncommitted: they come again.
      for (const settle of waiting) settle();
    };
  });

/** Commits offsets of the consumer's group. */
export const createOffsetCommitter = (consumer: Consumer): OffsetCommitter => ({
  commit: async (topic, partition, offset) => {
    try {
      await consumer.commitOffsets([{ topic, partition, offset }]);
    } catch (error) {
      throw translateKafkaError(error);
    }
  },
});

/** Sends poison records to the dead-letter topic, with where they came from and why. */
export const createDeadLetterPublisher = (
  producer: Producer,
  topic: string,
): DeadLetterPublisher => ({
  publish: async (records: readonly PoisonRecord[]) => {
    try {
      await producer.send({
        topic,
        acks: -1,
        messages: records.map(({ topic: source, partition, record, reason }) => ({
          key: record.key,
          value: record.value,
          headers: {
            'x-original-topic': source,
            'x-original-partition': String(partition),
            'x-original-offset': record.offset,
            'x-error': reason,
          },
        })),
      });
    } catch (error) {
      throw translateKafkaError(error);
    }
  },
});

/**
 * Points `groupId` at the start of `topic`, so the next member replays everything (the
 * store skips nothing it lost). Only possible while the group has no live member;
 * returns false when it has one.
 */
export const rewindGroup = async (
  admin: Admin,
  groupId: string,
  topic: string,
): Promise<boolean> => {
  try {
    const { groups } = await admin.describeGroups([groupId]);
    const state = groups[0]?.state ?? 'Dead';
    // No such group yet: its first member starts at the beginning anyway (fromBeginning).
    if (state === 'Dead') return true;
    if (state !== 'Empty') return false;
    await admin.resetOffsets({ groupId, topic, earliest: true });
    return true;
  } catch (error) {
    throw translateKafkaError(error);
  }
};

/** A consumer of the wallet group; `fromBeginning` so a new group skips no history. */
export const createWalletConsumer = (kafka: Kafka, groupId: string): Consumer =>
  kafka.consumer({ groupId, maxWaitTimeInMs: 100, allowAutoTopicCreation: false });

/** How far a consumer group is behind in one partition. */
export interface PartitionLag {
  readonly topic: string;
  readonly partition: number;
  /** Records after the group's committed offset: high watermark minus committed offset. */
  readonly lag: number;
}

/**
 * The group's lag in every partition of `topic`, from two admin requests: the partitions'
 * high watermarks and the group's committed offsets. A partition the group never
 * committed counts from its low watermark (the group starts from the beginning).
 */
export const fetchConsumerLag = async (
  admin: Admin,
  groupId: string,
  topic: string,
): Promise<PartitionLag[]> => {
  try {
    const [watermarks, committed] = await Promise.all([
      admin.fetchTopicOffsets(topic),
      admin.fetchOffsets({ groupId, topics: [topic] }),
    ]);
    const offsets = new Map(
      (committed.find((entry) => entry.topic === topic)?.partitions ?? []).map(
        ({ partition, offset }) => [partition, BigInt(offset)],
      ),
    );
    return watermarks.map(({ partition, high, low }) => {
      const done = offsets.get(partition) ?? -1n;
      const from = done < 0n ? BigInt(low) : done;
      const lag = BigInt(high) - from;
      return { topic, partition, lag: lag > 0n ? Number(lag) : 0 };
    });
  } catch (error) {
    throw translateKafkaError(error);
  }
};
