// Setting a consumer group's offsets from outside it, on the real broker: taken while the
// group has no member, refused (and nothing changed) while one is running.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { fetchCommittedOffsets, rewindGroup } from '../../src/adapters/kafka/groupAdmin.ts';
import { createGroupOffsets } from '../../src/adapters/kafka/groupOffsets.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import { eventually } from '../harness/eventually.ts';
import { ownGroup, ownTopics } from '../harness/stores.ts';
import { onTeardown } from '../harness/teardown.ts';
import { withAdmin } from '../harness/walletHistory.ts';
import { testConfig, uniqueName } from '../helpers.ts';

const kafka = createKafka(testConfig.kafka);

test('a group without members is rewound; one with a member is left as it is', async (t) => {
  const topic = uniqueName('test_group_offsets');
  const groupId = uniqueName('test_group_offsets_group');
  ownTopics(t, testConfig.kafka, [topic]);
  ownGroup(t, testConfig.kafka, groupId);
  const offsets = createGroupOffsets(testConfig.kafka);
  onTeardown(t, () => offsets.close());
  const admin = kafka.admin();
  await admin.connect();
  onTeardown(t, () => admin.disconnect());
  await ensureTopic(admin, { topic, partitions: 3 });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({
    topic,
    messages: Array.from({ length: 30 }, (_, i) => ({ value: String(i), partition: i % 3 })),
  });
  await producer.disconnect();

  // No such group yet: its offsets are what was asked, a partition left out at its start.
  assert.equal(await rewindGroup(admin, offsets, groupId, topic, new Map([[1, 4n]])), true);
  assert.deepEqual(
    await fetchCommittedOffsets(admin, groupId, topic),
    new Map([
      [0, 0n],
      [1, 4n],
      [2, 0n],
    ]),
  );
  assert.equal(await offsets.commit(groupId, topic, new Map([[2, 7n]])), true);
  assert.equal((await fetchCommittedOffsets(admin, groupId, topic)).get(2), 7n);

  // A member running: refused, both by the group's state and by the coordinator itself.
  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  onTeardown(t, () => consumer.disconnect());
  await consumer.subscribe({ topic });
  // It commits nothing itself: the offsets change only if the commit from outside is taken.
  await consumer.run({ autoCommit: false, eachMessage: () => Promise.resolve() });
  await eventually(
    'the member joined',
    () =>
      withAdmin(
        kafka,
        async (a) => (await a.describeGroups([groupId])).groups[0]?.state === 'Stable',
      ),
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  const before = await fetchCommittedOffsets(admin, groupId, topic);
  assert.equal(await rewindGroup(admin, offsets, groupId, topic, new Map()), false);
  assert.equal(await offsets.commit(groupId, topic, new Map([[0, 1n]])), false);
  assert.deepEqual(await fetchCommittedOffsets(admin, groupId, topic), before);
});
