// Reading stretches of a partition again, on the real broker: exact ranges, offsets taken
// by transaction markers and aborted records, and ranges that end in them.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { createPartitionReader } from '../../src/adapters/kafka/partitionReader.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import type { PartitionPage } from '../../src/core/ports.ts';
import { deleteTopics } from '../kafkaHelpers.ts';
import { testConfig, uniqueName } from '../helpers.ts';

const kafka = createKafka(testConfig.kafka);
const reader = createPartitionReader({ kafka, idleTimeoutMs: 20_000 });
const plain = uniqueName('test_reader_plain');
const transactional = uniqueName('test_reader_tx');

const readAll = async (topic: string, partition: number, from: string, to: string) => {
  const pages: PartitionPage[] = [];
  for await (const page of reader.read(topic, partition, from, to)) pages.push(page);
  return pages;
};

const offsetsOf = (pages: readonly PartitionPage[]) =>
  pages.flatMap((page) => page.records.map((record) => Number(record.offset)));

before(async () => {
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopic(admin, { topic: plain, partitions: 2 });
  await ensureTopic(admin, { topic: transactional, partitions: 1 });
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < 10; i += 1) {
    await producer.send({
      topic: plain,
      messages: Array.from({ length: 100 }, (_, j) => ({
        partition: j % 2,
        value: `${i * 100 + j}`,
      })),
    });
  }
  await producer.disconnect();
  // Three committed transactions of 3 records and an aborted one between them: each
  // commit or abort marker takes an offset, and the aborted records take theirs.
  const tx = kafka.producer({
    transactionalId: uniqueName('test_reader_tx_id'),
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await tx.connect();
  for (const outcome of ['commit', 'abort', 'commit', 'commit'] as const) {
    const transaction = await tx.transaction();
    await transaction.send({
      topic: transactional,
      messages: [1, 2, 3].map((n) => ({ value: `${outcome}-${n}` })),
    });
    await (outcome === 'commit' ? transaction.commit() : transaction.abort());
  }
  await tx.disconnect();
});

after(() => deleteTopics(kafka, [plain, transactional]));

test('a stretch of one partition comes back exactly, in order, its last page ending at `to`', async () => {
  const pages = await readAll(plain, 0, '120', '430');
  assert.deepEqual(
    offsetsOf(pages),
    Array.from({ length: 310 }, (_, i) => 120 + i),
  );
  assert.equal(pages.at(-1)?.next, '430');
  // Each page's next is where the following one starts.
  for (const [i, page] of pages.entries()) {
    const following = pages[i + 1]?.records[0];
    if (following !== undefined) assert.ok(BigInt(following.offset) >= BigInt(page.next));
  }
  // Only that partition: its values are the even ones.
  assert.ok(pages.every((page) => page.records.every((r) => Number(String(r.value)) % 2 === 0)));
});

test('an empty stretch reads nothing and opens no consumer', async () => {
  assert.deepEqual(await readAll(plain, 1, '40', '40'), []);
});

test('offsets taken by transaction markers and aborted records are skipped, and a stretch ending in a marker ends', async () => {
  // commit-1..3 at 0..2, marker 3; abort-1..3 at 4..6, marker 7; commit at 8..10, marker
  // 11; commit at 12..14, marker 15: the high watermark is 16.
  const admin = kafka.admin();
  await admin.connect();
  const high = (await admin.fetchTopicOffsets(transactional))[0]?.high ?? '';
  await admin.disconnect();
  assert.equal(high, '16');
  const pages = await readAll(transactional, 0, '0', high);
  assert.deepEqual(offsetsOf(pages), [0, 1, 2, 8, 9, 10, 12, 13, 14]);
  assert.equal(pages.at(-1)?.next, '16');
  // From inside the aborted transaction to the marker after the second commit.
  const middle = await readAll(transactional, 0, '5', '12');
  assert.deepEqual(offsetsOf(middle), [8, 9, 10]);
  assert.equal(middle.at(-1)?.next, '12');
  // Nothing but markers and aborted records.
  const none = await readAll(transactional, 0, '3', '8');
  assert.deepEqual(offsetsOf(none), []);
  assert.equal(none.at(-1)?.next, '8');
});
