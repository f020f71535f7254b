import type { ChainableCommander, Redis } from 'ioredis';
import { SpendstreamError } from '../../core/errors.ts';
import type { WalletRecord, WalletStore } from '../../core/ports.ts';
import { translateRedisError } from './client.ts';

/** Field of a user's hash holding their total in integer cents. */
export const TOTAL_FIELD = 'total';

/** Field of a topic's meta hash present once this Redis holds that topic's totals. */
export const INITIALISED_FIELD = 'initialised';

/**
 * A user's hash: `wallet:{<userId>}`. The braces are a Redis Cluster hash tag, so every
 * step of applying to one user touches one slot.
 */
export const walletKey = (userId: string): string => `wallet:{${userId}}`;

/** A topic's meta hash: `wallet:meta:{<topic>}`. */
export const walletMetaKey = (topic: string): string => `wallet:meta:{${topic}}`;

/** Field of a user's hash holding the last offset applied to them from one partition. */
export const offsetField = (topic: string, partition: number): string => `o:${topic}:${partition}`;

// KEYS[1]: one user's hash. ARGV: (offset field, offset, cents) triples, each field's offsets
// ascending. Redis keeps the writes of a script that fails midway, so every read and check
// comes before the first write. Offsets are compared as Lua numbers (doubles: exact below
// 2^53) but written back as the text we were sent, because Lua 5.1's tostring rounds to 14
// digits. The cents are summed in Lua (exact below 2^53, checked) and added with one
// HINCRBY, which Redis does in 64-bit integers.
const APPLY_LUA = `
local key = KEYS[1]
local high, text = {}, {}
local sum, applied = 0, 0
for i = 1, #ARGV, 3 do
  local field, offset, cents = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if offset == nil or cents == nil or cents ~= math.floor(cents) then
    return redis.error_reply('ERR wallet apply: bad record at argument ' .. i)
  end
  if high[field] == nil then
    local stored = redis.call('HGET', key, field)
    high[field] = -1
    if stored then
      high[field] = tonumber(stored)
      if high[field] == nil then
        return redis.error_reply('ERR wallet apply: unreadable ' .. field .. ' in ' .. key)
      end
    end
  end
  if offset > high[field] then
    high[field] = offset
    text[field] = ARGV[i + 1]
    sum = sum + cents
    applied = applied + 1
  end
end
if applied > 0 then
  if math.abs(sum) >= 9007199254740992 then
    return redis.error_reply('ERR wallet apply: batch sum too large for one call')
  end
  redis.call('HINCRBY', key, '${TOTAL_FIELD}', string.format('%.0f', sum))
  for field, value in pairs(text) do
    redis.call('HSET', key, field, value)
  end
end
return applied
`;

// Namespaced so it cannot clash with a command someone else defines on a shared client.
const APPLY_COMMAND = 'spendstreamWalletApply';

/** A pipeline that knows the command {@link createWalletStore} defines on its client. */
interface WalletPipeline extends ChainableCommander {
  spendstreamWalletApply(key: string, argv: readonly string[]): WalletPipeline;
}

const OFFSET = /^\d{1,16}$/;

/**
 * Refuses a record the store cannot apply exactly. Checked before anything is sent, so a
 * malformed record fails the whole batch untouched instead of the users before it.
 */
export const checkWalletRecord = (record: WalletRecord): void => {
  if (
    !Number.isSafeInteger(record.amountCents) ||
    !Number.isSafeInteger(record.partition) ||
    record.partition < 0 ||
    !OFFSET.test(record.offset) ||
    !Number.isSafeInteger(Number(record.offset))
  ) {
    throw new SpendstreamError(
      'internal',
      `wallet record not applicable: partition ${record.partition}, offset ${record.offset}, ` +
        `cents ${record.amountCents}`,
    );
  }
};

const NOTHING = Object.freeze({ applied: 0, skipped: 0 });

/**
 * The wallet's totals in Redis: each user's total and per-partition offsets in one hash,
 * updated by one Lua script per user so a total and its offsets never disagree, which
 * makes re-applying any records (redelivery, replay) a no-op.
 */
