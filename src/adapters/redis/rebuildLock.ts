import { randomUUID } from 'node:crypto';
import { SpendstreamError } from '../../core/errors.ts';
import { translateRedisError, type RedisClient } from './client.ts';
import { rebuildLockKey } from './walletKeys.ts';

// Only the holder's token extends or releases the lock: one whose lease ran out (a
// process frozen past it) cannot take it back from the next holder.
const RENEW_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`;
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

/** Settings of {@link withRebuildLock}. */
export interface RebuildLockOptions {
  /** Longest to wait for another holder (default 120 s). */
  readonly waitMs?: number;
  /** The lease, renewed every third of it while `work` runs (default 30 s). */
  readonly leaseMs?: number;
  /** Told once when the lock is held by another, before waiting for it. */
  readonly onWait?: () => void;
}

/**
 * Runs `work` holding the rebuild lock of `topic`: one wallet instance at a time, across
 * processes and hosts. Waits (polling) while another holds it; a holder that dies lets go
 * once its lease runs out.
 */
export const withRebuildLock = async <T>(
  redis: RedisClient,
  topic: string,
  work: () => Promise<T>,
  { waitMs = 120_000, leaseMs = 30_000, onWait }: RebuildLockOptions = {},
): Promise<T> => {
  const key = rebuildLockKey(topic);
  const token = randomUUID();
  const deadline = Date.now() + waitMs;
  let told = false;
  try {
    while ((await redis.set(key, token, 'PX', leaseMs, 'NX')) !== 'OK') {
      if (Date.now() > deadline) {
        throw new SpendstreamError(
          'unavailable',
          `another wallet instance has been preparing the totals of ${topic} for over ${waitMs} ms`,
        );
      }
      if (!told) onWait?.();
      told = true;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } catch (error) {
    throw translateRedisError(error);
  }
  const renewal = setInterval(
    () => void redis.eval(RENEW_LUA, 1, key, token, String(leaseMs)).catch(() => undefined),
    Math.max(100, Math.floor(leaseMs / 3)),
  );
  try {
    return await work();
  } finally {
    clearInterval(renewal);
    await redis.eval(RELEASE_LUA, 1, key, token).catch(() => undefined);
  }
};
