import type { SaveResult } from '../core/ports.ts';
import type { ErrorCode } from '../core/errors.ts';
import type { Purchase } from '../core/purchase.ts';

/** A purchase's reply: acknowledged (durable in PostgreSQL and Kafka) or refused. */
export type PurchaseResult =
  | { readonly status: 'ack'; readonly id: string; readonly duplicate: boolean }
  | {
      readonly status: 'error';
      readonly code: ErrorCode;
      readonly message: string;
      /** The purchase id, when one is known. */
      readonly id?: string;
      /** The offending field, for `invalid_purchase`. */
      readonly field?: string;
    };

/** A validated purchase entering the pipeline, with where its reply goes (`ref`). */
export interface Submission<R> {
  readonly ref: R;
  readonly purchase: Purchase;
}

/** The reply to one {@link Submission}. */
export interface Outcome<R> {
  readonly ref: R;
  readonly result: PurchaseResult;
}

/** A batch on its way through the stores: saved, then published, or failed. */
export interface BatchState<R> {
  readonly submissions: readonly Submission<R>[];
  readonly saved?: SaveResult;
  readonly published?: boolean;
  /** Set when a stage gave up: every purchase of the batch is refused with it. */
  readonly failure?: PurchaseResult & { readonly status: 'error' };
}
