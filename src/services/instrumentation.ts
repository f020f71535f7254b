// Metrics and logs of the pipelines, added in the service layer by decorating the ports
// the pipelines are given: src/streams stays pure and knows nothing of prom-client.
// Everything here runs once per batch or per frame, never once per purchase, except
// plain integer increments.
import type {
  OffsetCommitter,
  PurchasePublisher,
  PurchaseStore,
  WalletStore,
} from '../core/ports.ts';
import type { ErrorCode } from '../core/errors.ts';
import { createThrottledLog, type Logger } from '../logger.ts';
import type { IngestMetrics, WalletMetrics } from '../metrics.ts';
import type { ConnectionObserver } from '../servers/connectionActor.ts';
import type { PurchaseResult } from '../streams/types.ts';

type StageMetrics = Pick<IngestMetrics | WalletMetrics, 'batchSize' | 'stageDuration'>;

/**
 * Wraps the calls of one pipeline stage: observes each call's batch size (when it has
 * one) and duration by outcome, and logs failures (throttled: an outage fails every
 * attempt of every batch). A retried batch is observed once per attempt.
 */
const stageTimer = (metrics: StageMetrics, stage: string, logger: Logger) => {
  const size = metrics.batchSize.labels({ stage });
  const ok = metrics.stageDuration.labels({ stage, outcome: 'ok' });
  const failed = metrics.stageDuration.labels({ stage, outcome: 'error' });
  const failure = createThrottledLog(logger, 'warn');
  return async <T>(
    count: number | undefined,
    call: () => Promise<T>,
    done?: (result: T, durationMs: number) => void,
  ): Promise<T> => {
    if (count !== undefined) size.observe(count);
    const started = performance.now();
    try {
      const result = await call();
      const seconds = (performance.now() - started) / 1_000;
      ok.observe(seconds);
      done?.(result, Math.round(seconds * 100_000) / 100);
      return result;
    } catch (error) {
      failed.observe((performance.now() - started) / 1_000);
      failure(`${stage} failed`, { stage, batchSize: count, error });
      throw error;
    }
  };
};

/** The store, measured as stage `persist`; each insert is logged at debug. */
export const instrumentPurchaseStore = (
  store: PurchaseStore,
  metrics: StageMetrics,
  logger: Logger,
): PurchaseStore => {
  const timed = stageTimer(metrics, 'persist', logger);
  return {
    save: (purchases) =>
      timed(
        purchases.length,
        () => store.save(purchases),
        (saved, durationMs) =>
          logger.debug('batch inserted', {
            purchases: purchases.length,
            inserted: saved.inserted.size,
            outboxId: saved.outboxId,
            durationMs,
          }),
      ),
    markPublished: (outboxIds) => store.markPublished(outboxIds),
  };
};

/** The publisher, measured as stage `publish`; each send is logged at debug. */
export const instrumentPurchasePublisher = (
  publisher: PurchasePublisher,
  metrics: StageMetrics,
  logger: Logger,
): PurchasePublisher => {
  const timed = stageTimer(metrics, 'publish', logger);
  return {
    publish: (purchases) =>
      timed(
        purchases.length,
        () => publisher.publish(purchases),
        (_, durationMs) =>
          logger.debug('batch published', { purchases: purchases.length, durationMs }),
      ),
  };
};

/** The wallet store, measured as stage `apply`. */
export const instrumentWalletStore = (
  store: WalletStore,
  metrics: StageMetrics,
  logger: Logger,
): WalletStore => {
  const timed = stageTimer(metrics, 'apply', logger);
  return {
    apply: (topic, records, options) =>
      timed(records.length, () => store.apply(topic, records, options)),
    readMarkers: (topic, partitions) => store.readMarkers(topic, partitions),
    isInitialised: (topic) => store.isInitialised(topic),
    markInitialised: (topic) => store.markInitialised(topic),
    takeSnapshot: (topic, bucket, partitions) => store.takeSnapshot(topic, bucket, partitions),
    settleSnapshot: (bucket, userIds) => store.settleSnapshot(bucket, userIds),
    restore: (topic, snapshot) => store.restore(topic, snapshot),
  };
};

/** The committer, measured as stage `commit` (a failed commit is harmless and logged). */
export const instrumentOffsetCommitter = (
  committer: OffsetCommitter,
  metrics: StageMetrics,
  logger: Logger,
): OffsetCommitter => {
  const timed = stageTimer(metrics, 'commit', logger);
  return {
    commit: (topic, partition, offset) =>
      timed(undefined, () => committer.commit(topic, partition, offset)),
  };
};

/**
 * Counts the pipeline's replies: `add` each one (integer increments), then `flush` once
 * per outcome batch, which increments each counter once. Refusals are logged, throttled
 * per code: a burst of one code holds back neither the first line of another nor is
 * counted as another's. `clock` is the throttles' (tests pass one of their own).
 */
export const createOutcomeTally = (
  metrics: Pick<IngestMetrics, 'acked' | 'rejected'>,
  logger: Logger,
  clock?: () => number,
) => {
  const acked = metrics.acked.labels({ duplicate: 'false' });
  const duplicates = metrics.acked.labels({ duplicate: 'true' });
  // One throttle per code; the codes are a closed set, so the map stays small.
  const refusedLogs = new Map<ErrorCode, ReturnType<typeof createThrottledLog>>();
  const refusedLog = (code: ErrorCode) => {
    let log = refusedLogs.get(code);
    if (log === undefined) {
      log = createThrottledLog(logger, 'warn', undefined, clock);
      refusedLogs.set(code, log);
    }
    return log;
  };
  let newAcks = 0;
  let duplicateAcks = 0;
  let refused: Map<ErrorCode, number> | undefined;
  return {
    add(result: PurchaseResult): void {
      if (result.status === 'ack') {
        if (result.duplicate) duplicateAcks += 1;
        else newAcks += 1;
        return;
      }
      refused ??= new Map();
      refused.set(result.code, (refused.get(result.code) ?? 0) + 1);
    },
    flush(): void {
      if (newAcks > 0) acked.inc(newAcks);
      if (duplicateAcks > 0) duplicates.inc(duplicateAcks);
      newAcks = 0;
      duplicateAcks = 0;
      if (refused === undefined) return;
      for (const [code, count] of refused) {
        metrics.rejected.inc({ code }, count);
        refusedLog(code)('purchases refused', { code, count });
      }
      refused = undefined;
    },
  };
};

/** What the WebSocket connections report, as ingest metrics. */
export const connectionObserver = (metrics: IngestMetrics): ConnectionObserver => ({
  received: (count) => metrics.received.inc(count),
  refused: (code, count) => metrics.rejected.inc({ code }, count),
  replied: (readAt) => metrics.ackLatency.observe((performance.now() - readAt) / 1_000),
});
