import type { Redis } from 'ioredis';
import { SpendstreamError } from '../../core/errors.ts';
import { translateRedisError } from './client.ts';
import { TOTAL_FIELD, userIdOfKey } from './walletKeys.ts';

/**
 * Deletes every user's and bucket's hash and set under the client's key prefix — of this layout
 * and of older ones, every `wallet:…` key but the topics' meta hashes — one SCAN page at a
 * time; returns how many it deleted. Used before replaying a topic into a Redis that lost
 * its totals, or holds them in an older layout: hashes written since the loss hold offsets
 * that would make the replay skip the records before them.
 */
export const deleteAllTotals = async (redis: Redis, pageSize = 1_000): Promise<number> => {
  const prefix = redis.options.keyPrefix ?? '';
  const meta = `${prefix}wallet:meta:`;
  let deleted = 0;
  try {
    // Hashes (users, buckets) and sets (each bucket's users changed since its snapshot);
    // not the strings (the rebuild lock) nor the meta hashes.
    for (const type of ['hash', 'set']) {
      const pages = redis.scanStream({
        match: `${escapeGlob(`${prefix}wallet:`)}*`,
        type,
        count: pageSize,
      }) as AsyncIterable<string[]>;
      for await (const page of pages) {
        const keys = page.filter((key) => !key.startsWith(meta));
        if (keys.length === 0) continue;
        // UNLINK gets the client's prefix added again, so it takes the keys without it.
        deleted += await redis.unlink(...keys.map((key) => key.slice(prefix.length)));
      }
    }
  } catch (error) {
    throw translateRedisError(error);
  }
  return deleted;
};

const INTEGER = /^-?\d+$/;

// SCAN's MATCH is a glob: a key prefix holding *, ?, [ or \ must match itself literally.
const escapeGlob = (text: string): string => text.replace(/[*?[\]\\]/g, '\\$&');

/**
 * Every user's total in this Redis as `[userId, cents]`, one SCAN page at a time (totals
 * fetched with one pipeline per page). As SCAN guarantees, a user present throughout is
 * yielded at least once, but may be yielded twice if Redis resizes its keyspace meanwhile.
 */
export async function* scanTotals(
  redis: Redis,
  pageSize = 1_000,
): AsyncGenerator<readonly [userId: string, cents: number]> {
  // ioredis neither prefixes SCAN's MATCH nor strips the prefix from the keys SCAN returns.
  const prefix = redis.options.keyPrefix ?? '';
  const pages = redis.scanStream({
    match: `${escapeGlob(`${prefix}wallet:{b`)}*}:*`,
    type: 'hash',
    count: pageSize,
  }) as AsyncIterable<string[]>;
  try {
    for await (const page of pages) {
      // The pattern may match a key of another shape (a user id holding "}:"); the key
      // is a user's only if its tag is the bucket of the id after it.
      const users = page.map((key) => [key, userIdOfKey(key.slice(prefix.length))] as const);
      const keys = users.filter(([, userId]) => userId !== undefined);
      if (keys.length === 0) continue;
      const pipeline = redis.pipeline();
      // HGET gets the client's prefix added again, so it takes the key without it.
      for (const [key] of keys) pipeline.hget(key.slice(prefix.length), TOTAL_FIELD);
      const results = (await pipeline.exec()) ?? [];
      for (const [index, [key, userId = '']] of keys.entries()) {
        const [error, value] = results[index] ?? [null, null];
        if (error !== null) throw error;
        // Deleted between SCAN and HGET: it no longer has a total.
        if (value === null) continue;
        const cents = Number(value);
        if (typeof value !== 'string' || !INTEGER.test(value) || !Number.isSafeInteger(cents)) {
          throw new SpendstreamError('internal', `Redis key ${key} has an unreadable total`);
        }
        yield [userId, cents];
      }
    }
  } catch (error) {
    throw translateRedisError(error);
  }
}
