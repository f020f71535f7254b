// What each store takes on this machine without spendstream around it: the numbers that
// say which stage limits a target. Same clients and settings as the services use.
import { performance } from 'node:perf_hooks';
import { sql } from 'slonik';
import { createKafka } from '../src/adapters/kafka/client.ts';
import { ensureTopic } from '../src/adapters/kafka/topics.ts';
import { createPostgresPool } from '../src/adapters/postgres/pool.ts';
import { createIdempotentProducer } from '../src/adapters/kafka/producer.ts';
import { createRedis } from '../src/adapters/redis/client.ts';
import type { StoreReference } from './types.ts';

/** Where the references run; every name here is the run's own and is removed after. */
export interface ReferenceTargets {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly redisPrefix: string;
  readonly kafkaBrokers: readonly string[];
  readonly kafkaTopic: string;
  readonly partitions: number;
  readonly seconds: number;
}

/** Runs `step` (which handles `unit` items) back to back, `workers` at a time, for `seconds`. */
const rate = async (
  seconds: number,
  workers: number,
  unit: number,
  step: (n: number) => Promise<void>,
) => {
  const until = performance.now() + seconds * 1_000;
  let done = 0;
  let sequence = 0;
  const startedAt = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (performance.now() < until) {
        sequence += 1;
        await step(sequence);
        done += unit;
      }
    }),
  );
  return Math.round(done / ((performance.now() - startedAt) / 1_000));
};

const row = (n: number, i: number) => [`ref-${n}-${i}`, `u${i % 1_000}`, '12.34'];

export const measureReferences = async (t: ReferenceTargets): Promise<StoreReference[]> => {
  const references: StoreReference[] = [];
  const pool = await createPostgresPool({ url: t.databaseUrl, poolSize: 8 });
  try {
    await pool.query(sql.unsafe`
      CREATE TABLE IF NOT EXISTS reference_purchases
        (LIKE purchases INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`);
    const batch = 1_000;
    references.push({
      name: 'postgres-multi-row',
      mode: 'batched',
      description: `PostgreSQL, one ${batch}-row unnest INSERT per transaction, one connection`,
      perSecond: await rate(t.seconds, 1, batch, async (n) => {
        const rows = Array.from({ length: batch }, (_, i) => row(n, i));
        await pool.query(sql.unsafe`
          INSERT INTO reference_purchases (id, user_id, amount)
          SELECT * FROM ${sql.unnest(rows, ['text', 'text', 'numeric'])}`);
      }),
    });
    references.push({
      name: 'postgres-single-row',
      mode: 'single',
      description: 'PostgreSQL, one single-row INSERT per transaction, 8 connections',
      perSecond: await rate(t.seconds, 8, 1, async (n) => {
        const [id, userId, amount] = row(n, -1);
        await pool.query(sql.unsafe`
          INSERT INTO reference_purchases (id, user_id, amount) VALUES (${id ?? ''}, ${userId ?? ''}, ${amount ?? ''}::numeric)`);
      }),
    });
  } finally {
    await pool.query(sql.unsafe`DROP TABLE IF EXISTS reference_purchases`).catch(() => undefined);
    await pool.end();
  }

  const kafka = createKafka({ brokers: t.kafkaBrokers, clientId: 'spendstream-bench' });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopic(admin, { topic: t.kafkaTopic, partitions: t.partitions });
  const producer = createIdempotentProducer(kafka);
  await producer.connect();
  try {
    const value = '{"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","user_id":"u1","amount":12.34}';
    for (const size of [1_000, 1]) {
      references.push({
        name: size === 1 ? 'kafka-single' : 'kafka-batched',
        mode: size === 1 ? 'single' : 'batched',
        description:
          size === 1
            ? 'Kafka (kafkajs), one message per acks=all send, sends one after another'
            : `Kafka (kafkajs), ${size} messages per acks=all send, sends one after another`,
        perSecond: await rate(t.seconds, 1, size, async () => {
          await producer.send({
            topic: t.kafkaTopic,
            acks: -1,
            messages: Array.from({ length: size }, (_, i) => ({ key: `u${i}`, value })),
          });
        }),
      });
    }
  } finally {
    await producer.disconnect();
    await admin.deleteTopics({ topics: [t.kafkaTopic] }).catch(() => undefined);
    await admin.disconnect();
  }

  const redis = createRedis({ url: t.redisUrl, keyPrefix: t.redisPrefix });
  try {
    const size = 1_000;
    references.push({
      name: 'redis-pipelined',
      mode: 'batched',
      description: `Redis (ioredis), HINCRBY in pipelines of ${size}, one connection`,
      perSecond: await rate(t.seconds, 1, size, async () => {
        const pipeline = redis.pipeline();
        for (let i = 0; i < size; i += 1) pipeline.hincrby(`ref:{u${i}}`, 'total', 1_234);
        await pipeline.exec();
      }),
    });
    references.push({
      name: 'redis-single',
      mode: 'single',
      description: 'Redis (ioredis), one HINCRBY per round trip, one connection',
      perSecond: await rate(t.seconds, 1, 1, async (n) => {
        await redis.hincrby(`ref:{u${n % 1_000}}`, 'total', 1_234);
      }),
    });
  } finally {
    const keys = await redis.keys(`${t.redisPrefix}ref:*`);
    const prefixLength = t.redisPrefix.length;
    if (keys.length > 0) await redis.del(...keys.map((key) => key.slice(prefixLength)));
    redis.disconnect();
  }
  return references;
};
