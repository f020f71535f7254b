import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createRedis } from '../../src/adapters/redis/client.ts';
import { withRebuildLock } from '../../src/adapters/redis/rebuildLock.ts';
import { rebuildLockKey } from '../../src/adapters/redis/walletKeys.ts';
import { isSpendstreamError } from '../../src/core/errors.ts';
import { clearKeyPrefix, testConfig, uniqueName } from '../helpers.ts';

const prefix = `${uniqueName('test')}:`;
const redis = createRedis({ url: testConfig.redis.url, keyPrefix: prefix });
const other = createRedis({ url: testConfig.redis.url, keyPrefix: prefix });

after(async () => {
  await clearKeyPrefix(redis, prefix);
  redis.disconnect();
  other.disconnect();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('two wallets preparing the same totals at once take turns', async () => {
  const topic = uniqueName('topic');
  const events: string[] = [];
  const work = (name: string) => async () => {
    events.push(`${name} in`);
    await sleep(300);
    events.push(`${name} out`);
    return name;
  };
  let waited = 0;
  const results = await Promise.all([
    withRebuildLock(redis, topic, work('a'), { onWait: () => (waited += 1) }),
    withRebuildLock(other, topic, work('b'), { onWait: () => (waited += 1) }),
  ]);
  assert.deepEqual(results.toSorted(), ['a', 'b']);
  // Whichever came first, the other entered only after it left.
  assert.deepEqual(
    events.map((event) => event.split(' ')[1]),
    ['in', 'out', 'in', 'out'],
  );
  assert.equal(waited, 1, 'the second was told it waits');
  assert.equal(await redis.exists(rebuildLockKey(topic)), 0, 'released');
});

test('the lock is released when the work fails, and renewed while it runs', async () => {
  const topic = uniqueName('topic');
  await assert.rejects(
    withRebuildLock(redis, topic, () => Promise.reject(new Error('rebuild failed'))),
    /rebuild failed/,
  );
  assert.equal(await redis.exists(rebuildLockKey(topic)), 0);
  // A lease of 300 ms outlived by work of 1 s: renewed, so nobody else gets in meanwhile.
  let intruded = false;
  const long = withRebuildLock(redis, topic, () => sleep(1_000), { leaseMs: 300 });
  await sleep(600);
  await withRebuildLock(other, topic, () => Promise.resolve((intruded = Date.now() > 0)), {
    waitMs: 0,
  }).catch((error: unknown) => {
    assert.ok(isSpendstreamError(error) && error.code === 'unavailable');
  });
  assert.equal(intruded, false, 'nobody got the lock while its holder ran');
  await long;
});

test('a holder that died lets go when its lease runs out', async () => {
  const topic = uniqueName('topic');
  // A process that took the lock and died: its key stays until its lease runs out.
  await redis.set(rebuildLockKey(topic), 'dead-holder', 'PX', 400);
  const started = Date.now();
  await withRebuildLock(other, topic, () => Promise.resolve());
  assert.ok(Date.now() - started >= 300, 'waited for the lease');
});
