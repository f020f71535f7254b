// The ingest service as a process: SIGTERM drains, dead peers are dropped, several
// instances run side by side.
import assert from 'node:assert/strict';
import { before, test, type TestContext } from 'node:test';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { createPostgresPool } from '../../src/adapters/postgres/pool.ts';
import { startIngestProcess } from '../harness/processes.ts';
import { ownDatabase, ownTopics } from '../harness/stores.ts';
import { onTeardown } from '../harness/teardown.ts';
import { testConfig, uniqueName } from '../helpers.ts';
import { countById, readTopic } from '../kafkaHelpers.ts';
import { connectClient, flatten } from '../wsClient.ts';

let databaseUrl: string;
let pool: DatabasePool;
const topic = uniqueName('test_lifecycle');

before(async (t) => {
  databaseUrl = await ownDatabase(t);
  ownTopics(t, testConfig.kafka, [topic]);
  pool = await createPostgresPool({ url: databaseUrl, poolSize: 2 });
  onTeardown(t, () => pool.end());
});

/**
 * Starts `npm run ingest`'s entry point on the test's database and topic; resolves with its
 * WebSocket URL once it listens. Killed when `t` ends if it still runs.
 */
const startIngest = async (t: TestContext, env: Record<string, string>) => {
  const child = await startIngestProcess({
    DATABASE_URL: databaseUrl,
    KAFKA_TOPIC: topic,
    KAFKA_TOPIC_PARTITIONS: '3',
    WS_PORT: '0',
    LOG_LEVEL: 'info',
    ...env,
  });
  onTeardown(t, () => child.kill('SIGKILL'));
  // Read as JSON: the logger decides the order of a line's fields.
  const url = child.logLine('ingest service listening')?.['url'];
  assert.equal(typeof url, 'string', 'the listening line names the URL');
  return { process: child, url: String(url) };
};

test('SIGTERM drains: the open batch is flushed and acked, then the process exits cleanly', async (t) => {
  // A batch that would wait 5 s to fill: only the drain can flush it in time.
  const ingest = await startIngest(t, {
    INGEST_BATCH_MAX_WAIT_MS: '5000',
    INGEST_BATCH_MAX_SIZE: '10000',
  });
  const client = await connectClient(ingest.url);
  const ids = Array.from({ length: 50 }, (_, i) => uniqueName(`drain${i}`));
  for (const id of ids) client.send({ id, user_id: 'drain-user', amount: '3.00' });
  await new Promise((resolve) => setTimeout(resolve, 300));
  ingest.process.signal('SIGTERM');
  const replies = flatten(await client.take(ids.length, 10_000));
  assert.deepEqual(
    replies.map((r) => [r.status, r.id]),
    ids.map((id) => ['ack', id]),
  );
  assert.equal(await client.closed, 1001, 'closed as going away after the acks');
  const { code } = await ingest.process.exited;
  assert.equal(code, 0);
  assert.match(ingest.process.tail.join('\n'), /ingest service stopped/);
  const stored = await pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM purchases WHERE id = ANY(${sql.array(ids, 'text')})`,
  );
  assert.equal(stored, ids.length);
  const counts = countById(await readTopic(createKafka(testConfig.kafka), topic));
  for (const id of ids) assert.equal(counts.get(id), 1);
});

test('a peer that stops answering pings is disconnected; a live one is not', async (t) => {
  const ingest = await startIngest(t, { INGEST_PING_INTERVAL_MS: '200' });
  const dead = await connectClient(ingest.url, { autoPong: false });
  const live = await connectClient(ingest.url);
  const code = await Promise.race([
    dead.closed,
    new Promise<string>((resolve) => setTimeout(() => resolve('still open'), 5_000)),
  ]);
  assert.equal(code, 1006, 'terminated without a close frame');
  assert.equal(live.socket.readyState, live.socket.OPEN);
  live.send({ user_id: 'live-user', amount: 1 });
  assert.equal((await live.next()).status, 'ack');
  await live.close();
  await ingest.process.kill('SIGTERM');
});

test('two instances run side by side on their own ports against the same stores', async (t) => {
  const [a, b] = await Promise.all([startIngest(t, {}), startIngest(t, {})]);
  assert.notEqual(a.url, b.url);
  for (const instance of [a, b]) {
    const client = await connectClient(instance.url);
    client.send({ user_id: 'side-user', amount: '0.01' });
    assert.equal((await client.next()).status, 'ack');
    await client.close();
  }
  for (const instance of [a, b]) await instance.process.kill('SIGTERM');
});
