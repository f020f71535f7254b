import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Admin, Producer } from 'kafkajs';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import { createTopicScan } from '../../src/adapters/kafka/topicScan.ts';
import { migrate } from '../../src/adapters/postgres/migrations.ts';
import {
  recoverOutbox,
  type OutboxRecoveryDeps,
} from '../../src/adapters/postgres/outboxRecovery.ts';
import type { PurchasePublisher, PurchaseStore } from '../../src/core/ports.ts';
import { createPostgresPool } from '../../src/adapters/postgres/pool.ts';
import {
  createPurchasePublisher,
  type ManagedPurchasePublisher,
} from '../../src/adapters/kafka/purchasePublisher.ts';
import { createIdempotentProducer } from '../../src/adapters/kafka/producer.ts';
import { encodePurchaseEvent } from '../../src/core/purchaseEvent.ts';
import {
  createPurchaseStore,
  readOutboxBacklog,
} from '../../src/adapters/postgres/purchaseStore.ts';
import { createLogger } from '../../src/logger.ts';
import type { Purchase } from '../../src/core/purchase.ts';
import { createTestDatabase, testConfig, uniqueName } from '../helpers.ts';

const kafka = createKafka({ brokers: testConfig.kafka.brokers, clientId: uniqueName('test') });
const topic = uniqueName('test_outbox');
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let pool: DatabasePool;
let admin: Admin;
let producer: Producer;
let store: PurchaseStore;
let publisher: ManagedPurchasePublisher;
const logLines: string[] = [];

before(async () => {
  database = await createTestDatabase();
  pool = await createPostgresPool({ url: database.url, poolSize: 4 });
  await migrate(pool);
  admin = kafka.admin();
  await admin.connect();
  await ensureTopic(admin, { topic, partitions: 3 });
  producer = createIdempotentProducer(kafka);
  await producer.connect();
  store = createPurchaseStore(pool);
  publisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic,
    partitions: 3,
  });
});

after(async () => {
  await publisher.close();
  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
  await pool.end();
  await database.drop();
});

const deps = (overrides: Partial<OutboxRecoveryDeps> = {}): OutboxRecoveryDeps => ({
  pool,
  topicScan: createTopicScan({ kafka, topic: overrides.topic ?? topic }),
  publisher,
  topic,
  minAgeMs: 0,
  logger: createLogger('info', {}, (line) => logLines.push(line)),
  ...overrides,
});

const purchasesOf = (prefix: string, count: number): Purchase[] =>
  Array.from({ length: count }, (_, i) => ({
    id: `${prefix}-${i}`,
    userId: `user-${i % 11}`,
    amountCents: 1 + i,
  }));

/** How many records of the whole topic carry each purchase id. */
const countsInTopic = async (name = topic): Promise<Map<string, number>> => {
  const counts = new Map<string, number>();
  const highs = await admin.fetchTopicOffsets(name);
  const waiting = new Map(
    highs.filter((p) => Number(p.high) > 0).map((p) => [p.partition, Number(p.high)]),
  );
  if (waiting.size === 0) return counts;
  const groupId = uniqueName('test_group');
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [name], fromBeginning: true });
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: ({ partition, message }) => {
        const id = message.headers?.['purchase-id'];
        if (id !== undefined) counts.set(String(id), (counts.get(String(id)) ?? 0) + 1);
        if (Number(message.offset) + 1 >= (waiting.get(partition) ?? Infinity)) {
          waiting.delete(partition);
          if (waiting.size === 0) resolve();
        }
        return Promise.resolve();
      },
    });
  });
  await consumer.disconnect();
  await admin.deleteGroups([groupId]);
  return counts;
};