export const createWalletStore = (redis: Redis): WalletStore => {
  // defineCommand sends EVALSHA, falling back to EVAL once per connection (and after a
  // SCRIPT FLUSH), so the script text crosses the wire once, not once per user.
  if (!(APPLY_COMMAND in redis)) {
    redis.defineCommand(APPLY_COMMAND, { lua: APPLY_LUA, numberOfKeys: 1 });
  }
  return {
    apply: async (topic, records) => {
      if (records.length === 0) return NOTHING;
      // Grouping keeps input order, so each partition's offsets stay ascending per user.
      const argvByUser = new Map<string, string[]>();
      const fields = new Map<number, string>();
      for (const record of records) {
        checkWalletRecord(record);
        let argv = argvByUser.get(record.userId);
        if (argv === undefined) {
          argv = [];
          argvByUser.set(record.userId, argv);
        }
        let field = fields.get(record.partition);
        if (field === undefined) {
          field = offsetField(topic, record.partition);
          fields.set(record.partition, field);
        }
        argv.push(field, record.offset, String(record.amountCents));
      }
      const pipeline = redis.pipeline() as WalletPipeline;
      // The argv goes as one array (ioredis flattens it): spreading a hot user's records
      // as arguments could overflow the call stack.
      for (const [userId, argv] of argvByUser) {
        pipeline.spendstreamWalletApply(walletKey(userId), argv);
      }
      let results: Awaited<ReturnType<ChainableCommander['exec']>>;
      try {
        results = await pipeline.exec();
      } catch (error) {
        throw translateRedisError(error);
      }
      if (results === null) {
        throw new SpendstreamError('internal', 'Redis discarded the wallet pipeline');
      }
      let applied = 0;
      // Users before a failed one are applied; the caller retries the whole batch, and
      // their offsets make that retry skip them.
      for (const [error, count] of results) {
        if (error !== null) throw translateRedisError(error);
        applied += Number(count);
      }
      return { applied, skipped: records.length - applied };
    },

    isInitialised: async (topic) => {
      try {
        return (await redis.hexists(walletMetaKey(topic), INITIALISED_FIELD)) === 1;
      } catch (error) {
        throw translateRedisError(error);
      }
    },

    markInitialised: async (topic) => {
      try {
        // HSETNX: the value says since when this Redis has held the topic, for operators.
        await redis.hsetnx(walletMetaKey(topic), INITIALISED_FIELD, new Date().toISOString());
      } catch (error) {
        throw translateRedisError(error);
      }
    },
  };
};

/**
 * Deletes every user's hash (`wallet:{…}`) under the client's key prefix, one SCAN page at
 * a time; returns how many it deleted. Used before replaying a topic into a Redis that lost
 * its totals: hashes written since the loss hold offsets that would make the replay skip
 * the records before them.
 */
export const deleteAllTotals = async (redis: Redis, pageSize = 1_000): Promise<number> => {
  const prefix = redis.options.keyPrefix ?? '';
  const pages = redis.scanStream({
    match: `${escapeGlob(`${prefix}wallet:{`)}*}`,
    type: 'hash',
    count: pageSize,
  }) as AsyncIterable<string[]>;
  let deleted = 0;
  try {
    for await (const keys of pages) {
      if (keys.length === 0) continue;
      // UNLINK gets the client's prefix added again, so it takes the keys without it.
      deleted += await redis.unlink(...keys.map((key) => key.slice(prefix.length)));
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
  const head = `${prefix}wallet:{`;
  const pages = redis.scanStream({
    match: `${escapeGlob(head)}*}`,
    type: 'hash',
    count: pageSize,
  }) as AsyncIterable<string[]>;
  try {
    for await (const keys of pages) {
      if (keys.length === 0) continue;
      const pipeline = redis.pipeline();
      // HGET gets the client's prefix added again, so it takes the key without it.
      for (const key of keys) pipeline.hget(key.slice(prefix.length), TOTAL_FIELD);
      const results = (await pipeline.exec()) ?? [];
      for (const [index, key] of keys.entries()) {
        const [error, value] = results[index] ?? [null, null];
        if (error !== null) throw error;
        // Deleted between SCAN and HGET: it no longer has a total.
        if (value === null) continue;
        const cents = Number(value);
        if (typeof value !== 'string' || !INTEGER.test(value) || !Number.isSafeInteger(cents)) {
          throw new SpendstreamError('internal', `Redis key ${key} has an unreadable total`);
        }
        yield [key.slice(head.length, -1), cents];
      }
    }
  } catch (error) {
    throw translateRedisError(error);
  }
}
