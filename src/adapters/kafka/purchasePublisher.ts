import type { Message, Producer } from 'kafkajs';
import { StoreUnavailableError } from '../../core/errors.ts';
import {
  chunksOf,
  encodePurchaseEvent,
  PURCHASE_ID_HEADER,
  type PurchaseEvent,
} from '../../core/purchaseEvent.ts';
import { translateKafkaError } from './client.ts';
import type { PurchasePublisher } from '../../core/ports.ts';
import { partitionForKey } from './partitioner.ts';

/** A {@link PurchasePublisher} that owns its producer. */
export interface ManagedPurchasePublisher extends PurchasePublisher {
  /** Disconnects the current producer, if any. */
  close(): Promise<void>;
}

/** Settings of {@link createPurchasePublisher}. */
export interface PurchasePublisherConfig {
  /** Makes a new, unconnected producer: at the first send and after every failed one. */
  readonly newProducer: () => Producer;
  readonly topic: string;
  /** Partition count of the topic, fixed for the publisher's life. */
  readonly partitions: number;
  /**
   * Most bytes (by the codec's upper estimate) one producer send carries; a larger call
   * goes in several sends, in order. Keep it under the broker's `message.max.bytes`
   * (1 MiB by default). 786,432 unless set.
   */
  readonly maxSendBytes?: number;
}

// What the broker answers a record batch over its size limits with.
const TOO_LARGE = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);

/** Whether `error`, or an error it was caused by, is the broker refusing a batch's size. */
const isTooLarge = (error: unknown): boolean => {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; depth += 1) {
    if ('type' in cause && TOO_LARGE.has(String(cause.type))) return true;
    cause = cause.cause;
  }
  return false;
};

/**
 * Publishes purchases to `topic`, keyed by user, one acknowledged (acks=all) send per call.
 *
 * Two kafkajs 2.2.4 behaviours are guarded against, both seen here while a broker
 * restarts. (1) A send can resolve while silently skipping partitions whose metadata is
 * missing; so partitions are assigned here and the reply must acknowledge every one.
 * (2) After a failed send the idempotent producer rolls its sequence numbers back, even
 * when the broker did append the batch; its next batch then reuses those numbers and the
 * broker drops it as a duplicate while answering success. So a producer that failed once
 * is discarded, and the next send starts a new producer id. Either way the batch fails,
 * and outbox recovery publishes what the topic lacks. For the same reason sends never
 * overlap: while a send the caller stopped waiting for (a timeout) is still running, the
 * next one is refused as unavailable instead of sharing the producer or queueing.
 */
export const createPurchasePublisher = ({
  newProducer,
  topic,
  partitions,
  maxSendBytes = 786_432,
}: PurchasePublisherConfig): ManagedPurchasePublisher => {
  let current: Promise<Producer> | undefined;
  let inFlight: Promise<void> | undefined;

  const connected = (): Promise<Producer> => {
    current ??= (async () => {
      const producer = newProducer();
      await producer.connect();
      return producer;
    })();
    return current;
  };

  const discard = async (failed: Promise<Producer>) => {
    if (current === failed) current = undefined;
    await failed.then((producer) => producer.disconnect()).catch(() => undefined);
  };

  const send = async (purchases: readonly PurchaseEvent[]): Promise<void> => {
    const expected = new Set<number>();
    const messages: Message[] = purchases.map((purchase) => {
      const partition = partitionForKey(purchase.userId, partitions);
      expected.add(partition);
      return {
        key: purchase.userId,
        partition,
        value: encodePurchaseEvent(purchase),
        headers: { [PURCHASE_ID_HEADER]: purchase.id },
      };
    });
    const producer = connected();
    let acknowledged: Awaited<ReturnType<Producer['send']>>;
    try {
      acknowledged = await (await producer).send({ topic, acks: -1, messages });
    } catch (error) {
      await discard(producer);
      // A partition's record batch is refused whole, so a send to one partition that was
      // too large appended nothing and may go again in halves. (In a send to several, the
      // other partitions' records may have been appended: that one fails, and outbox
      // recovery publishes what the topic lacks.)
      if (isTooLarge(error) && expected.size === 1 && purchases.length > 1) {
        const half = Math.ceil(purchases.length / 2);
        await send(purchases.slice(0, half));
        await send(purchases.slice(half));
        return;
      }
      const translated = translateKafkaError(error);
      // Whatever Kafka answered (a coordinator still loading after a restart, a refusal),
      // the purchases are committed: outbox recovery publishes them, and the client may
      // retry with the same ids. That is `unavailable`, not `internal`.
      if (translated.code !== 'internal') throw translated;
      throw new StoreUnavailableError('kafka', translated.message, { cause: error });
    }
    for (const record of acknowledged) {
      if (record.errorCode === 0) expected.delete(record.partition);
    }
    if (expected.size > 0) {
      await discard(producer);
      throw new StoreUnavailableError(
        'kafka',
        `Kafka did not acknowledge partitions ${[...expected].join(', ')} of ${topic}`,
      );
    }
  };

  return {
    publish: (purchases: readonly PurchaseEvent[]): Promise<void> => {
      if (purchases.length === 0) return Promise.resolve();
      // A send the caller stopped waiting for may still be running: refuse rather than
      // queue behind it, so no send starts long after its purchases were committed.
      if (inFlight !== undefined) {
        return Promise.reject(
          new StoreUnavailableError('kafka', 'the previous send to Kafka has not settled yet'),
        );
      }
      // Cleared before the caller hears the outcome, so its next send is never refused.
      const sent = (async () => {
        try {
          for (const chunk of chunksOf(purchases, maxSendBytes)) await send(chunk);
        } finally {
          inFlight = undefined;
        }
      })();
      inFlight = sent;
      return sent;
    },
    close: async () => {
      await inFlight?.catch(() => undefined);
      const producer = current;
      current = undefined;
      if (producer !== undefined) await discard(producer);
    },
  };
};
