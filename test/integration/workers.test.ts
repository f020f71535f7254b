// The services as several worker processes sharing their ports (INGEST_WORKERS,
// WALLET_WORKERS): connections spread over the workers, every purchase acked and stored
// once, each endpoint showing every worker, SIGTERM draining them all, partitions shared.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { AssignerProtocol } from 'kafkajs';
import { sql } from 'slonik';
import { z } from 'zod';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import {
  createPurchasePublisher,
  type ManagedPurchasePublisher,
} from '../../src/adapters/kafka/purchasePublisher.ts';
import { createIdempotentProducer } from '../../src/adapters/kafka/producer.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import { createPostgresPool } from '../../src/adapters/postgres/pool.ts';
import type { Purchase } from '../../src/core/purchase.ts';
import { eventually } from '../harness/eventually.ts';
import {
  startIngestProcess,
  startWalletProcess,
  type ServiceProcess,
} from '../harness/processes.ts';
import { ownDatabase, ownGroup, ownKeyPrefix, ownTopics } from '../harness/stores.ts';
import { onTeardown } from '../harness/teardown.ts';
import { connectWallet } from '../grpcClient.ts';
import { testConfig, uniqueName } from '../helpers.ts';
import { countById, readTopic } from '../kafkaHelpers.ts';
import { readiness, scrape, valueOf } from '../metricsScrape.ts';
import { connectClient, flatten, type TestClient } from '../wsClient.ts';

const kafka = createKafka(testConfig.kafka);

/** The pids of the workers that logged `msg` (every worker logs its own lines). */
const pidsLogging = (service: ServiceProcess, msg: string): Set<number> =>
  new Set(
    service.tail.flatMap((line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; pid?: number; role?: string };
        return entry.msg === msg && entry.role === undefined ? [Number(entry.pid)] : [];
      } catch {
        return [];
      }
    }),
  );

