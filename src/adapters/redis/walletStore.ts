import type { ChainableCommander } from 'ioredis';
import { bucketOf, WALLET_BUCKETS } from '../../core/buckets.ts';
import { SpendstreamError } from '../../core/errors.ts';
import type { LostBucket, PartitionSpan, WalletStore } from '../../core/ports.ts';
import { checkWalletRecord } from '../../core/records.ts';
import { translateRedisError, type RedisClient } from './client.ts';
import { execPerNode, type RoutedCall } from './nodes.ts';
import {
  INITIALISED_FIELD,
  LAYOUT_FIELD,
  SINCE_FIELD,
  TOPIC_ID_FIELD,
  TOTAL_FIELD,
  WALLET_LAYOUT,
  bucketKey,
  dirtyKey,
  markerField,
  offsetFieldPrefix,
  snapshottingKey,
  offsetField,
  USER_FIELD_PREFIX,
  userKeyPrefix,
  walletKey,
  walletMetaKey,
} from './walletKeys.ts';

// One call per bucket. KEYS[1]: the bucket's hash; KEYS[2]: its dirty set (the users changed
// since its last snapshot); KEYS[3..]: its users' hashes, in ARGV's order. ARGV: '1' to enter every user seen in the register (a repair) or '0'; the span
// count, then (marker field, from, to) per span; then per user: the user id, the record
// count and (offset field, offset, cents) per record, each field's offsets ascending.
//
// Redis keeps the writes of a script that fails midway, so every check and read comes
// before the first write: a bad record or a lost bucket leaves the bucket as it was.
// Offsets are compared as Lua numbers (doubles: exact below 2^53) but written back as the
// text we were sent, because Lua 5.1's tostring rounds to 14 digits. The cents are summed
// in Lua (exact below 2^53, checked) and added with one HINCRBY per user, which Redis does
// in 64-bit integers. Replies: the number applied; {'behind', marker field, marker} when
// a span's marker is below its `from`; {'user', id} when a user the register holds has no
// hash (the bucket's hash is then removed, so every marker reads 0 and the bucket is
// replayed from the start).
const APPLY_LUA = `
local bucket = KEYS[1]
local dirty = KEYS[2]
local registerAll = ARGV[1] == '1'
local spanCount = tonumber(ARGV[2])
if spanCount == nil then
  return redis.error_reply('ERR wallet apply: bad span count')
end
local i = 3
local spans = {}
for s = 1, spanCount do
  local from, to = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if from == nil or to == nil or from > to then
    return redis.error_reply('ERR wallet apply: bad span at argument ' .. i)
  end
  spans[s] = { field = ARGV[i], from = from, to = to, text = ARGV[i + 2] }
  i = i + 3
end
local users = {}
for k = 3, #KEYS do
  local id, count = ARGV[i], tonumber(ARGV[i + 1])
  if id == nil or count == nil then
    return redis.error_reply('ERR wallet apply: bad user at argument ' .. i)
  end
  i = i + 2
  local records = {}
  for r = 1, count do
    local field, offset, cents = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    if field == nil or offset == nil or cents == nil or cents ~= math.floor(cents) then
      return redis.error_reply('ERR wallet apply: bad record at argument ' .. i)
    end
    records[r] = { field = field, offset = offset, cents = cents, text = ARGV[i + 1] }
    i = i + 3
  end
  users[k - 2] = { key = KEYS[k], id = id, records = records }
end

for _, span in ipairs(spans) do
  local stored = redis.call('HGET', bucket, span.field)
  span.at = 0
  if stored then
    span.at = tonumber(stored)
    if span.at == nil then
      return redis.error_reply('ERR wallet apply: unreadable ' .. span.field .. ' in ' .. bucket)
    end
  end
  if span.at < span.from then
    return { 'behind', span.field, stored or '0' }
  end
end
for _, user in ipairs(users) do
  user.exists = redis.call('EXISTS', user.key) == 1
  if not user.exists and redis.call('HEXISTS', bucket, '${USER_FIELD_PREFIX}' .. user.id) == 1 then
    redis.call('UNLINK', bucket)
    return { 'user', user.id }
  end
end

local applied = 0
for _, user in ipairs(users) do
  local high, text = {}, {}
  local sum, count = 0, 0
  for _, record in ipairs(user.records) do
    if high[record.field] == nil then
      high[record.field] = -1
      if user.exists then
        local stored = redis.call('HGET', user.key, record.field)
        if stored then
          high[record.field] = tonumber(stored)
          if high[record.field] == nil then
            return redis.error_reply('ERR wallet apply: unreadable ' .. record.field .. ' in ' .. user.key)
          end
        end
      end
    end
    if record.offset > high[record.field] then
      high[record.field] = record.offset
      text[record.field] = record.text
      sum = sum + record.cents
      count = count + 1
    end
  end
  if math.abs(sum) >= 9007199254740992 then
    return redis.error_reply('ERR wallet apply: batch sum too large for one call')
  end
  user.sum, user.text, user.count = sum, text, count
  applied = applied + count
end

for _, user in ipairs(users) do
  if user.count > 0 then
    redis.call('HINCRBY', user.key, '${TOTAL_FIELD}', string.format('%.0f', user.sum))
    for field, value in pairs(user.text) do
      redis.call('HSET', user.key, field, value)
    end
    redis.call('SADD', dirty, user.id)
  end
  if registerAll or not user.exists then
    redis.call('HSETNX', bucket, '${USER_FIELD_PREFIX}' .. user.id, '1')
  end
end
for _, span in ipairs(spans) do
  if span.to > span.at then
    redis.call('HSET', bucket, span.field, span.text)
  end
end
return applied
`;

