import {
  BackendTerminatedError,
  BackendTerminatedUnexpectedlyError,
  ConnectionError,
  StatementTimeoutError,
} from 'slonik';
import { SpendstreamError, StoreUnavailableError } from '../../core/errors.ts';

/** Finds the SQLSTATE (five characters) anywhere in an error's cause chain. */
export const sqlState = (error: unknown): string | undefined => {
  for (let current = error; current instanceof Error; current = current.cause) {
    if ('code' in current && typeof current.code === 'string' && /^[0-9A-Z]{5}$/.test(current.code))
      return current.code;
  }
  return undefined;
};

const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH']);

const isTransient = (error: unknown): boolean => {
  if (
    error instanceof ConnectionError ||
    error instanceof BackendTerminatedError ||
    error instanceof BackendTerminatedUnexpectedlyError ||
    error instanceof StatementTimeoutError
  )
    return true;
  const state = sqlState(error);
  // 08 connection exception, 40 transaction rollback (serialisation, deadlock),
  // 53 insufficient resources, 57P0x shutdown / cannot connect now.
  if (state !== undefined) return /^(08|40|53|57P0)/.test(state);
  for (let current = error; current instanceof Error; current = current.cause) {
    if ('code' in current && typeof current.code === 'string' && networkCodes.has(current.code))
      return true;
  }
  return false;
};

/**
 * Turns a slonik or pg error into a spendstream error, keeping the original as `cause`:
 * transient failures become a retryable {@link StoreUnavailableError}.
 */
export const translatePostgresError = (error: unknown): SpendstreamError => {
  if (error instanceof SpendstreamError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (isTransient(error)) {
    return new StoreUnavailableError('postgres', `PostgreSQL unavailable: ${message}`, {
      cause: error,
    });
  }
  return new SpendstreamError('internal', `PostgreSQL error: ${message}`, { cause: error });
};
