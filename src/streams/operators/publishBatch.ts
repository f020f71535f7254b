import { catchError, concatMap, map, of, type OperatorFunction } from 'rxjs';
import type { PurchasePublisher, PurchaseStore } from '../../adapters/ports.ts';
import type { Purchase } from '../../purchase.ts';
import type { BatchState } from '../types.ts';
import { callStore, type StoreCallConfig } from './callStore.ts';
import { failBatch } from './failBatch.ts';

/** The purchases of a saved batch that this batch inserted, each once, in arrival order. */
const newlyInserted = <R>(batch: BatchState<R>): Purchase[] => {
  const inserted = batch.saved?.inserted ?? new Set<string>();
  const seen = new Set<string>();
  const purchases: Purchase[] = [];
  for (const { purchase } of batch.submissions) {
    if (inserted.has(purchase.id) && !seen.has(purchase.id)) {
      seen.add(purchase.id);
      purchases.push(purchase);
    }
  }
  return purchases;
};

/**
 * Publishes what each saved batch inserted, in one producer send, then clears the
 * batch's outbox entry. Batches go one at a time, in order, so per-user order in
 * Kafka follows arrival order. A failed clear is harmless (outbox recovery finds the
 * records in the topic) and does not fail the batch.
 *
 * The send itself is tried once: the idempotent producer already retries it without
 * duplicates, while a second send of the same purchases after an ambiguous failure (a
 * timeout whose records did land) would publish them twice. A failed send leaves the
 * batch to outbox recovery, which checks the topic before republishing.
 */
export const publishBatch = <R>(
  publisher: PurchasePublisher,
  store: PurchaseStore,
  config: StoreCallConfig,
): OperatorFunction<BatchState<R>, BatchState<R>> =>
  concatMap((batch) => {
    const outboxId = batch.saved?.outboxId ?? null;
    if (batch.failure !== undefined || outboxId === null) return of(batch);
    const purchases = newlyInserted(batch);
    const once = {
      ...config,
      attemptTimeoutMs: config.retry.deadlineMs,
      retry: { ...config.retry, deadlineMs: 0 },
    };
    return callStore('kafka', () => publisher.publish(purchases), once).pipe(
      concatMap(() =>
        callStore('postgres', () => store.markPublished(outboxId), config).pipe(
          catchError(() => of(undefined)),
        ),
      ),
      map((): BatchState<R> => ({ ...batch, published: true })),
      catchError((error: unknown) => of(failBatch(batch, error))),
    );
  });
