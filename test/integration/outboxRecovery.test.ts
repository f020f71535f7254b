import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Admin, Producer } from 'kafkajs';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { ensureTopic, fetchEndOffsets } from '../../src/adapters/kafka/topics.ts';
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
import {
  createIdempotentProducer,
  createTransactionalProducer,
  transactionalIdsOf,
} from '../../src/adapters/kafka/producer.ts';
import { partitionForKey } from '../../src/adapters/kafka/partitioner.ts';
import { recordAlive } from '../../src/adapters/postgres/ingestInstances.ts';
import { createTakeOver } from '../../src/services/outboxRelay.ts';
import { guardOwnedSends } from '../../src/services/ownedSends.ts';
import { encodePurchaseEvent } from '../../src/core/purchaseEvent.ts';
import {
  createPurchaseStore,
  readOutboxBacklog,
  readOwnedPending,
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

const deps = ({
  publisher: through = publisher,
  ...overrides
}: Partial<OutboxRecoveryDeps> & { publisher?: PurchasePublisher } = {}): OutboxRecoveryDeps => ({
  pool,
  topicScan: createTopicScan({ kafka, topic: overrides.topic ?? topic, partitions: 3 }),
  // Entries saved without an owner, as before owners were recorded: nothing to fence.
  takeOver: () => Promise.resolve({ publisher: through, release: () => Promise.resolve() }),
  instanceId: 'recovering-instance',
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

/** How many committed records of the whole topic carry each purchase id. */
const countsInTopic = async (name = topic): Promise<Map<string, number>> => {
  const counts = new Map<string, number>();
  const highs = await admin.fetchTopicOffsets(name);
  const waiting = new Map(
    highs.filter((p) => Number(p.high) > 0).map((p) => [p.partition, Number(p.high)]),
  );
  if (waiting.size === 0) return counts;
  const groupId = uniqueName('test_group');
  // Read-committed, as the wallet reads: aborted transactions do not count.
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [name], fromBeginning: true });
  await new Promise<void>((resolve) => {
    const reached = (partition: number, lastOffset: string) => {
      if (Number(lastOffset) + 1 >= (waiting.get(partition) ?? Infinity)) {
        waiting.delete(partition);
        if (waiting.size === 0) resolve();
      }
    };
    // Batches of nothing but transaction markers or aborted records reach only this.
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) =>
      reached(payload.partition, payload.lastOffset),
    );
    void consumer.run({
      eachBatch: ({ batch }) => {
        for (const message of batch.messages) {
          const id = message.headers?.['purchase-id'];
          if (id !== undefined) counts.set(String(id), (counts.get(String(id)) ?? 0) + 1);
        }
        reached(batch.partition, batch.lastOffset());
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
    takenOver: 0,
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
    takenOver: 0,
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
    takenOver: 0,
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
    takenOver: 0,
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
    takenOver: 0,
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
    assert.deepEqual(result, {
      entries: 1,
      published: 60,
      alreadyInTopic: 40,
      failed: 0,
      takenOver: 0,
    });
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
    takenOver: 0,
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
    takenOver: 0,
  });
  // Once it is due and Kafka takes it, it goes like any other.
  await pool.query(sql.unsafe`UPDATE outbox SET next_attempt_at = now()`);
  assert.deepEqual(await recoverOutbox(deps()), {
    entries: 1,
    published: 3,
    alreadyInTopic: 0,
    failed: 0,
    takenOver: 0,
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
    takenOver: 0,
  });
  const attempts = await pool.anyFirst(
    sql.type(z.object({ attempts: z.number() }))`SELECT attempts FROM outbox ORDER BY batch_id`,
  );
  assert.deepEqual(attempts, [1, 1, 1, 0, 0], 'the entries after the third are untouched');
  await pool.query(sql.unsafe`UPDATE outbox SET next_attempt_at = now()`);
  assert.equal((await recoverOutbox(deps())).entries, 5);
  assert.equal(await outboxSize(), 0);
});

/** One ingest instance as far as the outbox goes: its store, its pipeline's publisher. */
const ingestInstance = async (instanceId: string) => {
  const newPublisher = (transactionalId: string) =>
    createPurchasePublisher({
      newProducer: () => createTransactionalProducer(kafka, transactionalId),
      transactional: true,
      topic,
      partitions: 3,
    });
  const pipeline = newPublisher(transactionalIdsOf(instanceId).pipeline);
  pipeline.seedEnds(await fetchEndOffsets(admin, topic));
  await pipeline.ready();
  const guard = guardOwnedSends(pipeline, (ids) => readOwnedPending(pool, instanceId, ids));
  const ownStore = guard.store(
    createPurchaseStore(pool, { owner: instanceId, scanFrom: () => pipeline.knownEnds }),
  );
  const takeOver = createTakeOver({
    instanceId,
    newPublisher,
    pipeline,
    logger: createLogger('info', {}, (line) => logLines.push(line)),
  });
  return {
    instanceId,
    pipeline,
    store: ownStore,
    publisher: guard.publisher,
    recover: (minAgeMs = 0) =>
      recoverOutbox({ ...deps({ minAgeMs }), instanceId, takeOver: takeOver.takeOver }),
    close: async () => {
      await takeOver.close();
      await pipeline.close();
    },
  };
};

test("a stalled instance's open transaction is aborted by the takeover, its commit refused", async () => {
  const stalled = await ingestInstance(uniqueName('stalled'));
  const taker = await ingestInstance(uniqueName('taker'));
  // The stalled instance's producer, as it was when it froze.
  const producer = createTransactionalProducer(
    kafka,
    transactionalIdsOf(stalled.instanceId).pipeline,
  );
  try {
    const purchases = purchasesOf('stalled-open', 300);
    await stalled.store.save(purchases);
    // It had sent the batch and not yet committed when it froze.
    await producer.connect();
    const transaction = await producer.transaction();
    await transaction.send({
      topic,
      acks: -1,
      messages: purchases.map((p) => ({
        key: p.userId,
        partition: partitionForKey(p.userId, 3),
        value: encodePurchaseEvent(p),
        headers: { 'purchase-id': p.id },
      })),
    });

    assert.deepEqual(await taker.recover(), {
      entries: 1,
      published: 300,
      alreadyInTopic: 0,
      failed: 0,
      takenOver: 1,
    });
    // Thawed, it commits: refused, its records stay aborted.
    await assert.rejects(transaction.commit(), /epoch|fenced/i);
    assert.equal(await outboxSize(), 0);
    assertEachOnce(await countsInTopic(), purchases);
  } finally {
    await producer.disconnect();
    await stalled.close();
    await taker.close();
  }
});

test('an instance that committed before it stalled is found from its recorded offsets', async () => {
  const stalled = await ingestInstance(uniqueName('stalled'));
  const taker = await ingestInstance(uniqueName('taker'));
  try {
    // History the recorded offsets lie beyond: never read.
    await publisher.publish(purchasesOf('history', 3_000));
    stalled.pipeline.seedEnds(await fetchEndOffsets(admin, topic));
    const purchases = purchasesOf('stalled-committed', 200);
    await stalled.store.save(purchases);
    // Published and committed; it froze before clearing its outbox entry.
    await stalled.publisher.publish(purchases);

    assert.deepEqual(await taker.recover(), {
      entries: 1,
      published: 0,
      alreadyInTopic: 200,
      failed: 0,
      takenOver: 1,
    });
    const logged = logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .findLast((entry) => entry['msg'] === 'outbox recovered');
    const scanned = Number(logged?.['scannedRecords']);
    assert.ok(scanned > 0 && scanned <= 200, `read ${scanned} records: one partition's share`);
    assertEachOnce(await countsInTopic(), purchases);
  } finally {
    await stalled.close();
    await taker.close();
  }
});

test('an instance whose new producer would resend a batch taken over meanwhile is refused', async () => {
  const stalled = await ingestInstance(uniqueName('stalled'));
  const taker = await ingestInstance(uniqueName('taker'));
  try {
    const first = purchasesOf('resent-first', 50);
    const second = purchasesOf('resent-second', 50);
    await stalled.store.save(first);
    await stalled.store.save(second);
    // Both batches saved; the instance froze before sending either.
    assert.equal((await taker.recover()).takenOver, 2);
    // Thawed, its producer is fenced: the first send fails and its producer is replaced.
    await assert.rejects(stalled.publisher.publish(first), /epoch|fenced|unavailable|Kafka/i);
    // The new producer would not be fenced: the guard sees the entry is gone.
    await assert.rejects(stalled.publisher.publish(second), /outbox recovery holds/);
    assertEachOnce(await countsInTopic(), [...first, ...second]);
  } finally {
    await stalled.close();
    await taker.close();
  }
});

test('a live instance keeps its entries: they are not taken over while it says it is alive', async () => {
  const live = await ingestInstance(uniqueName('live'));
  const other = await ingestInstance(uniqueName('other'));
  try {
    const purchases = purchasesOf('live-own', 20);
    await live.store.save(purchases);
    // Old enough to recover, from an owner that said it is alive within the takeover age.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await recordAlive(pool, live.instanceId);
    assert.equal((await other.recover(1_000)).entries, 0, 'left to its owner');
    assert.deepEqual(await live.recover(1_000), {
      entries: 1,
      published: 20,
      alreadyInTopic: 0,
      failed: 0,
      takenOver: 0,
    });
    assertEachOnce(await countsInTopic(), purchases);
  } finally {
    await live.close();
    await other.close();
  }
});
