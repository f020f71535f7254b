// The ingest service end to end on the real PostgreSQL and Kafka: WebSocket in, rows and
// records out, one reply per purchase.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import type { Config } from '../../src/config.ts';
import type { IngestService } from '../../src/services/ingestService.ts';
import { startIngest } from '../harness/services.ts';
import { uniqueName } from '../helpers.ts';
import { countById, readTopic } from '../kafkaHelpers.ts';
import { connectClient, flatten, type Reply } from '../wsClient.ts';

let config: Config;
let pool: DatabasePool;
let service: IngestService;
let url: string;

before(async (t) => {
  ({ config, service, pool, url } = await startIngest(t, {
    INGEST_MAX_FRAME_BYTES: '65536',
    INGEST_MAX_ARRAY_LENGTH: '100',
  }));
});

const storedRows = async (ids: readonly string[]) =>
  pool.any(
    sql.type(z.object({ id: z.string(), user_id: z.string(), amount: z.string() }))`
      SELECT id, user_id, amount FROM purchases WHERE id = ANY(${sql.array([...ids], 'text')})`,
  );

test('the proof of concept message is acknowledged, stored exactly and published', async () => {
  const client = await connectClient(url);
  client.send('{"user_id": "123", "amount": 49.99}');
  const reply = await client.next();
  assert.equal(reply.status, 'ack');
  assert.equal(reply.duplicate, false);
  assert.match(String(reply.id), /^[0-9a-f-]{36}$/);
  const id = String(reply.id);
  assert.deepEqual(await storedRows([id]), [{ id, user_id: '123', amount: '49.99' }]);
  const record = (await readTopic(createKafka(config.kafka), config.kafka.topic)).find(
    (r) => r.value['id'] === id,
  );
  assert.equal(record?.key, '123');
  assert.equal(record?.value['user_id'], '123');
  assert.equal(record?.value['amount'], 49.99);
  assert.equal(record?.value['amount_cents'], 4999);
  await client.close();
});

test('concurrent clients: every ack matches exactly one row and one record', async () => {
  const clients = await Promise.all([0, 1, 2, 3].map(() => connectClient(url)));
  const perClient = 1_000;
  const acks = await Promise.all(
    clients.map(async (client, c) => {
      const expected: Array<{ id: string; user: string; cents: number }> = [];
      let frames = 0;
      for (let i = 0; i < perClient;) {
        // Half as single frames, half as arrays of 50.
        const size = i < perClient / 2 ? 1 : 50;
        const batch = Array.from({ length: size }, (_, k) => {
          const n = i + k;
          const purchase = {
            id: `c${c}-${n}`,
            user: `user-${n % 17}`,
            cents: 1 + ((n * 37) % 9_999),
          };
          expected.push(purchase);
          return {
            id: purchase.id,
            user_id: purchase.user,
            amount: n % 2 === 0 ? purchase.cents / 100 : (purchase.cents / 100).toFixed(2),
          };
        });
        client.send(size === 1 ? batch[0] : batch);
        frames += 1;
        i += size;
      }
      const replies = await client.take(frames, 60_000);
      const ids = flatten(replies);
      assert.ok(ids.every((r) => r.status === 'ack' && r.duplicate === false));
      // Acks come back in the order the purchases were sent.
      assert.deepEqual(
        ids.map((r) => r.id),
        expected.map((e) => e.id),
      );
      return expected;
    }),
  );
  const expected = acks.flat();
  const rows = await storedRows(expected.map((e) => e.id));
  assert.equal(rows.length, expected.length);
  const rowById = new Map(rows.map((row) => [row.id, row]));
  for (const e of expected) {
    const row = rowById.get(e.id);
    assert.equal(row?.user_id, e.user);
    assert.equal(row?.amount, (e.cents / 100).toFixed(2));
  }
  const records = await readTopic(createKafka(config.kafka), config.kafka.topic);
  const counts = countById(records);
  const recordById = new Map(records.map((r) => [String(r.value['id']), r]));
  for (const e of expected) {
    assert.equal(counts.get(e.id), 1, `${e.id} published once`);
    const record = recordById.get(e.id);
    assert.equal(record?.key, e.user);
    assert.equal(record?.value['amount_cents'], e.cents);
  }
  await Promise.all(clients.map((client) => client.close()));
});