// A snapshot's read of one bucket. KEYS: the bucket's hash, its dirty set, its snapshotting
// set. ARGV: the key of a user of the bucket without the user id (the client's prefix
// included: these keys are made here, not passed), the prefix of the topic's offset
// fields, then the marker fields. Moves the dirty users to the snapshotting set (joining
// any a failed snapshot left there) and replies the markers, then per user the id, the
// total and (offset field, offset) pairs; {'lost'} when the bucket's hash is gone.
// Every key made here shares the bucket's hash tag, so on a cluster it is in the slot.
const TAKE_LUA = `
local bucket, dirty, taking = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', bucket) == 0 then
  return { 'lost' }
end
if redis.call('EXISTS', dirty) == 1 then
  if redis.call('EXISTS', taking) == 1 then
    redis.call('SUNIONSTORE', taking, taking, dirty)
    redis.call('DEL', dirty)
  else
    redis.call('RENAME', dirty, taking)
  end
end
local markers = {}
for a = 3, #ARGV do
  markers[#markers + 1] = redis.call('HGET', bucket, ARGV[a]) or '0'
end
local users = {}
local prefix = ARGV[2]
for _, id in ipairs(redis.call('SMEMBERS', taking)) do
  local fields = redis.call('HGETALL', ARGV[1] .. id)
  local total = nil
  local offsets = {}
  for f = 1, #fields, 2 do
    if fields[f] == '${TOTAL_FIELD}' then
      total = fields[f + 1]
    elseif string.sub(fields[f], 1, #prefix) == prefix then
      offsets[#offsets + 1] = string.sub(fields[f], #prefix + 1)
      offsets[#offsets + 1] = fields[f + 1]
    end
  end
  if total ~= nil then
    users[#users + 1] = { id, total, offsets }
  end
end
return { 'ok', markers, users }
`;

