// Redis losing only some of the wallet's writes, on the real Kafka and a Redis of the
// test's own: restarted from a snapshot taken mid-load, a bucket's own hash deleted, a
// user's hash deleted. Each time the wallet, running on, notices, repairs the buckets
// from the topic, and ends with every total equal to the sum of what was published.
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { fetchCommittedOffsets } from '../../src/adapters/kafka/groupAdmin.ts';
import { createIdempotentProducer } from '../../src/adapters/kafka/producer.ts';
import {
  createPurchasePublisher,
  type ManagedPurchasePublisher,
} from '../../src/adapters/kafka/purchasePublisher.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import { bucketKey, markerField, walletKey } from '../../src/adapters/redis/walletKeys.ts';
import { createWalletStore } from '../../src/adapters/redis/walletStore.ts';
import { bucketOf, WALLET_BUCKETS } from '../../src/core/buckets.ts';
import { centsToDecimal } from '../../src/core/purchase.ts';
import { connectWallet, type WalletClient } from '../grpcClient.ts';
import { eventually } from '../harness/eventually.ts';
import { freePort, startWalletProcess, type ServiceProcess } from '../harness/processes.ts';
import { startRedisServer, type RedisServer } from '../harness/redisServer.ts';
import { ownGroup, ownTopics } from '../harness/stores.ts';
import { onTeardown } from '../harness/teardown.ts';
import { logLines as logLinesOf, walletHistory, withAdmin } from '../harness/walletHistory.ts';
import { testConfig, uniqueName } from '../helpers.ts';

const PARTITIONS = 4;
const USERS = 97;
const kafka = createKafka(testConfig.kafka);
const topic = uniqueName('test_wallet_loss');
const groupId = uniqueName('test_wallet_group');
const logFile = join(tmpdir(), `${topic}.log`);
let server: RedisServer;
let redis: Redis;
let publisher: ManagedPurchasePublisher;
let wallet: ServiceProcess;
let client: WalletClient;

const LOST = 'Redis lost records of a bucket: repairing it';
const REPAIRED = 'buckets repaired';

const history = walletHistory({
  kafka,
  topic,
  groupId,
  userPrefix: 'loss-user-',
  users: USERS,
  publisher: () => publisher,
});
const { expected, publish, committedAll } = history;
const totalsExact = () => history.totalsExact(redis);
const logLines = (msg: string) => logLinesOf(logFile, msg);

/** The group's committed offsets. */
const committed = () => withAdmin(kafka, (admin) => fetchCommittedOffsets(admin, groupId, topic));

before(async (t) => {
  ownTopics(t, testConfig.kafka, [topic, `${topic}_dead`]);
  ownGroup(t, testConfig.kafka, groupId);
  server = await startRedisServer(t);
  redis = server.client();
  onTeardown(t, () => redis.quit());
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopic(admin, { topic, partitions: PARTITIONS });
  await admin.disconnect();
  publisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic,
    partitions: PARTITIONS,
  });
  onTeardown(t, () => publisher.close());
  const grpcPort = await freePort();
  wallet = await startWalletProcess(
    {
      KAFKA_TOPIC: topic,
      KAFKA_TOPIC_PARTITIONS: String(PARTITIONS),
      KAFKA_DEAD_LETTER_TOPIC: `${topic}_dead`,
      WALLET_GROUP_ID: groupId,
      REDIS_URL: server.url,
      REDIS_KEY_PREFIX: '',
      GRPC_PORT: String(grpcPort),
      LOG_LEVEL: 'info',
    },
    { logFile },
  );
  onTeardown(t, () => wallet.kill('SIGTERM'));
  client = connectWallet(`127.0.0.1:${grpcPort}`);
  onTeardown(t, () => client.close());
});