test('a re-sent id is stored and published once and acked as a duplicate', async () => {
  const client = await connectClient(url);
  const purchase = { id: uniqueName('dup'), user_id: 'dup-user', amount: '10.00' };
  client.send(purchase);
  assert.deepEqual(await client.next(), { status: 'ack', id: purchase.id, duplicate: false });
  client.send(purchase);
  client.send([purchase, purchase]);
  assert.deepEqual(await client.next(), { status: 'ack', id: purchase.id, duplicate: true });
  const batch = await client.next();
  assert.equal(batch.status, 'batch');
  assert.deepEqual(batch.results, [
    { status: 'ack', id: purchase.id, duplicate: true },
    { status: 'ack', id: purchase.id, duplicate: true },
  ]);
  client.send({ ...purchase, amount: '11.00' });
  const conflict = await client.next();
  assert.equal(conflict.status, 'error');
  assert.equal(conflict.code, 'id_conflict');
  assert.equal((await storedRows([purchase.id])).length, 1);
  const records = await readTopic(createKafka(config.kafka), config.kafka.topic);
  assert.equal(countById(records).get(purchase.id), 1);
  await client.close();
});

test('bad input gets its code, touches no store, and leaves the connection open', async () => {
  const client = await connectClient(url);
  const user = uniqueName('bad');
  const cases: Array<[unknown, string, string?]> = [
    ['{"user_id": "1", "amount": ', 'invalid_json'],
    ['[1, 2', 'invalid_json'],
    ['"just a string"', 'invalid_purchase'],
    [{ amount: 1 }, 'invalid_purchase', 'user_id'],
    [{ user_id: '', amount: 1 }, 'invalid_purchase', 'user_id'],
    [{ user_id: 123, amount: 1 }, 'invalid_purchase', 'user_id'],
    [{ user_id: 'x'.repeat(129), amount: 1 }, 'invalid_purchase', 'user_id'],
    [{ user_id: `${user}\u0000`, amount: 1 }, 'invalid_purchase', 'user_id'],
    [{ user_id: user }, 'invalid_purchase', 'amount'],
    [{ user_id: user, amount: 0 }, 'invalid_purchase', 'amount'],
    [{ user_id: user, amount: -5 }, 'invalid_purchase', 'amount'],
    [{ user_id: user, amount: 1.234 }, 'invalid_purchase', 'amount'],
    [{ user_id: user, amount: '1e3' }, 'invalid_purchase', 'amount'],
    [{ user_id: user, amount: 'NaN' }, 'invalid_purchase', 'amount'],
    [{ user_id: user, amount: 1_000_000.01 }, 'invalid_purchase', 'amount'],
    [{ user_id: user, amount: true }, 'invalid_purchase', 'amount'],
    [{ user_id: user, amount: 1, id: 'has space' }, 'invalid_purchase', 'id'],
    [{ user_id: user, amount: 1, id: 'i'.repeat(65) }, 'invalid_purchase', 'id'],
    [Array.from({ length: 101 }, () => ({ user_id: user, amount: 1 })), 'too_large'],
  ];
  for (const [frame, code, field] of cases) {
    client.send(frame);
    const reply = await client.next();
    assert.equal(reply.status, 'error', JSON.stringify(frame));
    assert.equal(reply.code, code, JSON.stringify(frame));
    if (field !== undefined) assert.equal(reply.field, field, JSON.stringify(frame));
    assert.equal(typeof reply.message, 'string');
  }
  client.socket.send(Buffer.from([1, 2, 3]), { binary: true });
  assert.equal((await client.next()).code, 'unsupported_frame');
  // An array frame says which elements failed.
  client.send([
    { user_id: user, amount: 1 },
    { user_id: user, amount: -1 },
  ]);
  const mixed = await client.next();
  assert.equal(mixed.status, 'batch');
  assert.equal(mixed.acked, 1);
  assert.equal(mixed.failed, 1);
  const [good, bad] = mixed.results as Reply[];
  assert.equal(good?.status, 'ack');
  assert.equal(bad?.code, 'invalid_purchase');
  const count = await pool.oneFirst(
    sql.type(
      z.object({ n: z.number() }),
    )`SELECT count(*)::int AS n FROM purchases WHERE user_id LIKE ${`${user}%`}`,
  );
  assert.equal(count, 1, 'only the one valid purchase was stored');
  assert.equal(client.socket.readyState, client.socket.OPEN);
  await client.close();
});

