import type { Redis } from 'ioredis';
import { SpendstreamError } from '../../core/errors.ts';
import type { BalanceReader } from '../../core/ports.ts';
import { translateRedisError } from './client.ts';
// The key layout is the writer's; reading it from there keeps the two from drifting apart.
import { TOTAL_FIELD, walletKey } from './walletKeys.ts';

const parseCents = (userId: string, text: string | null): number => {
  if (text === null) return 0;
  const cents = Number(text);
  // Anything but an exact integer means the hash was written by something else; answering
  // a guess would be worse than failing loudly.
  if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(cents)) {
    throw new SpendstreamError(
      'internal',
      `wallet total of user ${JSON.stringify(userId)} is not integer cents: ${JSON.stringify(text)}`,
    );
  }
  return cents;
};

/**
 * Reads per-user totals with one `HGET` each. Give it a client created with
 * `autoPipelining: true`: concurrent calls then share round trips instead of queueing
 * one by one.
 */
export const createBalanceReader = (redis: Redis): BalanceReader => ({
  async totalCents(userId) {
    let text: string | null;
    try {
      text = await redis.hget(walletKey(userId), TOTAL_FIELD);
    } catch (error) {
      throw translateRedisError(error);
    }
    return parseCents(userId, text);
  },
});
