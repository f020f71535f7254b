import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createRedis, translateRedisError } from '../../src/adapters/redis/client.ts';
import { StoreUnavailableError } from '../../src/core/errors.ts';
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
