// Wallet processes killed and rebalanced on the real Kafka and Redis: every event is
// counted exactly once.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import type { Admin } from 'kafkajs';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import {
  createPurchasePublisher,
  type ManagedPurchasePublisher,
} from '../../src/adapters/kafka/purchasePublisher.ts';
import { createIdempotentProducer } from '../../src/adapters/kafka/producer.ts';
import { createRedis } from '../../src/adapters/redis/client.ts';
import type { Purchase } from '../../src/core/purchase.ts';
import { ROOT } from '../../scripts/infra.ts';
import { eventually } from '../harness/eventually.ts';
import { childEnv, testConfig, uniqueName, clearKeyPrefix } from '../helpers.ts';

const kafka = createKafka(testConfig.kafka);
let admin: Admin;
const children: ChildProcess[] = [];
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  admin = kafka.admin();
  await admin.connect();
});

after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  for (const cleanup of cleanups) await cleanup();
  await admin.disconnect();
});

/** A topic, group and key prefix of the test's own, with a publisher and a Redis view. */
const setUp = async () => {
  const topic = uniqueName('test_wallet_faults');
  const prefix = `${uniqueName('test')}:`;
  const groupId = uniqueName('test_wallet_group');
  await ensureTopic(admin, { topic, partitions: 4 });
  const publisher: ManagedPurchasePublisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic,
    partitions: 4,
  });
  const redis = createRedis({ url: testConfig.redis.url, keyPrefix: prefix });
  cleanups.push(async () => {
    await publisher.close();
    await admin.deleteTopics({ topics: [topic, `${topic}_dead`] }).catch(() => undefined);
    await clearKeyPrefix(redis, prefix);
    await redis.quit();
  });
  const startWallet = () => {
    const child = spawn(process.execPath, [`${ROOT}src/wallet.ts`], {
      env: childEnv({
        KAFKA_TOPIC: topic,
        KAFKA_TOPIC_PARTITIONS: '4',
        KAFKA_DEAD_LETTER_TOPIC: `${topic}_dead`,
        WALLET_GROUP_ID: groupId,
        REDIS_KEY_PREFIX: prefix,
        GRPC_PORT: '0',
        LOG_LEVEL: 'warn',
      }),
      stdio: 'ignore',
    });
    children.push(child);
    return child;
  };
  const expected = new Map<string, number>();
  let sent = 0;
  const publish = async (count: number) => {
    const purchases: Purchase[] = Array.from({ length: count }, (_, i) => ({
      id: `${topic}-${sent + i}`,
      userId: `fault-user-${(sent + i) % 97}`,
      amountCents: 1 + (((sent + i) * 131) % 5_000),
    }));
    sent += count;
    await publisher.publish(purchases);
    for (const p of purchases)
      expected.set(p.userId, (expected.get(p.userId) ?? 0) + p.amountCents);
  };
  /** Waits until Redis holds exactly the expected totals (or fails with the difference). */
  const totalsSettle = async () => {
    let wrong: string[] = [];
    await eventually(
      () => `every total equal to the sum of its events (not yet: ${wrong.join(', ')})`,
      async () => {
        const users = [...expected.keys()];
        const pipeline = redis.pipeline();
        for (const user of users) pipeline.hget(`wallet:{${user}}`, 'total');
        const results = (await pipeline.exec()) ?? [];
        wrong = users.filter((user, i) => Number(results[i]?.[1] ?? 0) !== expected.get(user));
        const over = users.filter(
          (user, i) => Number(results[i]?.[1] ?? 0) > (expected.get(user) ?? 0),
        );
        assert.deepEqual(over, [], 'no user is ever counted past the sum of their events');
        return wrong.length === 0;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
  };
  return { startWallet, publish, totalsSettle };
};

test('a wallet killed mid-stream and restarted counts every event once', async () => {
  const { startWallet, publish, totalsSettle } = await setUp();
  const first = startWallet();
  for (let round = 0; round < 10; round += 1) await publish(500);
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  first.kill('SIGKILL');
  await once(first, 'exit');
  for (let round = 0; round < 4; round += 1) await publish(500);
  const second = startWallet();
  await totalsSettle();
  second.kill('SIGTERM');
  assert.deepEqual(await once(second, 'exit'), [0, null]);
});

test('two instances sharing the partitions, with a rebalance mid-stream, count every event once', async () => {
  const { startWallet, publish, totalsSettle } = await setUp();
  const a = startWallet();
  await publish(2_000);
  const b = startWallet();
  for (let round = 0; round < 6; round += 1) {
    await publish(500);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  // a leaves cleanly: b takes over its partitions.
  a.kill('SIGTERM');
  await publish(1_000);
  await totalsSettle();
  b.kill('SIGTERM');
  await once(b, 'exit');
});
