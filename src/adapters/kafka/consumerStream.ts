import type { Consumer, Kafka } from 'kafkajs';
import { Observable } from 'rxjs';
import type { ConsumedBatch } from '../../core/records.ts';
import { translateKafkaError } from './client.ts';

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
    // Each join of the group is a new assignment of its partitions: batches of one follow
    // each other, while the first of the next may come after records others consumed.
    let assignment = 0;
    const joined = consumer.on(consumer.events.GROUP_JOIN, () => {
      assignment += 1;
    });
    // Fetches holding nothing but transaction markers or aborted records never reach
    // eachBatch; their end is committed all the same, or the group would trail the topic.
    const filtered = consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.batchSize > 0) return;
      subscriber.next({
        ref: () => undefined,
        topic: payload.topic,
        partition: payload.partition,
        records: [],
        fromOffset: payload.firstOffset,
        nextOffset: (BigInt(payload.lastOffset) + 1n).toString(),
        assignment,
      });
    });
    consumer
      .run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 1,
        eachBatch: async (payload) => {
          const { batch } = payload;
          if (batch.isEmpty()) return;
          const taken = assignment;
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
                // Offsets of transaction markers and aborted records count: the batch
                // covers them, and the next fetch begins after them.
                fromOffset: batch.firstOffset() ?? batch.messages[0]?.offset,
                nextOffset: (BigInt(batch.lastOffset()) + 1n).toString(),
                assignment: taken,
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
      joined();
      filtered();
      // Batches still waiting are released unapplied and uncommitted: they come again.
      for (const settle of waiting) settle();
    };
  });

/** A consumer of the wallet group; `fromBeginning` so a new group skips no history. */
export const createWalletConsumer = (kafka: Kafka, groupId: string): Consumer =>
  kafka.consumer({ groupId, maxWaitTimeInMs: 100, allowAutoTopicCreation: false });
