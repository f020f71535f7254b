import { openMigratedDatabase } from '../adapters/postgres/database.ts';
import { startIngestHandoff } from './ingestHandoff.ts';
import { trackInFlight } from './inFlight.ts';
import { guardOwnedSends } from './ownedSends.ts';
import { drainThenDispose, failureSignal } from './lifecycle.ts';
import { startOutboxRelay } from './outboxRelay.ts';
import { createKafka, pingKafka } from '../adapters/kafka/client.ts';
import { fetchEndOffsets } from '../adapters/kafka/topics.ts';
import { ensureDurableTopics } from './durableTopics.ts';
import { createPurchasePublisher } from '../adapters/kafka/purchasePublisher.ts';
import { createTransactionalProducer, transactionalIdsOf } from '../adapters/kafka/producer.ts';
import { pingPostgres } from '../adapters/postgres/pool.ts';
import {
  createPurchaseStore,
  readOutboxBacklog,
  readOwnedPending,
} from '../adapters/postgres/purchaseStore.ts';
import { connectWallet } from '../adapters/grpc/walletClient.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import {
  connectionObserver,
  createOutcomeTally,
  instrumentPurchasePublisher,
  instrumentPurchaseStore,
} from './instrumentation.ts';
import { createIngestMetrics } from '../metrics.ts';
import {
  ABANDON_AFTER_TIMEOUTS,
  coalesced,
  livenessRoute,
  pingCheck,
  within,
} from '../servers/readiness.ts';
import { createStatusPageRoutes } from '../servers/statusPage.ts';
import { ownEndpoints, type ServiceEndpoints } from '../servers/endpoints.ts';
import { startWebSocketServer } from '../servers/websocket.ts';
import { ingestPipeline } from '../streams/ingestPipeline.ts';

/** Longest a readiness check or the outbox gauge waits for PostgreSQL or Kafka. */
const CHECK_TIMEOUT_MS = 1_000;

/** A running ingest service. */
export interface IngestService {
  /** The WebSocket port (useful when configured as 0). */
  readonly port: number;
  /** Purchases read from sockets and not yet answered. */
  readonly unacked: number;
  /**
   * Drains and stops: refuses new connections and frames, flushes the open batch, sends
   * its replies, then closes sockets, the producer and the pool.
   */
  stop(): Promise<void>;
  /**
   * Settles if the service had to stop by itself (its pipeline failed: a bug), once it
   * has stopped. Its process should then exit, for a supervisor to restart it.
   */
  readonly failure: Promise<Error>;
}

/**
 * Starts the ingest service: migrations, topic, producer, outbox recovery (at start and
 * then periodically), the pipeline, and the WebSocket server feeding it. A start that
 * fails closes what it had opened, in reverse order.
 */
