import type { Observable } from 'rxjs';
import { applyBatch, type ApplyBatchDeps } from './operators/applyBatch.ts';
import { decodeBatch, type PurchaseDecoder } from './operators/decodeBatch.ts';
import type { AppliedBatch } from './walletTypes.ts';
import type { ConsumedBatch } from '../core/records.ts';

/** Collaborators of {@link walletPipeline}. */
export interface WalletDeps extends ApplyBatchDeps {
  readonly decode: PurchaseDecoder;
}

/**
 * The wallet pipeline: decodes each consumed batch, dead-letters what is not a purchase,
 * applies the rest to the per-user totals exactly once, then commits the batch's offset.
 * Emits one {@link AppliedBatch} per consumed batch, in order; the consumer waits for it
 * before fetching that partition again, so nothing queues without bound.
 */
export const walletPipeline = <R>(
  batches$: Observable<ConsumedBatch<R>>,
  deps: WalletDeps,
): Observable<AppliedBatch<R>> => batches$.pipe(decodeBatch<R>(deps.decode), applyBatch<R>(deps));
