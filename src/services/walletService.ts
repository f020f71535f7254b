import { tap, type Subscription } from 'rxjs';
import { createBalanceReader } from '../adapters/redis/balanceReader.ts';
import { createKafka } from '../adapters/kafka/client.ts';
import { ensureTopic } from '../adapters/kafka/topics.ts';
import { createIdempotentProducer } from '../adapters/kafka/producer.ts';
import { decodePurchaseEvent } from '../core/purchaseEvent.ts';
import { createRedis, pingRedis } from '../adapters/redis/client.ts';
import { consumeBatches, createWalletConsumer } from '../adapters/kafka/consumerStream.ts';
import { fetchConsumerLag, rewindGroup } from '../adapters/kafka/groupAdmin.ts';
import { createDeadLetterPublisher } from '../adapters/kafka/deadLetters.ts';
import { createOffsetCommitter } from '../adapters/kafka/offsetCommitter.ts';
import { createWalletStore } from '../adapters/redis/walletStore.ts';
import { deleteAllTotals } from '../adapters/redis/totalsScan.ts';
import type { Config } from '../config.ts';
import { SpendstreamError } from '../core/errors.ts';
import { instrumentOffsetCommitter, instrumentWalletStore } from './instrumentation.ts';
import type { Logger } from '../logger.ts';
import { createWalletMetrics } from '../metrics.ts';
import { startGrpcServer } from '../servers/grpc.ts';
import { metricsRoute, startHttpServer } from '../servers/http.ts';
import {
  ABANDON_AFTER_TIMEOUTS,
  coalesced,
  livenessRoute,
  pingCheck,
  readinessRoute,
  within,
} from '../servers/readiness.ts';
import { walletPipeline } from '../streams/walletPipeline.ts';

const STOP_TIMEOUT_MS = 10_000;
/** Longest a readiness check or the lag gauge waits for Redis or Kafka. */
const CHECK_TIMEOUT_MS = 1_000;

/** A running wallet service. */
export interface WalletService {
  /** The gRPC port (useful when configured as 0). */
  readonly grpcPort: number;
  /** The port of `/metrics`, `/healthz` and `/readyz` (useful when configured as 0). */
  readonly httpPort: number;
  /** Counts since start: purchases applied, redeliveries skipped, poison records. */
  readonly stats: { applied: number; skipped: number; poison: number };
  /** Stops consuming (the batch in hand is applied and committed), then closes all. */
  stop(): Promise<void>;
  /**
   * Settles if the service had to stop by itself — Redis lost the totals while it ran —
   * once it has stopped. Its process should then exit, so that the next start replays.
   */
  readonly failure: Promise<Error>;
}

/**
 * Starts the wallet service: consumes the purchase topic into exact per-user totals in
 * Redis and serves them over gRPC. When Redis holds no totals for the topic (first start,
 * or Redis lost its data) the group is rewound so the topic is replayed from the start.
 */
