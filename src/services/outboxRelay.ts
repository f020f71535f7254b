import type { Kafka } from 'kafkajs';
import type { DatabasePool } from 'slonik';
import { transactionalIdsOf } from '../adapters/kafka/producer.ts';
import type { ManagedPurchasePublisher } from '../adapters/kafka/purchasePublisher.ts';
import { createTopicScan } from '../adapters/kafka/topicScan.ts';
import { forgetInstance, recordAlive } from '../adapters/postgres/ingestInstances.ts';
import { recoverOutbox, type OwnerPublisher } from '../adapters/postgres/outboxRecovery.ts';
import type { Logger } from '../logger.ts';

/** Settings of {@link startOutboxRelay}. */
export interface OutboxRelayConfig {
  readonly pool: DatabasePool;
  readonly kafka: Kafka;
  /** This ingest instance (see `INGEST_INSTANCE_ID`). */
  readonly instanceId: string;
  /** Makes a transactional publisher (not yet connected) on `transactionalId`. */
  readonly newPublisher: (transactionalId: string) => ManagedPurchasePublisher;
  /**
   * The pipeline's publisher: made ready before this instance's own entries are looked
   * for in the topic, so that its failed sends' transactions are final by then.
   */
  readonly pipeline: { ready(): Promise<number> };
  readonly isInFlight: (purchaseId: string) => boolean;
  readonly topic: string;
  readonly partitions: number;
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

/** What {@link createTakeOver} needs: see {@link OutboxRelayConfig}. */
export type TakeOverConfig = Pick<
  OutboxRelayConfig,
  'instanceId' | 'newPublisher' | 'pipeline' | 'logger'
>;

/**
 * The fencing step of outbox recovery: for this instance's own entries (and those without
 * an owner), its recovery publisher once the pipeline's producer is ready; for another
 * instance's, both its transactional ids initialised here — its open transactions
 * aborted, its producers refused — and a publisher on its recovery id.
 */
export const createTakeOver = ({ instanceId, newPublisher, pipeline, logger }: TakeOverConfig) => {
  // This instance's recovery sends go out through a transactional id of its own, which a
  // takeover of this instance fences together with the pipeline's.
  const own = newPublisher(transactionalIdsOf(instanceId).recovery);
  const keep: OwnerPublisher = { publisher: own, release: () => Promise.resolve() };

  const takeOver = async (owner: string | null): Promise<OwnerPublisher> => {
    if (owner === null || owner === instanceId) {
      await pipeline.ready();
      await own.ready();
      return keep;
    }
    const ids = transactionalIdsOf(owner);
    // Making a producer of an id ready initialises the id: the owner's open transaction
    // is aborted and its producer refused from then on.
    const fence = newPublisher(ids.pipeline);
    try {
      await fence.ready();
    } finally {
      await fence.close();
    }
    const recovery = newPublisher(ids.recovery);
    try {
      await recovery.ready();
    } catch (error) {
      await recovery.close();
      throw error;
    }
    logger.info('taking over the outbox entries of a silent ingest instance', { owner });
    return { publisher: recovery, release: () => recovery.close() };
  };

  return { takeOver, close: () => own.close() };
};

// Liveness is recorded every second, or more often for a takeover age under 4 s: instances
// may run with different takeover ages, and the shortest must not see a live one silent.
const MAX_HEARTBEAT_MS = 1_000;
const MIN_HEARTBEAT_MS = 100;

/**
 * Publishes what PostgreSQL committed and Kafka may lack, at start and periodically: this
 * instance's entries, and those of instances silent for `minAgeMs`, which it fences
 * first. Says every second, in `ingest_instances`, that this instance is alive. A run
 * still going (a long topic scan) is not joined by another behind it.
 */
export const startOutboxRelay = (config: OutboxRelayConfig): OutboxRelay => {
  const { logger, pool, instanceId } = config;
  const topicScan = createTopicScan({
    kafka: config.kafka,
    topic: config.topic,
    partitions: config.partitions,
  });
  const { takeOver, close } = createTakeOver(config);

  const beat = () =>
    recordAlive(pool, instanceId).catch((error: unknown) =>
      logger.warn('could not record this instance as alive', { error }),
    );
  const heartbeatMs = Math.max(
    MIN_HEARTBEAT_MS,
    Math.min(MAX_HEARTBEAT_MS, Math.floor(config.minAgeMs / 4)),
  );
  const heartbeat = setInterval(() => void beat(), heartbeatMs);
  heartbeat.unref();

  let running: Promise<void> | undefined;
  const run = (): Promise<void> =>
    (running ??= recoverOutbox({ ...config, topicScan, takeOver })
      .then(
        () => undefined,
        (error: unknown) => logger.warn('outbox recovery failed; will retry', { error }),
      )
      .finally(() => {
        running = undefined;
      }));
  const recovered = beat().then(run);
  const timer = setInterval(() => void run(), config.intervalMs);
  timer.unref();
  return {
    recovered,
    stop: async () => {
      clearInterval(timer);
      clearInterval(heartbeat);
      await recovered;
      await running;
      await close();
      await forgetInstance(pool, instanceId).catch(() => undefined);
    },
  };
};
