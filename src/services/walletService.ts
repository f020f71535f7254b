import { tap } from 'rxjs';
import { createBalanceReader } from '../adapters/redis/balanceReader.ts';
import { createKafka } from '../adapters/kafka/client.ts';
import { ensureDurableTopics } from './durableTopics.ts';
import { createIdempotentProducer } from '../adapters/kafka/producer.ts';
import { decodePurchaseEvent } from '../core/purchaseEvent.ts';
import { createRedis, pingRedis } from '../adapters/redis/client.ts';
import { consumeBatches, createWalletConsumer } from '../adapters/kafka/consumerStream.ts';
import {
  fetchCommittedOffsets,
  fetchConsumerLag,
  fetchLogStarts,
  hasCommittedUpTo,
} from '../adapters/kafka/groupAdmin.ts';
import { createPartitionReader } from '../adapters/kafka/partitionReader.ts';
import { clearRebuild, readRebuild } from '../adapters/redis/rebuildMarker.ts';
import { watchMembership } from '../adapters/kafka/groupMembership.ts';
import { createDeadLetterPublisher } from '../adapters/kafka/deadLetters.ts';
import { createOffsetCommitter } from '../adapters/kafka/offsetCommitter.ts';
import { createWalletStore } from '../adapters/redis/walletStore.ts';
import { createGroupOffsets } from '../adapters/kafka/groupOffsets.ts';
import { createTopicIdentity } from '../adapters/kafka/topicIdentity.ts';
import { openMigratedDatabase } from '../adapters/postgres/database.ts';
import { createWalletSnapshots, type WalletSnapshots } from './walletSnapshots.ts';
import type { Config } from '../config.ts';
import { bucketOf } from '../core/buckets.ts';
import { SpendstreamError, TotalsIncompleteError } from '../core/errors.ts';
import type { BalanceReader } from '../core/ports.ts';
import { instrumentOffsetCommitter, instrumentWalletStore } from './instrumentation.ts';
import { drainThenDispose, failureSignal } from './lifecycle.ts';
import { prepareTotals } from './walletTotals.ts';
import { createWalletRepairs, type WalletRepairs } from './walletRepairs.ts';
import type { Logger } from '../logger.ts';
import { createWalletMetrics } from '../metrics.ts';
import { startGrpcServer } from '../servers/grpc.ts';
import { startHttpServer } from '../servers/http.ts';
import {
  ABANDON_AFTER_TIMEOUTS,
  coalesced,
  livenessRoute,
  pingCheck,
  within,
} from '../servers/readiness.ts';
import { ownEndpoints, type ServiceEndpoints } from '../servers/endpoints.ts';
import { walletPipeline } from '../streams/walletPipeline.ts';

const STOP_TIMEOUT_MS = 10_000;
/** Bounds of one Redis call of the wallet; a batch waits for Redis however long it is down. */
const STORE_CALL = {
  attemptTimeoutMs: 5_000,
  retry: { initialDelayMs: 100, maxDelayMs: 5_000, deadlineMs: Number.POSITIVE_INFINITY },
};
/** Every how many health ticks (seconds) the topic's id is checked. */
const TOPIC_CHECK_TICKS = 5;
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
   * Settles if the service had to stop by itself — Redis lost the totals while it ran, or
   * the pipeline failed (a bug) — once it has stopped. Its process should then exit, so
   * that the next start replays or a supervisor restarts it.
   */
  readonly failure: Promise<Error>;
}

/**
 * Starts the wallet service: consumes the purchase topic into exact per-user totals in
 * Redis and serves them over gRPC. When Redis holds no totals for the topic (first start,
 * or Redis lost its data) the group is rewound so the topic is replayed from the start;
 * when it lost only some writes, the buckets that lost them are found and repaired.
 * A start that fails closes what it had opened, in reverse order.
 */
