import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Admin } from 'kafkajs';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import { testConfig, uniqueName } from '../helpers.ts';

const kafka = createKafka({ brokers: testConfig.kafka.brokers, clientId: uniqueName('test') });
const topic = uniqueName('test_topic');
let admin: Admin;

before(async () => {
  admin = kafka.admin();
  await admin.connect();
});

after(async () => {
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
});

test('ensureTopic creates a missing topic with its partitions and configs, once', async () => {
  const spec = { topic, partitions: 3, configs: { 'retention.ms': '-1' } };
  assert.equal(await ensureTopic(admin, spec), true);
  assert.equal(await ensureTopic(admin, spec), false);
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
  assert.equal(metadata.topics[0]?.partitions.length, 3);
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: 2, name: topic, configNames: ['retention.ms'] }],
  });
  assert.equal(described.resources[0]?.configEntries[0]?.configValue, '-1');
});

test('records produced by an idempotent producer come back through a consumer group', async () => {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const sent = Array.from({ length: 300 }, (_, i) => ({
    key: `user-${i % 7}`,
    value: JSON.stringify({ user_id: `user-${i % 7}`, seq: i }),
  }));
  await producer.send({ topic, acks: -1, messages: sent });
  await producer.disconnect();

  const groupId = uniqueName('test_group');
  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const received: Array<{ key: string; seq: number; partition: number }> = [];
  const next = new Map<number, bigint>();
  const allArrived = new Promise<void>((resolve) => {
    void consumer.run({
      autoCommit: false,
      eachMessage: async ({ message, partition }) => {
        const body = JSON.parse(String(message.value)) as { seq: number };
        received.push({ key: String(message.key), seq: body.seq, partition });
        next.set(partition, BigInt(message.offset) + 1n);
        if (received.length === sent.length) resolve();
        return Promise.resolve();
      },
    });
  });
  await allArrived;
  // The wallet commits explicitly, only what it applied; do the same here.
  await consumer.commitOffsets(
    [...next].map(([partition, offset]) => ({ topic, partition, offset: String(offset) })),
  );
  await consumer.disconnect();

  assert.deepEqual(
    received.map((record) => record.seq).sort((a, b) => a - b),
    sent.map((_, i) => i),
  );
  // Keys decide partitions: every record of one user lands on one partition, in order.
  const partitionOf = new Map<string, number>();
  const lastSeq = new Map<string, number>();
  for (const record of received) {
    assert.equal(partitionOf.get(record.key) ?? record.partition, record.partition);
    partitionOf.set(record.key, record.partition);
    assert.ok((lastSeq.get(record.key) ?? -1) < record.seq, 'per-key order kept');
    lastSeq.set(record.key, record.seq);
  }
  const groups = await admin.listGroups();
  assert.ok(groups.groups.some((group) => group.groupId === groupId));
  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
  // A partition no key hashed to has no commit: its offset reads -1.
  const committed = offsets[0]?.partitions.reduce(
    (sum, p) => sum + Math.max(0, Number(p.offset)),
    0,
  );
  assert.equal(committed, sent.length);
  await admin.deleteGroups([groupId]);
});
