// A start that fails part-way closes everything it had opened: no pool, broker or Redis
// connection, timer or server is left behind to keep the process alive or hold a store.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { createLogger } from '../../src/logger.ts';
import { startIngestService } from '../../src/services/ingestService.ts';
import { startWalletService } from '../../src/services/walletService.ts';
import { eventually } from '../harness/eventually.ts';
import { deleteTopics } from '../kafkaHelpers.ts';
import { configWith, createTestDatabase, uniqueName } from '../helpers.ts';

const quiet = createLogger('error', { test: 'failed-start' }, () => undefined);

/** Sockets and timers this process holds, by kind (what a leaked client keeps open). */
const openHandles = () => {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) {
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return { sockets: counts.get('TCPSocketWrap') ?? 0, servers: counts.get('TCPServerWrap') ?? 0 };
};

/**
 * Waits until the process holds no more sockets or servers than it did `before`, and
 * checks they stay closed: a client left running would reconnect a moment later.
 */
const allClosedSince = async (before: ReturnType<typeof openHandles>) => {
  const closed = () => {
    const now = openHandles();
    return now.sockets <= before.sockets && now.servers <= before.servers;
  };
  const left = () =>
    `handles left open: ${JSON.stringify(openHandles())}, before ${JSON.stringify(before)}`;
  await eventually(left, closed, { timeoutMs: 10_000 });
  await sleep(3_000);
  assert.ok(closed(), left());
};

/** A port something else already listens on. */
const takenPort = async (t: { after(fn: () => unknown): void }) => {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  return (server.address() as AddressInfo).port;
};

test('an ingest whose WebSocket port is taken closes its pool, producers and admin', async (t) => {
  const port = await takenPort(t);
  const database = await createTestDatabase();
  t.after(() => database.drop());
  const config = configWith({
    DATABASE_URL: database.url,
    KAFKA_TOPIC: uniqueName('test_failed_start'),
    KAFKA_TOPIC_PARTITIONS: '1',
    WS_HOST: '127.0.0.1',
    WS_PORT: String(port),
  });
  t.after(() => deleteTopics(createKafka(config.kafka), [config.kafka.topic]));
  const before = openHandles();

  await assert.rejects(startIngestService(config, quiet), /EADDRINUSE/);
  await allClosedSince(before);
});

test('a wallet whose gRPC port is taken closes its Redis clients, Kafka admin and HTTP port', async (t) => {
  const port = await takenPort(t);
  const topic = uniqueName('test_failed_start');
  const config = configWith({
    KAFKA_TOPIC: topic,
    KAFKA_TOPIC_PARTITIONS: '1',
    KAFKA_DEAD_LETTER_TOPIC: `${topic}_dead`,
    WALLET_GROUP_ID: uniqueName('test_failed_start_group'),
    REDIS_KEY_PREFIX: `${uniqueName('test')}:`,
    // The last port bound, after Redis, Kafka and the HTTP port are open.
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: String(port),
    WALLET_HTTP_PORT: '0',
  });
  const kafka = createKafka(config.kafka);
  t.after(() => deleteTopics(kafka, [topic, `${topic}_dead`]));
  const before = openHandles();

  await assert.rejects(startWalletService(config, quiet), /address|EADDRINUSE|bind/i);
  await allClosedSince(before);
});
