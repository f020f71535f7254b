import {
  concatMap,
  defer,
  from,
  map,
  of,
  type Observable,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs';
import { SpendstreamError } from '../../core/errors.ts';
import type {
  ApplyResult,
  BucketRepairer,
  DeadLetterPublisher,
  OffsetCommitter,
  PartitionSpan,
  WalletStore,
} from '../../core/ports.ts';
import type { WalletRecord } from '../../core/records.ts';
import type { AppliedBatch, DecodedBatch } from '../walletTypes.ts';
import { callStore, type StoreCallConfig } from '../callStore.ts';

/** Collaborators and limits of {@link applyBatch}. */
export interface ApplyBatchDeps {
  readonly store: WalletStore;
  readonly deadLetters: DeadLetterPublisher;
  readonly committer: OffsetCommitter;
  /**
   * Brings up buckets the store finds short (Redis lost writes). The batch waits for it,
   * so no newer record reaches a bucket before the older ones it lost. Without one, a
   * loss fails the stream.
   */
  readonly repairer?: BucketRepairer;
  /** Bounds of one store call; the wallet retries until the store answers. */
  readonly storeCall: Omit<StoreCallConfig, 'scheduler'>;
  readonly scheduler?: SchedulerLike;
}

/** One past a Kafka offset, as Kafka expects a committed offset. */
const after = (offset: string): string => (BigInt(offset) + 1n).toString();

/** Where the previous batch of a partition ended, in which assignment. */
interface Position {
  readonly assignment: number;
  readonly next: string;
}

/**
 * Applies each decoded batch, one at a time: poison records go to the dead-letter topic,
 * the purchases go to the store in one pipelined, idempotent step that also checks and
 * raises every bucket's marker, and only then is the batch's offset committed. A bucket
 * found short is repaired, and the batch applied to it, before the commit. A commit that
 * fails is harmless — the store skips what it already applied when the batch comes again
 * — so it is not retried.
 *
 * A batch continues from its first offset, or, within the same assignment of its
 * partition, from where the previous batch ended if that is lower (the offsets between
 * were only transaction markers, or came again).
 */
export const applyBatch = <R>(
  deps: ApplyBatchDeps,
): OperatorFunction<DecodedBatch<R>, AppliedBatch<R>> => {
  const config = { ...deps.storeCall, scheduler: deps.scheduler };
  return (batches$) =>
    defer(() => {
      const positions = new Map<string, Position>();

      /** Applies `records` (to `buckets` only, when given) until no bucket is short. */
      const applyWhole = (
        topic: string,
        records: readonly WalletRecord[],
        span: PartitionSpan,
        buckets?: readonly number[],
      ): Observable<Pick<ApplyResult, 'applied' | 'skipped'>> =>
        callStore(
          'redis',
          () =>
            deps.store.apply(
              topic,
              records,
              buckets === undefined ? { spans: [span] } : { spans: [span], buckets },
            ),
          config,
        ).pipe(
          concatMap((result) => {
            if (result.lost.length === 0) return of(result);
            const { repairer } = deps;
            if (repairer === undefined) {
              throw new SpendstreamError(
                'internal',
                `buckets ${result.lost.map((l) => l.bucket).join(', ')} of ${topic} lost ` +
                  `records of partition ${span.partition}, and nothing repairs them`,
              );
            }
            const lost = [...new Set(result.lost.map((l) => l.bucket))];
            return defer(() => repairer.repair(topic, span.partition, result.lost, span.from)).pipe(
              concatMap(() => applyWhole(topic, records, span, lost)),
              map((again) => ({
                applied: result.applied + again.applied,
                skipped: result.skipped + again.skipped,
              })),
            );
          }),
        );

      return batches$.pipe(
        concatMap(({ batch, records, poison }) => {
          const first = batch.records[0];
          const last = batch.records[batch.records.length - 1];
          const fromOffset = batch.fromOffset ?? first?.offset;
          const nextOffset = batch.nextOffset ?? (last === undefined ? '0' : after(last.offset));
          const assignment = batch.assignment ?? 0;
          const key = `${batch.topic}:${batch.partition}`;
          const previous = positions.get(key);
          const continues =
            previous !== undefined &&
            previous.assignment === assignment &&
            fromOffset !== undefined &&
            BigInt(previous.next) < BigInt(fromOffset);
          const span: PartitionSpan | undefined =
            fromOffset === undefined
              ? undefined
              : {
                  partition: batch.partition,
                  from: continues ? previous.next : fromOffset,
                  to: nextOffset,
                };
          const deadLettered =
            poison.length === 0
              ? of(undefined)
              : callStore('kafka', () => deps.deadLetters.publish(poison), config);
          return deadLettered.pipe(
            // A batch of poison alone still moves the markers: its offsets are committed.
            concatMap(() =>
              span === undefined
                ? of({ applied: 0, skipped: 0 })
                : applyWhole(batch.topic, records, span),
            ),
            concatMap((result) => {
              if (span !== undefined) positions.set(key, { assignment, next: span.to });
              const commit =
                batch.nextOffset === undefined && last === undefined
                  ? of(undefined)
                  : defer(() =>
                      from(
                        deps.committer
                          .commit(batch.topic, batch.partition, nextOffset)
                          .catch(() => undefined),
                      ),
                    );
              return commit.pipe(
                map((): AppliedBatch<R> => ({
                  ref: batch.ref,
                  topic: batch.topic,
                  partition: batch.partition,
                  applied: result.applied,
                  skipped: result.skipped,
                  poison: poison.length,
                  nextOffset,
                })),
              );
            }),
          );
        }),
      );
    });
};
