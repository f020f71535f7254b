import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Admin, Producer } from 'kafkajs';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import { createPurchasePublisher } from '../../src/adapters/kafka/purchasePublisher.ts';
import { partitionForKey } from '../../src/adapters/kafka/partitioner.ts';
import {
  createIdempotentProducer,
  createTransactionalProducer,
} from '../../src/adapters/kafka/producer.ts';
import { decodePurchaseEvent, encodePurchaseEvent } from '../../src/core/purchaseEvent.ts';
import { isSpendstreamError, StoreUnavailableError } from '../../src/core/errors.ts';
import type { Purchase } from '../../src/core/purchase.ts';
import { testConfig, uniqueName } from '../helpers.ts';
import { readTopic } from '../kafkaHelpers.ts';

const kafka = createKafka({ brokers: testConfig.kafka.brokers, clientId: uniqueName('test') });
const topic = uniqueName('test_purchases');
let admin: Admin;

before(async () => {
  admin = kafka.admin();
  await admin.connect();
  await ensureTopic(admin, { topic, partitions: 3 });
});

after(async () => {
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
});

interface Received {
  readonly key: string;
  readonly value: string;
  readonly purchaseIdHeader: string;
}

/** Reads the first `count` records of the topic through a throw-away consumer group. */
const consume = async (count: number): Promise<Received[]> => {
  const groupId = uniqueName('test_group');
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const received: Received[] = [];
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: ({ message }) => {
        received.push({
          key: String(message.key),
          value: String(message.value),
          purchaseIdHeader: String(message.headers?.['purchase-id']),
        });
        if (received.length === count) resolve();
        return Promise.resolve();
      },
    });
  });
  await consumer.disconnect();
  await admin.deleteGroups([groupId]);
  return received;
};

/** Idempotent producers whose sends are counted, all of them in `counter.sends`. */
const countingProducers = () => {
  const counter = { sends: 0 };
  const newProducer = (): Producer => {
    const real = createIdempotentProducer(kafka);
    return {
      ...real,
      send: (record) => {
        counter.sends += 1;
        return real.send(record);
      },
    };
  };
  return { counter, newProducer };
};

const purchases: Purchase[] = [
  { id: 'pub-1', userId: '123', amountCents: 4_999 },
  { id: 'pub-2', userId: '123', amountCents: 10 },
  { id: 'pub-3', userId: 'other', amountCents: 100_000_000 },
];

test('published purchases arrive keyed by user, readable by the proof of concept and exactly', async () => {
  const { counter, newProducer } = countingProducers();
  const countingPublisher = createPurchasePublisher({
    newProducer,
    topic,
    partitions: 3,
  });
  await countingPublisher.publish(purchases);
  await countingPublisher.close();
  assert.equal(counter.sends, 1, 'one acknowledged send per batch');
  const received = await consume(purchases.length);
  const byId = new Map(received.map((record) => [record.purchaseIdHeader, record]));
  assert.equal(byId.size, purchases.length);

  const first = byId.get('pub-1');
  assert.ok(first);
  assert.equal(first.key, '123');
  const body = JSON.parse(first.value) as Record<string, unknown>;
  // What a reader of the proof of concept's records expects: a JSON number.
  assert.equal(body['user_id'], '123');
  assert.equal(body['amount'], 49.99);
  assert.equal(body['amount_cents'], 4_999);
  assert.equal(body['id'], 'pub-1');
  assert.match(first.value, /"amount":49\.99,/);

  assert.match(byId.get('pub-2')?.value ?? '', /"amount":0\.1,"amount_cents":10/);
  assert.equal(byId.get('pub-3')?.key, 'other');
  for (const purchase of purchases) {
    assert.deepEqual(decodePurchaseEvent(byId.get(purchase.id)?.value ?? ''), purchase);
  }
});

test('the decoder round-trips the encoder, from a string or a Buffer', () => {
  for (const purchase of purchases) {
    const encoded = encodePurchaseEvent(purchase);
    assert.deepEqual(decodePurchaseEvent(encoded), purchase);
    assert.deepEqual(decodePurchaseEvent(Buffer.from(encoded)), purchase);
  }
  const withTime = encodePurchaseEvent({
    ...purchases[0],
    createdAt: new Date('2025-01-02T03:04:05.678Z'),
  });
  assert.match(withTime, /"created_at":"2025-01-02T03:04:05.678Z"/);
  assert.deepEqual(decodePurchaseEvent(withTime), purchases[0]);
});

test('the decoder reads proof-of-concept records, exactly, with the id the caller gives', () => {
  assert.deepEqual(decodePurchaseEvent('{"user_id":"123","amount":49.99}', 'user_purchase/0/7'), {
    id: 'user_purchase/0/7',
    userId: '123',
    amountCents: 4_999,
  });
  // Floats that are not their decimal in binary still come back as their exact cents.
  assert.equal(decodePurchaseEvent('{"user_id":"1","amount":0.29}').amountCents, 29);
  assert.equal(decodePurchaseEvent('{"user_id":"1","amount":1.005e2}').amountCents, 10_050);
  // amount_cents wins over amount when both are present.
  assert.equal(
    decodePurchaseEvent('{"id":"x","user_id":"1","amount":1,"amount_cents":250}').amountCents,
    250,
  );
});