const outboxSize = async (): Promise<number> =>
  pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM outbox`);

const assertEachOnce = (counts: ReadonlyMap<string, number>, purchases: readonly Purchase[]) => {
  const wrong = purchases.filter((p) => counts.get(p.id) !== 1);
  assert.deepEqual(
    wrong.map((p) => `${p.id}×${counts.get(p.id) ?? 0}`),
    [],
    'every purchase is in the topic exactly once',
  );
};

test('purchases committed but never published are published once, and only once', async () => {
  // Two batches saved, then the process died (or Kafka was down): nothing was published.
  const purchases = purchasesOf('lost', 1_500);
  await store.save(purchases.slice(0, 1_000));
  await store.save(purchases.slice(1_000));
  assert.equal(await outboxSize(), 2);

  assert.deepEqual(await recoverOutbox(deps()), {
    entries: 2,
    published: 1_500,
    alreadyInTopic: 0,
    failed: 0,
  });
  assert.equal(await outboxSize(), 0);
  assertEachOnce(await countsInTopic(), purchases);
  assert.ok(
    logLines.some((line) => line.includes('outbox recovered') && line.includes('"published":1500')),
  );

  assert.deepEqual(await recoverOutbox(deps()), {
    entries: 0,
    published: 0,
    alreadyInTopic: 0,
    failed: 0,
  });
  assertEachOnce(await countsInTopic(), purchases);

  // The recovered records carry what PostgreSQL holds, exactly.
  const stored = await store.save([purchases[41]]);
  assert.deepEqual(stored.existing.get('lost-41'), { ...purchases[41], pendingPublish: false });
});

test('a batch published but not marked (crash before markPublished) is not published again', async () => {
  const purchases = purchasesOf('unmarked', 600);
  const saved = await store.save(purchases);
  assert.ok(saved.outboxId !== null);
  await publisher.publish(purchases);
  // …and the process died here, before markPublished.

  assert.deepEqual(await recoverOutbox(deps()), {
    entries: 1,
    published: 0,
    alreadyInTopic: 600,
    failed: 0,
  });
  assert.equal(await outboxSize(), 0);
  assertEachOnce(await countsInTopic(), purchases);
  const { groups } = await admin.listGroups();
  assert.deepEqual(
    groups.filter((group) => group.groupId.startsWith('spendstream-outbox-check-')),
    [],
    'the throw-away consumer group is deleted',
  );
});

test('a batch half published when the process died gets only its other half', async () => {
  const purchases = purchasesOf('half', 400);
  await store.save(purchases);
  await publisher.publish(purchases.slice(0, 150));

  assert.deepEqual(await recoverOutbox(deps()), {
    entries: 1,
    published: 250,
    alreadyInTopic: 150,
    failed: 0,
  });
  assert.equal(await outboxSize(), 0);
  assertEachOnce(await countsInTopic(), purchases);
});

test('entries younger than minAgeMs are left to the ingest that wrote them', async () => {
  const purchases = purchasesOf('young', 50);
  const saved = await store.save(purchases);
  assert.ok(saved.outboxId !== null);

  assert.deepEqual(await recoverOutbox(deps({ minAgeMs: 60_000 })), {
    entries: 0,
    published: 0,
    alreadyInTopic: 0,
    failed: 0,
  });
  assert.equal(await outboxSize(), 1);
  const counts = await countsInTopic();
  assert.ok(
    purchases.every((p) => !counts.has(p.id)),
    'nothing published',
  );

  // The live ingest finishes its own work.
  await publisher.publish(purchases);
  await store.markPublished([saved.outboxId]);
  assert.equal(await outboxSize(), 0);
});

test('instances recovering at the same time publish each purchase once between them', async () => {
  const purchases = purchasesOf('race', 800);
  await store.save(purchases.slice(0, 400));
  await store.save(purchases.slice(400));

  const results = await Promise.all([recoverOutbox(deps()), recoverOutbox(deps())]);
  assert.equal(
    results.reduce((sum, r) => sum + r.published, 0),
    800,
  );
  assert.equal(
    results.reduce((sum, r) => sum + r.entries, 0),
    2,
  );
  assert.equal(await outboxSize(), 0);
  assertEachOnce(await countsInTopic(), purchases);
});

test('the topic is read from shortly before the oldest entry on, not from its beginning', async () => {
  const ownTopic = uniqueName('test_outbox_window');
  await ensureTopic(admin, { topic: ownTopic, partitions: 2 });
  const ownPublisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic: ownTopic,
    partitions: 2,
  });
  try {
    // Ten minutes old: before the window, so never read.
    const old = purchasesOf('ancient', 300);
    await producer.send({
      topic: ownTopic,
      acks: -1,
      messages: old.map((p) => ({
        key: p.userId,
        value: encodePurchaseEvent(p),
        headers: { 'purchase-id': p.id },
        timestamp: String(Date.now() - 600_000),
      })),
    });
    // In the window but not purchases: read and ignored.
    await producer.send({
      topic: ownTopic,
      acks: -1,
      messages: Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: 'not json' })),
    });
    const purchases = purchasesOf('window', 100);
    await store.save(purchases);
    await ownPublisher.publish(purchases.slice(0, 40));

    const result = await recoverOutbox(deps({ topic: ownTopic, publisher: ownPublisher }));
    assert.deepEqual(result, { entries: 1, published: 60, alreadyInTopic: 40, failed: 0 });
    const logged = logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .findLast((entry) => entry['msg'] === 'outbox recovered' && entry['topic'] === ownTopic);
    assert.equal(logged?.['scannedRecords'], 45, 'read only the 5 + 40 records in the window');
    assertEachOnce(await countsInTopic(ownTopic), [...old, ...purchases]);
  } finally {
    await ownPublisher.close();
    await admin.deleteTopics({ topics: [ownTopic] }).catch(() => undefined);
  }
});

test('an entry that cannot be published is set aside with a backoff; the others go on', async () => {
  const poison = purchasesOf('poison', 3).map((purchase) => ({ ...purchase, userId: 'poison' }));
  const good = purchasesOf('after-poison', 5);
  await store.save(poison);
  await store.save(good);
  // Kafka takes everything but the first entry's purchases, as it would refuse a record.
  const refusing: PurchasePublisher = {
    publish: (purchases) =>
      purchases.some((purchase) => purchase.userId === 'poison')
        ? Promise.reject(new Error('refused by the broker'))
        : publisher.publish(purchases),
  };
  assert.deepEqual(await recoverOutbox(deps({ publisher: refusing })), {
    entries: 1,
    published: 5,
    alreadyInTopic: 0,
    failed: 1,
  });
  const aside = await pool.one(
    sql.type(
      z.object({ attempts: z.number(), waiting: z.boolean(), last_error: z.string() }),
    )`SELECT attempts, next_attempt_at > now() AS waiting, last_error FROM outbox`,
  );
  assert.deepEqual(aside, { attempts: 1, waiting: true, last_error: 'refused by the broker' });
  const logged = logLines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry['msg'] === 'outbox entry could not be published; set aside to retry');
  assert.equal(logged.length, 1);
  assert.equal((await readOutboxBacklog(pool)).failing, 1, 'the gauge counts it');

  // While it waits out its backoff, runs leave it alone.
  assert.deepEqual(await recoverOutbox(deps({ publisher: refusing })), {
    entries: 0,
    published: 0,
    alreadyInTopic: 0,
    failed: 0,
  });
  // Once it is due and Kafka takes it, it goes like any other.
  await pool.query(sql.unsafe`UPDATE outbox SET next_attempt_at = now()`);
  assert.deepEqual(await recoverOutbox(deps()), {
    entries: 1,
    published: 3,
    alreadyInTopic: 0,
    failed: 0,
  });
  assert.equal(await outboxSize(), 0);
  const counts = await countsInTopic();
  assertEachOnce(counts, [...poison, ...good]);
});

test('entries failing one after another stop the run: Kafka is down, not the entries', async () => {
  for (let i = 0; i < 5; i += 1) await store.save(purchasesOf(`down-${i}`, 2));
  const down: PurchasePublisher = {
    publish: () => Promise.reject(new Error('Kafka is down')),
  };
  assert.deepEqual(await recoverOutbox(deps({ publisher: down })), {
    entries: 0,
    published: 0,
    alreadyInTopic: 0,
    failed: 3,
  });
  const attempts = await pool.anyFirst(
    sql.type(z.object({ attempts: z.number() }))`SELECT attempts FROM outbox ORDER BY batch_id`,
  );
  assert.deepEqual(attempts, [1, 1, 1, 0, 0], 'the entries after the third are untouched');
  await pool.query(sql.unsafe`UPDATE outbox SET next_attempt_at = now()`);
  assert.equal((await recoverOutbox(deps())).entries, 5);
  assert.equal(await outboxSize(), 0);
});
