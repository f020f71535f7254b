import { asyncScheduler, type Observable, type SchedulerLike } from 'rxjs';
import type { PurchasePublisher, PurchaseStore } from '../adapters/ports.ts';
import { batchPurchases } from './operators/batchPurchases.ts';
import type { StoreCallConfig } from './operators/callStore.ts';
import { persistBatch } from './operators/persistBatch.ts';
import { publishBatch } from './operators/publishBatch.ts';
import { resolveOutcomes } from './operators/resolveOutcomes.ts';
import type { Outcome, Submission } from './types.ts';

/** Collaborators and limits of {@link ingestPipeline}. */
export interface IngestDeps {
  readonly store: PurchaseStore;
  readonly publisher: PurchasePublisher;
  readonly batch: { readonly maxSize: number; readonly maxWaitMs: number };
  readonly storeCall: Omit<StoreCallConfig, 'scheduler'>;
  readonly scheduler?: SchedulerLike;
}

/**
 * The ingest pipeline: batches submissions by size and time, saves each batch in one
 * multi-row insert, publishes it in one producer send, and emits one reply per
 * submission — an ack only once the purchase is in PostgreSQL and Kafka. Persisting the
 * next batch overlaps publishing the previous one. Completing the source drains it:
 * the open batch is flushed and answered before the output completes.
 */
export const ingestPipeline = <R>(
  submissions$: Observable<Submission<R>>,
  { store, publisher, batch, storeCall, scheduler = asyncScheduler }: IngestDeps,
): Observable<Outcome<R>[]> =>
  submissions$.pipe(
    batchPurchases<Submission<R>>({ ...batch, scheduler }),
    persistBatch<R>(store, { ...storeCall, scheduler }),
    publishBatch<R>(publisher, store, { ...storeCall, scheduler }),
    resolveOutcomes<R>(),
  );
