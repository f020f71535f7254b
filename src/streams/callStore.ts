import {
  asyncScheduler,
  defer,
  throwError,
  timeout,
  type Observable,
  type SchedulerLike,
} from 'rxjs';
import { StoreUnavailableError } from '../core/errors.ts';
import { retryTransient, type RetryTransientConfig } from './operators/retryTransient.ts';

/** Time bounds of one store call made by a pipeline stage. */
export interface StoreCallConfig {
  /** One attempt taking longer than this counts as a transient failure. */
  readonly attemptTimeoutMs: number;
  readonly retry: Omit<RetryTransientConfig, 'scheduler'>;
  readonly scheduler?: SchedulerLike;
}

/**
 * Calls a store (lazily, once per attempt), times each attempt out, and retries
 * transient failures with backoff within the deadline.
 */
export const callStore = <T>(
  store: StoreUnavailableError['store'],
  call: () => Promise<T>,
  { attemptTimeoutMs, retry, scheduler = asyncScheduler }: StoreCallConfig,
): Observable<T> =>
  defer(call).pipe(
    timeout({
      first: attemptTimeoutMs,
      scheduler,
      with: () =>
        throwError(
          () =>
            new StoreUnavailableError(
              store,
              `${store} did not answer within ${attemptTimeoutMs} ms`,
            ),
        ),
    }),
    retryTransient({ ...retry, scheduler }),
  );