export const startWalletService = async (
  config: Config,
  logger: Logger,
): Promise<WalletService> => {
  const { topic } = config.kafka;
  const { groupId, deadLetterTopic } = config.wallet;
  const kafka = createKafka({ ...config.kafka, logger });
  const admin = kafka.admin();
  await admin.connect();
  const retained = { 'retention.ms': '-1' };
  await ensureTopic(admin, { topic, partitions: config.kafka.topicPartitions, configs: retained });
  await ensureTopic(admin, { topic: deadLetterTopic, partitions: 1, configs: retained });

  const redis = createRedis(config.redis);
  redis.on('error', (error) => logger.debug('redis error', { error }));
  const store = createWalletStore(redis);
  if (!(await store.isInitialised(topic))) {
    if (!(await rewindGroup(admin, groupId, topic))) {
      await admin.disconnect();
      await redis.quit();
      // Consuming on from the group's offsets would leave the lost totals lost for good.
      throw new SpendstreamError(
        'unavailable',
        `Redis holds no totals for ${topic} but other members of ${groupId} are running; ` +
          'stop every wallet instance, then start them again to replay the topic',
      );
    }
    // Hashes written since Redis lost its data (by a wallet that ran on meanwhile) hold
    // offsets that would make the replay skip everything before them: start from nothing.
    const deleted = await deleteAllTotals(redis);
    logger.info('Redis holds no totals for the topic: replaying it from the start', {
      topic,
      partialTotalsDeleted: deleted,
    });
    await store.markInitialised(topic);
  }
  // Kept connected for the lag gauge. The lag is asked of Kafka at scrape time (high
  // watermarks and the group's committed offsets) rather than taken from the batches'
  // highWatermark: a consumer that is stuck (Redis down) or has lost its partitions
  // fetches no batches, and lag from them would freeze at its last value just when it
  // grows. Two admin requests per scrape are cheap; the figure is the whole group's.
  const consumerLag = coalesced(
    () => fetchConsumerLag(admin, groupId, topic),
    ABANDON_AFTER_TIMEOUTS * CHECK_TIMEOUT_MS,
  );
  const metrics = createWalletMetrics(undefined, {
    consumerLag: () => within(consumerLag(), CHECK_TIMEOUT_MS, undefined),
  });

  const consumer = createWalletConsumer(kafka, groupId);
  let assigned = false;
  // Health follows the consumer's state as it changes (set once gRPC serves), not only on
  // the next periodic check: a health check right after the join sees SERVING.
  let healthChanged = () => undefined as void;
  // A member between rebalances; not while the group rebalances, after a stop or a lost
  // connection, until it has joined again.
  for (const event of [
    consumer.events.REBALANCING,
    consumer.events.STOP,
    consumer.events.DISCONNECT,
  ]) {
    consumer.on(event, () => {
      assigned = false;
      healthChanged();
    });
  }
  consumer.on(consumer.events.GROUP_JOIN, () => {
    assigned = true;
    healthChanged();
  });
  consumer.on(consumer.events.CRASH, (event) => {
    assigned = false;
    healthChanged();
    logger.error('consumer crashed', {
      error: event.payload.error,
      restart: event.payload.restart,
    });
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const deadLetterProducer = createIdempotentProducer(kafka);
  await deadLetterProducer.connect();

  const stats = { applied: 0, skipped: 0, poison: 0 };
  let failed = false;
  // Batches handed to the pipeline and not yet applied and committed: a stop waits for
  // them while the group still holds its partitions, so their commits are accepted.
  let batchesInHand = 0;
  const subscription: Subscription = walletPipeline(
    consumeBatches(consumer, {
      partitionsConsumedConcurrently: config.kafka.topicPartitions,
    }).pipe(
      tap(() => {
        batchesInHand += 1;
      }),
    ),
    {
      store: instrumentWalletStore(store, metrics, logger),
      deadLetters: createDeadLetterPublisher(deadLetterProducer, deadLetterTopic),
      committer: instrumentOffsetCommitter(createOffsetCommitter(consumer), metrics, logger),
      decode: decodePurchaseEvent,
      storeCall: {
        attemptTimeoutMs: 5_000,
        // Nothing can be skipped: a batch waits for Redis however long it is down.
        retry: { initialDelayMs: 100, maxDelayMs: 5_000, deadlineMs: Number.POSITIVE_INFINITY },
      },
    },
  ).subscribe({
    next: (batch) => {
      stats.applied += batch.applied;
      stats.skipped += batch.skipped;
      stats.poison += batch.poison;
      if (batch.applied > 0) metrics.applied.inc(batch.applied);
      if (batch.skipped > 0) metrics.duplicatesSkipped.inc(batch.skipped);
      if (batch.poison > 0) metrics.poison.inc(batch.poison);
      logger.debug('batch applied', {
        topic: batch.topic,
        partition: batch.partition,
        applied: batch.applied,
        skipped: batch.skipped,
        poison: batch.poison,
        nextOffset: batch.nextOffset,
      });
      if (batch.poison > 0) {
        logger.warn('records that are not purchases went to the dead-letter topic', {
          count: batch.poison,
          partition: batch.partition,
          deadLetterTopic,
        });
      }
      batchesInHand -= 1;
      batch.ref();
    },
    error: (error: unknown) => {
      // Only a bug gets here (store outages are retried). Leave the group so another
      // instance takes the partitions, and exit for a supervisor to restart us.
      failed = true;
      logger.error('wallet pipeline failed; exiting', { error });
      void consumer.disconnect().finally(() => process.exit(1));
    },
  });

  const readerRedis = createRedis({ ...config.redis, autoPipelining: true });
  readerRedis.on('error', (error) => logger.debug('redis error', { error }));
  const isServing = () => !failed && assigned && redis.status === 'ready';
  const grpc = await startGrpcServer(
    { host: config.grpc.host, port: config.grpc.port },
    { reader: createBalanceReader(readerRedis), isServing, logger, metrics },
  );
  let stopping: Promise<void> | undefined;
  let stopRequested = false;
  let lostTotals = false;
  const http = await startHttpServer(
    config.wallet.http,
    {
      '/metrics': metricsRoute(metrics.registry),
      '/healthz': livenessRoute,
      '/readyz': readinessRoute({
        running: () => !stopRequested && !failed && !lostTotals,
        // The reads' client answers PING, and the consumer's client is connected.
        redis: (() => {
          const ping = pingCheck(() => pingRedis(readerRedis), CHECK_TIMEOUT_MS);
          return async () => redis.status === 'ready' && (await ping());
        })(),
        consumer: () => assigned,
      }),
    },
    logger,
  ).catch(async (error: unknown) => {
    // The port is taken (or not allowed): nothing started so far may outlive the failure.
    subscription.unsubscribe();
    await Promise.allSettled([
      consumer.disconnect(),
      deadLetterProducer.disconnect(),
      grpc.close(),
      admin.disconnect(),
      redis.quit(),
      readerRedis.quit(),
    ]);
    throw error;
  });
  let reportFailure: (error: Error) => void = () => undefined;
  const failure = new Promise<Error>((resolve) => {
    reportFailure = resolve;
  });
  healthChanged = () => grpc.setServing(!stopRequested && isServing() && !lostTotals);
  healthChanged();
  const health = setInterval(() => {
    healthChanged();
    // Redis restarted empty under us: the totals are gone and going on would serve and
    // build on partial ones. Exit; the next start finds no totals and replays the topic.
    store.isInitialised(topic).then(
      (initialised) => {
        if (initialised || lostTotals || failed) return;
        lostTotals = true;
        logger.error('Redis lost the totals; stopping so that a restart rebuilds them', {
          topic,
        });
        void (stopping ??= stop()).finally(() =>
          reportFailure(
            new SpendstreamError('unavailable', `Redis lost the wallet totals of ${topic}`),
          ),
        );
      },
      () => undefined,
    );
  }, 1_000);
  health.unref();
  logger.info('wallet service serving', {
    grpc: `${config.grpc.host}:${grpc.port}`,
    metrics: `http://${config.wallet.http.host}:${http.port}/metrics`,
    topic,
    groupId,
  });

  const stop = async () => {
    stopRequested = true;
    clearInterval(health);
    grpc.setServing(false);
    // No new batches; those in hand are applied and committed while this member still
    // holds its partitions (kafkajs's stop may leave the group before concurrent batches
    // finish, and a commit after leaving is refused) — unless Redis is down; then they are
    // released unapplied after the timeout, to be delivered again.
    const until = Date.now() + STOP_TIMEOUT_MS;
    consumer.pause([{ topic }]);
    while (batchesInHand > 0 && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await Promise.race([
      consumer.stop(),
      new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now())).unref()),
    ]);
    subscription.unsubscribe();
    await consumer.disconnect();
    await deadLetterProducer.disconnect();
    await grpc.close();
    await admin.disconnect().catch(() => undefined);
    await Promise.all([redis.quit(), readerRedis.quit()]);
    // Last, so /readyz answers 503 for the whole stop.
    await http.close();
    logger.info('wallet service stopped', { ...stats });
  };
  return {
    grpcPort: grpc.port,
    httpPort: http.port,
    stats,
    // A second signal (Ctrl-C reaches every process of the group) joins the first stop.
    stop: () => (stopping ??= stop()),
    failure,
  };
};
