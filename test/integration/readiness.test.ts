// The ingest's /readyz follows what it depends on: a PostgreSQL of the test's own is
// stopped and started again, and a drain is held open by a lock on the purchases table.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, test } from 'node:test';
import { ensurePostgres, localPostgresDataDir, type StartedService } from '../../scripts/infra.ts';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { startIngestService } from '../../src/services/ingestService.ts';
import { createLogger } from '../../src/logger.ts';
import { configWith, lockPurchases, uniqueName } from '../helpers.ts';
import { deleteTopics } from '../kafkaHelpers.ts';
import { eventually } from '../harness/eventually.ts';
import { freePort } from '../harness/processes.ts';
import { startIngest } from '../harness/services.ts';
import { readiness, scrape, valueOf } from '../metricsScrape.ts';

const quiet = createLogger('error', { test: 'readiness' });
const cleanups: Array<() => Promise<unknown>> = [];

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

test('/readyz names postgres while PostgreSQL is down, and is ready again once it is back', async () => {
  const port = await freePort();
  const config = configWith({
    DATABASE_URL: `postgres://postgres:postgres@127.0.0.1:${port}/spendstream_readiness`,
    KAFKA_TOPIC: uniqueName('test_readiness'),
    KAFKA_TOPIC_PARTITIONS: '1',
    WS_PORT: '0',
  });
  let postgres: StartedService | undefined = await ensurePostgres(config, quiet, {
    keepData: true,
  });
  assert.ok(postgres, `a PostgreSQL of the test's own on ${port}`);
  cleanups.push(() => rm(localPostgresDataDir(port), { recursive: true, force: true }));
  cleanups.push(() => postgres?.stop() ?? Promise.resolve());
  const ingest = await startIngestService(config, quiet);
  cleanups.push(() => deleteTopics(createKafka(config.kafka), [config.kafka.topic]));
  cleanups.push(() => ingest.stop());

  assert.deepEqual(await readiness(ingest.port), {
    code: 200,
    status: 'ok',
    checks: { accepting: 'ok', postgres: 'ok', kafka: 'ok' },
  });

  await postgres.stop();
  postgres = undefined;
  await eventually('not ready', async () => (await readiness(ingest.port)).code === 503);
  assert.deepEqual(await readiness(ingest.port), {
    code: 503,
    status: 'unavailable',
    checks: { accepting: 'ok', postgres: 'unavailable', kafka: 'ok' },
  });
  // /metrics still answers: the outbox gauges say they do not know rather than 0.
  const metrics = await scrape(ingest.port);
  assert.ok(Number.isNaN(valueOf(metrics, 'spendstream_outbox_backlog')));

  postgres = await ensurePostgres(config, quiet, { keepData: true });
  assert.ok(postgres, 'PostgreSQL started again');
  await eventually('ready again', async () => (await readiness(ingest.port)).code === 200);
  assert.equal(valueOf(await scrape(ingest.port), 'spendstream_outbox_backlog'), 0);
});

test('/readyz is 503 from the moment a drain starts, while the port still answers', async (t) => {
  const ingest = await startIngest(t, {
    // The drain below waits on a lock: nothing may give up on the batch meanwhile.
    INGEST_ATTEMPT_TIMEOUT_MS: '60000',
    INGEST_DURABLE_DEADLINE_MS: '60000',
    OUTBOX_MIN_AGE_MS: '120000',
  });
  const { service, pool } = ingest;
  assert.equal((await readiness(service.port)).code, 200);

  // Inserts wait on this lock, so the drain cannot finish until it is released.
  const unlock = await lockPurchases(pool);
  t.after(unlock);

  const client = await ingest.connect();
  client.send({ id: uniqueName('drain'), user_id: 'drain-user', amount: '1.00' });
  await eventually('the purchase in the pipeline', () => service.unacked === 1);
  const stopped = service.stop();
  const during = await readiness(service.port);
  assert.deepEqual(during, {
    code: 503,
    status: 'unavailable',
    checks: { accepting: 'unavailable', postgres: 'ok', kafka: 'ok' },
  });
  assert.equal(valueOf(await scrape(service.port), 'spendstream_purchases_unacked'), 1);

  await unlock();
  // The drain answers what it holds before it closes the socket.
  assert.equal((await client.next()).status, 'ack');
  assert.equal(await client.closed, 1001);
  await stopped;
});
