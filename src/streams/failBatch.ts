import { isSpendstreamError } from '../core/errors.ts';
import type { BatchState } from './types.ts';

/**
 * Marks a batch failed with the error's code: `unavailable` for store outages (the
 * client may retry with the same id), `internal` for anything unexpected.
 */
export const failBatch = <R>(batch: BatchState<R>, error: unknown): BatchState<R> => {
  const known = isSpendstreamError(error);
  return {
    ...batch,
    failure: {
      status: 'error',
      code: known && error.code === 'unavailable' ? 'unavailable' : 'internal',
      message:
        known && error.code === 'unavailable'
          ? 'the purchase could not be made durable in time; retry it with the same id'
          : 'internal error',
    },
  };
};
