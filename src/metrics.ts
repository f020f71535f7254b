// Prometheus metrics of both services. Each service builds its own registry, so several
// services in one process (tests, embedding) never share or collide on a metric.
// The names and labels are a contract (dashboards and the status page read them): add
// metrics, never rename one.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Latency buckets in seconds: sub-millisecond to ten seconds. */
const SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Batch-size buckets in purchases. */
const SIZES = [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

const baseRegistry = () => new Registry();

let processRegistry: Registry | undefined;

/**
 * The process's own metrics (CPU, memory, event loop, GC), collected once per process
 * however many services it runs: their collectors (a GC observer, an event-loop monitor)
 * are never stopped, so one per service would pile up with every start.
 */
export const processMetrics = (): Registry => {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
};

/** Batch size and duration of one pipeline stage, labelled by stage. */
const stageMetrics = (registry: Registry) => ({
  batchSize: new Histogram({
    name: 'spendstream_batch_size',
    help: 'Purchases per batch, by pipeline stage',
    labelNames: ['stage'] as const,
    buckets: SIZES,
    registers: [registry],
  }),
  stageDuration: new Histogram({
    name: 'spendstream_stage_duration_seconds',
    help: 'Time one batch spent in a pipeline stage, by stage and outcome',
    labelNames: ['stage', 'outcome'] as const,
    buckets: SECONDS,
    registers: [registry],
  }),
});

/** The outbox as the backlog gauges read it at scrape time. */
export interface OutboxBacklog {
  /** Entries (one per saved batch) not yet cleared. */
  readonly entries: number;
  /** Age of the oldest entry in seconds; 0 when the outbox is empty. */
  readonly oldestAgeSeconds: number;
  /** Entries recovery could not publish, set aside until their next try. */
  readonly failing: number;
}

/** What the ingest gauges read when scraped, instead of being set on the hot path. */
export interface IngestGaugeSources {
  readonly connections: () => number;
  readonly unacked: () => number;
  /** Undefined when PostgreSQL cannot tell in time: the gauges then read NaN (unknown). */
  readonly outbox: () => Promise<OutboxBacklog | undefined>;
}

/** What the wallet gauges read when scraped. */
export interface WalletGaugeSources {
  /** Lag per partition of the group; undefined when Kafka cannot tell in time. */
  readonly consumerLag: () => Promise<
    | readonly { readonly topic: string; readonly partition: number; readonly lag: number }[]
    | undefined
  >;
  /** Buckets whose totals are incomplete now (Redis lost some of their writes). */
  readonly incompleteBuckets?: () => number;
}

/** The outbox gauges, from one query per scrape. */
const outboxMetrics = (registry: Registry, read?: IngestGaugeSources['outbox']) => {
  // Both gauges are collected in the same scrape: they share one read.
  let reading: Promise<OutboxBacklog | undefined> | undefined;
  const shared = () => {
    if (read === undefined) return Promise.resolve(undefined);
    reading ??= read()
      .catch(() => undefined)
      .finally(() => {
        reading = undefined;
      });
    return reading;
  };
  return {
    outboxBacklog: new Gauge({
      name: 'spendstream_outbox_backlog',
      help:
        'Outbox entries committed to PostgreSQL and not yet known to be on Kafka ' +
        '(NaN: PostgreSQL did not answer in time)',
      registers: [registry],
      // The same figure in every worker (read from the stores): shown once, not summed.
      aggregator: 'max',
      async collect() {
        if (read !== undefined) this.set((await shared())?.entries ?? Number.NaN);
      },
    }),
    outboxFailing: new Gauge({
      name: 'spendstream_outbox_failing_entries',
      help:
        'Outbox entries recovery could not publish, set aside and retried with a backoff; ' +
        'their last error is in the log and in outbox.last_error ' +
        '(NaN: PostgreSQL did not answer in time)',
      registers: [registry],
      // The same figure in every worker (read from the stores): shown once, not summed.
      aggregator: 'max',
      async collect() {
        if (read !== undefined) this.set((await shared())?.failing ?? Number.NaN);
      },
    }),
    outboxOldestAge: new Gauge({
      name: 'spendstream_outbox_oldest_age_seconds',
      help:
        'Age of the oldest outbox entry, near zero while Kafka takes every batch ' +
        '(NaN: PostgreSQL did not answer in time)',
      registers: [registry],
      // The same figure in every worker (read from the stores): shown once, not summed.
      aggregator: 'max',
      async collect() {
        if (read !== undefined) this.set((await shared())?.oldestAgeSeconds ?? Number.NaN);
      },
    }),
  };
};

/**
 * Creates the ingest service's metrics in a registry of their own. Without `sources` the
 * gauges keep whatever is set on them.
 */
export const createIngestMetrics = (
  registry: Registry = baseRegistry(),
  sources?: IngestGaugeSources,
) => ({
  registry,
  ...stageMetrics(registry),
  received: new Counter({
    name: 'spendstream_purchases_received_total',
    help: 'Valid purchases read from sockets and admitted into the pipeline',
    registers: [registry],
  }),
  acked: new Counter({
    name: 'spendstream_purchases_acked_total',
    help: 'Purchases acknowledged, by whether the id had been stored before',
    labelNames: ['duplicate'] as const,
    registers: [registry],
  }),
  rejected: new Counter({
    name: 'spendstream_purchases_rejected_total',
    help: 'Purchases and frames answered with an error, by error code',
    labelNames: ['code'] as const,
    registers: [registry],
  }),
  ackLatency: new Histogram({
    name: 'spendstream_ack_latency_seconds',
    help:
      'Time from reading a frame to handing its reply to the socket, for replies holding ' +
      'acks: one observation per reply frame (a single-purchase frame is one purchase)',
    buckets: SECONDS,
    registers: [registry],
  }),
  connections: new Gauge({
    name: 'spendstream_connections_open',
    help: 'Open WebSocket connections',
    registers: [registry],
    collect() {
      if (sources !== undefined) this.set(sources.connections());
    },
  }),
  unacked: new Gauge({
    name: 'spendstream_purchases_unacked',
    help: 'Purchases read from sockets and not yet answered',
    registers: [registry],
    collect() {
      if (sources !== undefined) this.set(sources.unacked());
    },
  }),
  ...outboxMetrics(registry, sources?.outbox),
});

/** The ingest service's metrics. */
export type IngestMetrics = ReturnType<typeof createIngestMetrics>;

/**
 * Creates the wallet service's metrics in a registry of their own. Without `sources` the
 * lag gauge keeps whatever is set on it.
 */
export const createWalletMetrics = (
  registry: Registry = baseRegistry(),
  sources?: WalletGaugeSources,
) => ({
  registry,
  ...stageMetrics(registry),
  applied: new Counter({
    name: 'spendstream_wallet_purchases_applied_total',
    help: 'Purchase events added to their user total',
    registers: [registry],
  }),
  duplicatesSkipped: new Counter({
    name: 'spendstream_wallet_duplicates_skipped_total',
    help: 'Redelivered purchase events skipped because their user already counted them',
    registers: [registry],
  }),
  poison: new Counter({
    name: 'spendstream_wallet_dead_letters_total',
    help: 'Records that were not purchase events, sent to the dead-letter topic',
    registers: [registry],
  }),
  consumerLag: new Gauge({
    name: 'spendstream_consumer_lag',
    help:
      "Records of a partition not yet committed by the wallet's consumer group (the whole " +
      'group, the same from every instance; absent while Kafka does not answer)',
    labelNames: ['topic', 'partition'] as const,
    registers: [registry],
    // The same figure in every worker (read from the stores): shown once, not summed.
    aggregator: 'max',
    async collect() {
      if (sources === undefined) return;
      const lags = await sources.consumerLag().catch(() => undefined);
      // Partitions may move or the topic may be gone: only what Kafka reported now is shown.
      this.reset();
      for (const { topic, partition, lag } of lags ?? []) {
        this.set({ topic, partition: String(partition) }, lag);
      }
    },
  }),
  bucketLosses: new Counter({
    name: 'spendstream_wallet_bucket_losses_total',
    help:
      "Losses found in the wallet's Redis: a bucket short of records of a partition it had " +
      'applied (a snapshot or replica behind, an eviction), by bucket and partition',
    labelNames: ['bucket', 'partition'] as const,
    registers: [registry],
  }),
  snapshotBuckets: new Counter({
    name: 'spendstream_wallet_snapshot_buckets_total',
    help:
      'Buckets of the totals snapshotted into PostgreSQL, by outcome: written, busy (another ' +
      'wallet was writing it), lost or behind (Redis lost records: left to the repair), failed',
    labelNames: ['outcome'] as const,
    registers: [registry],
  }),
  snapshotUsers: new Counter({
    name: 'spendstream_wallet_snapshot_users_written_total',
    help: 'User totals written into the snapshot (each user changed since the last one)',
    registers: [registry],
  }),
  recordsDeleted: new Counter({
    name: 'spendstream_wallet_records_deleted_refusals_total',
    help:
      'Rebuilds and repairs refused because the records they need were deleted by the ' +
      "topic's retention, by partition",
    labelNames: ['partition'] as const,
    registers: [registry],
  }),
  bucketsIncomplete: new Gauge({
    name: 'spendstream_wallet_buckets_incomplete',
    help:
      'Buckets being repaired after a loss: GetBalance answers UNAVAILABLE for their users ' +
      'until they are',
    registers: [registry],
    // Buckets are the topic's, not a worker's: two workers that found one count it once.
    aggregator: 'max',
    collect() {
      if (sources?.incompleteBuckets !== undefined) this.set(sources.incompleteBuckets());
    },
  }),
  grpcCalls: new Counter({
    name: 'spendstream_grpc_calls_total',
    help: 'gRPC calls answered, by method and status code',
    labelNames: ['method', 'status'] as const,
    registers: [registry],
  }),
  grpcDuration: new Histogram({
    name: 'spendstream_grpc_call_duration_seconds',
    help: 'gRPC call latency, by method and status code',
    labelNames: ['method', 'status'] as const,
    buckets: SECONDS,
    registers: [registry],
  }),
});

/** The wallet service's metrics. */
export type WalletMetrics = ReturnType<typeof createWalletMetrics>;

/**
 * The metrics of a service's primary process, which runs its workers: shown on the
 * service's `/metrics` beside the workers' own.
 */
export const createWorkerMetrics = (
  registry: Registry = baseRegistry(),
  running: () => number,
) => ({
  registry,
  restarts: new Counter({
    name: 'spendstream_worker_restarts_total',
    help: 'Worker processes restarted after they died without being asked to stop',
    registers: [registry],
  }),
  running: new Gauge({
    name: 'spendstream_workers_running',
    help: "The service's worker processes alive now",
    registers: [registry],
    collect() {
      this.set(running());
    },
  }),
});

/** A primary process's metrics. */
export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;
