// Wallet processes killed and rebalanced on the real Kafka and Redis: every event is
// counted exactly once.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import { walletKey } from '../../src/adapters/redis/walletKeys.ts';
import {
  createPurchasePublisher,
  type ManagedPurchasePublisher,
} from '../../src/adapters/kafka/purchasePublisher.ts';
import { createIdempotentProducer } from '../../src/adapters/kafka/producer.ts';
import type { Purchase } from '../../src/core/purchase.ts';
import { eventually } from '../harness/eventually.ts';
import { startWalletProcess } from '../harness/processes.ts';
import { ownGroup, ownKeyPrefix, ownTopics } from '../harness/stores.ts';
import { onTeardown } from '../harness/teardown.ts';
import { testConfig, uniqueName } from '../helpers.ts';

const kafka = createKafka(testConfig.kafka);

/**
 * A topic, group and key prefix of test `t`'s own, with a publisher and a Redis view;
 * wallet processes still running when `t` ends are killed.
 */
const setUp = async (t: TestContext) => {
  const topic = uniqueName('test_wallet_faults');
  const prefix = `${uniqueName('test')}:`;
  const groupId = uniqueName('test_wallet_group');
  ownTopics(t, testConfig.kafka, [topic, `${topic}_dead`]);
  ownGroup(t, testConfig.kafka, groupId);
  const redis = ownKeyPrefix(t, { url: testConfig.redis.url, keyPrefix: prefix });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopic(admin, { topic, partitions: 4 });
  } finally {
    await admin.disconnect();
  }
  const publisher: ManagedPurchasePublisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic,
    partitions: 4,
  });
  onTeardown(t, () => publisher.close());
  const startWallet = async () => {
    const wallet = await startWalletProcess({
      KAFKA_TOPIC: topic,
      KAFKA_TOPIC_PARTITIONS: '4',
      KAFKA_DEAD_LETTER_TOPIC: `${topic}_dead`,
      WALLET_GROUP_ID: groupId,
      REDIS_KEY_PREFIX: prefix,
      GRPC_PORT: '0',
      // The line saying it serves is an info line.
      LOG_LEVEL: 'info',
    });
    onTeardown(t, () => wallet.kill('SIGKILL'));
    return wallet;
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
        for (const user of users) pipeline.hget(walletKey(user), 'total');
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

test('a wallet killed mid-stream and restarted counts every event once', async (t) => {
  const { startWallet, publish, totalsSettle } = await setUp(t);
  const first = await startWallet();
  for (let round = 0; round < 10; round += 1) await publish(500);
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  await first.kill('SIGKILL');
  for (let round = 0; round < 4; round += 1) await publish(500);
  const second = await startWallet();
  await totalsSettle();
  second.signal('SIGTERM');
  assert.deepEqual(await second.exited, { code: 0, signal: null });
});

test('two instances sharing the partitions, with a rebalance mid-stream, count every event once', async (t) => {
  const { startWallet, publish, totalsSettle } = await setUp(t);
  const a = await startWallet();
  await publish(2_000);
  const b = await startWallet();
  for (let round = 0; round < 6; round += 1) {
    await publish(500);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  // a leaves cleanly: b takes over its partitions.
  a.signal('SIGTERM');
  await publish(1_000);
  await totalsSettle();
  await b.kill('SIGTERM');
});