// A restore of (part of) one bucket from a snapshot. KEYS[1]: the bucket's hash; KEYS[2..]:
// the users' hashes, in ARGV's order. ARGV: the offset field prefix, the marker count,
// (marker field, offset) pairs, then per user: the id, the total, the offset count and
// (offset field, offset) pairs. A user's hash is replaced by the snapshot's when the
// snapshot holds every partition at least as far; kept when the hash holds every one at
// least as far (a later state of the same user); anything else is refused before any
// write. Markers are raised, never lowered; the bucket's hash is created if gone.
const RESTORE_LUA = `
local bucket = KEYS[1]
local prefix = ARGV[1]
local markerCount = tonumber(ARGV[2])
local i = 3
local markers = {}
for m = 1, markerCount do
  markers[m] = { field = ARGV[i], offset = tonumber(ARGV[i + 1]), text = ARGV[i + 1] }
  i = i + 2
end
local users = {}
for k = 2, #KEYS do
  local id, total, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if id == nil or count == nil or tonumber(total) == nil then
    return redis.error_reply('ERR wallet restore: bad user at argument ' .. i)
  end
  i = i + 3
  local offsets = {}
  for o = 1, count do
    offsets[prefix .. ARGV[i]] = ARGV[i + 1]
    i = i + 2
  end
  users[k - 1] = { key = KEYS[k], id = id, total = total, offsets = offsets }
end
for _, user in ipairs(users) do
  local held = {}
  local fields = redis.call('HGETALL', user.key)
  for f = 1, #fields, 2 do
    if string.sub(fields[f], 1, #prefix) == prefix then held[fields[f]] = tonumber(fields[f + 1]) end
  end
  local exists = #fields > 0
  local snapshotAhead, heldAhead = true, true
  for field, offset in pairs(user.offsets) do
    local h = held[field] or -1
    if tonumber(offset) < h then snapshotAhead = false end
    if tonumber(offset) > h then heldAhead = false end
  end
  for field, h in pairs(held) do
    if user.offsets[field] == nil then snapshotAhead = false end
  end
  if exists and not snapshotAhead and not heldAhead then
    return redis.error_reply('ERR wallet restore: ' .. user.id .. ' differs from the snapshot')
  end
  user.replace = not exists or (snapshotAhead and not heldAhead)
end
for _, user in ipairs(users) do
  if user.replace then
    redis.call('DEL', user.key)
    redis.call('HSET', user.key, '${TOTAL_FIELD}', user.total)
    for field, offset in pairs(user.offsets) do
      redis.call('HSET', user.key, field, offset)
    end
  end
  redis.call('HSETNX', bucket, '${USER_FIELD_PREFIX}' .. user.id, '1')
end
for _, marker in ipairs(markers) do
  local at = tonumber(redis.call('HGET', bucket, marker.field) or '0')
  if marker.offset > at then redis.call('HSET', bucket, marker.field, marker.text) end
end
redis.call('HSETNX', bucket, '${SINCE_FIELD}', ARGV[i] or '')
return #users
`;

// Namespaced so they cannot clash with a command someone else defines on a shared client.
const APPLY_COMMAND = 'spendstreamWalletApplyBucket';
const TAKE_COMMAND = 'spendstreamWalletTakeSnapshot';
const RESTORE_COMMAND = 'spendstreamWalletRestoreBucket';

/** Users restored per script call, so that no call holds Redis for long. */
const RESTORE_CHUNK = 500;

/** A pipeline that knows the command {@link createWalletStore} defines on its client. */
interface WalletPipeline extends ChainableCommander {
  spendstreamWalletApplyBucket(
    keyCount: number,
    args: readonly (string | number)[],
  ): WalletPipeline;
}

/** The client, with the commands {@link createWalletStore} defines on it. */
type WalletRedis = RedisClient & {
  spendstreamWalletTakeSnapshot(keyCount: number, args: readonly string[]): Promise<unknown>;
  spendstreamWalletRestoreBucket(
    keyCount: number,
    args: readonly (string | number)[],
  ): Promise<unknown>;
};

type TakeReply = ['lost'] | ['ok', string[], [string, string, string[]][]];

type BucketReply = number | ['behind', string, string] | ['user', string];

const EVERY_BUCKET = Array.from({ length: WALLET_BUCKETS }, (_, bucket) => bucket);

/** One bucket's part of a call: its users' records as the script takes them. */
interface BucketCall {
  readonly users: Map<string, string[]>;
  /** The partitions of its records, to name in a lost reply when the call has no spans. */
  readonly partitions: Set<number>;
  records: number;
}

