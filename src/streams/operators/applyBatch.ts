import { concatMap, defer, from, map, of, type OperatorFunction, type SchedulerLike } from 'rxjs';
import type { DeadLetterPublisher, OffsetCommitter, WalletStore } from '../../core/ports.ts';
import type { AppliedBatch, DecodedBatch } from '../walletTypes.ts';
import { callStore, type StoreCallConfig } from '../callStore.ts';

/** Collaborators and limits of {@link applyBatch}. */
export interface ApplyBatchDeps {
  readonly store: WalletStore;
  readonly deadLetters: DeadLetterPublisher;
  readonly committer: OffsetCommitter;
  /** Bounds of one store call; the wallet retries until the store answers. */
  readonly storeCall: Omit<StoreCallConfig, 'scheduler'>;
  readonly scheduler?: SchedulerLike;
}

/** One past a Kafka offset, as Kafka expects a committed offset. */
const after = (offset: string): string => (BigInt(offset) + 1n).toString();

/**
 * Applies each decoded batch, one at a time: poison records go to the dead-letter topic,
 * the purchases go to the store in one pipelined, idempotent step, and only then is the
 * batch's offset committed. A commit that fails is harmless — the store skips what it
 * already applied when the batch comes again — so it is not retried.
 */
export const applyBatch = <R>(
  deps: ApplyBatchDeps,
): OperatorFunction<DecodedBatch<R>, AppliedBatch<R>> => {
  const config = { ...deps.storeCall, scheduler: deps.scheduler };
  return concatMap(({ batch, records, poison }) => {
    const last = batch.records[batch.records.length - 1];
    const deadLettered =
      poison.length === 0
        ? of(undefined)
        : callStore('kafka', () => deps.deadLetters.publish(poison), config);
    return deadLettered.pipe(
      concatMap(() =>
        records.length === 0
          ? of({ applied: 0, skipped: 0 })
          : callStore('redis', () => deps.store.apply(batch.topic, records), config),
      ),
      concatMap((result) => {
        const nextOffset = batch.nextOffset ?? (last === undefined ? '0' : after(last.offset));
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
  });
};
