import { Subject } from 'rxjs';
import { openMigratedDatabase } from '../adapters/postgres/database.ts';
import { trackInFlight } from './inFlight.ts';
import { createKafka, pingKafka } from '../adapters/kafka/client.ts';
import { ensureTopic } from '../adapters/kafka/topics.ts';
import { createTopicScan } from '../adapters/kafka/topicScan.ts';
import { recoverOutbox } from '../adapters/postgres/outboxRecovery.ts';
import { createPurchasePublisher } from '../adapters/kafka/purchasePublisher.ts';
import { createIdempotentProducer } from '../adapters/kafka/producer.ts';
import { pingPostgres } from '../adapters/postgres/pool.ts';
import { createPurchaseStore, readOutboxBacklog } from '../adapters/postgres/purchaseStore.ts';
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
import type { ReplyRef } from '../servers/connectionActor.ts';
import { metricsRoute } from '../servers/http.ts';
import {
  ABANDON_AFTER_TIMEOUTS,
  coalesced,
  livenessRoute,
  pingCheck,
  readinessRoute,
  within,
} from '../servers/readiness.ts';
import { createStatusPageRoutes } from '../servers/statusPage.ts';
import { startWebSocketServer } from '../servers/websocket.ts';
import { ingestPipeline } from '../streams/ingestPipeline.ts';
import type { Submission } from '../streams/types.ts';

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
}

/**
 * Starts the ingest service: migrations, topic, producer, outbox recovery (at start and
 * then periodically), the pipeline, and the WebSocket server feeding it.
 */
export const startIngestService = async (
  config: Config,
  logger: Logger,
): Promise<IngestService> => {
  // PostgreSQL cancels a statement the pipeline stopped waiting for, so a batch answered
  // `unavailable` is not committed behind the client's back.
  const { pool, applied } = await openMigratedDatabase({
    ...config.postgres,
    statementTimeoutMs: config.ingest.attemptTimeoutMs,
  });
  if (applied.length > 0) logger.info('migrations applied', { applied });
  const kafka = createKafka({ ...config.kafka, logger });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopic(admin, {
    topic: config.kafka.topic,
    partitions: config.kafka.topicPartitions,
    // The wallet rebuilds totals by replaying the topic, so it keeps everything.
    configs: { 'retention.ms': '-1' },
  });
  // Partitions are fixed for the life of the process, so a user's purchases keep one.
  const metadata = await admin.fetchTopicMetadata({ topics: [config.kafka.topic] });
  const partitions = metadata.topics[0]?.partitions.length ?? config.kafka.topicPartitions;
  // Kept connected: /readyz asks a broker for the topic's metadata through it.
  const kafkaPublisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic: config.kafka.topic,
    partitions,
  });
  // Recovery has a producer of its own: a publisher refuses to overlap sends, and the
  // pipeline's sends go on while recovery runs.
  const recoveryPublisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic: config.kafka.topic,
    partitions,
  });
  const inFlight = trackInFlight(kafkaPublisher);
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
  const store = instrumentPurchaseStore(createPurchaseStore(pool), metrics, logger);
  const publisher = instrumentPurchasePublisher(inFlight.publisher, metrics, logger);

  const topicScan = createTopicScan({ kafka, topic: config.kafka.topic });
  let recovering: Promise<unknown> | undefined;
  const recover = () => {
    // A run still going (a long topic scan) is not joined by another behind it.
    recovering ??= recoverOutbox({
      pool,
      topicScan,
      publisher: recoveryPublisher,
      isInFlight: inFlight.isInFlight,
      topic: config.kafka.topic,
      minAgeMs: config.outbox.minAgeMs,
      logger,
    })
      .catch((error: unknown) => logger.warn('outbox recovery failed; will retry', { error }))
      .finally(() => {
        recovering = undefined;
      });
    return recovering;
  };
  await recover();
  const relay = setInterval(() => void recover(), config.outbox.recoveryIntervalMs);
  relay.unref();

  const submissions = new Subject<Submission<ReplyRef>>();
  let draining = false;
  const outcomes = ingestPipeline(submissions, {
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
      retry: { initialDelayMs: 50, maxDelayMs: 1_000, deadlineMs: config.ingest.durableDeadlineMs },
    },
  });
  const tally = createOutcomeTally(metrics, logger);
  const drained = new Promise<void>((resolve) => {
    outcomes.subscribe({
      next: (batch) => {
        for (const { ref, result } of batch) {
          inFlight.release(ref);
          ref.actor.deliver(ref, result);
          tally.add(result);
        }
        tally.flush();
      },
      error: (error: unknown) => {
        // Stages turn failures into replies; reaching here is a bug worth a restart.
        logger.error('ingest pipeline failed', { error });
        process.exitCode = 1;
        resolve();
      },
      complete: () => resolve(),
    });
  });

  // The status page's balance lookup; grpc-js connects on the first call, so the ingest
  // starts and runs whether or not the wallet is up.
  // Only the status page's balance lookup calls the wallet.
  const wallet = config.ingest.statusPage ? connectWallet(config.wallet.grpcAddress) : undefined;
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
      submit: (submission) => {
        inFlight.hold(submission.ref, submission.purchase.id);
        submissions.next(submission);
      },
      routes: {
        '/healthz': livenessRoute,
        '/readyz': readinessRoute({
          accepting: () => !draining,
          postgres: pingCheck(() => pingPostgres(pool), CHECK_TIMEOUT_MS),
          kafka: pingCheck(() => pingKafka(admin, config.kafka.topic), CHECK_TIMEOUT_MS),
        }),
        '/metrics': metricsRoute(metrics.registry),
        ...(wallet === undefined
          ? {}
          : createStatusPageRoutes({ wallet, wsPath: config.ws.path, logger })),
      },
      logger,
      observer: connectionObserver(metrics),
    },
  );
  logger.info('ingest service listening', {
    url: `ws://${config.ws.host}:${server.port}${config.ws.path}`,
    metrics: `http://${config.ws.host}:${server.port}/metrics`,
  });

  let stopping: Promise<void> | undefined;
  const stop = async () => {
    draining = true;
    logger.info('draining', { unacked: server.unacked, connections: server.connections });
    server.stopAccepting();
    submissions.complete();
    const timedOut = await Promise.race([
      drained.then(() => false),
      new Promise<boolean>((resolve) =>
        setTimeout(() => resolve(true), config.ingest.shutdownTimeoutMs).unref(),
      ),
    ]);
    if (timedOut) logger.warn('drain timed out; unacked purchases stay in the outbox');
    clearInterval(relay);
    await server.close();
    wallet?.close();
    await recovering;
    await Promise.all([
      kafkaPublisher.close(),
      recoveryPublisher.close(),
      admin.disconnect().catch(() => undefined),
    ]);
    await pool.end();
    logger.info('ingest service stopped');
  };
  return {
    port: server.port,
    get unacked() {
      return server.unacked;
    },
    // A second signal (Ctrl-C reaches every process of the group) joins the first drain.
    stop: () => (stopping ??= stop()),
  };
};
