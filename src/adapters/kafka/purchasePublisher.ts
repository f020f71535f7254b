import type { Message, Producer, Transaction } from 'kafkajs';
import { StoreUnavailableError } from '../../core/errors.ts';
import {
  chunksOf,
  encodePurchaseEvent,
  estimatedRecordBytes,
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
  /**
   * How many producers this publisher has made ready (connected and, when transactional,
   * its transactional id initialised). A transactional producer made ready fences every
   * earlier one of its id: their open transactions are aborted, their later ones refused.
   */
  readonly generation: number;
  /**
   * Resolves the generation of a ready producer, making one if the last failed. Once it
   * resolves, every transaction an earlier producer of this publisher began is final
   * (committed or aborted), and so is every one of this producer but a send still running.
   */
  ready(): Promise<number>;
  /**
   * {@link PurchasePublisher.publish}, refused as unavailable unless the producer it would
   * go out through is of `generation`.
   */
  publishWith(purchases: readonly PurchaseEvent[], generation: number): Promise<void>;
  /**
   * Per partition, an offset the topic has reached: seeded by the caller, raised by each
   * acknowledged send. Records sent after reading it land above it.
   */
  readonly knownEnds: ReadonlyMap<number, string>;
  /** Raises {@link knownEnds} to `ends` where they are higher (the topic's end offsets). */
  seedEnds(ends: ReadonlyMap<number, string>): void;
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
  /**
   * Whether `newProducer` makes transactional producers: each call is then one
   * transaction, all of it read by read-committed consumers or none of it.
   */
  readonly transactional?: boolean;
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
 * With a transactional producer each call is one transaction, however many sends it
 * takes: a failure anywhere aborts all of it (or leaves it open for the broker, or the
 * next producer of the id, to abort), so readers see a call's purchases all or none.
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
  transactional = false,
}: PurchasePublisherConfig): ManagedPurchasePublisher => {
  let current: Promise<Producer> | undefined;
  let inFlight: Promise<void> | undefined;
  let generation = 0;
  const generations = new WeakMap<Producer, number>();
  const knownEnds = new Map<number, string>();
  const raiseEnd = (partition: number, offset: string) => {
    const known = knownEnds.get(partition);
    if (known === undefined || BigInt(offset) > BigInt(known)) knownEnds.set(partition, offset);
  };

  const connected = (): Promise<Producer> => {
    if (current !== undefined) return current;
    const made = (async () => {
      const producer = newProducer();
      try {
        await producer.connect();
        // Initialises the transactional id now (an empty transaction sends nothing), so
        // the fencing it does happens before this producer's first send, not during it.
        if (transactional) await (await producer.transaction()).abort();
      } catch (error) {
        await producer.disconnect().catch(() => undefined);
        throw error;
      }
      generation += 1;
      generations.set(producer, generation);
      return producer;
    })();
    current = made;
    // One that could not connect is not kept: the next call makes a new one.
    made.catch(() => {
      if (current === made) current = undefined;
    });
    return made;
  };

  const discard = async (failed: Promise<Producer>) => {
    if (current === failed) current = undefined;
    await failed.then((producer) => producer.disconnect()).catch(() => undefined);
  };

  /** One producer send (inside `transaction` when given); throws what Kafka refused. */
  const send = async (
    producer: Producer,
    transaction: Transaction | undefined,
    purchases: readonly PurchaseEvent[],
  ): Promise<void> => {
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
    const acknowledged = await (transaction ?? producer).send({ topic, acks: -1, messages });
    for (const record of acknowledged) {
      if (record.errorCode !== 0) continue;
      expected.delete(record.partition);
      if (record.baseOffset !== undefined) raiseEnd(record.partition, record.baseOffset);
    }
    if (expected.size > 0) {
      throw new StoreUnavailableError(
        'kafka',
        `Kafka did not acknowledge partitions ${[...expected].join(', ')} of ${topic}`,
      );
    }
  };

  /** One transaction of sends of at most `limit` bytes each. */
  const sendInTransaction = async (
    purchases: readonly PurchaseEvent[],
    limit: number,
    only: number | undefined,
  ): Promise<void> => {
    const producer = connected();
    let transaction: Transaction | undefined;
    try {
      const ready = await producer;
      if (only !== undefined && generations.get(ready) !== only) {
        throw new StoreUnavailableError(
          'kafka',
          'the producer was replaced since the batch was saved',
        );
      }
      transaction = await ready.transaction();
      for (const chunk of chunksOf(purchases, limit)) await send(ready, transaction, chunk);
      await transaction.commit();
    } catch (error) {
      // Aborting is a courtesy: the broker (or this id's next producer) aborts it anyway.
      const aborted =
        transaction?.isActive() === true &&
        (await transaction.abort().then(
          () => true,
          () => false,
        ));
      // A batch refused for its size appended nothing: once its transaction is aborted the
      // producer is sound, and keeping it keeps the fencing its initialisation did.
      if (!(aborted && isTooLarge(error))) await discard(producer);
      throw error;
    }
  };

  /** One send without a transaction, halved while the broker refuses it as too large. */
  const sendAlone = async (purchases: readonly PurchaseEvent[]): Promise<void> => {
    const producer = connected();
    try {
      await send(await producer, undefined, purchases);
    } catch (error) {
      await discard(producer);
      // A partition's record batch is refused whole, so a send to one partition that was
      // too large appended nothing and may go again in halves. (In a send to several, the
      // other partitions' records may have been appended: that one fails, and outbox
      // recovery publishes what the topic lacks.)
      const one = new Set(purchases.map((p) => partitionForKey(p.userId, partitions))).size === 1;
      if (!isTooLarge(error) || !one || purchases.length < 2) throw error;
      const half = Math.ceil(purchases.length / 2);
      await sendAlone(purchases.slice(0, half));
      await sendAlone(purchases.slice(half));
    }
  };

  const sendAll = async (
    purchases: readonly PurchaseEvent[],
    only: number | undefined,
  ): Promise<void> => {
    if (!transactional) {
      for (const chunk of chunksOf(purchases, maxSendBytes)) await sendAlone(chunk);
      return;
    }
    // A transaction with a refused send is aborted whole, so nothing of the call was
    // appended: it goes again in smaller sends, down to one purchase per send.
    let limit = maxSendBytes;
    for (;;) {
      try {
        await sendInTransaction(purchases, limit, only);
        return;
      } catch (error) {
        const largest = Math.max(
          ...chunksOf(purchases, limit).map((chunk) =>
            chunk.length > 1 ? chunk.reduce((sum, p) => sum + estimatedRecordBytes(p), 0) : 0,
          ),
        );
        if (!isTooLarge(error) || largest === 0) throw error;
        // Half the largest send that was made, whatever the limit was (it may be unbounded).
        limit = Math.floor(Math.min(limit, largest) / 2);
      }
    }
  };

  const publishAll = async (
    purchases: readonly PurchaseEvent[],
    only: number | undefined,
  ): Promise<void> => {
    try {
      await sendAll(purchases, only);
    } catch (error) {
      const translated = translateKafkaError(error);
      // Whatever Kafka answered (a coordinator still loading after a restart, a refusal,
      // a fenced producer), the purchases are committed: outbox recovery publishes them,
      // and the client may retry with the same ids. That is `unavailable`, not `internal`.
      if (translated.code !== 'internal') throw translated;
      throw new StoreUnavailableError('kafka', translated.message, { cause: error });
    }
  };

  const publish = (purchases: readonly PurchaseEvent[], only?: number): Promise<void> => {
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
        await publishAll(purchases, only);
      } finally {
        inFlight = undefined;
      }
    })();
    inFlight = sent;
    return sent;
  };

  return {
    publish: (purchases) => publish(purchases),
    publishWith: (purchases, only) => publish(purchases, only),
    get generation() {
      return generation;
    },
    ready: async () => {
      try {
        return generations.get(await connected()) ?? generation;
      } catch (error) {
        throw translateKafkaError(error);
      }
    },
    knownEnds,
    seedEnds: (ends) => {
      for (const [partition, offset] of ends) raiseEnd(partition, offset);
    },
    close: async () => {
      await inFlight?.catch(() => undefined);
      const producer = current;
      current = undefined;
      if (producer !== undefined) await discard(producer);
    },
  };
};
