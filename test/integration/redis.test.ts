import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createRedis, translateRedisError } from '../../src/adapters/redis/client.ts';
import { keySlot, scanClients } from '../../src/adapters/redis/nodes.ts';
import {
  bucketKey,
  dirtyKey,
  snapshottingKey,
  userKeyPrefix,
  walletMetaKey,
} from '../../src/adapters/redis/walletKeys.ts';
import { WALLET_BUCKETS } from '../../src/core/buckets.ts';
import { StoreUnavailableError } from '../../src/core/errors.ts';
import { clusterClient } from '../harness/redisCluster.ts';
import { testConfig, uniqueName, clearKeyPrefix } from '../helpers.ts';

const prefix = `${uniqueName('test')}:`;
const redis = createRedis({ url: testConfig.redis.url, keyPrefix: prefix });

after(async () => {
  await clearKeyPrefix(redis, prefix);
  await redis.quit();
});

test('a value round-trips, under the key prefix', async () => {
  await redis.set('greeting', 'hello');
  assert.equal(await redis.get('greeting'), 'hello');
  assert.deepEqual(await redis.keys(`${prefix}*`), [`${prefix}greeting`]);
});

test('pipelined integer increments sum exactly', async () => {
  const pipeline = redis.pipeline();
  for (let i = 0; i < 1_000; i += 1) pipeline.incrby('cents', 4_999);
  const results = await pipeline.exec();
  assert.equal(results?.length, 1_000);
  assert.equal(await redis.get('cents'), String(1_000 * 4_999));
});

test('an unreachable server is reported as a retryable unavailable error', async () => {
  const dead = createRedis({ url: 'redis://127.0.0.1:1' });
  dead.on('error', () => undefined);
  try {
    await assert.rejects(
      dead.ping().catch((error: unknown) => {
        throw translateRedisError(error);
      }),
      (error: unknown) => error instanceof StoreUnavailableError && error.retryable,
    );
  } finally {
    dead.disconnect();
  }
});

test('on a Redis Cluster: each bucket stays in one slot, and SCAN visits every master', async () => {
  const cluster = await clusterClient(prefix);
  try {
    for (let bucket = 0; bucket < WALLET_BUCKETS; bucket += 1) {
      const keys = [bucketKey(bucket), dirtyKey(bucket), snapshottingKey(bucket)];
      keys.push(...['a', 'b}{', ''].map((id) => `${userKeyPrefix(bucket)}${id}`));
      const slots = await Promise.all(
        keys.map((key) => cluster.call('CLUSTER', 'KEYSLOT', `${prefix}${key}`)),
      );
      assert.deepEqual(new Set(slots), new Set([keySlot(`${prefix}${bucketKey(bucket)}`)]));
    }
    // The slot computed here is Redis's for any key, tagged or not.
    for (const key of ['plain', '{tag}x', 'a{}b', 'é{ü}', `${prefix}${walletMetaKey('t')}`]) {
      assert.equal(await cluster.call('CLUSTER', 'KEYSLOT', key), keySlot(key));
    }
    const masters = await scanClients(cluster);
    assert.equal(masters.length, 3, 'three masters');
    await cluster.set('greeting', 'hello');
    // A node's own client adds no prefix: the key is found under its whole name.
    const holders = await Promise.all(masters.map((node) => node.keys(`${prefix}*`)));
    assert.deepEqual(
      holders.flat(),
      [`${prefix}greeting`],
      'on one master, under the Cluster client prefix',
    );
  } finally {
    await clearKeyPrefix(cluster, prefix);
    await cluster.quit();
  }
});
