import {
  catchError,
  concatMap,
  defer,
  map,
  mergeMap,
  of,
  type Observable,
  type OperatorFunction,
} from 'rxjs';
import type { PurchaseStore } from '../../core/ports.ts';
import type { BatchState, Submission } from '../types.ts';
import { callStore, type StoreCallConfig } from '../callStore.ts';
import { failBatch } from '../failBatch.ts';

/** Limits of {@link persistBatch}. */
export interface PersistBatchConfig extends StoreCallConfig {
  /** Batches saved at the same time, each in its own transaction; 1 by default. */
  readonly concurrency?: number;
}

/**
 * Like `mergeMap` with a concurrency limit, for projections emitting exactly one value,
 * but emits the results in the order of their sources: a later result waits for every
 * earlier one.
 */
const orderedMergeMap =
  <T, U>(project: (value: T) => Observable<U>, concurrency: number): OperatorFunction<T, U> =>
  (source) =>
    defer(() => {
      const done = new Map<number, U>();
      let next = 0;
      return source.pipe(
        mergeMap(
          (value, index) => project(value).pipe(map((result) => ({ index, result }))),
          concurrency,
        ),
        concatMap(({ index, result }) => {
          done.set(index, result);
          const ready: U[] = [];
          while (done.has(next)) {
            ready.push(done.get(next) as U);
            done.delete(next);
            next += 1;
          }
          return ready;
        }),
      );
    });

/**
 * Saves each batch in one PostgreSQL transaction (purchases + outbox entry). Up to
 * `concurrency` batches are saved at once, and batches leave in the order they came, so
 * the publish stage still sees arrival order. A batch the store cannot take in time
 * becomes a failed batch instead of an error, so the stream lives on.
 */
export const persistBatch = <R>(
  store: PurchaseStore,
  { concurrency = 1, ...config }: PersistBatchConfig,
): OperatorFunction<readonly Submission<R>[], BatchState<R>> =>
  orderedMergeMap(
    (submissions: readonly Submission<R>[]) =>
      callStore('postgres', () => store.save(submissions.map((s) => s.purchase)), config).pipe(
        map((saved): BatchState<R> => ({ submissions, saved })),
        catchError((error: unknown) => of(failBatch({ submissions }, error))),
      ),
    concurrency,
  );
