import { Cluster, Redis } from 'ioredis';
import { SpendstreamError, StoreUnavailableError } from '../../core/errors.ts';

/**
 * A Redis client: one server, or a Redis Cluster. Every adapter is written against what
 * the two share; what differs (scans, pipelines across slots) goes through `nodes.ts`.
 */
export type RedisClient = Redis | Cluster;

/** Settings of the Redis adapter. */
export interface RedisConfig {
  readonly url: string;
  /**
   * Seed nodes of a Redis Cluster (`host:port`); when given, a Cluster client is opened
   * from them and `url` gives only its credentials and TLS.
   */
  readonly clusterNodes?: readonly string[];
  /** Prefix of every key this client touches; tests give each run its own. */
  readonly keyPrefix?: string;
  /** Sends commands issued in the same tick as one pipeline (for many concurrent readers). */
  readonly autoPipelining?: boolean;
}

const CONNECT_TIMEOUT_MS = 5_000;
const retryDelay = (attempt: number): number => Math.min(50 * 2 ** attempt, 2_000);

const openCluster = (config: RedisConfig, nodes: readonly string[]): Cluster => {
  const url = new URL(config.url);
  return new Cluster(
    nodes.map((node) => {
      const at = node.lastIndexOf(':');
      return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
    }),
    {
      // Applied by the Cluster client itself: the node clients it hands out (for SCAN)
      // must not prefix again, so it is not among the redisOptions.
      keyPrefix: config.keyPrefix ?? '',
      enableAutoPipelining: config.autoPipelining ?? false,
      // Reads from masters only: a replica may be behind the write a caller just made.
      scaleReads: 'master',
      clusterRetryStrategy: retryDelay,
      redisOptions: {
        maxRetriesPerRequest: 2,
        connectTimeout: CONNECT_TIMEOUT_MS,
        ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
        ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
        ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
      },
    },
  );
};

/**
 * Opens an ioredis client — a Cluster client when `clusterNodes` is given; commands fail
 * fast while disconnected instead of queueing.
 */
export function createRedis(config: RedisConfig & { readonly clusterNodes?: undefined }): Redis;
export function createRedis(config: RedisConfig): RedisClient;
export function createRedis(config: RedisConfig): RedisClient {
  if (config.clusterNodes !== undefined && config.clusterNodes.length > 0) {
    return openCluster(config, config.clusterNodes);
  }
  return new Redis(config.url, {
    keyPrefix: config.keyPrefix ?? '',
    enableAutoPipelining: config.autoPipelining ?? false,
    // A command waiting on a dead connection holds its caller; fail it and let the
    // caller's retry policy decide.
    maxRetriesPerRequest: 2,
    connectTimeout: CONNECT_TIMEOUT_MS,
    retryStrategy: retryDelay,
  });
}

/** Turns an ioredis error into a spendstream error, keeping the original as `cause`. */
export const translateRedisError = (error: unknown): SpendstreamError => {
  if (error instanceof SpendstreamError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const name = error instanceof Error ? error.name : '';
  // A ReplyError is Redis refusing a command: a bug here, unless Redis is only busy,
  // loading, out of memory, read-only or (a cluster) moving a slot for a while.
  // Everything else is the link.
  const passing =
    /^(OOM|LOADING|BUSY|READONLY|TRYAGAIN|MISCONF|MASTERDOWN|CLUSTERDOWN|MOVED|ASK)\b/;
  if (name === 'ReplyError' && !passing.test(message)) {
    return new SpendstreamError('internal', `Redis error: ${message}`, { cause: error });
  }
  return new StoreUnavailableError('redis', `Redis unavailable: ${message}`, { cause: error });
};

/** Resolves once Redis answers PING on `redis`; rejects translated. */
export const pingRedis = async (redis: RedisClient): Promise<void> => {
  try {
    await redis.ping();
  } catch (error) {
    throw translateRedisError(error);
  }
};
