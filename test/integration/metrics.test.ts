// Both services' /metrics, /healthz and /readyz against the real stores: every purchase,
// reply, batch and call shows up in the counts an operator reads.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import { checkWalletHealth } from '../../src/adapters/grpc/walletClient.ts';
import { fetchConsumerLag } from '../../src/adapters/kafka/groupAdmin.ts';
import type { Config } from '../../src/config.ts';
import type { IngestService } from '../../src/services/ingestService.ts';
import type { WalletService } from '../../src/services/walletService.ts';
import type { WalletClient } from '../grpcClient.ts';
import { eventually } from '../harness/eventually.ts';
import { startSystem } from '../harness/services.ts';
import { uniqueName } from '../helpers.ts';
import { readiness, scrape, valueOf } from '../metricsScrape.ts';
import { connectClient, type Reply } from '../wsClient.ts';

let config: Config;
let ingest: IngestService;
let wallet: WalletService;
let client: WalletClient;
const user = uniqueName('metrics_user');

before(async (t) => {
  const system = await startSystem(t, {
    INGEST_MAX_FRAME_BYTES: '65536',
    INGEST_MAX_ARRAY_LENGTH: '10',
    // Past twice this in flight, purchases are refused as overloaded: a frame of 7 is.
    INGEST_MAX_UNACKED: '3',
  });
  ({ config } = system);
  ingest = system.ingest.service;
  wallet = system.wallet.service;
  client = system.wallet.client;
});

test('both services answer /healthz and are ready with every check passing', async () => {
  for (const port of [ingest.port, wallet.httpPort]) {
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  }
  assert.deepEqual(await readiness(ingest.port), {
    code: 200,
    status: 'ok',
    checks: { accepting: 'ok', postgres: 'ok', kafka: 'ok' },
  });
  // The consumer joins its group a moment after the service starts.
  await eventually('the wallet ready', async () => (await readiness(wallet.httpPort)).code === 200);
  assert.deepEqual(await readiness(wallet.httpPort), {
    code: 200,
    status: 'ok',
    checks: { running: 'ok', redis: 'ok', consumer: 'ok', totals: 'ok', buckets: 'ok' },
  });
});

test('the ingest metrics count every purchase, reply, batch and connection exactly', async () => {
  const socket = await connectClient(`ws://127.0.0.1:${ingest.port}${config.ws.path}`);
  // One frame at a time, each answered before the next: batches and unacked are exact.
  const ask = async (frame: unknown): Promise<Reply> => {
    socket.send(frame);
    return socket.next();
  };
  for (const id of ['a1', 'a2', 'a3']) {
    assert.equal((await ask({ id: `${user}-${id}`, user_id: user, amount: '1.25' })).status, 'ack');
  }
  const duplicate = await ask({ id: `${user}-a1`, user_id: user, amount: '1.25' });
  assert.equal(duplicate.duplicate, true);
  const mixed = await ask([
    { id: `${user}-a4`, user_id: user, amount: '2.50' },
    { user_id: '', amount: 1 },
    { user_id: user, amount: -1 },
  ]);
  assert.deepEqual([mixed.acked, mixed.failed], [1, 2]);
  assert.equal((await ask('not json')).code, 'invalid_json');
  socket.socket.send(Buffer.from('binary'));
  assert.equal((await socket.next()).code, 'unsupported_frame');
  const tooLong = Array.from({ length: 11 }, () => ({ user_id: user, amount: 1 }));
  assert.equal((await ask(tooLong)).code, 'too_large');
  const crowd = Array.from({ length: 7 }, (_, i) => ({
    id: `${user}-o${i}`,
    user_id: user,
    amount: 1,
  }));
  const refused = await ask(crowd);
  assert.equal(refused.failed, 7);

  const metrics = await scrape(ingest.port);
  assert.equal(valueOf(metrics, 'spendstream_connections_open'), 1);
  assert.equal(valueOf(metrics, 'spendstream_purchases_unacked'), 0);
  // a1, a2, a3, a1 again and a4; the refused and invalid ones never entered the pipeline.
  assert.equal(valueOf(metrics, 'spendstream_purchases_received_total'), 5);
  assert.equal(valueOf(metrics, 'spendstream_purchases_acked_total', { duplicate: 'false' }), 4);
  assert.equal(valueOf(metrics, 'spendstream_purchases_acked_total', { duplicate: 'true' }), 1);
  const rejected = (code: string) =>
    valueOf(metrics, 'spendstream_purchases_rejected_total', { code });
  assert.deepEqual(
    ['invalid_purchase', 'invalid_json', 'unsupported_frame', 'too_large', 'overloaded'].map(
      rejected,
    ),
    [2, 1, 1, 1, 7],
  );
  // One observation per reply frame holding an ack: three singles, the duplicate, the array.
  assert.equal(valueOf(metrics, 'spendstream_ack_latency_seconds_count'), 5);
  assert.ok((valueOf(metrics, 'spendstream_ack_latency_seconds_sum') ?? 0) > 0);
  // Five saves of one purchase each; four sends (the duplicate inserted nothing).
  const stage = (name: string, stageName: string) => valueOf(metrics, name, { stage: stageName });
  assert.deepEqual(
    [
      stage('spendstream_batch_size_count', 'persist'),
      stage('spendstream_batch_size_sum', 'persist'),
      stage('spendstream_batch_size_count', 'publish'),
      stage('spendstream_batch_size_sum', 'publish'),
    ],
    [5, 5, 4, 4],
  );
  assert.equal(
    valueOf(metrics, 'spendstream_stage_duration_seconds_count', {
      stage: 'persist',
      outcome: 'ok',
    }),
    5,
  );
  assert.ok(
    (valueOf(metrics, 'spendstream_stage_duration_seconds_sum', { stage: 'publish' }) ?? 0) > 0,
  );
  assert.ok((valueOf(metrics, 'process_cpu_seconds_total') ?? 0) > 0, 'default metrics');
  // Entries are cleared after the acks, off the reply path.
  await eventually('the outbox empty', async () => {
    const now = await scrape(ingest.port);
    return valueOf(now, 'spendstream_outbox_backlog') === 0;
  });
  assert.equal(valueOf(await scrape(ingest.port), 'spendstream_outbox_oldest_age_seconds'), 0);

  // A frame over the byte limit is answered by closing the socket with 1009.
  const big = await connectClient(`ws://127.0.0.1:${ingest.port}${config.ws.path}`);
  big.send(JSON.stringify({ user_id: 'x'.repeat(70_000), amount: 1 }));
  assert.equal(await big.closed, 1009);
  await socket.close();
  await eventually('both connections closed', async () => {
    const now = await scrape(ingest.port);
    return valueOf(now, 'spendstream_connections_open') === 0;
  });
  const last = await scrape(ingest.port);
  assert.equal(valueOf(last, 'spendstream_purchases_rejected_total', { code: 'too_large' }), 2);
});