test('replies keep arrival order when errors and acks interleave', async () => {
  const client = await connectClient(url);
  const frames = Array.from({ length: 60 }, (_, i) =>
    i % 3 === 0 ? 'not json' : { id: uniqueName(`ord${i}`), user_id: 'order-user', amount: 1 },
  );
  for (const frame of frames) client.send(frame);
  const replies = await client.take(frames.length);
  replies.forEach((reply, i) => {
    const frame = frames[i];
    if (typeof frame === 'string') assert.equal(reply.code, 'invalid_json');
    else assert.equal(reply.id, frame?.id);
  });
  await client.close();
});

test('a frame over the size limit closes the connection with 1009', async () => {
  const client = await connectClient(url);
  client.send(JSON.stringify({ user_id: 'x'.repeat(70_000), amount: 1 }));
  assert.equal(await client.closed, 1009);
});

test('health endpoints answer on the WebSocket port', async () => {
  const base = `http://127.0.0.1:${service.port}`;
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  assert.equal((await fetch(`${base}/nope`)).status, 404);
});

test('INGEST_STATUS_PAGE=off: no status page or balance lookup on the port, the rest serves', async (t) => {
  const closed = await startIngest(t, { INGEST_STATUS_PAGE: 'off' });
  const base = `http://127.0.0.1:${closed.service.port}`;
  assert.equal((await fetch(`${base}/`)).status, 404);
  assert.equal((await fetch(`${base}/api/balance?user_id=1`)).status, 404);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  assert.equal((await fetch(`${base}/metrics`)).status, 200);
  const client = await closed.connect();
  const purchase = { id: uniqueName('quiet'), user_id: 'quiet-user', amount: 1 };
  client.send(purchase);
  assert.deepEqual(await client.next(), { status: 'ack', id: purchase.id, duplicate: false });
});

test('a frame of valid purchases whose one Kafka send would be over the limit is acked', async (t) => {
  // Defaults: frames of 1 MiB, 1,000 purchases each. A user id of 128 four-byte characters
  // makes the frame ~0.6 MB and its records ~1.5 MB, past the broker's 1 MiB.
  const ingest = await startIngest(t);
  const client = await ingest.connect();
  const userId = '\u{1d11e}'.repeat(128);
  const ids = Array.from({ length: 1_000 }, (_, i) => uniqueName(`wide-${i}`));
  client.send(ids.map((id) => ({ id, user_id: userId, amount: '1.00' })));
  const reply = await client.next();
  assert.equal(reply.status, 'batch');
  assert.deepEqual(
    (reply.results as Reply[]).map((result) => result.status),
    ids.map(() => 'ack'),
  );
  const records = await readTopic(createKafka(ingest.config.kafka), ingest.config.kafka.topic);
  const counts = countById(records);
  assert.deepEqual(
    ids.filter((id) => counts.get(id) !== 1),
    [],
    'every purchase in the topic once',
  );
});