export const startWalletService = async (
  config: Config,
  logger: Logger,
  endpoints: ServiceEndpoints = ownEndpoints,
): Promise<WalletService> => {
  const { topic } = config.kafka;
  const { groupId, deadLetterTopic } = config.wallet;
  const stats = { applied: 0, skipped: 0, poison: 0 };
  /** Why the service is not (or no longer) serving, besides its stores. */
  const state = { stopRequested: false, failed: false, lostTotals: false, rebuilding: false };
  await using resources = new AsyncDisposableStack();
  // Disposed last: the line says everything below was closed.
  resources.defer(() => logger.info('wallet service stopped', { ...stats }));

  const kafka = createKafka({ ...config.kafka, logger });
  // Kept connected for the lag gauge.
  const admin = kafka.admin();
  await admin.connect();
  resources.defer(() => admin.disconnect().catch(() => undefined));
  await ensureDurableTopics(
    admin,
    [
      {
        topic,
        partitions: config.kafka.topicPartitions,
        configs: { 'retention.ms': String(config.kafka.topicRetentionMs) },
      },
      // Kept for operators to look at, whatever the purchases' retention.
      { topic: deadLetterTopic, partitions: 1, configs: { 'retention.ms': '-1' } },
    ],
    { settings: config.kafka, logger },
  );

  // One client applies, another (auto-pipelined) serves reads.
  const redis = createRedis(config.redis);
  resources.defer(async () => void (await redis.quit()));
  redis.on('error', (error) => logger.debug('redis error', { error }));
  const readerRedis = createRedis({ ...config.redis, autoPipelining: true });
  resources.defer(async () => void (await readerRedis.quit()));
  readerRedis.on('error', (error) => logger.debug('redis error', { error }));
  const store = createWalletStore(redis);
  const identity = createTopicIdentity(config.kafka);
  resources.defer(() => identity.close());
  // The topic was just ensured: its id may take a moment to reach every broker.
  const topicId = await identity.idOf(topic, 15_000);

  // The lag is asked of Kafka at scrape time (high watermarks and the group's committed
  // offsets) rather than taken from the batches' highWatermark: a consumer that is stuck
  // (Redis down) or has lost its partitions fetches no batches, and lag from them would
  // freeze at its last value just when it grows. The figure is the whole group's.
  const consumerLag = coalesced(
    () => fetchConsumerLag(admin, groupId, topic),
    ABANDON_AFTER_TIMEOUTS * CHECK_TIMEOUT_MS,
  );
  // Bound once the consumer exists: the repairs follow which partitions it holds.
  const bound: { repairs?: WalletRepairs } = {};
  const metrics = createWalletMetrics(undefined, {
    consumerLag: () => within(consumerLag(), CHECK_TIMEOUT_MS, undefined),
    incompleteBuckets: () => bound.repairs?.incompleteCount() ?? 0,
  });
  let snapshots: WalletSnapshots | undefined;
  if (config.wallet.snapshotIntervalMs > 0) {
    const { pool } = await openMigratedDatabase(config.postgres);
    resources.defer(() => pool.end());
    snapshots = createWalletSnapshots({
      pool,
      store,
      topic,
      topicId,
      partitions: async () => [...(await fetchLogStarts(admin, topic)).keys()],
      metrics,
      logger,
    });
  }
  const groupOffsets = createGroupOffsets(config.kafka);
  resources.defer(() => groupOffsets.close());
  await prepareTotals({
    store,
    admin,
    groupOffsets,
    redis,
    topic,
    topicId,
    groupId,
    snapshots,
    metrics,
    logger,
  });
  // This instance's rebuild or another's: the totals are incomplete until it is done.
  state.rebuilding = (await readRebuild(redis, topic)) !== undefined;

  const consumer = createWalletConsumer(kafka, groupId);
  // Health follows the consumer's membership as it changes (once gRPC serves), not only on
  // the next periodic check: a health check right after the join sees SERVING.
  let healthChanged = () => undefined as void;
  const membership = watchMembership(consumer, {
    onChange: () => healthChanged(),
    onCrash: (error, restart) => logger.error('consumer crashed', { error, restart }),
  });
  const walletRepairs = createWalletRepairs({
    topic,
    store,
    reader: createPartitionReader({ kafka }),
    decode: decodePurchaseEvent,
    storeCall: STORE_CALL,
    committed: () => fetchCommittedOffsets(admin, groupId, topic),
    owned: () => membership.partitions(topic),
    metrics,
    ...(snapshots === undefined ? {} : { snapshots }),
    logStarts: () => fetchLogStarts(admin, topic),
    logger,
  });
  bound.repairs = walletRepairs;
  resources.defer(() => walletRepairs.close());
  // Before any read is served: buckets Redis lost writes of answer UNAVAILABLE from the
  // first call. A Redis that reconnects may be one restarted from a snapshot: check again.
  await walletRepairs
    .check()
    .catch((error: unknown) => logger.warn('could not check the buckets', { error }));
  const recheck = () =>
    void walletRepairs
      .check()
      .catch((error: unknown) => logger.debug('could not check the buckets', { error }));
  redis.on('ready', recheck);
  resources.defer(() => void redis.off('ready', recheck));
  const balances = createBalanceReader(readerRedis, {
    topic,
    committed: () => walletRepairs.committedOffsets(),
  });
  // A read that finds a user's total lost marks its bucket at once, ahead of the next check.
  const reader: BalanceReader = {
    totalCents: (userId) =>
      balances.totalCents(userId).catch((error: unknown) => {
        if (error instanceof TotalsIncompleteError) {
          walletRepairs.markIncomplete(error.bucket);
          recheck();
        }
        throw error;
      }),
  };
  // Before the consumer, so it closes after it: /readyz answers 503 for the whole stop.
  const http = await startHttpServer(
    config.wallet.http,
    {
      '/metrics': endpoints.metrics(metrics.registry),
      '/healthz': livenessRoute,
      '/readyz': endpoints.readiness({
        running: () => !state.stopRequested && !state.failed && !state.lostTotals,
        // The reads' client answers PING, and the consumer's client is connected.
        redis: (() => {
          const ping = pingCheck(() => pingRedis(readerRedis), CHECK_TIMEOUT_MS);
          return async () => redis.status === 'ready' && (await ping());
        })(),
        consumer: () => membership.assigned,
        totals: () => !state.rebuilding,
        // Partial while buckets are repaired: their users' reads wait, the others' go on.
        buckets: () => walletRepairs.incompleteCount() === 0 || 'partial',
      }),
    },
    logger,
  );
  resources.defer(() => http.close());
  // Every port is bound before the consumer joins its group: a start failing after the
  // join began would leave a member the broker keeps (kafkajs rejoins after a disconnect
  // cut into a join).
  const isServing = () =>
    !state.failed && !state.rebuilding && membership.assigned && redis.status === 'ready';
  const grpc = await startGrpcServer(
    { host: config.grpc.host, port: config.grpc.port },
    {
      reader,
      isServing,
      totalsComplete: (userId) => !state.rebuilding && walletRepairs.isComplete(bucketOf(userId)),
      logger,
      metrics,
    },
  );
  resources.defer(() => grpc.close());
  await consumer.connect();
  resources.defer(() => consumer.disconnect());
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const deadLetterProducer = createIdempotentProducer(kafka);
  await deadLetterProducer.connect();
  resources.defer(() => deadLetterProducer.disconnect());

  const stopped = failureSignal();
  // The service stopping itself waits for the start to complete (see the end), so that it
  // drains and closes everything; a start that fails instead closes what it opened itself.
  const started = Promise.withResolvers<() => Promise<void>>();
  const requestStop = () =>
    started.promise
      .then((stop) => stop())
      .catch((error: unknown) => logger.error('unclean stop', { error }));
  // Batches handed to the pipeline and not yet applied and committed: a stop waits for
  // them while the group still holds its partitions, so their commits are accepted.
  let batchesInHand = 0;
  const subscription = walletPipeline(
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
      repairer: walletRepairs,
      decode: decodePurchaseEvent,
      // Nothing can be skipped: a batch waits for Redis however long it is down.
      storeCall: STORE_CALL,
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
      // instance takes the partitions; the process exits for a supervisor to restart it.
      state.failed = true;
      logger.error('wallet pipeline failed; stopping', { error });
      void requestStop().finally(() =>
        stopped.report(error instanceof Error ? error : new Error(String(error))),
      );
    },
  });
  resources.defer(() => subscription.unsubscribe());

  // A rebuild is complete once the group has committed what the topic held when it began.
  let following = false;
  const followRebuild = async () => {
    if (following) return;
    following = true;
    try {
      const targets = await readRebuild(redis, topic);
      if (targets !== undefined && !(await hasCommittedUpTo(admin, groupId, topic, targets))) {
        return;
      }
      if (targets !== undefined) await clearRebuild(redis, topic);
      state.rebuilding = false;
      logger.info('totals rebuilt: serving them again', { topic });
      healthChanged();
    } catch (error) {
      logger.debug('could not check the rebuild; trying again', { error });
    } finally {
      following = false;
    }
  };
  healthChanged = () => grpc.setServing(!state.stopRequested && isServing() && !state.lostTotals);
  healthChanged();
  const loseTotals = (message: string, fields: Record<string, unknown> = {}) => {
    if (state.lostTotals || state.failed) return;
    state.lostTotals = true;
    logger.error(message, { topic, ...fields });
    void requestStop().finally(() =>
      stopped.report(new SpendstreamError('unavailable', `${message} (${topic})`)),
    );
  };
  let ticks = 0;
  const health = setInterval(() => {
    healthChanged();
    if (state.rebuilding) void followRebuild();
    // Losses that no batch runs into (an idle partition, a bucket evicted) show here.
    recheck();
    // Redis restarted empty under us, or the topic was deleted and created again: the
    // totals held are gone or another topic's, and going on would serve and build on
    // them. Stop; the next start rebuilds them.
    store.isInitialised(topic).then(
      (initialised) => {
        if (!initialised)
          loseTotals('Redis lost the totals; stopping so that a restart rebuilds them');
      },
      () => undefined,
    );
    ticks += 1;
    if (ticks % TOPIC_CHECK_TICKS === 0) {
      identity.idOf(topic).then(
        (id) => {
          if (id !== topicId) {
            loseTotals(
              'the topic was deleted and created again: the totals held are of the old one; ' +
                'stopping so that a restart rebuilds them',
              { topicId, newTopicId: id },
            );
          }
        },
        // Gone for now, or Kafka does not answer: asked again at the next check.
        () => undefined,
      );
    }
  }, 1_000);
  health.unref();
  resources.defer(() => clearInterval(health));
  if (snapshots !== undefined) {
    snapshots.start(config.wallet.snapshotIntervalMs);
    const running = snapshots;
    resources.defer(() => running.stop());
  }
  logger.info('wallet service serving', {
    grpc: `${config.grpc.host}:${grpc.port}`,
    metrics: `http://${config.wallet.http.host}:${http.port}/metrics`,
    topic,
    groupId,
  });

  const drain = async () => {
    state.stopRequested = true;
    clearInterval(health);
    grpc.setServing(false);
    // No new batches; those in hand are applied and committed while this member still
    // holds its partitions (kafkajs's stop may leave the group before concurrent batches
    // finish, and a commit after leaving is refused) — unless Redis is down; then they are
    // released unapplied after the timeout, to be delivered again. A failed pipeline
    // applies nothing more: it leaves the group at once.
    const until = Date.now() + STOP_TIMEOUT_MS;
    consumer.pause([{ topic }]);
    while (!state.failed && batchesInHand > 0 && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await Promise.race([
      consumer.stop(),
      new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now())).unref()),
    ]);
  };
  // A second signal (Ctrl-C reaches every process of the group) joins the first stop.
  const stop = drainThenDispose(drain, resources.move());
  started.resolve(stop);
  return {
    grpcPort: grpc.port,
    httpPort: http.port,
    stats,
    stop,
    failure: stopped.failure,
  };
};
