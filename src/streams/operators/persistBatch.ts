import { catchError, concatMap, map, of, type OperatorFunction } from 'rxjs';
import type { PurchaseStore } from '../../adapters/ports.ts';
import type { BatchState, Submission } from '../types.ts';
import { callStore, type StoreCallConfig } from './callStore.ts';
import { failBatch } from './failBatch.ts';

/**
 * Saves each batch in one PostgreSQL transaction (purchases + outbox entry), one batch
 * at a time and in order; a batch the store cannot take in time becomes a failed batch
 * instead of an error, so the stream lives on.
 */
export const persistBatch = <R>(
  store: PurchaseStore,
  config: StoreCallConfig,
): OperatorFunction<readonly Submission<R>[], BatchState<R>> =>
  concatMap((submissions) =>
    callStore('postgres', () => store.save(submissions.map((s) => s.purchase)), config).pipe(
      map((saved): BatchState<R> => ({ submissions, saved })),
      catchError((error: unknown) => of(failBatch({ submissions }, error))),
    ),
  );
