// The wallet's repairs of buckets that Redis lost writes of: found by the store on apply,
// by the balance reader on a read, or by comparing every bucket's markers with the group's
// committed offsets (at start, after a Redis reconnect, every second). A repair reads the
// partition again and applies its records to the short buckets; meanwhile their users'
// reads answer UNAVAILABLE and the batch that found them waits.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Subscription } from 'rxjs';
import { WALLET_BUCKETS } from '../core/buckets.ts';
import type { BucketRepairer, LostBucket, PartitionReader, WalletStore } from '../core/ports.ts';
import { isSpendstreamError, RecordsDeletedError } from '../core/errors.ts';
import type { WalletSnapshots } from './walletSnapshots.ts';
import { createThrottledLog, type Logger } from '../logger.ts';
import type { WalletMetrics } from '../metrics.ts';
import type { StoreCallConfig } from '../streams/callStore.ts';
import type { PurchaseDecoder } from '../streams/operators/decodeBatch.ts';
import {
  repairPartition,
  RepairInterruptedError,
  type RepairReport,
} from '../streams/repairPartition.ts';

/** What {@link createWalletRepairs} works with. */
export interface WalletRepairsDeps {
  readonly topic: string;
  readonly store: WalletStore;
  readonly reader: PartitionReader;
  readonly decode: PurchaseDecoder;
  readonly storeCall: Omit<StoreCallConfig, 'scheduler'>;
  /** The group's committed offsets, partitions without one left out. */
  readonly committed: () => Promise<ReadonlyMap<number, bigint>>;
  /** The partitions of the topic this instance consumes now: it repairs those. */
  readonly owned: () => ReadonlySet<number>;
  readonly metrics: Pick<WalletMetrics, 'bucketLosses'> &
    Partial<Pick<WalletMetrics, 'recordsDeleted'>>;
  /** Where lost buckets are put back from before their tail is replayed, if anywhere. */
  readonly snapshots?: Pick<WalletSnapshots, 'restore'>;
  /** Per partition, the topic's first offset still held (retention deletes before it). */
  readonly logStarts?: () => Promise<ReadonlyMap<number, bigint>>;
  readonly logger: Logger;
}

/** The wallet's repairs, and what it knows of each bucket's totals. */
export interface WalletRepairs extends BucketRepairer {
  /**
   * Compares every bucket's markers with the group's committed offsets, and starts the
   * repairs of the partitions this instance consumes. One check at a time; a call while
   * one runs shares it.
   */
  check(): Promise<void>;
  /** Whether the users of `bucket` have complete totals, as far as this instance knows. */
  isComplete(bucket: number): boolean;
  /** How many buckets are known incomplete. */
  incompleteCount(): number;
  /** A read found the bucket short: incomplete until a check finds it whole. */
  markIncomplete(bucket: number): void;
  /** The committed offsets as the last check read them. */
  committedOffsets(): ReadonlyMap<number, string>;
  /** Stops every repair under way; their callers wait no more (the service is stopping). */
  close(): void;
}

const BACKOFF_MS = { initial: 200, max: 5_000 };

