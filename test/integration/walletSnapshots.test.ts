// The wallet's snapshots, on the real Kafka, PostgreSQL and a Redis of the test's own: a
// wiped Redis rebuilt from the snapshot plus the tail, with the records before the
// snapshot deleted as a finite retention deletes them; a rebuild refused, loudly, when the
// records it needs are gone; a bucket lost after its records were deleted, put back from
// the snapshot.
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import type { Redis } from 'ioredis';
import type { Admin } from 'kafkajs';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { createIdempotentProducer } from '../../src/adapters/kafka/producer.ts';
import {
  createPurchasePublisher,
  type ManagedPurchasePublisher,
} from '../../src/adapters/kafka/purchasePublisher.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import { bucketKey } from '../../src/adapters/redis/walletKeys.ts';
import { bucketOf } from '../../src/core/buckets.ts';
import { eventually } from '../harness/eventually.ts';
import { freePort, startWalletProcess, type ServiceProcess } from '../harness/processes.ts';
import { startRedisServer, type RedisServer } from '../harness/redisServer.ts';
import { ownDatabase, ownGroup, ownTopics } from '../harness/stores.ts';
import { onTeardown } from '../harness/teardown.ts';
import { logLines, walletHistory, withAdmin as withKafkaAdmin } from '../harness/walletHistory.ts';
import { testConfig, uniqueName } from '../helpers.ts';

const PARTITIONS = 3;
const USERS = 80;
const kafka = createKafka(testConfig.kafka);
const topic = uniqueName('test_wallet_snap');
const groupId = uniqueName('test_wallet_snap_group');
let server: RedisServer;
let redis: Redis;
let publisher: ManagedPurchasePublisher;
let databaseUrl: string;
let runs = 0;

const SNAPSHOT = 'wallet snapshot written';

const history = walletHistory({
  kafka,
  topic,
  groupId,
  userPrefix: 'snap-user-',
  users: USERS,
  publisher: () => publisher,
});
const { publish, committedAll } = history;
const totalsExact = () => history.totalsExact(redis);
const withAdmin = <T>(run: (admin: Admin) => Promise<T>) => withKafkaAdmin(kafka, run);

/** Starts a wallet on the test's topic, Redis and database; resolves with it and its log. */
const startWallet = async (
  t: Parameters<typeof onTeardown>[0],
  env: Record<string, string> = {},
): Promise<{ wallet: ServiceProcess; logFile: string }> => {
  runs += 1;
  const logFile = join(tmpdir(), `${topic}-${runs}.log`);
  const wallet = await startWalletProcess(
    {
      KAFKA_TOPIC: topic,
      KAFKA_TOPIC_PARTITIONS: String(PARTITIONS),
      KAFKA_DEAD_LETTER_TOPIC: `${topic}_dead`,
      WALLET_GROUP_ID: groupId,
      REDIS_URL: server.url,
      REDIS_KEY_PREFIX: '',
      DATABASE_URL: databaseUrl,
      WALLET_SNAPSHOT_INTERVAL_MS: '300',
      GRPC_PORT: String(await freePort()),
      WALLET_HTTP_PORT: '0',
      LOG_LEVEL: 'info',
      ...env,
    },
    { logFile, name: `wallet-${runs}` },
  );
  onTeardown(t, () => wallet.kill('SIGTERM'));
  return { wallet, logFile };
};

/** Waits for a snapshot line, written after `after`, that includes every user published. */
const snapshotTaken = (logFile: string, after: number) =>
  eventually(
    'a snapshot of what was applied',
    async () => (await logLines(logFile, SNAPSHOT)).length > after,
    { timeoutMs: 30_000, intervalMs: 100 },
  );

/** Deletes every record before the end of each partition, as retention does with time. */
const deleteHistory = () =>
  withAdmin(async (admin) => {
    const ends = await admin.fetchTopicOffsets(topic);
    await admin.deleteTopicRecords({
      topic,
      partitions: ends.map(({ partition, high }) => ({ partition, offset: high })),
    });
    return new Map(ends.map(({ partition, high }) => [partition, BigInt(high)]));
  });

before(async (t) => {
  ownTopics(t, testConfig.kafka, [topic, `${topic}_dead`]);
  ownGroup(t, testConfig.kafka, groupId);
  databaseUrl = await ownDatabase(t);
  server = await startRedisServer(t);
  redis = server.client();
  onTeardown(t, () => redis.quit());
  await withAdmin((admin) => ensureTopic(admin, { topic, partitions: PARTITIONS }));
  publisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic,
    partitions: PARTITIONS,
  });
  onTeardown(t, () => publisher.close());
});

test('a wiped Redis is rebuilt from the snapshot and the tail, the history before deleted', async (t) => {
  const first = await startWallet(t);
  for (let round = 0; round < 4; round += 1) await publish(500);
  await committedAll();
  await totalsExact();
  const seen = (await logLines(first.logFile, SNAPSHOT)).length;
  await snapshotTaken(first.logFile, seen);
  // Everything the snapshot holds is gone from the topic, as a finite retention deletes it.
  const deletedUpTo = await deleteHistory();
  // The tail: after the snapshot.
  await publish(300);
  await committedAll();
  await first.wallet.kill('SIGTERM');
  await redis.flushall();

  const second = await startWallet(t);
  await totalsExact();
  const [rebuilt] = await logLines(
    second.logFile,
    'Redis holds no totals for the topic: rebuilding them',
  );
  assert.ok(rebuilt !== undefined, 'the rebuild logged');
  assert.equal(rebuilt['snapshotBuckets'], 64);
  assert.ok(Number(rebuilt['snapshotUsers']) >= USERS);
  // The replay starts where the snapshot ends, not at 0: the history before is not needed.
  const from = rebuilt['replayFrom'] as Record<string, string>;
  for (const [partition, deleted] of deletedUpTo) {
    assert.ok(BigInt(from[String(partition)] ?? '0') >= deleted, `partition ${partition}`);
  }
  await publish(200);
  await committedAll();
  await totalsExact();
  await second.wallet.kill('SIGTERM');
});

test('a bucket lost after its records were deleted is put back from the snapshot', async (t) => {
  const { wallet, logFile } = await startWallet(t);
  await publish(400);
  await committedAll();
  await snapshotTaken(logFile, (await logLines(logFile, SNAPSHOT)).length);
  await deleteHistory();
  const bucket = bucketOf('snap-user-3');
  await redis.del(bucketKey(bucket));
  await eventually(
    'the bucket restored from the snapshot',
    async () => (await logLines(logFile, 'buckets restored from the snapshot')).length > 0,
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  await publish(100);
  await committedAll();
  await totalsExact();
  assert.deepEqual(
    await logLines(logFile, 'cannot repair buckets: the records they need were deleted'),
    [],
  );
  await wallet.kill('SIGTERM');
});

test('a rebuild whose records were deleted refuses to start, and says why', async (t) => {
  await publish(200);
  // No snapshot includes these, and they are deleted: the totals cannot be rebuilt.
  await deleteHistory();
  await redis.flushall();
  await withAdmin((admin) => admin.resetOffsets({ groupId, topic, earliest: true }));
  await assert.rejects(
    startWallet(t, { WALLET_SNAPSHOT_INTERVAL_MS: '0' }),
    /retention has deleted every record before/,
  );
  assert.deepEqual([...(await redis.keys('wallet:{b*'))], [], 'no partial totals served');
});