const checkSpan = (span: PartitionSpan): void => {
  const offset = /^\d{1,16}$/;
  if (
    !Number.isSafeInteger(span.partition) ||
    span.partition < 0 ||
    !offset.test(span.from) ||
    !offset.test(span.to) ||
    !Number.isSafeInteger(Number(span.to)) ||
    BigInt(span.from) > BigInt(span.to)
  ) {
    throw new SpendstreamError(
      'internal',
      `wallet span not applicable: partition ${span.partition}, ${span.from} to ${span.to}`,
    );
  }
};

/** Which key layout a topic's totals are held in: this one, an older one, or none. */
export type HeldLayout = 'current' | 'older' | 'none';

/** Reads from the topic's meta hash which layout, if any, this Redis holds its totals in. */
export const readHeldLayout = async (redis: RedisClient, topic: string): Promise<HeldLayout> => {
  let initialised: string | null;
  let layout: string | null;
  try {
    [initialised, layout] = await redis.hmget(
      walletMetaKey(topic),
      INITIALISED_FIELD,
      LAYOUT_FIELD,
    );
  } catch (error) {
    throw translateRedisError(error);
  }
  if (initialised === null || initialised === undefined) return 'none';
  return layout === WALLET_LAYOUT ? 'current' : 'older';
};

/** The id of the topic whose totals this Redis holds, if recorded. */
export const readHeldTopicId = async (
  redis: RedisClient,
  topic: string,
): Promise<string | undefined> => {
  try {
    return (await redis.hget(walletMetaKey(topic), TOPIC_ID_FIELD)) ?? undefined;
  } catch (error) {
    throw translateRedisError(error);
  }
};

/** Records that the totals this Redis holds for `topic` are of the topic with `topicId`. */
export const writeHeldTopicId = async (
  redis: RedisClient,
  topic: string,
  topicId: string,
): Promise<void> => {
  try {
    await redis.hset(walletMetaKey(topic), TOPIC_ID_FIELD, topicId);
  } catch (error) {
    throw translateRedisError(error);
  }
};

/**
 * The wallet's totals in Redis (layout 2): users split into {@link WALLET_BUCKETS}
 * buckets, each user's total and per-partition offsets in one hash, each bucket's markers
 * and register of users in a hash beside them, all of a bucket under one hash tag. A batch
 * is one Lua script per bucket, so a bucket's users and its marker never disagree, and
 * re-applying any records (redelivery, replay, repair) is a no-op.
 */
