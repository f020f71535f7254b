// The wallet service on the real Kafka and Redis: events in, exact totals out over gRPC,
// exactly once through redelivery and Redis data loss; poison goes to the dead letters.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import type { Kafka } from 'kafkajs';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import {
  createPurchasePublisher,
  type ManagedPurchasePublisher,
} from '../../src/adapters/kafka/purchasePublisher.ts';
import { createIdempotentProducer } from '../../src/adapters/kafka/producer.ts';
import { createLogger } from '../../src/logger.ts';
import { centsToDecimal, type Purchase } from '../../src/core/purchase.ts';
import { startWalletService } from '../../src/services/walletService.ts';
import { eventually } from '../harness/eventually.ts';
import { startWallet, type StartedWallet } from '../harness/services.ts';
import { onTeardown } from '../harness/teardown.ts';
import { clearKeyPrefix, uniqueName } from '../helpers.ts';

let wallet: StartedWallet;
let topic: string;
let kafka: Kafka;
let publisher: ManagedPurchasePublisher;
const expected = new Map<string, number>();
let published = 0;

/** Waits until the running service has seen `count` records since it started. */
const seen = (count: number) =>
  eventually(
    () => `the wallet seeing ${count} records (seen: ${JSON.stringify(wallet.service.stats)})`,
    () => {
      const stats = wallet.service.stats;
      return stats.applied + stats.skipped + stats.poison >= count;
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
    const reply = await wallet.client.getBalance(userId);
    assert.deepEqual(reply, { balances: { total: Number(centsToDecimal(cents)) } }, userId);
  }
};

before(async (t) => {
  wallet = await startWallet(t);
  topic = wallet.config.kafka.topic;
  kafka = createKafka(wallet.config.kafka);
  publisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic,
    partitions: 3,
  });
  onTeardown(t, () => publisher.close());
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
  assert.deepEqual(await wallet.client.getBalance('nobody-ever'), { balances: { total: 0 } });
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
  assert.equal(wallet.service.stats.poison, 2);
  await assertTotals();
  const consumer = kafka.consumer({ groupId: uniqueName('test_dead_reader') });
  await consumer.connect();
  await consumer.subscribe({ topics: [wallet.config.wallet.deadLetterTopic], fromBeginning: true });
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
  await wallet.restart(async () => {
    const admin = kafka.admin();
    await admin.connect();
    await admin.resetOffsets({ groupId: wallet.config.wallet.groupId, topic, earliest: true });
    await admin.disconnect();
  });
  await seen(published);
  assert.equal(wallet.service.stats.applied, 0, 'nothing applied twice');
  assert.equal(wallet.service.stats.skipped, published - 2);
  await assertTotals();
});

/** Waits until the wallet serves totals again (a rebuild is complete). */
const serving = () =>
  eventually('GetBalance answering again after the rebuild', async () => {
    try {
      await wallet.client.getBalance('any-user');
      return true;
    } catch {
      return false;
    }
  });

test('Redis losing its data: the wallet replays the topic and rebuilds every total', async () => {
  await wallet.restart(() => clearKeyPrefix(wallet.redis, wallet.config.redis.keyPrefix));
  await seen(published);
  assert.equal(wallet.service.stats.applied, published - 2);
  await serving();
  await assertTotals();
});

test('while the totals are rebuilt, GetBalance answers UNAVAILABLE, never a partial total', async () => {
  const userId = uniqueName('rebuilt-user');
  const history = Array.from({ length: 20_000 }, (_, i) => ({
    id: `${userId}-${i}`,
    userId,
    amountCents: 1 + (i % 100),
  }));
  for (let i = 0; i < history.length; i += 1_000) await publish(history.slice(i, i + 1_000));
  await seen(published);
  const total = Number(centsToDecimal(expected.get(userId) ?? 0));
  assert.deepEqual(await wallet.client.getBalance(userId), { balances: { total } });

  await wallet.restart(() => clearKeyPrefix(wallet.redis, wallet.config.redis.keyPrefix));
  const partial: number[] = [];
  let unavailable = 0;
  await eventually(
    'the rebuilt total',
    async () => {
      try {
        const reply = await wallet.client.getBalance(userId);
        if (reply.balances['total'] === total) return true;
        partial.push(reply.balances['total'] ?? Number.NaN);
      } catch (error) {
        assert.match(String(error), /UNAVAILABLE|being rebuilt/);
        unavailable += 1;
      }
      return false;
    },
    { timeoutMs: 60_000, intervalMs: 5 },
  );
  assert.deepEqual(partial, [], 'no partial total was answered');
  assert.ok(unavailable > 0, 'the rebuild was seen, answered UNAVAILABLE');
  await assertTotals();
});

test('an instance finding Redis empty while others run refuses to start, rather than skip', async () => {
  await clearKeyPrefix(wallet.redis, wallet.config.redis.keyPrefix);
  await assert.rejects(
    startWalletService(wallet.config, createLogger('error', { test: 'wallet' })),
    /other members of .* are running/,
  );
});
