import type { Kafka } from 'kafkajs';
import type { DatabasePool } from 'slonik';
import { createTopicScan } from '../adapters/kafka/topicScan.ts';
import { recoverOutbox } from '../adapters/postgres/outboxRecovery.ts';
import type { PurchasePublisher } from '../core/ports.ts';
import type { Logger } from '../logger.ts';

/** Settings of {@link startOutboxRelay}. */
export interface OutboxRelayConfig {
  readonly pool: DatabasePool;
  readonly kafka: Kafka;
  /** A publisher of its own: the pipeline's refuses overlapping sends. */
  readonly publisher: PurchasePublisher;
  readonly isInFlight: (purchaseId: string) => boolean;
  readonly topic: string;
  readonly minAgeMs: number;
  readonly intervalMs: number;
  readonly logger: Logger;
}

/** Outbox recovery, run at start and then every `intervalMs`. */
export interface OutboxRelay {
  /** Settles when the run made at start has (it never rejects: failures are logged). */
  readonly recovered: Promise<void>;
  /** No more runs; resolves once a run still going has finished. */
  stop(): Promise<void>;
}

/**
 * Publishes what PostgreSQL committed and Kafka may lack, at start and periodically. A run
 * still going (a long topic scan) is not joined by another behind it.
 */
export const startOutboxRelay = (config: OutboxRelayConfig): OutboxRelay => {
  const { logger } = config;
  const topicScan = createTopicScan({ kafka: config.kafka, topic: config.topic });
  let running: Promise<void> | undefined;
  const run = (): Promise<void> =>
    (running ??= recoverOutbox({ ...config, topicScan })
      .then(
        () => undefined,
        (error: unknown) => logger.warn('outbox recovery failed; will retry', { error }),
      )
      .finally(() => {
        running = undefined;
      }));
  const recovered = run();
  const timer = setInterval(() => void run(), config.intervalMs);
  timer.unref();
  return {
    recovered,
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
};
