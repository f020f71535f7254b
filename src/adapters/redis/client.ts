import { Redis } from 'ioredis';
import { SpendstreamError, StoreUnavailableError } from '../../core/errors.ts';

/** Settings of the Redis adapter. */
export interface RedisConfig {
  readonly url: string;
  /** Prefix of every key this client touches; tests give each run its own. */
  readonly keyPrefix?: string;
  /** Sends commands issued in the same tick as one pipeline (for many concurrent readers). */
  readonly autoPipelining?: boolean;
}

/** Opens an ioredis client; commands fail fast while disconnected instead of queueing. */
export const createRedis = (config: RedisConfig): Redis =>
  new Redis(config.url, {
    keyPrefix: config.keyPrefix ?? '',
    enableAutoPipelining: config.autoPipelining ?? false,
    // A command waiting on a dead connection holds its caller; fail it and let the
    // caller's retry policy decide.
    maxRetriesPerRequest: 2,
    connectTimeout: 5_000,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2_000),
  });

/** Turns an ioredis error into a spendstream error, keeping the original as `cause`. */
export const translateRedisError = (error: unknown): SpendstreamError => {
  if (error instanceof SpendstreamError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const name = error instanceof Error ? error.name : '';
  // A ReplyError is Redis refusing a command: a bug here, unless Redis is only busy,
  // loading, out of memory or read-only for a while. Everything else is the link.
  const passing = /^(OOM|LOADING|BUSY|READONLY|TRYAGAIN|MISCONF|MASTERDOWN|CLUSTERDOWN)\b/;
  if (name === 'ReplyError' && !passing.test(message)) {
    return new SpendstreamError('internal', `Redis error: ${message}`, { cause: error });
  }
  return new StoreUnavailableError('redis', `Redis unavailable: ${message}`, { cause: error });
};

/** Resolves once Redis answers PING on `redis`; rejects translated. */
export const pingRedis = async (redis: Redis): Promise<void> => {
  try {
    await redis.ping();
  } catch (error) {
    throw translateRedisError(error);
  }
};
