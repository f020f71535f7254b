// Snapshots of the wallet's totals into PostgreSQL, and restores from them. Every interval
// each bucket's users changed since its last snapshot are written with the bucket's
// markers; a wallet whose Redis lost the totals, all of them or some buckets, puts the
// snapshot back and replays only the tail after its markers.
import type { DatabasePool } from 'slonik';
import {
  readBucketSnapshot,
  readSnapshotMarkers,
  writeBucketSnapshot,
} from '../adapters/postgres/walletSnapshots.ts';
import { WALLET_BUCKETS } from '../core/buckets.ts';
import type { WalletStore } from '../core/ports.ts';
import { createThrottledLog, type Logger } from '../logger.ts';
import type { WalletMetrics } from '../metrics.ts';

/** What {@link createWalletSnapshots} works with. */
export interface WalletSnapshotsDeps {
  readonly pool: DatabasePool;
  readonly store: WalletStore;
  readonly topic: string;
  /** The id of the topic the totals in the store are of: snapshots are bound to it. */
  readonly topicId: string;
  /** The topic's partitions now. */
  readonly partitions: () => Promise<readonly number[]>;
  readonly metrics?: Pick<WalletMetrics, 'snapshotBuckets' | 'snapshotUsers'>;
  readonly logger: Logger;
}

/** What one round of snapshots did. */
export interface SnapshotRound {
  readonly written: number;
  readonly users: number;
  /** Buckets another wallet was writing, or that Redis lost records of: left for later. */
  readonly skipped: number;
  readonly durationMs: number;
}

/** What {@link WalletSnapshots.restore} put back. */
export interface RestoreReport {
  readonly buckets: number;
  readonly users: number;
  /** Per partition, the lowest marker among the buckets: where their tail starts. */
  readonly from: ReadonlyMap<number, bigint>;
}

/** The wallet's snapshots of one topic's totals. */
export interface WalletSnapshots {
  /** Snapshots every bucket once. */
  takeAll(): Promise<SnapshotRound>;
  /**
   * Puts the stored snapshot of `buckets` (all of them by default) into the store; every
   * bucket without one counts from offset 0.
   */
  restore(buckets?: readonly number[]): Promise<RestoreReport>;
  /** Takes a round every `intervalMs` until {@link stop}. */
  start(intervalMs: number): void;
  /** Stops the rounds; resolves once the one under way has ended. */
  stop(): Promise<void>;
}

const EVERY_BUCKET = Array.from({ length: WALLET_BUCKETS }, (_, bucket) => bucket);

/** Creates the {@link WalletSnapshots} of `deps.topic`. */
export const createWalletSnapshots = (deps: WalletSnapshotsDeps): WalletSnapshots => {
  const { pool, store, topic, topicId, logger } = deps;
  const failing = createThrottledLog(logger, 'warn');
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<unknown> | undefined;
  let stopped = false;

  const takeAll = async (): Promise<SnapshotRound> => {
    const started = performance.now();
    const partitions = await deps.partitions();
    let written = 0;
    let users = 0;
    let skipped = 0;
    for (const bucket of EVERY_BUCKET) {
      if (stopped) break;
      const result = await writeBucketSnapshot(pool, { topicId, topic }, bucket, () =>
        store.takeSnapshot(topic, bucket, partitions),
      );
      deps.metrics?.snapshotBuckets.inc({ outcome: result.outcome });
      if (result.outcome !== 'written') {
        skipped += 1;
        continue;
      }
      const ids = result.snapshot.users.map((user) => user.userId);
      // Once stored: a crash before this takes them again next time, which is harmless.
      await store.settleSnapshot(bucket, ids);
      written += 1;
      users += ids.length;
    }
    deps.metrics?.snapshotUsers.inc(users);
    return { written, users, skipped, durationMs: performance.now() - started };
  };

  const restore = async (buckets: readonly number[] = EVERY_BUCKET): Promise<RestoreReport> => {
    const partitions = await deps.partitions();
    const from = new Map(partitions.map((partition) => [partition, -1n]));
    let restored = 0;
    let users = 0;
    const stored = await readSnapshotMarkers(pool, topicId);
    for (const bucket of buckets) {
      const markers = stored.get(bucket);
      const snapshot =
        markers === undefined ? undefined : await readBucketSnapshot(pool, topicId, bucket);
      if (snapshot !== undefined) {
        await store.restore(topic, snapshot);
        restored += 1;
        users += snapshot.users.length;
      }
      for (const partition of partitions) {
        const marker = BigInt(snapshot?.markers.get(partition) ?? '0');
        const low = from.get(partition) ?? -1n;
        if (low < 0n || marker < low) from.set(partition, marker);
      }
    }
    return {
      buckets: restored,
      users,
      from: new Map([...from].map(([partition, offset]) => [partition, offset < 0n ? 0n : offset])),
    };
  };

  const tick = () => {
    if (stopped || round !== undefined) return;
    round = takeAll()
      .then((done) => {
        if (done.written > 0) {
          logger.info('wallet snapshot written', {
            topic,
            buckets: done.written,
            users: done.users,
            skipped: done.skipped,
            durationMs: Math.round(done.durationMs),
          });
        }
      })
      .catch((error: unknown) => {
        deps.metrics?.snapshotBuckets.inc({ outcome: 'failed' });
        failing('wallet snapshot failed; trying again at the next interval', { topic, error });
      })
      .finally(() => {
        round = undefined;
      });
  };

  return {
    takeAll,
    restore,
    start: (intervalMs) => {
      if (intervalMs <= 0 || timer !== undefined) return;
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },
    stop: async () => {
      stopped = true;
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      await round;
    },
  };
};