test('the decoder rejects what is not a purchase, with code invalid_purchase', () => {
  for (const garbage of [
    'not json',
    '[]',
    'null',
    '{"amount":1}',
    '{"user_id":"","amount":1}',
    '{"user_id":7,"amount":1}',
    '{"user_id":"1"}',
    '{"user_id":"1","amount":"abc"}',
    '{"user_id":"1","amount":0}',
    '{"user_id":"1","amount":-5}',
    '{"user_id":"1","amount":1.001}',
    '{"user_id":"1","amount_cents":2.5}',
    '{"id":5,"user_id":"1","amount":1}',
  ]) {
    assert.throws(
      () => decodePurchaseEvent(garbage),
      (error: unknown) => isSpendstreamError(error) && error.code === 'invalid_purchase',
      garbage,
    );
  }
});

test('publishing to a topic that does not exist fails with a spendstream error', async () => {
  const publisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic: uniqueName('missing_topic'),
    partitions: 1,
  });
  await assert.rejects(publisher.publish(purchases), (error: unknown) => {
    assert.ok(isSpendstreamError(error), String(error));
    assert.ok(error.cause !== undefined, 'keeps the kafkajs error as cause');
    return true;
  });
  await publisher.close();
});

test('every purchase lands on the partition its user hashes to', async () => {
  const spread: Purchase[] = Array.from({ length: 30 }, (_, i) => ({
    id: `spread-${i}`,
    userId: `spread-user-${i}`,
    amountCents: 1,
  }));
  const spreading = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic,
    partitions: 3,
  });
  await spreading.publish(spread);
  await spreading.close();
  const records = (await readTopic(kafka, topic)).filter((r) => r.key.startsWith('spread-user-'));
  assert.equal(records.length, spread.length);
  for (const record of records) assert.equal(record.partition, partitionForKey(record.key, 3));
});

test('a send the broker did not acknowledge for every partition fails as unavailable', async () => {
  // kafkajs can resolve a send while skipping a partition whose metadata is missing;
  // this producer shows that answer: one partition's acknowledgement is absent.
  let producers = 0;
  const dropping = createPurchasePublisher({
    newProducer: () => {
      producers += 1;
      const real = createIdempotentProducer(kafka);
      return { ...real, send: async (record) => (await real.send(record)).slice(1) };
    },
    topic,
    partitions: 3,
  });
  const many: Purchase[] = Array.from({ length: 12 }, (_, i) => ({
    id: `drop-${i}`,
    userId: `drop-user-${i}`,
    amountCents: 1,
  }));
  await assert.rejects(
    dropping.publish(many),
    (error: unknown) =>
      error instanceof StoreUnavailableError && /did not acknowledge/.test(error.message),
  );
  // The producer that answered wrongly is not trusted again: the next send gets a new one.
  await assert.rejects(dropping.publish(many));
  assert.equal(producers, 2);
  await dropping.close();
});

test('after a failed send the next send uses a new producer', async () => {
  let producers = 0;
  let failNext = true;
  const flaky = createPurchasePublisher({
    newProducer: () => {
      producers += 1;
      const real = createIdempotentProducer(kafka);
      return {
        ...real,
        send: async (record) => {
          if (failNext) {
            failNext = false;
            // The broker appended the batch, but the reply was lost.
            await real.send(record);
            throw new Error('connection closed before the reply');
          }
          return real.send(record);
        },
      };
    },
    topic,
    partitions: 3,
  });
  const first: Purchase[] = [{ id: 'flaky-1', userId: 'flaky-user', amountCents: 1 }];
  const second: Purchase[] = [{ id: 'flaky-2', userId: 'flaky-user', amountCents: 2 }];
  await assert.rejects(flaky.publish(first));
  await flaky.publish(second);
  assert.equal(producers, 2);
  await flaky.close();
  const ids = (await readTopic(kafka, topic)).map((record) => record.value['id']);
  assert.ok(ids.includes('flaky-1') && ids.includes('flaky-2'), 'both batches are in the log');
});

test('a send while the previous one is still running is refused, not queued behind it', async () => {
  let release = () => undefined as void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const slow = createPurchasePublisher({
    newProducer: () => {
      const real = createIdempotentProducer(kafka);
      return {
        ...real,
        send: async (record) => {
          await held;
          return real.send(record);
        },
      };
    },
    topic,
    partitions: 3,
  });
  const first = slow.publish([{ id: 'slow-1', userId: 'slow-user', amountCents: 1 }]);
  await assert.rejects(
    slow.publish([{ id: 'slow-2', userId: 'slow-user', amountCents: 2 }]),
    (error: unknown) => error instanceof StoreUnavailableError && /not settled/.test(error.message),
  );
  release();
  await first;
  await slow.publish([{ id: 'slow-3', userId: 'slow-user', amountCents: 3 }]);
  await slow.close();
  const ids = (await readTopic(kafka, topic)).map((record) => record.value['id']);
  assert.ok(ids.includes('slow-1') && ids.includes('slow-3') && !ids.includes('slow-2'));
});

