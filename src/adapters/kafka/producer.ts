import type { Kafka, Producer } from 'kafkajs';

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

/** The prefix of every transactional id spendstream's ingest instances use. */
const TRANSACTIONAL_ID_PREFIX = 'spendstream-ingest';

/**
 * The transactional ids of one ingest instance: its pipeline's and its outbox recovery's.
 * Whoever takes over the instance's outbox entries initialises both, which fences it.
 */
export const transactionalIdsOf = (instanceId: string) =>
  ({
    pipeline: `${TRANSACTIONAL_ID_PREFIX}.${instanceId}`,
    recovery: `${TRANSACTIONAL_ID_PREFIX}.${instanceId}.recovery`,
  }) as const;

/**
 * A transactional producer: what it sends is read (by read-committed consumers, as the
 * wallet's are) only once its transaction commits, and initialising its id again
 * elsewhere aborts its open transaction and refuses its later ones. Otherwise as
 * {@link createIdempotentProducer}.
 */
export const createTransactionalProducer = (kafka: Kafka, transactionalId: string): Producer =>
  kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    // The broker aborts a transaction left open this long (a process that died mid-send),
    // which read-committed consumers wait behind: keep it short.
    transactionTimeout: 30_000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 2_000 },
  });
