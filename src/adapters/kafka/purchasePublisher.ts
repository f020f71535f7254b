import {
  Partitioners,
  type Kafka,
  type Message,
  type PartitionMetadata,
  type Producer,
} from 'kafkajs';
import { SpendstreamError, StoreUnavailableError } from '../../core/errors.ts';
import {
  centsToDecimal,
  decimalToCents,
  MAX_AMOUNT_CENTS,
  numberToCents,
  type Purchase,
} from '../../core/purchase.ts';
import { translateKafkaError } from './client.ts';
import type { PurchasePublisher } from '../../core/ports.ts';

/** The header carrying the purchase id, so a reader can find ids without parsing values. */
export const PURCHASE_ID_HEADER = 'purchase-id';

/** A purchase as it goes to Kafka; `createdAt` is known only when it comes from PostgreSQL. */
export interface PurchaseEvent extends Purchase {
  readonly createdAt?: Date;
}

/**
 * The record value: `user_id` and `amount` (a JSON number) exactly as the Go proof of
 * concept sent them, plus the id and the exact `amount_cents` that readers should prefer.
 */
export const encodePurchaseEvent = (purchase: PurchaseEvent): string =>
  JSON.stringify({
    id: purchase.id,
    user_id: purchase.userId,
    // The shortest text of this double is the decimal itself, so readers of the proof of
    // concept's format get 49.99, never 49.990000000000002.
    amount: Number(centsToDecimal(purchase.amountCents)),
    amount_cents: purchase.amountCents,
    ...(purchase.createdAt === undefined ? {} : { created_at: purchase.createdAt.toISOString() }),
  });

const invalid = (reason: string): SpendstreamError =>
  new SpendstreamError('invalid_purchase', `invalid purchase event: ${reason}`);

const centsOf = (record: Record<string, unknown>): number | undefined => {
  const cents = record['amount_cents'];
  if (cents !== undefined) return Number.isSafeInteger(cents) ? (cents as number) : undefined;
  const amount = record['amount'];
  if (typeof amount === 'number') return numberToCents(amount);
  if (typeof amount === 'string') return decimalToCents(amount);
  return undefined;
};

/**
 * Reads a record value written by {@link encodePurchaseEvent} or by the proof of concept
 * (`{"user_id":"123","amount":49.99}`, no id: `fallbackId` is used, e.g. the record's
 * topic/partition/offset). Throws a SpendstreamError `invalid_purchase` on anything else.
 */
export const decodePurchaseEvent = (value: Buffer | string, fallbackId = ''): Purchase => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof value === 'string' ? value : value.toString('utf8'));
  } catch {
    throw invalid('not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalid('not a JSON object');
  }
  const record = parsed as Record<string, unknown>;
  const userId = record['user_id'];
  if (typeof userId !== 'string' || userId === '') throw invalid('user_id is not a string');
  const id = record['id'] ?? fallbackId;
  if (typeof id !== 'string') throw invalid('id is not a string');
  const amountCents = centsOf(record);
  if (amountCents === undefined || amountCents <= 0) {
    throw invalid('amount is not a positive decimal with at most two places');
  }
  // The ingest service never publishes more; a larger amount is not ours to count.
  if (amountCents > MAX_AMOUNT_CENTS) throw invalid('amount is over the per-purchase limit');
  return { id, userId, amountCents };
};

/**
 * An idempotent producer: the broker drops the duplicates its own retries would create.
 * kafkajs serialises idempotent requests per broker; one in flight keeps per-key order.
 */
export const createIdempotentProducer = (kafka: Kafka): Producer =>
  kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    // The app creates its topic with its partitions and retention; a typo must fail, not
    // create a one-partition topic with the broker's defaults.
    allowAutoTopicCreation: false,
    // kafkajs would retry an idempotent send forever (and warns when limited). Bounded
    // retries let the pipeline answer "unavailable" within seconds; the outbox, not this
    // producer, is what eventually delivers a batch whose send failed.
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 2_000 },
  });

const keyPartitioner = Partitioners.DefaultPartitioner();

/**
 * The partition Kafka's default (murmur2) partitioner gives `key` among `partitions`:
 * the same partition every Kafka client computes, so each user's purchases stay on one.
 */
export const partitionForKey = (key: string, partitions: number): number =>
  keyPartitioner({
    topic: '',
    partitionMetadata: metadataOf(partitions),
    message: { key, value: null },
  });

// The partitioner reads only the partition list; one list per partition count is reused.
const metadata = new Map<number, PartitionMetadata[]>();
const metadataOf = (partitions: number): PartitionMetadata[] => {
  let list = metadata.get(partitions);
  if (list === undefined) {
    list = Array.from({ length: partitions }, (_, partitionId) => ({
      partitionErrorCode: 0,
      partitionId,
      leader: 0,
      replicas: [0],
      isr: [0],
      offlineReplicas: [],
    }));
    metadata.set(partitions, list);
  }
  return list;
};

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
}

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
          await send(purchases);
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
