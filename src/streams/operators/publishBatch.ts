import { catchError, map, Observable, of, Subscription, type OperatorFunction } from 'rxjs';
import type { PurchasePublisher, PurchaseStore, StoredPurchase } from '../../core/ports.ts';
import type { Purchase } from '../../core/purchase.ts';
import { estimatedRecordBytes } from '../../core/purchaseEvent.ts';
import type { BatchState } from '../types.ts';
import { callStore, type StoreCallConfig } from '../callStore.ts';
import { failBatch } from '../failBatch.ts';

/** Limits of {@link publishBatch}. */
export interface PublishBatchConfig extends StoreCallConfig {
  /**
   * Most bytes, by {@link estimatedRecordBytes}, of the batches coalesced into one publish
   * call: batches saved while a call is running wait and then go together up to this
   * size. A batch larger than this goes alone, in one call: the publisher cuts a call
   * into the sends the broker takes.
   */
  readonly maxSendBytes?: number;
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

/**
 * Outbox entries this stage published that a resend may still find uncleared. The clear
 * follows the ack within a round trip, so a few thousand entries cover any resend racing
 * it; older ones are forgotten, first published first.
 */
const REMEMBERED_ENTRIES = 4_096;

/**
 * Marks the stored purchases of a batch that wait in an outbox entry this stage already
 * published as published: a client resending a purchase right after its ack, before the
 * entry is cleared, gets its duplicate ack instead of `unavailable`.
 */
const settleResends = <R>(batch: BatchState<R>, published: ReadonlySet<string>): BatchState<R> => {
  const saved = batch.saved;
  if (saved === undefined || saved.existing.size === 0 || published.size === 0) return batch;
  let settled: Map<string, StoredPurchase> | undefined;
  for (const [id, stored] of saved.existing) {
    const { pendingOutboxId, ...rest } = stored;
    if (pendingOutboxId === undefined || !published.has(pendingOutboxId)) continue;
    settled ??= new Map(saved.existing);
    settled.set(id, { ...rest, pendingPublish: false });
  }
  return settled === undefined ? batch : { ...batch, saved: { ...saved, existing: settled } };
};

interface Waiting<R> {
  readonly batch: BatchState<R>;
  readonly outboxId: string;
  readonly purchases: Purchase[];
  readonly bytes: number;
}

/**
 * Publishes what each saved batch inserted, then clears the batches' outbox entries.
 * One send runs at a time and batches leave in the order they came, so per-user order in
 * Kafka follows arrival order; batches saved while a send runs are coalesced into the
 * next send, so under load a send carries several batches and the producer's per-request
 * cost is paid once for all of them. A batch is emitted as published as soon as Kafka
 * acknowledged it: clearing the outbox is off the reply path, one clear at a time taking
 * every entry published since the last one, and a failed clear is harmless (outbox
 * recovery finds the records in the topic). Completion waits for the last send and clear.
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
    { maxSendBytes = Infinity, ...config }: PublishBatchConfig,
  ): OperatorFunction<BatchState<R>, BatchState<R>> =>
  (source) =>
    new Observable<BatchState<R>>((subscriber) => {
      const once = {
        ...config,
        attemptTimeoutMs: config.retry.deadlineMs,
        retry: { ...config.retry, deadlineMs: 0 },
      };
      const waiting: Waiting<R>[] = [];
      const toClear: string[] = [];
      // Insertion-ordered: the oldest entry is evicted first.
      const published = new Set<string>();
      const remember = (outboxId: string) => {
        published.add(outboxId);
        if (published.size > REMEMBERED_ENTRIES) {
          const oldest = published.values().next();
          if (oldest.done !== true) published.delete(oldest.value);
        }
      };
      const running = new Set<Subscription>();
      let sending = false;
      let clearing = false;
      let sourceDone = false;

      const finishIfDone = () => {
        if (sourceDone && !sending && !clearing && waiting.length === 0) {
          subscriber.complete();
        }
      };

      // Runs an inner call (which never errors) and then `after`, whether the call
      // completes later or synchronously, inside subscribe.
      const track = (call: Observable<unknown>, after: () => void) => {
        const subscription = new Subscription();
        running.add(subscription);
        subscription.add(
          call.subscribe({
            complete: () => {
              running.delete(subscription);
              after();
            },
          }),
        );
      };

      // One clear at a time: entries published meanwhile wait and go in the next one, so
      // clears never hold more than one pooled connection.
      const clearNext = () => {
        if (clearing || toClear.length === 0) return finishIfDone();
        const outboxIds = toClear.splice(0);
        clearing = true;
        track(
          callStore('postgres', () => store.markPublished(outboxIds), config).pipe(
            catchError(() => of(undefined)),
          ),
          () => {
            clearing = false;
            clearNext();
          },
        );
      };

      // One call, however large: the publisher cuts it into the sends the broker takes,
      // all in one transaction, so an outbox entry is in the topic whole or not at all.
      const publishAll = (purchases: Purchase[]) => publisher.publish(purchases);

      const sendNext = () => {
        if (sending || waiting.length === 0) return finishIfDone();
        let bytes = 0;
        let take = 0;
        while (take < waiting.length) {
          const next = waiting[take]?.bytes ?? 0;
          if (take > 0 && bytes + next > maxSendBytes) break;
          bytes += next;
          take += 1;
        }
        const group = waiting.splice(0, take);
        const purchases =
          group.length === 1 ? (group[0]?.purchases ?? []) : group.flatMap((w) => w.purchases);
        sending = true;
        track(
          callStore('kafka', () => publishAll(purchases), once).pipe(
            map(() => {
              for (const { batch } of group) subscriber.next({ ...batch, published: true });
              for (const { outboxId } of group) {
                remember(outboxId);
                toClear.push(outboxId);
              }
              clearNext();
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
        next: (saved) => {
          const batch = settleResends(saved, published);
          const outboxId = batch.saved?.outboxId ?? null;
          if (batch.failure !== undefined || outboxId === null) return subscriber.next(batch);
          const purchases = newlyInserted(batch);
          let bytes = 0;
          for (const purchase of purchases) bytes += estimatedRecordBytes(purchase);
          waiting.push({ batch, outboxId, purchases, bytes });
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