export const createWalletStore = (redis: RedisClient): WalletStore => {
  // defineCommand sends EVALSHA, falling back to EVAL once per connection (and after a
  // SCRIPT FLUSH), so the script text crosses the wire once, not once per bucket.
  if (!(APPLY_COMMAND in redis)) redis.defineCommand(APPLY_COMMAND, { lua: APPLY_LUA });
  if (!(TAKE_COMMAND in redis)) redis.defineCommand(TAKE_COMMAND, { lua: TAKE_LUA });
  if (!(RESTORE_COMMAND in redis)) redis.defineCommand(RESTORE_COMMAND, { lua: RESTORE_LUA });
  const scripts = redis as WalletRedis;
  const call = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw translateRedisError(error);
    }
  };
  return {
    apply: async (topic, records, options = {}) => {
      // Counted and grouped now: the caller's arrays may change during the round trip.
      const spans = options.spans ?? [];
      spans.forEach(checkSpan);
      const only = options.buckets === undefined ? undefined : new Set(options.buckets);
      const calls = new Map<number, BucketCall>();
      const callOf = (bucket: number) => {
        let call = calls.get(bucket);
        if (call === undefined) {
          call = { users: new Map(), partitions: new Set(), records: 0 };
          calls.set(bucket, call);
        }
        return call;
      };
      // Every bucket's marker keeps pace with the partition, users in the batch or not.
      if (spans.length > 0) for (const bucket of options.buckets ?? EVERY_BUCKET) callOf(bucket);
      const fields = new Map<number, string>();
      for (const record of records) {
        checkWalletRecord(record);
        const bucket = bucketOf(record.userId);
        if (only !== undefined && !only.has(bucket)) continue;
        const call = callOf(bucket);
        call.records += 1;
        call.partitions.add(record.partition);
        let argv = call.users.get(record.userId);
        if (argv === undefined) {
          argv = [];
          call.users.set(record.userId, argv);
        }
        let field = fields.get(record.partition);
        if (field === undefined) {
          field = offsetField(topic, record.partition);
          fields.set(record.partition, field);
        }
        // Grouping keeps input order, so each partition's offsets stay ascending per user.
        argv.push(field, record.offset, String(record.amountCents));
      }
      if (calls.size === 0) return { applied: 0, skipped: 0, lost: [] };
      const spanArgs = spans.flatMap((s) => [markerField(topic, s.partition), s.from, s.to]);
      const partitionOf = new Map(spans.map((s) => [markerField(topic, s.partition), s]));
      const order: [number, BucketCall][] = [...calls];
      const bucketCalls: RoutedCall[] = [];
      for (const [bucket, call] of order) {
        const keys = [bucketKey(bucket), dirtyKey(bucket)];
        // The argv goes as one array (ioredis flattens it): spreading a hot user's records
        // as arguments could overflow the call stack.
        const args: (string | number)[] = [only === undefined ? '0' : '1', spans.length];
        args.push(...spanArgs);
        for (const [userId, argv] of call.users) {
          keys.push(walletKey(userId));
          args.push(userId, argv.length / 3);
          for (const value of argv) args.push(value);
        }
        bucketCalls.push({
          key: bucketKey(bucket),
          add: (pipeline) =>
            (pipeline as WalletPipeline).spendstreamWalletApplyBucket(keys.length, [
              ...keys,
              ...args,
            ]),
        });
      }
      // One pipeline per node (one in all on a single Redis), sent at once.
      const results = await execPerNode(redis, bucketCalls);
      let applied = 0;
      let counted = 0;
      const lost: LostBucket[] = [];
      // Buckets other than a failed one may be applied; the caller retries the whole call,
      // and their offsets and markers make that retry skip them.
      for (const [index, [error, reply]] of results.entries()) {
        if (error !== null) throw translateRedisError(error);
        const [bucket, call] = order[index] ?? [0, { records: 0, partitions: new Set<number>() }];
        const answer = reply as BucketReply;
        if (typeof answer === 'number') {
          applied += answer;
          counted += call.records;
        } else if (answer[0] === 'behind') {
          const span = partitionOf.get(answer[1]);
          lost.push({
            bucket,
            partition: span?.partition ?? -1,
            marker: answer[2],
            reason: 'behind',
          });
        } else {
          const partitions = spans.length > 0 ? spans.map((s) => s.partition) : call.partitions;
          for (const partition of partitions) {
            lost.push({ bucket, partition, marker: '0', reason: 'user' });
          }
        }
      }
      return { applied, skipped: counted - applied, lost };
    },

    readMarkers: async (topic, partitions) => {
      const fields = partitions.map((partition) => markerField(topic, partition));
      const reads: RoutedCall[] = [];
      for (const bucket of EVERY_BUCKET) {
        const key = bucketKey(bucket);
        reads.push({ key, add: (pipeline) => pipeline.exists(key) });
        if (fields.length > 0)
          reads.push({ key, add: (pipeline) => pipeline.hmget(key, ...fields) });
      }
      const results = await execPerNode(redis, reads);
      const step = fields.length > 0 ? 2 : 1;
      const markers = new Map<number, ReadonlyMap<number, string> | undefined>();
      for (const bucket of EVERY_BUCKET) {
        const [existsError, exists] = results[bucket * step] ?? [null, 0];
        if (existsError !== null) throw translateRedisError(existsError);
        if (exists === 0) {
          markers.set(bucket, undefined);
          continue;
        }
        const [error, values] =
          step === 2 ? (results[bucket * step + 1] ?? [null, []]) : [null, []];
        if (error !== null) throw translateRedisError(error);
        const texts = values as (string | null)[];
        markers.set(bucket, new Map(partitions.map((p, i) => [p, texts[i] ?? '0'])));
      }
      return markers;
    },

    isInitialised: async (topic) => (await readHeldLayout(redis, topic)) === 'current',

    markInitialised: async (topic) => {
      const since = new Date().toISOString();
      const meta = walletMetaKey(topic);
      // Every bucket's hash exists from now on, so one found missing is one lost. On a
      // Cluster the buckets' pipelines run on their nodes at once, so the meta hash, which
      // says they are all there, is written only once every one is.
      const buckets: RoutedCall[] = EVERY_BUCKET.map((bucket) => ({
        key: bucketKey(bucket),
        add: (pipeline) => pipeline.hsetnx(bucketKey(bucket), SINCE_FIELD, since),
      }));
      // HSETNX: the value says since when this Redis has held the topic, for operators.
      const metas: RoutedCall[] = [
        { key: meta, add: (pipeline) => pipeline.hsetnx(meta, INITIALISED_FIELD, since) },
        { key: meta, add: (pipeline) => pipeline.hset(meta, LAYOUT_FIELD, WALLET_LAYOUT) },
      ];
      for (const step of [buckets, metas]) {
        for (const [error] of await execPerNode(redis, step)) {
          if (error !== null) throw translateRedisError(error);
        }
      }
    },

    takeSnapshot: async (topic, bucket, partitions) => {
      const reply = (await call(() =>
        scripts.spendstreamWalletTakeSnapshot(3, [
          bucketKey(bucket),
          dirtyKey(bucket),
          snapshottingKey(bucket),
          `${redis.options.keyPrefix ?? ''}${userKeyPrefix(bucket)}`,
          offsetFieldPrefix(topic),
          ...partitions.map((partition) => markerField(topic, partition)),
        ]),
      )) as TakeReply;
      if (reply[0] === 'lost') return undefined;
      const [, markers, users] = reply;
      return {
        bucket,
        markers: new Map(partitions.map((partition, i) => [partition, markers[i] ?? '0'])),
        users: users.map(([userId, total, offsets]) => {
          const cents = Number(total);
          if (!/^-?\d+$/.test(total) || !Number.isSafeInteger(cents)) {
            throw new SpendstreamError('internal', `Redis holds an unreadable total for ${userId}`);
          }
          const held = new Map<number, string>();
          for (let i = 0; i < offsets.length; i += 2) {
            held.set(Number(offsets[i]), offsets[i + 1] ?? '0');
          }
          return { userId, totalCents: cents, offsets: held };
        }),
      };
    },

    settleSnapshot: async (bucket, userIds) => {
      for (let i = 0; i < userIds.length; i += RESTORE_CHUNK) {
        const chunk = userIds.slice(i, i + RESTORE_CHUNK);
        await call(() => redis.srem(snapshottingKey(bucket), ...chunk));
      }
    },

    restore: async (topic, snapshot) => {
      const { bucket } = snapshot;
      for (const user of snapshot.users) {
        if (bucketOf(user.userId) !== bucket) {
          throw new SpendstreamError(
            'internal',
            `snapshot of bucket ${bucket} holds ${user.userId} of bucket ${bucketOf(user.userId)}`,
          );
        }
      }
      const since = new Date().toISOString();
      // Users first, chunk by chunk; the markers only with the last chunk, once every user
      // the snapshot holds is in.
      for (let start = 0; start === 0 || start < snapshot.users.length; start += RESTORE_CHUNK) {
        const chunk = snapshot.users.slice(start, start + RESTORE_CHUNK);
        const last = start + RESTORE_CHUNK >= snapshot.users.length;
        const keys = [bucketKey(bucket), ...chunk.map((user) => walletKey(user.userId))];
        const markers = last ? [...snapshot.markers] : [];
        const args: (string | number)[] = [offsetFieldPrefix(topic), markers.length];
        for (const [partition, offset] of markers) args.push(markerField(topic, partition), offset);
        for (const user of chunk) {
          args.push(user.userId, String(user.totalCents), user.offsets.size);
          for (const [partition, offset] of user.offsets) args.push(String(partition), offset);
        }
        args.push(since);
        await call(() => scripts.spendstreamWalletRestoreBucket(keys.length, [...keys, ...args]));
      }
    },
  };
};
