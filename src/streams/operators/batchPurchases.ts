import {
  asyncScheduler,
  bufferTime,
  filter,
  pipe,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs';

/** How {@link batchPurchases} cuts the stream. */
export interface BatchPurchasesConfig {
  /** A batch is emitted as soon as it holds this many elements. */
  readonly maxSize: number;
  /** …or when this long has passed since the previous cut, whichever comes first. */
  readonly maxWaitMs: number;
  readonly scheduler?: SchedulerLike;
}

/**
 * Groups elements into arrays of at most `maxSize`, cut at least every `maxWaitMs`, so no
 * element waits longer than that; idle periods emit nothing (bufferTime's empty arrays
 * are dropped). On completion the
 * open batch is flushed, which is what lets a drain finish its last batch.
 */
export const batchPurchases = <T>({
  maxSize,
  maxWaitMs,
  scheduler = asyncScheduler,
}: BatchPurchasesConfig): OperatorFunction<T, T[]> =>
  pipe(
    bufferTime<T>(maxWaitMs, null, maxSize, scheduler),
    filter((batch) => batch.length > 0),
  );
