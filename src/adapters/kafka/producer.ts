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
