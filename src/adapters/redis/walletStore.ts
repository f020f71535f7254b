import type { ChainableCommander, Redis } from 'ioredis';
import { SpendstreamError } from '../../core/errors.ts';
import type { WalletStore } from '../../core/ports.ts';
import { checkWalletRecord } from '../../core/records.ts';
import { translateRedisError } from './client.ts';
import {
  INITIALISED_FIELD,
  TOTAL_FIELD,
  offsetField,
  walletKey,
  walletMetaKey,
} from './walletKeys.ts';

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
      // Counted now: the caller's array may change while the round trip is under way.
      const count = records.length;
      if (count === 0) return NOTHING;
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
      for (const [error, appliedToUser] of results) {
        if (error !== null) throw translateRedisError(error);
        applied += Number(appliedToUser);
      }
      return { applied, skipped: count - applied };
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