test('the wallet metrics count applied events, dead letters, lag and gRPC calls', async () => {
  const kafka = createKafka(config.kafka);
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: config.kafka.topic, messages: [{ key: 'x', value: 'not json' }] });
  await producer.disconnect();
  // The stats change only after a batch is applied and its offset committed.
  await eventually(
    'the wallet caught up',
    () => wallet.stats.applied === 4 && wallet.stats.poison === 1,
  );

  assert.deepEqual(await client.getBalance(user), { balances: { total: 6.25 } });
  assert.deepEqual(await client.getBalance(user), { balances: { total: 6.25 } });
  await assert.rejects(client.getBalance(''), { code: status.INVALID_ARGUMENT });
  // Answered (its SERVING follows readiness within a second; only the call counts here).
  assert.match(await checkWalletHealth(`127.0.0.1:${wallet.grpcPort}`), /SERVING/);

  const metrics = await scrape(wallet.httpPort);
  assert.equal(valueOf(metrics, 'spendstream_wallet_purchases_applied_total'), 4);
  assert.equal(valueOf(metrics, 'spendstream_wallet_duplicates_skipped_total'), 0);
  assert.equal(valueOf(metrics, 'spendstream_wallet_dead_letters_total'), 1);
  assert.equal(valueOf(metrics, 'spendstream_batch_size_sum', { stage: 'apply' }), 4);
  assert.ok((valueOf(metrics, 'spendstream_batch_size_count', { stage: 'apply' }) ?? 0) >= 1);
  assert.ok(
    (valueOf(metrics, 'spendstream_stage_duration_seconds_count', {
      stage: 'commit',
      outcome: 'ok',
    }) ?? 0) >= 1,
  );
  // Everything is committed: no partition lags, and every partition is reported.
  for (const partition of ['0', '1', '2']) {
    assert.equal(
      valueOf(metrics, 'spendstream_consumer_lag', { topic: config.kafka.topic, partition }),
      0,
      `partition ${partition}`,
    );
  }
  const calls = (method: string, status: string) =>
    valueOf(metrics, 'spendstream_grpc_calls_total', { method, status });
  assert.deepEqual(
    [
      calls('trade_engine_wallet.WalletService/GetBalance', 'OK'),
      calls('trade_engine_wallet.WalletService/GetBalance', 'INVALID_ARGUMENT'),
      calls('grpc.health.v1.Health/Check', 'OK'),
    ],
    [2, 1, 1],
  );
  assert.equal(
    valueOf(metrics, 'spendstream_grpc_call_duration_seconds_count', {
      method: 'trade_engine_wallet.WalletService/GetBalance',
      status: 'OK',
    }),
    2,
  );
});

test('consumer lag is the high watermark minus the committed offset, per partition', async () => {
  const kafka = createKafka(config.kafka);
  const topic = uniqueName('test_lag');
  const groupId = uniqueName('test_lag_group');
  const admin = kafka.admin();
  await admin.connect();
  const producer = kafka.producer();
  try {
    await ensureTopic(admin, { topic, partitions: 2 });
    await producer.connect();
    const records = (partition: number, count: number) =>
      Array.from({ length: count }, (_, i) => ({ partition, value: `r${i}` }));
    await producer.send({ topic, messages: [...records(0, 5), ...records(1, 2)] });
    // The group committed 2 of partition 0's 5 records and nothing of partition 1.
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '2' }] });
    const lags = await fetchConsumerLag(admin, groupId, topic);
    assert.deepEqual(
      [...lags].sort((a, b) => a.partition - b.partition),
      [
        { topic, partition: 0, lag: 3 },
        { topic, partition: 1, lag: 2 },
      ],
    );
  } finally {
    await producer.disconnect();
    await admin.deleteGroups([groupId]).catch(() => undefined);
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  }
});

test('the wallet is not ready from the moment it starts stopping', async () => {
  const stopped = wallet.stop();
  const report = await readiness(wallet.httpPort);
  await stopped;
  assert.equal(report.code, 503);
  assert.equal(report.status, 'unavailable');
  assert.equal(report.checks['running'], 'unavailable');
});
