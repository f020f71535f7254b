import { SpendstreamError } from '../../core/errors.ts';
import { translateRedisError, type RedisClient } from './client.ts';
import { groupBySlot, scanEveryNode } from './nodes.ts';
import { TOTAL_FIELD, userIdOfKey } from './walletKeys.ts';

/**
 * Deletes every user's and bucket's hash and set under the client's key prefix — of this layout
 * and of older ones, every `wallet:…` key but the topics' meta hashes — one SCAN page at a
 * time, on every master of a Cluster; returns how many it deleted. Used before replaying a
 * topic into a Redis that lost its totals, or holds them in an older layout: hashes
 * written since the loss hold offsets that would make the replay skip the records before
 * them.
 */
export const deleteAllTotals = async (redis: RedisClient, pageSize = 1_000): Promise<number> => {
  const prefix = redis.options.keyPrefix ?? '';
  const meta = `${prefix}wallet:meta:`;
  let deleted = 0;
  try {
    // Hashes (users, buckets) and sets (each bucket's users changed since its snapshot);
    // not the strings (the rebuild lock) nor the meta hashes.
    for (const type of ['hash', 'set']) {
      const match = `${escapeGlob(`${prefix}wallet:`)}*`;
      for await (const page of scanEveryNode(redis, { match, type, count: pageSize })) {
        const keys = page.keys.filter((key) => !key.startsWith(meta));
        // On a Cluster a multi-key UNLINK must stay in one slot; the node client takes the
        // keys as they are, less its own prefix (none on a Cluster's node).
        const unlinks = groupBySlot(redis, keys).map((group) =>
          page.node.unlink(...group.map((key) => key.slice(page.nodePrefix.length))),
        );
        for (const count of await Promise.all(unlinks)) deleted += count;
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
 * Every user's total in this Redis (every master of a Cluster) as `[userId, cents]`, one
 * SCAN page at a time (totals fetched with one pipeline per page, on the node the page is
 * of). As SCAN guarantees, a user present throughout is yielded at least once, but may be
 * yielded twice if Redis resizes its keyspace meanwhile.
 */
export async function* scanTotals(
  redis: RedisClient,
  pageSize = 1_000,
): AsyncGenerator<readonly [userId: string, cents: number]> {
  // ioredis neither prefixes SCAN's MATCH nor strips the prefix from the keys SCAN returns.
  const prefix = redis.options.keyPrefix ?? '';
  const match = `${escapeGlob(`${prefix}wallet:{b`)}*}:*`;
  try {
    for await (const page of scanEveryNode(redis, { match, type: 'hash', count: pageSize })) {
      // The pattern may match a key of another shape (a user id holding "}:"); the key
      // is a user's only if its tag is the bucket of the id after it.
      const users = page.keys.map((key) => [key, userIdOfKey(key.slice(prefix.length))] as const);
      const keys = users.filter(([, userId]) => userId !== undefined);
      if (keys.length === 0) continue;
      const pipeline = page.node.pipeline();
      // The node adds its own prefix again, so it takes the key without that.
      for (const [key] of keys) pipeline.hget(key.slice(page.nodePrefix.length), TOTAL_FIELD);
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