/** An ingest with two workers on a database and topic of the test's own. */
const startIngestWorkers = async (t: TestContext, env: Record<string, string> = {}) => {
  const databaseUrl = await ownDatabase(t);
  const topic = uniqueName('test_workers');
  ownTopics(t, testConfig.kafka, [topic]);
  const pool = await createPostgresPool({ url: databaseUrl, poolSize: 2 });
  onTeardown(t, () => pool.end());
  const ingest = await startIngestProcess({
    DATABASE_URL: databaseUrl,
    KAFKA_TOPIC: topic,
    KAFKA_TOPIC_PARTITIONS: '3',
    WS_PORT: '0',
    INGEST_WORKERS: '2',
    INGEST_INSTANCE_ID: uniqueName('workers'),
    LOG_LEVEL: 'info',
    ...env,
  });
  onTeardown(t, () => ingest.kill('SIGKILL'));
  const url = String(ingest.logLine('ingest service listening')?.['url']);
  const port = Number(new URL(url).port);
  const stored = (ids: readonly string[]) =>
    pool.oneFirst(
      sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM purchases WHERE id = ANY(${sql.array(ids, 'text')})`,
    );
  return { ingest, url, port, topic, stored };
};

/** Opens `count` connections, closing them when `t` ends. */
const connectMany = async (t: TestContext, url: string, count: number) => {
  const clients: TestClient[] = [];
  for (let i = 0; i < count; i += 1) clients.push(await connectClient(url));
  onTeardown(t, () => Promise.all(clients.map((client) => client.close())));
  return clients;
};

test('two ingest workers: connections spread, every purchase acked and stored once, metrics summed', async (t) => {
  const { ingest, url, port, topic, stored } = await startIngestWorkers(t);
  assert.equal(ingest.childPids().length, 2, 'the primary runs two workers');
  const clients = await connectMany(t, url, 12);
  const ids = clients.map((_, c) => Array.from({ length: 25 }, (_, i) => uniqueName(`w${c}_${i}`)));
  clients.forEach((client, c) => {
    for (const id of ids[c] ?? []) client.send({ id, user_id: `worker-user-${c}`, amount: '1.25' });
  });
  for (const [c, client] of clients.entries()) {
    const replies = flatten(await client.take(25, 20_000));
    assert.deepEqual(
      replies.map((reply) => [reply.status, reply.id]),
      (ids[c] ?? []).map((id) => ['ack', id]),
    );
  }
  const all = ids.flat();
  assert.equal(await stored(all), all.length);
  const counts = countById(await readTopic(kafka, topic));
  assert.deepEqual(
    all.filter((id) => counts.get(id) !== 1),
    [],
    'each purchase on the topic once',
  );
  // Round-robin: each worker took some of the connections.
  assert.deepEqual(pidsLogging(ingest, 'connection opened'), new Set(ingest.childPids()));

  // Whichever worker answers, /metrics is both workers' together.
  for (let scrapeNo = 0; scrapeNo < 4; scrapeNo += 1) {
    const samples = await scrape(port);
    assert.equal(valueOf(samples, 'spendstream_purchases_acked_total'), all.length);
    assert.equal(valueOf(samples, 'spendstream_purchases_received_total'), all.length);
    assert.equal(valueOf(samples, 'spendstream_connections_open'), clients.length);
    assert.equal(valueOf(samples, 'spendstream_workers_running'), 2);
    assert.equal(valueOf(samples, 'spendstream_worker_restarts_total'), 0);
  }
  const ready = await readiness(port);
  assert.equal(ready.code, 200);
  assert.equal(ready.checks['workers'], 'ok');
});

test('SIGTERM to the primary drains every worker: open batches flushed and acked', async (t) => {
  // Batches that would wait 5 s to fill: only the drains can flush them in time.
  const { ingest, url, stored } = await startIngestWorkers(t, {
    INGEST_BATCH_MAX_WAIT_MS: '5000',
    INGEST_BATCH_MAX_SIZE: '10000',
  });
  const clients = await connectMany(t, url, 4);
  const ids = clients.map((_, c) => Array.from({ length: 20 }, (_, i) => uniqueName(`d${c}_${i}`)));
  clients.forEach((client, c) => {
    for (const id of ids[c] ?? []) client.send({ id, user_id: 'drain-user', amount: '2.00' });
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  ingest.signal('SIGTERM');
  for (const [c, client] of clients.entries()) {
    const replies = flatten(await client.take(20, 15_000));
    assert.deepEqual(
      replies.map((reply) => [reply.status, reply.id]),
      (ids[c] ?? []).map((id) => ['ack', id]),
    );
    assert.equal(await client.closed, 1001);
  }
  assert.deepEqual(await ingest.exited, { code: 0, signal: null });
  assert.equal(pidsLogging(ingest, 'ingest service stopped').size, 2, 'both workers stopped');
  assert.equal(await stored(ids.flat()), ids.flat().length);
});

test('a worker killed is restarted by the primary, counted, and serves again', async (t) => {
  const { ingest, url, port } = await startIngestWorkers(t);
  const [victim, survivor] = ingest.childPids();
  assert.ok(victim !== undefined && survivor !== undefined);
  process.kill(victim, 'SIGKILL');
  await eventually('the primary restarted the worker', () => {
    const pids = ingest.childPids();
    return pids.length === 2 && !pids.includes(victim) && pids.includes(survivor);
  });
  await eventually('the restarted worker serves', async () => {
    const samples = await scrape(port);
    return (
      valueOf(samples, 'spendstream_workers_running') === 2 && (await readiness(port)).code === 200
    );
  });
  assert.equal(valueOf(await scrape(port), 'spendstream_worker_restarts_total'), 1);
  assert.ok(ingest.running, 'the primary goes on');
  const [client] = await connectMany(t, url, 1);
  assert.ok(client);
  const id = uniqueName('after');
  client.send({ id, user_id: 'restart-user', amount: '1.00' });
  assert.equal((await client.next(10_000)).status, 'ack');
});

test('two wallet workers share the partitions and count every event once', async (t) => {
  const topic = uniqueName('test_wallet_workers');
  const prefix = `${uniqueName('test')}:`;
  const groupId = uniqueName('test_wallet_workers');
  ownTopics(t, testConfig.kafka, [topic, `${topic}_dead`]);
  ownGroup(t, testConfig.kafka, groupId);
  ownKeyPrefix(t, { url: testConfig.redis.url, keyPrefix: prefix });
  const admin = kafka.admin();
  await admin.connect();
  onTeardown(t, () => admin.disconnect());
  await ensureTopic(admin, { topic, partitions: 4 });
  const publisher: ManagedPurchasePublisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(kafka),
    topic,
    partitions: 4,
  });
  onTeardown(t, () => publisher.close());
  const wallet = await startWalletProcess({
    KAFKA_TOPIC: topic,
    KAFKA_TOPIC_PARTITIONS: '4',
    KAFKA_DEAD_LETTER_TOPIC: `${topic}_dead`,
    WALLET_GROUP_ID: groupId,
    REDIS_KEY_PREFIX: prefix,
    GRPC_PORT: '0',
    WALLET_WORKERS: '2',
    WALLET_SNAPSHOT_INTERVAL_MS: '0',
    LOG_LEVEL: 'info',
  });
  onTeardown(t, () => wallet.kill('SIGKILL'));
  const serving = wallet.logLine('wallet service serving');
  const grpcAddress = String(serving?.['grpc']);
  const httpPort = Number(new URL(String(serving?.['metrics'])).port);

  const expected = new Map<string, number>();
  const purchases: Purchase[] = Array.from({ length: 2_000 }, (_, i) => ({
    id: `${topic}-${i}`,
    userId: `workers-user-${i % 53}`,
    amountCents: 1 + ((i * 131) % 5_000),
  }));
  for (let i = 0; i < purchases.length; i += 500)
    await publisher.publish(purchases.slice(i, i + 500));
  for (const p of purchases) expected.set(p.userId, (expected.get(p.userId) ?? 0) + p.amountCents);

  // Both members of the group, each with partitions of its own.
  await eventually(
    'both workers hold partitions',
    async () => {
      const { groups } = await admin.describeGroups([groupId]);
      const members = groups[0]?.members ?? [];
      const owned = members.map(
        (member) =>
          AssignerProtocol.MemberAssignment.decode(member.memberAssignment)?.assignment[topic] ??
          [],
      );
      return (
        groups[0]?.state === 'Stable' && owned.length === 2 && owned.every((p) => p.length > 0)
      );
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );

  const client = connectWallet(grpcAddress);
  onTeardown(t, () => client.close());
  let wrong: string[] = [];
  await eventually(
    () => `every total exact through gRPC (not yet: ${wrong.join(', ')})`,
    async () => {
      wrong = [];
      for (const [user, cents] of expected) {
        const reply = await client.getBalance(user).catch(() => undefined);
        const total = reply?.balances['total'];
        if (total !== undefined) assert.ok(total * 100 <= cents + 0.5, `${user} over its sum`);
        if (total === undefined || Math.round(total * 100) !== cents) wrong.push(user);
      }
      return wrong.length === 0;
    },
    { timeoutMs: 90_000, intervalMs: 500 },
  );
  const samples = await scrape(httpPort);
  assert.equal(valueOf(samples, 'spendstream_wallet_purchases_applied_total'), purchases.length);
  assert.equal(valueOf(samples, 'spendstream_workers_running'), 2);
  assert.equal((await readiness(httpPort)).checks['workers'], 'ok');

  wallet.signal('SIGTERM');
  assert.deepEqual(await wallet.exited, { code: 0, signal: null });
  assert.equal(pidsLogging(wallet, 'wallet service stopped').size, 2, 'both workers stopped');
});