export const startIngestService = async (
  config: Config,
  logger: Logger,
  endpoints: ServiceEndpoints = ownEndpoints,
): Promise<IngestService> => {
  await using resources = new AsyncDisposableStack();
  // Disposed last: the line says everything below was closed.
  resources.defer(() => logger.info('ingest service stopped'));

  // PostgreSQL cancels a statement the pipeline stopped waiting for, so a batch answered
  // `unavailable` is not committed behind the client's back.
  const { pool, applied } = await openMigratedDatabase({
    ...config.postgres,
    statementTimeoutMs: config.ingest.attemptTimeoutMs,
  });
  resources.defer(() => pool.end());
  if (applied.length > 0) logger.info('migrations applied', { applied });

  const kafka = createKafka({ ...config.kafka, logger });
  // Kept connected: /readyz asks a broker for the topic's metadata through it.
  const admin = kafka.admin();
  await admin.connect();
  resources.defer(() => admin.disconnect().catch(() => undefined));
  await ensureDurableTopics(
    admin,
    [
      {
        topic: config.kafka.topic,
        partitions: config.kafka.topicPartitions,
        // Unlimited unless set: the wallet rebuilds from its snapshots plus the tail after them.
        configs: { 'retention.ms': String(config.kafka.topicRetentionMs) },
      },
    ],
    { settings: config.kafka, logger },
  );
  // Partitions are fixed for the life of the process, so a user's purchases keep one.
  const metadata = await admin.fetchTopicMetadata({ topics: [config.kafka.topic] });
  const partitions = metadata.topics[0]?.partitions.length ?? config.kafka.topicPartitions;

  const { instanceId } = config.ingest;
  const newPublisher = (transactionalId: string) =>
    createPurchasePublisher({
      newProducer: () => createTransactionalProducer(kafka, transactionalId),
      transactional: true,
      topic: config.kafka.topic,
      partitions,
      maxSendBytes: config.ingest.publishMaxBytes,
    });
  const kafkaPublisher = newPublisher(transactionalIdsOf(instanceId).pipeline);
  resources.defer(() => kafkaPublisher.close());
  // Outbox entries record where the topic stood before they were saved; recovery reads
  // from there. Raised by every acknowledged send after this.
  kafkaPublisher.seedEnds(await fetchEndOffsets(admin, config.kafka.topic));
  // Ready now, so that batches saved from here on go out without an ownership check.
  await kafkaPublisher.ready();
  const ownedSends = guardOwnedSends(kafkaPublisher, (ids) =>
    readOwnedPending(pool, instanceId, ids),
  );
  const inFlight = trackInFlight(ownedSends.publisher);

  // The gauges are read at scrape time: connections and unacked from the server, the
  // outbox from PostgreSQL (bounded, and one query however many scrapes come at once).
  const outboxBacklog = coalesced(
    () => readOutboxBacklog(pool),
    ABANDON_AFTER_TIMEOUTS * CHECK_TIMEOUT_MS,
  );
  const metrics = createIngestMetrics(undefined, {
    connections: () => server.connections,
    unacked: () => server.unacked,
    outbox: () => within(outboxBacklog(), CHECK_TIMEOUT_MS, undefined),
  });
  const store = instrumentPurchaseStore(
    ownedSends.store(
      createPurchaseStore(pool, { owner: instanceId, scanFrom: () => kafkaPublisher.knownEnds }),
    ),
    metrics,
    logger,
  );
  const publisher = instrumentPurchasePublisher(inFlight.publisher, metrics, logger);

  const relay = startOutboxRelay({
    pool,
    kafka,
    instanceId,
    newPublisher,
    pipeline: kafkaPublisher,
    isInFlight: inFlight.isInFlight,
    topic: config.kafka.topic,
    partitions,
    minAgeMs: config.outbox.minAgeMs,
    intervalMs: config.outbox.recoveryIntervalMs,
    logger,
  });
  resources.defer(() => relay.stop());
  await relay.recovered;

  const tally = createOutcomeTally(metrics, logger);
  const handoff = startIngestHandoff(
    (submissions) =>
      ingestPipeline(submissions, {
        store,
        publisher,
        batch: { maxSize: config.ingest.batchMaxSize, maxWaitMs: config.ingest.batchMaxWaitMs },
        // Each save holds a pooled connection; the outbox clear and recovery need theirs.
        persistConcurrency: Math.max(
          1,
          Math.min(config.ingest.persistConcurrency, config.postgres.poolSize - 2),
        ),
        publishMaxBytes: config.ingest.publishMaxBytes,
        storeCall: {
          attemptTimeoutMs: config.ingest.attemptTimeoutMs,
          retry: {
            initialDelayMs: 50,
            maxDelayMs: 1_000,
            deadlineMs: config.ingest.durableDeadlineMs,
          },
        },
      }),
    {
      submitted: (ref, purchaseId) => inFlight.hold(ref, purchaseId),
      answered: (ref, result) => {
        inFlight.release(ref);
        tally.add(result);
      },
      batchDelivered: () => tally.flush(),
    },
  );
  // Nothing submitted yet: a failed start only completes the empty pipeline.
  resources.defer(async () => void (await handoff.drain(0)));

  // Only the status page's balance lookup calls the wallet; grpc-js connects on the first
  // call, so the ingest starts and runs whether or not the wallet is up.
  const wallet = config.ingest.statusPage ? connectWallet(config.wallet.grpcAddress) : undefined;
  if (wallet !== undefined) resources.defer(() => wallet.close());

  let draining = false;
  const server = await startWebSocketServer(
    {
      host: config.ws.host,
      port: config.ws.port,
      path: config.ws.path,
      maxFrameBytes: config.ingest.maxFrameBytes,
      pingIntervalMs: config.ingest.pingIntervalMs,
      maxUnacked: config.ingest.maxUnacked,
      maxUnackedPerConnection: config.ingest.maxUnackedPerConnection,
      decode: { maxArrayLength: config.ingest.maxArrayLength },
    },
    {
      submit: handoff.submit,
      routes: {
        '/healthz': livenessRoute,
        '/readyz': endpoints.readiness({
          accepting: () => !draining,
          postgres: pingCheck(() => pingPostgres(pool), CHECK_TIMEOUT_MS),
          kafka: pingCheck(() => pingKafka(admin, config.kafka.topic), CHECK_TIMEOUT_MS),
        }),
        '/metrics': endpoints.metrics(metrics.registry),
        ...(wallet === undefined
          ? {}
          : createStatusPageRoutes({ wallet, wsPath: config.ws.path, logger })),
      },
      logger,
      observer: connectionObserver(metrics),
    },
  );
  resources.defer(() => server.close());
  logger.info('ingest service listening', {
    url: `ws://${config.ws.host}:${server.port}${config.ws.path}`,
    metrics: `http://${config.ws.host}:${server.port}/metrics`,
  });

  const drain = async () => {
    draining = true;
    logger.info('draining', { unacked: server.unacked, connections: server.connections });
    server.stopAccepting();
    if (!(await handoff.drain(config.ingest.shutdownTimeoutMs))) {
      logger.warn('drain timed out; unacked purchases stay in the outbox');
    }
  };
  const owned = resources.move();
  // A second signal (Ctrl-C reaches every process of the group) joins the first drain.
  const stop = drainThenDispose(drain, owned);
  const stopped = failureSignal();
  void handoff.failure.then((error) => {
    // Stages turn failures into replies; reaching here is a bug worth a restart.
    logger.error('ingest pipeline failed; stopping', { error });
    void stop()
      .catch((closeError: unknown) => logger.error('unclean stop', { error: closeError }))
      .finally(() => stopped.report(error));
  });
  return {
    port: server.port,
    get unacked() {
      return server.unacked;
    },
    stop,
    failure: stopped.failure,
  };
};