test('Redis restarted from a snapshot taken mid-load: the lost buckets are found and repaired', async () => {
  for (let round = 0; round < 4; round += 1) await publish(500);
  await committedAll();
  await server.save();
  // No lower than what the snapshot holds: markers only rise.
  const store = createWalletStore(redis);
  const saved = await store.readMarkers(
    topic,
    Array.from({ length: PARTITIONS }, (_, p) => p),
  );
  for (let round = 0; round < 4; round += 1) await publish(500);
  await committedAll();
  const before = await committed();
  // What the wallet runs into: every bucket's markers short of the committed offsets.
  const behind = [...saved.values()].filter((bucket) =>
    [...before].every(([p, offset]) => BigInt(bucket?.get(p) ?? '0') < offset),
  );
  assert.equal(behind.length, WALLET_BUCKETS, 'the snapshot lost committed writes');
  await server.restartFromSnapshot();

  await totalsExact();
  // Every bucket back at the committed offsets, or past them.
  const after = await store.readMarkers(topic, [...before.keys()]);
  for (const [, bucket] of after) {
    for (const [p, offset] of before) assert.ok(BigInt(bucket?.get(p) ?? '0') >= offset);
  }
  const lost = await logLines(LOST);
  assert.ok(lost.length >= WALLET_BUCKETS, `${lost.length} losses logged`);
  for (const line of lost) {
    assert.equal(typeof line['bucket'], 'number');
    assert.equal(typeof line['partition'], 'number');
    assert.match(String(line['marker']), /^\d+$/);
    assert.equal(line['committed'], String(before.get(Number(line['partition']))));
  }
  // The repair logs once it has raised the markers, which may be after the totals read
  // exact: waited for, not raced.
  await eventually(
    'the repair logged',
    async () =>
      (await logLines(REPAIRED)).some(
        (line) => Number(line['records']) > 0 && Number(line['applied']) > 0,
      ),
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  const repaired = await logLines(REPAIRED);
  assert.ok(repaired.every((line) => typeof line['durationMs'] === 'number'));

  // And it goes on counting.
  await publish(500);
  await committedAll();
  await totalsExact();
});

test("a bucket's own hash deleted: found by the check, replayed, nothing counted twice", async () => {
  const bucket = bucketOf('loss-user-5');
  const linesBefore = (await logLines(LOST)).length;
  await redis.del(bucketKey(bucket));
  await eventually(
    'the bucket repaired',
    async () =>
      (await redis.hget(bucketKey(bucket), markerField(topic, 0))) !== null &&
      (await logLines(REPAIRED)).some((line) => (line['buckets'] as number[]).includes(bucket)),
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  await totalsExact();
  const lost = (await logLines(LOST)).slice(linesBefore);
  assert.ok(lost.some((line) => line['bucket'] === bucket && line['marker'] === '0'));
  const offsets = await committed();
  for (const [p, offset] of offsets) {
    assert.ok(
      BigInt((await redis.hget(bucketKey(bucket), markerField(topic, p))) ?? '0') >= offset,
    );
  }
});

test("a user's hash deleted: their total is UNAVAILABLE, never 0, until it is rebuilt", async () => {
  const userId = 'loss-user-11';
  const total = Number(centsToDecimal(expected.get(userId) ?? 0));
  let neighbour = 'loss-user-0';
  for (let i = 1; bucketOf(neighbour) === bucketOf(userId); i += 1) neighbour = `loss-user-${i}`;
  await redis.del(walletKey(userId));
  await assert.rejects(client.getBalance(userId), (error: { code?: number }) => {
    assert.equal(error.code, status.UNAVAILABLE);
    return true;
  });
  // Other buckets' users go on reading.
  assert.deepEqual(await client.getBalance(neighbour), {
    balances: { total: Number(centsToDecimal(expected.get(neighbour) ?? 0)) },
  });
  await eventually(
    'the user read whole again',
    async () => {
      try {
        const reply = await client.getBalance(userId);
        assert.deepEqual(reply, { balances: { total } }, 'a total answered is the whole one');
        return true;
      } catch (error) {
        if ((error as { code?: number }).code === status.UNAVAILABLE) return false;
        throw error;
      }
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  await totalsExact();
});

test("a user's hash deleted, then more of their purchases: applied only once rebuilt", async () => {
  const userId = 'loss-user-23';
  await redis.del(walletKey(userId));
  await publish(50, [userId, 'loss-user-24']);
  await committedAll();
  await totalsExact();
  assert.ok(
    (await logLines(LOST)).some(
      (line) => line['bucket'] === bucketOf(userId) && line['reason'] === 'user',
    ),
  );
});
