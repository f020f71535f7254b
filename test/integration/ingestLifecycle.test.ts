// The ingest service as a process: SIGTERM drains, dead peers are dropped, several
// instances run side by side.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { createPostgresPool } from '../../src/adapters/postgres/pool.ts';
import { ROOT } from '../../scripts/infra.ts';
import { childEnv, createTestDatabase, testConfig, uniqueName } from '../helpers.ts';
import { countById, deleteTopics, readTopic } from '../kafkaHelpers.ts';
import { connectClient, flatten } from '../wsClient.ts';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let pool: DatabasePool;
const topic = uniqueName('test_lifecycle');
const children: ChildProcess[] = [];

before(async () => {
  database = await createTestDatabase();
  pool = await createPostgresPool({ url: database.url, poolSize: 2 });
});

after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await pool.end();
  await deleteTopics(createKafka(testConfig.kafka), [topic]);
  await database.drop();
});

/** Starts `npm run ingest`'s entry point; resolves with its WebSocket URL once it listens. */
const startIngest = async (env: Record<string, string>) => {
  const child = spawn(process.execPath, [`${ROOT}src/ingest.ts`], {
    env: childEnv({
      DATABASE_URL: database.url,
      KAFKA_TOPIC: topic,
      KAFKA_TOPIC_PARTITIONS: '3',
      WS_PORT: '0',
      LOG_LEVEL: 'info',
      ...env,
    }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      // Whole lines, read as JSON: the logger decides the order of a line's fields.
      for (const line of log.split('\n').slice(0, -1)) {
        if (!line.includes('ingest service listening')) continue;
        const entry = JSON.parse(line) as { msg?: unknown; url?: unknown };
        if (entry.msg === 'ingest service listening' && typeof entry.url === 'string') {
          resolve(entry.url);
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`ingest exited with ${code}: ${log}`)));
  });
  return { child, url, log: () => log };
};

test('SIGTERM drains: the open batch is flushed and acked, then the process exits cleanly', async () => {
  // A batch that would wait 5 s to fill: only the drain can flush it in time.
  const ingest = await startIngest({
    INGEST_BATCH_MAX_WAIT_MS: '5000',
    INGEST_BATCH_MAX_SIZE: '10000',
  });
  const client = await connectClient(ingest.url);
  const ids = Array.from({ length: 50 }, (_, i) => uniqueName(`drain${i}`));
  for (const id of ids) client.send({ id, user_id: 'drain-user', amount: '3.00' });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const exited = once(ingest.child, 'exit');
  ingest.child.kill('SIGTERM');
  const replies = flatten(await client.take(ids.length, 10_000));
  assert.deepEqual(
    replies.map((r) => [r.status, r.id]),
    ids.map((id) => ['ack', id]),
  );
  assert.equal(await client.closed, 1001, 'closed as going away after the acks');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0);
  assert.match(ingest.log(), /ingest service stopped/);
  const stored = await pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM purchases WHERE id = ANY(${sql.array(ids, 'text')})`,
  );
  assert.equal(stored, ids.length);
  const counts = countById(await readTopic(createKafka(testConfig.kafka), topic));
  for (const id of ids) assert.equal(counts.get(id), 1);
});

test('a peer that stops answering pings is disconnected; a live one is not', async () => {
  const ingest = await startIngest({ INGEST_PING_INTERVAL_MS: '200' });
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
  ingest.child.kill('SIGTERM');
  await once(ingest.child, 'exit');
});

test('two instances run side by side on their own ports against the same stores', async () => {
  const [a, b] = await Promise.all([startIngest({}), startIngest({})]);
  assert.notEqual(a.url, b.url);
  for (const instance of [a, b]) {
    const client = await connectClient(instance.url);
    client.send({ user_id: 'side-user', amount: '0.01' });
    assert.equal((await client.next()).status, 'ack');
    await client.close();
  }
  for (const instance of [a, b]) {
    instance.child.kill('SIGTERM');
    await once(instance.child, 'exit');
  }
});
