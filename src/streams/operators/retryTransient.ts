import {
  asyncScheduler,
  defer,
  retry,
  throwError,
  timer,
  type MonoTypeOperatorFunction,
  type Observable,
  type SchedulerLike,
} from 'rxjs';

/** Backoff of {@link retryTransient}. */
export interface RetryTransientConfig {
  /** Delay before the first retry; doubles each time. */
  readonly initialDelayMs: number;
  /** Cap of one delay. */
  readonly maxDelayMs: number;
  /** No retry starts later than this after the first subscription. */
  readonly deadlineMs: number;
  readonly scheduler?: SchedulerLike;
}

const isRetryable = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && 'retryable' in error && error.retryable === true;

/**
 * Resubscribes after errors marked `retryable` (store outages), with exponential
 * backoff, until the deadline; other errors, and the last one, pass through.
 */
export const retryTransient =
  <T>({
    initialDelayMs,
    maxDelayMs,
    deadlineMs,
    scheduler = asyncScheduler,
  }: RetryTransientConfig): MonoTypeOperatorFunction<T> =>
  (source: Observable<T>) =>
    defer(() => {
      const deadline = scheduler.now() + deadlineMs;
      return source.pipe(
        retry({
          delay: (error: unknown, attempt: number) => {
            const wait = Math.min(initialDelayMs * 2 ** (attempt - 1), maxDelayMs);
            return isRetryable(error) && scheduler.now() + wait <= deadline
              ? timer(wait, scheduler)
              : throwError(() => error);
          },
        }),
      );
    });
