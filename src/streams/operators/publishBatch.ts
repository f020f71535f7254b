import { catchError, map, Observable, of, type OperatorFunction, type Subscription } from 'rxjs';
import type { PurchasePublisher, PurchaseStore } from '../../adapters/ports.ts';
import type { Purchase } from '../../purchase.ts';
import type { BatchState } from '../types.ts';
import { callStore, type StoreCallConfig } from './callStore.ts';
import { failBatch } from './failBatch.ts';

/** Limits of {@link publishBatch}. */
export interface PublishBatchConfig extends StoreCallConfig {
  /**
   * Most purchases one producer send carries. Batches saved while a send is running
   * wait and then go together in one send, up to this many purchases (a single batch
   * larger than this still goes alone, whole).
   */
  readonly maxSendSize?: number;
}

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

interface Waiting<R> {
  readonly batch: BatchState<R>;
  readonly outboxId: string;
  readonly purchases: Purchase[];
}

/**
 * Publishes what each saved batch inserted, then clears the batches' outbox entries.
 * One send runs at a time and batches leave in the order they came, so per-user order in
 * Kafka follows arrival order; batches saved while a send runs are coalesced into the
 * next send, so under load a send carries several batches and the producer's per-request
 * cost is paid once for all of them. A batch is emitted as published as soon as Kafka
 * acknowledged it: clearing the outbox is off the reply path, one statement for every
 * entry of a send, and a failed clear is harmless (outbox recovery finds the records in
 * the topic). Completion waits for the last send and clear.
 *
 * The send itself is tried once: the idempotent producer already retries it without
 * duplicates, while a second send of the same purchases after an ambiguous failure (a
 * timeout whose records did land) would publish them twice. A failed send fails every
 * batch it carried and leaves them to outbox recovery, which checks the topic first.
 */
export const publishBatch =
  <R>(
    publisher: PurchasePublisher,
    store: PurchaseStore,
    { maxSendSize = Infinity, ...config }: PublishBatchConfig,
  ): OperatorFunction<BatchState<R>, BatchState<R>> =>
  (source) =>
    new Observable<BatchState<R>>((subscriber) => {
      const once = {
        ...config,
        attemptTimeoutMs: config.retry.deadlineMs,
        retry: { ...config.retry, deadlineMs: 0 },
      };
      const waiting: Waiting<R>[] = [];
      const running = new Set<Subscription>();
      let sending = false;
      let sourceDone = false;

      const finishIfDone = () => {
        if (sourceDone && !sending && waiting.length === 0 && running.size === 0) {
          subscriber.complete();
        }
      };

      // Tracks an inner call until it completes, even when it completes synchronously.
      const track = (call: Observable<unknown>, after: () => void) => {
        let done = false;
        const subscription = call.subscribe({
          complete: () => {
            done = true;
            running.delete(subscription);
            after();
          },
        });
        if (!done) running.add(subscription);
      };

      const clear = (outboxIds: string[]) =>
        track(
          callStore('postgres', () => store.markPublished(outboxIds), config).pipe(
            catchError(() => of(undefined)),
          ),
          finishIfDone,
        );

      const sendNext = () => {
        if (sending || waiting.length === 0) return finishIfDone();
        let size = 0;
        let take = 0;
        while (take < waiting.length) {
          const next = waiting[take]?.purchases.length ?? 0;
          if (take > 0 && size + next > maxSendSize) break;
          size += next;
          take += 1;
        }
        const group = waiting.splice(0, take);
        const purchases =
          group.length === 1 ? (group[0]?.purchases ?? []) : group.flatMap((w) => w.purchases);
        sending = true;
        track(
          callStore('kafka', () => publisher.publish(purchases), once).pipe(
            map(() => {
              for (const { batch } of group) subscriber.next({ ...batch, published: true });
              clear(group.map((w) => w.outboxId));
            }),
            catchError((error: unknown) => {
              for (const { batch } of group) subscriber.next(failBatch(batch, error));
              return of(undefined);
            }),
          ),
          () => {
            sending = false;
            sendNext();
          },
        );
      };

      const upstream = source.subscribe({
        next: (batch) => {
          const outboxId = batch.saved?.outboxId ?? null;
          if (batch.failure !== undefined || outboxId === null) return subscriber.next(batch);
          waiting.push({ batch, outboxId, purchases: newlyInserted(batch) });
          sendNext();
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => {
          sourceDone = true;
          finishIfDone();
        },
      });
      return () => {
        upstream.unsubscribe();
        for (const subscription of running) subscription.unsubscribe();
      };
    });
