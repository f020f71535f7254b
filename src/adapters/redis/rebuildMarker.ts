import { SpendstreamError } from '../../core/errors.ts';
import { translateRedisError, type RedisClient } from './client.ts';
import { REBUILD_FIELD, walletMetaKey } from './walletKeys.ts';

/** Per partition, the offset the group must have committed for a rebuild to be complete. */
export type RebuildTargets = ReadonlyMap<number, bigint>;

/**
 * Records in Redis, beside the totals, that they are being rebuilt up to `targets`, so
 * that every wallet instance knows they are incomplete until the group has got there.
 */
export const markRebuild = async (
  redis: RedisClient,
  topic: string,
  targets: RebuildTargets,
): Promise<void> => {
  const value = JSON.stringify(Object.fromEntries([...targets].map(([p, o]) => [p, String(o)])));
  try {
    await redis.hset(walletMetaKey(topic), REBUILD_FIELD, value);
  } catch (error) {
    throw translateRedisError(error);
  }
};

/** The targets of a rebuild under way, or undefined when the totals are complete. */
export const readRebuild = async (
  redis: RedisClient,
  topic: string,
): Promise<RebuildTargets | undefined> => {
  let value: string | null;
  try {
    value = await redis.hget(walletMetaKey(topic), REBUILD_FIELD);
  } catch (error) {
    throw translateRedisError(error);
  }
  if (value === null) return undefined;
  try {
    const parsed = JSON.parse(value) as Record<string, string>;
    return new Map(Object.entries(parsed).map(([p, o]) => [Number(p), BigInt(o)]));
  } catch (error) {
    throw new SpendstreamError('internal', `unreadable rebuild marker for ${topic}`, {
      cause: error,
    });
  }
};

/** Records that the rebuild is complete. */
export const clearRebuild = async (redis: RedisClient, topic: string): Promise<void> => {
  try {
    await redis.hdel(walletMetaKey(topic), REBUILD_FIELD);
  } catch (error) {
    throw translateRedisError(error);
  }
};
