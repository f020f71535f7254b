import { asyncScheduler, type Observable, type SchedulerLike } from 'rxjs';
import type { PurchasePublisher, PurchaseStore } from '../core/ports.ts';
import { batchPurchases } from './operators/batchPurchases.ts';
import type { StoreCallConfig } from './callStore.ts';
import { persistBatch } from './operators/persistBatch.ts';
import { publishBatch } from './operators/publishBatch.ts';
import { resolveOutcomes } from './operators/resolveOutcomes.ts';
import type { Outcome, Submission } from './types.ts';

/** Collaborators and limits of {@link ingestPipeline}. */
export interface IngestDeps {
  readonly store: PurchaseStore;
  readonly publisher: PurchasePublisher;
  readonly batch: { readonly maxSize: number; readonly maxWaitMs: number };
  /** Batches saved at once (each its own transaction); 1 by default. */
  readonly persistConcurrency?: number;
  /** Most bytes (estimated) one Kafka send carries when waiting batches are coalesced. */
  readonly publishMaxBytes?: number;
  readonly storeCall: Omit<StoreCallConfig, 'scheduler'>;
  readonly scheduler?: SchedulerLike;
}

/**
 * The ingest pipeline: batches submissions by size and time, saves each batch in one
 * multi-row insert (several batches at once, in order), publishes it in one producer send
 * (coalescing batches that wait behind a running send), and emits one reply per
 * submission — an ack only once the purchase is in PostgreSQL and Kafka. Persisting
 * overlaps publishing. Completing the source drains it:
 * the open batch is flushed and answered before the output completes.
 */
export const ingestPipeline = <R>(
  submissions$: Observable<Submission<R>>,
  {
    store,
    publisher,
    batch,
    storeCall,
    persistConcurrency = 1,
    publishMaxBytes = Infinity,
    scheduler = asyncScheduler,
  }: IngestDeps,
): Observable<Outcome<R>[]> =>
  submissions$.pipe(
    batchPurchases<Submission<R>>({ ...batch, scheduler }),
    persistBatch<R>(store, { ...storeCall, concurrency: persistConcurrency, scheduler }),
    publishBatch<R>(publisher, store, { ...storeCall, maxSendBytes: publishMaxBytes, scheduler }),
    resolveOutcomes<R>(),
  );