/** Creates the wallet's {@link WalletRepairs}. */
export const createWalletRepairs = (deps: WalletRepairsDeps): WalletRepairs => {
  const { topic, store, logger } = deps;
  /** Per partition, the repairs asked for, one after another. */
  const queues = new Map<number, Promise<void>>();
  /** Buckets with a repair under way here, counted per partition repaired. */
  const repairing = new Map<number, number>();
  /** Buckets the last check found short, or a read did since. */
  let short = new Set<number>();
  /** Losses reported and not yet repaired, `bucket:partition`: each logged and counted once. */
  const known = new Set<string>();
  let committed: ReadonlyMap<number, string> = new Map();
  /** Repairs under way, by what cuts them short. */
  const running = new Map<() => void, Subscription>();
  const failing = createThrottledLog(logger, 'warn');
  const refused = createThrottledLog(logger, 'error');
  let closed = false;

  const report = (lost: readonly LostBucket[], to: string) => {
    for (const { bucket, partition, marker, reason } of lost) {
      const key = `${bucket}:${partition}`;
      if (known.has(key)) continue;
      known.add(key);
      deps.metrics.bucketLosses.inc({ bucket: String(bucket), partition: String(partition) });
      logger.warn('Redis lost records of a bucket: repairing it', {
        topic,
        bucket,
        partition,
        marker,
        committed: to,
        reason,
      });
    }
  };

  const hold = (buckets: readonly number[], by: 1 | -1) => {
    for (const bucket of buckets) {
      const count = (repairing.get(bucket) ?? 0) + by;
      if (count > 0) repairing.set(bucket, count);
      else repairing.delete(bucket);
    }
  };

  /** Runs one repair to completion; one cut short by {@link WalletRepairs.close} rejects. */
  const runOnce = (request: Parameters<typeof repairPartition>[0]) =>
    new Promise<RepairReport>((resolve, reject) => {
      let result: RepairReport | undefined;
      const stop = () => reject(new Error('the wallet is stopping'));
      const subscription = repairPartition(request, deps).subscribe({
        next: (value) => {
          result = value;
        },
        error: (error: unknown) => {
          running.delete(stop);
          reject(error instanceof Error ? error : new Error(String(error)));
        },
        complete: () => {
          running.delete(stop);
          if (result !== undefined) resolve(result);
        },
      });
      running.set(stop, subscription);
    });

  /**
   * Brings `buckets` of `partition` up to `to`, trying again while Redis or Kafka is
   * unavailable or the buckets lose records again meanwhile; an error that trying again
   * cannot cure (a bug) is thrown.
   */
  const bringUp = async (partition: number, buckets: ReadonlySet<number>, to: string) => {
    const wanted = new Set(buckets);
    /** The buckets of `wanted` short of `to`, as they are now. */
    const shortOnes = async (): Promise<LostBucket[]> => {
      const markers = await store.readMarkers(topic, [partition]);
      const lost: LostBucket[] = [];
      for (const bucket of wanted) {
        const marker = markers.get(bucket)?.get(partition) ?? '0';
        if (BigInt(marker) < BigInt(to)) lost.push({ bucket, partition, marker, reason: 'behind' });
      }
      return lost;
    };
    let restored = false;
    for (let attempt = 0; !closed; attempt += 1) {
      let held: number[] = [];
      try {
        // As they are now: a repair before this one may have brought them up already.
        let lost = await shortOnes();
        if (lost.length === 0) return;
        held = lost.map((l) => l.bucket);
        hold(held, 1);
        if (deps.snapshots !== undefined && !restored) {
          restored = true;
          lost = await restoreFromSnapshot(lost, shortOnes);
          if (lost.length === 0) return;
        }
        const from = lost.reduce(
          (low, l) => (BigInt(l.marker) < low ? BigInt(l.marker) : low),
          BigInt(to),
        );
        const start = (await deps.logStarts?.())?.get(partition) ?? 0n;
        if (start > from)
          throw new RecordsDeletedError(topic, partition, String(from), String(start));
        const done = await runOnce({ topic, partition, lost, to });
        for (const bucket of held) known.delete(`${bucket}:${partition}`);
        logger.info('buckets repaired', {
          topic,
          partition,
          buckets: done.buckets,
          from: done.from,
          to: done.to,
          records: done.records,
          applied: done.applied,
          durationMs: Math.round(done.durationMs),
        });
        return;
      } catch (error) {
        if (closed) return;
        if (error instanceof RepairInterruptedError) {
          report(error.lost, to);
          for (const l of error.lost) wanted.add(l.bucket);
        } else if (error instanceof RecordsDeletedError) {
          // Nothing here can mend it; the buckets stay unavailable, loudly, until an
          // operator does (see docs/operating.md).
          deps.metrics.recordsDeleted?.inc({ partition: String(partition) });
          refused('cannot repair buckets: the records they need were deleted', {
            topic,
            partition,
            buckets: held,
            error,
          });
          await sleep(BACKOFF_MS.max);
          continue;
        } else if (!isSpendstreamError(error) || !error.retryable) {
          throw error;
        }
        failing('bucket repair failed; trying again', { topic, partition, error });
        await sleep(Math.min(BACKOFF_MS.initial * 2 ** attempt, BACKOFF_MS.max));
      } finally {
        hold(held, -1);
      }
    }
  };

  /**
   * Puts the snapshot of the lost buckets back, then says which are still short (their
   * snapshot, if any, ends before `to`). A snapshot that cannot be used (PostgreSQL down, a
   * user changed on another partition meanwhile) leaves the buckets to a replay.
   */
  const restoreFromSnapshot = async (
    lost: LostBucket[],
    shortOnes: () => Promise<LostBucket[]>,
  ): Promise<LostBucket[]> => {
    const buckets = [...new Set(lost.map((l) => l.bucket))];
    try {
      const restored = await deps.snapshots?.restore(buckets);
      if (restored !== undefined && restored.buckets > 0) {
        logger.info('buckets restored from the snapshot', {
          topic,
          buckets: restored.buckets,
          users: restored.users,
        });
      }
    } catch (error) {
      logger.warn('could not restore buckets from the snapshot: replaying them instead', {
        topic,
        buckets,
        error,
      });
    }
    return shortOnes();
  };

  const repair: WalletRepairs['repair'] = (_topic, partition, lost, to) => {
    report(lost, to);
    for (const { bucket } of lost) short.add(bucket);
    const buckets = new Set(lost.map((l) => l.bucket));
    // After whatever repair of the partition is under way: the two would read the same.
    const previous = queues.get(partition) ?? Promise.resolve();
    const next = previous.then(
      () => bringUp(partition, buckets, to),
      () => bringUp(partition, buckets, to),
    );
    queues.set(partition, next);
    void next.finally(() => {
      if (queues.get(partition) === next) queues.delete(partition);
    });
    return next;
  };

  let checking: Promise<void> | undefined;
  const check = async () => {
    const offsets = await deps.committed();
    const partitions = [...offsets.keys()];
    // Committed offsets before markers: a marker is raised before its commit, so one read
    // after the commit can only be higher.
    const markers = await store.readMarkers(topic, partitions);
    const found = new Set<number>();
    const lostBy = new Map<number, LostBucket[]>();
    for (let bucket = 0; bucket < WALLET_BUCKETS; bucket += 1) {
      const own = markers.get(bucket);
      for (const partition of partitions) {
        const marker = own?.get(partition) ?? '0';
        if (BigInt(marker) >= (offsets.get(partition) ?? 0n)) continue;
        found.add(bucket);
        const list = lostBy.get(partition) ?? [];
        list.push({ bucket, partition, marker, reason: 'behind' });
        lostBy.set(partition, list);
      }
    }
    committed = new Map([...offsets].map(([partition, offset]) => [partition, String(offset)]));
    short = found;
    // Losses found before and whole now, not by a repair of this instance: forget them, so
    // that a loss there later is reported again.
    for (const key of known) {
      const bucket = Number(key.slice(0, key.indexOf(':')));
      if (!found.has(bucket) && !repairing.has(bucket)) known.delete(key);
    }
    const owned = deps.owned();
    for (const [partition, lost] of lostBy) {
      const to = String(offsets.get(partition) ?? 0n);
      report(lost, to);
      // Another instance consumes it: that one repairs it, its batches being held back.
      if (!owned.has(partition) || queues.has(partition)) continue;
      repair(topic, partition, lost, to).catch((error: unknown) =>
        logger.warn('bucket repair failed', { topic, partition, error }),
      );
    }
  };

  return {
    repair,
    check: () => {
      checking ??= check().finally(() => {
        checking = undefined;
      });
      return checking;
    },
    isComplete: (bucket) => !short.has(bucket) && !repairing.has(bucket),
    incompleteCount: () => new Set([...short, ...repairing.keys()]).size,
    markIncomplete: (bucket) => {
      short.add(bucket);
    },
    committedOffsets: () => committed,
    close: () => {
      closed = true;
      for (const [stop, subscription] of running) {
        subscription.unsubscribe();
        stop();
      }
      running.clear();
    },
  };
};
