// The balance reader on the real Redis: a user without a hash is told apart from a user
// whose hash Redis lost, so a lost total is never answered as 0.
import assert from 'node:assert/strict';
import { after, beforeEach, test } from 'node:test';
import { createBalanceReader } from '../../src/adapters/redis/balanceReader.ts';
import { createRedis } from '../../src/adapters/redis/client.ts';
import { bucketKey, walletKey } from '../../src/adapters/redis/walletKeys.ts';
import { createWalletStore } from '../../src/adapters/redis/walletStore.ts';
import { bucketOf } from '../../src/core/buckets.ts';
import { TotalsIncompleteError } from '../../src/core/errors.ts';
import { clearKeyPrefix, testConfig, uniqueName } from '../helpers.ts';

const TOPIC = 'user_purchase';
const prefix = `${uniqueName('test')}:`;
const redis = createRedis({ url: testConfig.redis.url, keyPrefix: prefix });
const store = createWalletStore(redis);
const reader = createBalanceReader(redis);

const record = (offset: number, userId: string, amountCents: number) => ({
  partition: 0,
  offset: String(offset),
  userId,
  amountCents,
});

beforeEach(async () => {
  await clearKeyPrefix(redis, prefix);
  await store.markInitialised(TOPIC);
  await store.apply(TOPIC, [record(0, 'alice', 4_999), record(1, 'bob', 1)], {
    spans: [{ partition: 0, from: '0', to: '2' }],
  });
});

after(async () => {
  await clearKeyPrefix(redis, prefix);
  await redis.quit();
});

test('a user with a hash reads its total; a user never seen reads 0', async () => {
  assert.equal(await reader.totalCents('alice'), 4_999);
  assert.equal(await reader.totalCents('nobody-ever'), 0);
});

test("a user whose hash is gone is incomplete, not 0, and the bucket's markers are reset", async () => {
  await redis.del(walletKey('alice'));
  const bucket = bucketOf('alice');
  await assert.rejects(
    reader.totalCents('alice'),
    (error: unknown) => error instanceof TotalsIncompleteError && error.bucket === bucket,
  );
  // Every marker of the bucket reads 0 now: the wallet replays it from the start.
  assert.equal(await redis.exists(bucketKey(bucket)), 0);
  assert.equal((await store.readMarkers(TOPIC, [0])).get(bucket), undefined);
  // Asked again while it is replayed: still incomplete, never 0.
  await assert.rejects(reader.totalCents('alice'), TotalsIncompleteError);
});

test('a bucket whose own hash is gone cannot tell a new user from a lost one', async () => {
  const bucket = bucketOf('bob');
  await redis.del(bucketKey(bucket));
  let stranger = 'stranger-0';
  for (let i = 1; bucketOf(stranger) !== bucket; i += 1) stranger = `stranger-${i}`;
  await assert.rejects(reader.totalCents(stranger), TotalsIncompleteError);
  // A user whose hash is there still reads it (its total is as complete as its offsets).
  assert.equal(await reader.totalCents('bob'), 1);
});

test('a user missing from a bucket being replayed is incomplete, not 0', async () => {
  const committed = new Map([[0, '2']]);
  const guarded = createBalanceReader(redis, { topic: TOPIC, committed: () => committed });
  assert.equal(await guarded.totalCents('nobody-ever'), 0);
  // The bucket's markers put back (as a replay does after a loss), its register empty.
  const bucket = bucketOf('alice');
  await redis.del(bucketKey(bucket));
  await store.apply(TOPIC, [], {
    spans: [{ partition: 0, from: '0', to: '1' }],
    buckets: [bucket],
  });
  await redis.del(walletKey('alice'));
  await assert.rejects(guarded.totalCents('alice'), TotalsIncompleteError);
  // Replayed up to the committed offset: complete, and a user never seen is 0 again.
  await store.apply(TOPIC, [record(1, 'bob', 1)], {
    spans: [{ partition: 0, from: '1', to: '2' }],
    buckets: [bucket],
  });
  let stranger = 'stranger-0';
  for (let i = 1; bucketOf(stranger) !== bucket; i += 1) stranger = `stranger-${i}`;
  assert.equal(await guarded.totalCents(stranger), 0);
});
