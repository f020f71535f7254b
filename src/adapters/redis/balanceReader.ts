import { bucketOf } from '../../core/buckets.ts';
import { SpendstreamError, TotalsIncompleteError } from '../../core/errors.ts';
import type { BalanceReader } from '../../core/ports.ts';
import { translateRedisError, type RedisClient } from './client.ts';
// The key layout is the writer's; reading it from there keeps the two from drifting apart.
import { TOTAL_FIELD, bucketKey, markerField, userField, walletKey } from './walletKeys.ts';

// Only for a user without a hash, in one step so a user created meanwhile is not taken
// for a lost one. KEYS[1]: the user's hash, KEYS[2]: its bucket's. ARGV[1]: the user's
// register field, then (marker field, committed offset) pairs. Replies the total when the
// hash exists now; 'lost' when the bucket's register has the user (the bucket's hash is
// then removed, so that the wallet replays the bucket from the start); 'gone' when the
// bucket's hash itself is missing (it cannot tell); 'behind' when a marker is below the
// group's committed offset (the bucket is being replayed, its register incomplete);
// false for a user never seen.
const MISS_LUA = `
local total = redis.call('HGET', KEYS[1], '${TOTAL_FIELD}')
if total then return total end
if redis.call('EXISTS', KEYS[2]) == 0 then return 'gone' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  redis.call('UNLINK', KEYS[2])
  return 'lost'
end
for i = 2, #ARGV, 2 do
  local marker = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
  if marker == nil or marker < tonumber(ARGV[i + 1]) then return 'behind' end
end
return false
`;

const MISS_COMMAND = 'spendstreamWalletReadMiss';

interface MissClient {
  spendstreamWalletReadMiss(
    userKey: string,
    bucket: string,
    args: readonly string[],
  ): Promise<unknown>;
}

/** What a {@link createBalanceReader} checks a user without a hash against. */
export interface BalanceReaderOptions {
  /** The topic whose markers are checked. */
  readonly topic: string;
  /**
   * The group's committed offsets, as last read: a bucket whose marker is below one is
   * being replayed, and a user missing from it may not be back yet.
   */
  readonly committed: () => ReadonlyMap<number, string>;
}

const INCOMPLETE = {
  lost: (userId: string, bucket: number) =>
    `the total of user ${JSON.stringify(userId)} was lost; bucket ${bucket} is replayed`,
  gone: (_userId: string, bucket: number) => `bucket ${bucket} lost its state; it is replayed`,
  behind: (_userId: string, bucket: number) => `bucket ${bucket} is being replayed`,
};

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
 * Reads per-user totals with one `HGET` each. A user without a hash costs one more step,
 * which tells a user never seen (0) from one whose hash Redis lost: that one is answered
 * with a {@link TotalsIncompleteError} and its bucket marked for a replay, as is one of a
 * bucket being replayed (with `options`). Give it a client created with
 * `autoPipelining: true`: concurrent calls then share round trips instead of queueing one
 * by one.
 */
export const createBalanceReader = (
  redis: RedisClient,
  options?: BalanceReaderOptions,
): BalanceReader => {
  if (!(MISS_COMMAND in redis)) {
    redis.defineCommand(MISS_COMMAND, { lua: MISS_LUA, numberOfKeys: 2 });
  }
  const miss = redis as unknown as MissClient;
  return {
    async totalCents(userId) {
      const key = walletKey(userId);
      try {
        const text = await redis.hget(key, TOTAL_FIELD);
        if (text !== null) return parseCents(userId, text);
        const bucket = bucketOf(userId);
        const args = [userField(userId)];
        if (options !== undefined) {
          for (const [partition, offset] of options.committed()) {
            args.push(markerField(options.topic, partition), offset);
          }
        }
        const answer = await miss.spendstreamWalletReadMiss(key, bucketKey(bucket), args);
        if (answer === null) return 0;
        if (answer === 'lost' || answer === 'gone' || answer === 'behind') {
          throw new TotalsIncompleteError(bucket, INCOMPLETE[answer](userId, bucket));
        }
        // Created between the two steps: the total the script found.
        if (typeof answer !== 'string') {
          throw new SpendstreamError('internal', `unexpected reply reading ${key}`);
        }
        return parseCents(userId, answer);
      } catch (error) {
        throw translateRedisError(error);
      }
    },
  };
};
