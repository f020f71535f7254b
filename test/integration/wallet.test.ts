// The wallet service on the real Kafka and Redis: events in, exact totals out over gRPC,
// exactly once through redelivery and Redis data loss; poison goes to the dead letters.
import assert from 'node:assert/strict';
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
import type { Config } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { centsToDecimal, type Purchase } from '../../src/core/purchase.ts';
import { startWalletService, type WalletService } from '../../src/services/walletService.ts';
import { connectWallet, type WalletClient } from '../grpcClient.ts';
import { eventually } from '../harness/eventually.ts';
import { configWith, uniqueName, clearKeyPrefix } from '../helpers.ts';

const topic = uniqueName('test_wallet');
const prefix = `${uniqueName('test')}:`;
let config: Config;
let admin: Admin;
let publisher: ManagedPurchasePublisher;
let service: WalletService | undefined;
let client: WalletClient;
const kafka = createKafka(configWith({}).kafka);
const redis = createRedis({ url: configWith({}).redis.url, keyPrefix: prefix });
const expected = new Map<string, number>();
let published = 0;

const start = async () => {
  service = await startWalletService(config, createLogger('warn', { test: 'wallet' }));
  client = connectWallet(`127.0.0.1:${service.grpcPort}`);
};
const stop = async () => {
  client.close();
  await service?.stop();
  service = undefined;
};

/** Waits until the running service has seen `count` records since it started. */
const seen = (count: number) =>
  eventually(
    () => `the wallet seeing ${count} records (seen: ${JSON.stringify(service?.stats)})`,
    () => {
      const stats = service?.stats;
      return stats !== undefined && stats.applied + stats.skipped + stats.poison >= count;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );

const publish = async (purchases: readonly Purchase[]) => {
  await publisher.publish(purchases);
  for (const p of purchases) expected.set(p.userId, (expected.get(p.userId) ?? 0) + p.amountCents);
  published += purchases.length;
};

const assertTotals = async () => {
  for (const [userId, cents] of expected) {
    const reply = await client.getBalance(userId);
    assert.deepEqual(reply, { balances: { total: Number(centsToDecimal(cents)) } }, userId);
  }
};

before(async () => {
  config = configWith({
    KAFKA_TOPIC: topic,
    KAFKA_TOPIC_PARTITIONS: '3',
    KAFKA_DEAD_LETTER_TOPIC: `${topic}_dead`,
    WALLET_GROUP_ID: uniqueName('test_wallet_group'),
    REDIS_KEY_PREFIX: prefix,
    GRPC_PORT: '0',
  });
  admin = kafka.admin();
  await admin.connect();
  await ensureTopic(admin, { topic, partitions: 3 });
  publisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic,
    partitions: 3,
  });
  await start();
});

after(async () => {
  await stop();
  await publisher.close();
  await admin.deleteTopics({ topics: [topic, `${topic}_dead`] }).catch(() => undefined);
  await admin.disconnect();
  await clearKeyPrefix(redis, prefix);
  await redis.quit();
});

test('totals equal the sums of the events, to the cent, over many users', async () => {
  const purchases: Purchase[] = Array.from({ length: 3_000 }, (_, i) => ({
    id: `w-${i}`,
    userId: `wallet-user-${i % 150}`,
    amountCents: 1 + ((i * 7_919) % 99_999),
  }));
  for (let i = 0; i < purchases.length; i += 500) await publish(purchases.slice(i, i + 500));
  await seen(published);
  await assertTotals();
  assert.deepEqual(await client.getBalance('nobody-ever'), { balances: { total: 0 } });
});

test('a record that is not a purchase goes to the dead-letter topic and blocks nothing', async () => {
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({
    topic,
    messages: [
      { key: 'poison-user', value: 'not json at all', partition: 0 },
      { key: 'poison-user', value: JSON.stringify({ user_id: 'poison-user' }), partition: 0 },
    ],
  });
  await producer.disconnect();
  await publish([{ id: 'after-poison', userId: 'poison-user', amountCents: 123 }]);
  await seen(published + 2);
  assert.equal(service?.stats.poison, 2);
  await assertTotals();
  const consumer = kafka.consumer({ groupId: uniqueName('test_dead_reader') });
  await consumer.connect();
  await consumer.subscribe({ topics: [`${topic}_dead`], fromBeginning: true });
  const dead: Array<{ value: string; reason: string; offset: string }> = [];
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: ({ message }) => {
        dead.push({
          value: String(message.value),
          reason: String(message.headers?.['x-error']),
          offset: String(message.headers?.['x-original-offset']),
        });
        if (dead.length === 2) resolve();
        return Promise.resolve();
      },
    });
  });
  await consumer.disconnect();
  assert.equal(dead[0]?.value, 'not json at all');
  assert.match(dead[0]?.reason ?? '', /not JSON/);
  assert.match(dead[1]?.reason ?? '', /amount/);
  published += 2;
});

test('everything redelivered (the group rewound to the start) is counted once', async () => {
  await stop();
  await admin.resetOffsets({ groupId: config.wallet.groupId, topic, earliest: true });
  await start();
  await seen(published);
  assert.equal(service?.stats.applied, 0, 'nothing applied twice');
  assert.equal(service?.stats.skipped, published - 2);
  await assertTotals();
});

test('Redis losing its data: the wallet replays the topic and rebuilds every total', async () => {
  await stop();
  await clearKeyPrefix(redis, prefix);
  await start();
  await seen(published);
  assert.equal(service?.stats.applied, published - 2);
  await assertTotals();
});

test('an instance finding Redis empty while others run refuses to start, rather than skip', async () => {
  await clearKeyPrefix(redis, prefix);
  await assert.rejects(
    startWalletService(config, createLogger('error', { test: 'wallet' })),
    /other members of .* are running/,
  );
});