test('an event over the per-purchase limit is not a purchase', () => {
  assert.throws(
    () => decodePurchaseEvent(JSON.stringify({ user_id: 'u', amount_cents: 100_000_001 })),
    (error: unknown) => isSpendstreamError(error) && error.code === 'invalid_purchase',
  );
});

for (const [how, maxSendBytes] of [
  ['the broker refuses it as too large', Number.POSITIVE_INFINITY],
  ['its estimated size is over the send limit', undefined],
] as const) {
  test(`a send is split, and published whole and once, when ${how}`, async () => {
    const ownTopic = uniqueName('test_purchases_large');
    await ensureTopic(admin, { topic: ownTopic, partitions: 1 });
    const { counter, newProducer } = countingProducers();
    const publisher = createPurchasePublisher({
      newProducer,
      topic: ownTopic,
      partitions: 1,
      ...(maxSendBytes === undefined ? {} : { maxSendBytes }),
    });
    try {
      // Valid purchases (a user id of 128 four-byte characters) whose one send is ~1.5 MiB,
      // past the broker's default message.max.bytes of 1 MiB.
      const userId = '\u{1d11e}'.repeat(128);
      const large = Array.from({ length: 1_000 }, (_, i) => ({
        id: `large-${i}`,
        userId,
        amountCents: 100 + i,
      }));
      await publisher.publish(large);
      assert.ok(counter.sends > 1, 'the refused send was split');
      const records = await readTopic(kafka, ownTopic);
      assert.deepEqual(
        records
          .toSorted((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)))
          .map((record) => record.value['id']),
        large.map((purchase) => purchase.id),
        'every purchase once, in order',
      );
    } finally {
      await publisher.close();
      await admin.deleteTopics({ topics: [ownTopic] }).catch(() => undefined);
    }
  });
}

test('a transactional send refused as too large is split, and lands whole and once', async () => {
  const ownTopic = uniqueName('test_purchases_large_txn');
  await ensureTopic(admin, { topic: ownTopic, partitions: 3 });
  const publisher = createPurchasePublisher({
    newProducer: () => createTransactionalProducer(kafka, uniqueName('test_txn')),
    transactional: true,
    topic: ownTopic,
    partitions: 3,
    maxSendBytes: Number.POSITIVE_INFINITY,
  });
  try {
    const ready = await publisher.ready();
    // ~1.5 MiB of valid purchases over several users and partitions.
    const large = Array.from({ length: 1_000 }, (_, i) => ({
      id: `large-txn-${i}`,
      userId: `${'\u{1d11e}'.repeat(120)}-${i % 3}`,
      amountCents: 100 + i,
    }));
    await publisher.publish(large);
    assert.equal(publisher.generation, ready, 'the producer that was refused is kept');
    const records = await readTopic(kafka, ownTopic);
    assert.deepEqual(
      records.map((record) => record.value['id']).toSorted(),
      large.map((purchase) => purchase.id).toSorted(),
      'every purchase once, nothing of the refused transaction',
    );
  } finally {
    await publisher.close();
    await admin.deleteTopics({ topics: [ownTopic] }).catch(() => undefined);
  }
});

test('a producer made ready on the same transactional id fences the earlier one', async () => {
  const ownTopic = uniqueName('test_purchases_fenced');
  await ensureTopic(admin, { topic: ownTopic, partitions: 2 });
  const transactionalId = uniqueName('test_txn');
  const make = () =>
    createPurchasePublisher({
      newProducer: () => createTransactionalProducer(kafka, transactionalId),
      transactional: true,
      topic: ownTopic,
      partitions: 2,
    });
  const first = make();
  const second = make();
  try {
    const purchases = (prefix: string) =>
      Array.from({ length: 20 }, (_, i) => ({
        id: `${prefix}-${i}`,
        userId: `u${i}`,
        amountCents: 1,
      }));
    await first.publish(purchases('before'));
    await second.ready();
    await assert.rejects(
      first.publishWith(purchases('fenced'), first.generation),
      (error: unknown) => isSpendstreamError(error) && error.code === 'unavailable',
    );
    await second.publish(purchases('after'));
    const ids = (await readTopic(kafka, ownTopic)).map((record) => String(record.value['id']));
    assert.deepEqual(
      ids.filter((id) => !id.startsWith('before') && !id.startsWith('after')),
      [],
      'nothing of the fenced producer landed',
    );
    assert.equal(ids.length, 40);
  } finally {
    await first.close();
    await second.close();
    await admin.deleteTopics({ topics: [ownTopic] }).catch(() => undefined);
  }
});
