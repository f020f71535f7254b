import {
  asyncScheduler,
  concatMap,
  count,
  defer,
  EMPTY,
  expand,
  finalize,
  map,
  of,
  type Observable,
  type SchedulerLike,
} from 'rxjs';
import { SpendstreamError } from '../core/errors.ts';
import type { LostBucket, PartitionPage, PartitionReader, WalletStore } from '../core/ports.ts';
import type { WalletRecord } from '../core/records.ts';
import { bucketOf } from '../core/buckets.ts';
import { callStore, type StoreCallConfig } from './callStore.ts';
import type { PurchaseDecoder } from './operators/decodeBatch.ts';

/** Buckets of one partition to bring up to `to`. */
export interface RepairRequest {
  readonly topic: string;
  readonly partition: number;
  /** The buckets, each with its marker: where it stopped holding the partition's records. */
  readonly lost: readonly LostBucket[];
  /** Where they must get to: the committed offset, or where the batch in hand begins. */
  readonly to: string;
}

/** What a repair did. */
export interface RepairReport {
  readonly topic: string;
  readonly partition: number;
  readonly buckets: readonly number[];
  /** The first offset read again: the lowest marker among the buckets. */
  readonly from: string;
  readonly to: string;
  /** Records read from the partition, the other buckets' included. */
  readonly records: number;
  /** Records added to their users' totals (the rest were still held). */
  readonly applied: number;
  readonly durationMs: number;
}

/** Collaborators and limits of {@link repairPartition}. */
export interface RepairDeps {
  readonly reader: PartitionReader;
  readonly store: WalletStore;
  readonly decode: PurchaseDecoder;
  /** Bounds of one store call; transient failures are retried within them. */
  readonly storeCall: Omit<StoreCallConfig, 'scheduler'>;
  readonly scheduler?: SchedulerLike;
}

/** A repair found its buckets short again part-way (another loss): start it afresh. */
export class RepairInterruptedError extends SpendstreamError {
  readonly lost: readonly LostBucket[];

  constructor(lost: readonly LostBucket[]) {
    super(
      'unavailable',
      `buckets ${lost.map((l) => l.bucket).join(', ')} lost records again during their repair`,
      { retryable: true },
    );
    this.lost = lost;
  }
}

const minOffset = (offsets: readonly string[]): string =>
  offsets.reduce((low, offset) => (BigInt(offset) < BigInt(low) ? offset : low));

/**
 * Re-reads one partition from the lowest of the lost buckets' markers up to `to` and
 * applies each page's records of those buckets' users through the store's usual step,
 * limited to those buckets: per-user offsets skip what a bucket still holds, and each page
 * raises the buckets' markers to where it ends, so a repair cut short resumes from there.
 * Pages are read as they are applied, never ahead. Fails with a
 * {@link RepairInterruptedError} if the store finds the buckets short again meanwhile.
 */
export const repairPartition = (
  request: RepairRequest,
  deps: RepairDeps,
): Observable<RepairReport> =>
  defer(() => {
    const { topic, partition, to } = request;
    const scheduler = deps.scheduler ?? asyncScheduler;
    const config = { ...deps.storeCall, scheduler };
    const buckets = [...new Set(request.lost.map((l) => l.bucket))].sort((a, b) => a - b);
    const wanted = new Set(buckets);
    const from = minOffset(request.lost.map((l) => l.marker));
    const started = scheduler.now();
    const totals = { records: 0, applied: 0 };
    let cursor = from;
    const report = (): RepairReport => ({
      topic,
      partition,
      buckets,
      from,
      to,
      ...totals,
      durationMs: scheduler.now() - started,
    });
    if (buckets.length === 0 || BigInt(from) >= BigInt(to)) return of(report());

    // Each store call continues from where the previous page left the buckets' markers.
    const applyUpTo = (records: readonly WalletRecord[], next: string) =>
      callStore(
        'redis',
        () =>
          deps.store.apply(topic, records, {
            spans: [{ partition, from: cursor, to: next }],
            buckets,
          }),
        config,
      ).pipe(
        map((result) => {
          if (result.lost.length > 0) throw new RepairInterruptedError(result.lost);
          totals.applied += result.applied;
          cursor = next;
        }),
      );

    const applyPage = (page: PartitionPage) => {
      totals.records += page.records.length;
      const records: WalletRecord[] = [];
      for (const record of page.records) {
        if (record.value === null) continue;
        try {
          const purchase = deps.decode(record.value, `${topic}/${partition}/${record.offset}`);
          if (!wanted.has(bucketOf(purchase.userId))) continue;
          records.push({
            partition,
            offset: record.offset,
            userId: purchase.userId,
            amountCents: purchase.amountCents,
          });
        } catch {
          // Not a purchase: the dead-letter topic had it the first time round.
        }
      }
      return applyUpTo(records, page.next);
    };

    const pages = deps.reader.read(topic, partition, from, to)[Symbol.asyncIterator]();
    // One page at a time: the next is asked for once the previous one is applied.
    const step = (): Observable<void> =>
      defer(() => pages.next()).pipe(
        concatMap((result) => (result.done === true ? EMPTY : applyPage(result.value))),
      );
    return step().pipe(
      expand(() => step(), 1),
      count(),
      // A stretch the reader ended short of `to` (markers only) still counts as held.
      concatMap(() => (BigInt(cursor) < BigInt(to) ? applyUpTo([], to) : of(undefined))),
      map(report),
      // The reader's consumer group goes once the repair ends, however it ends.
      finalize(() => void Promise.resolve(pages.return?.()).catch(() => undefined)),
    );
  });
