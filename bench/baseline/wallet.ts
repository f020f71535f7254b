// The baseline's wallet process: the Go proof of concept's per-message consumer. Each
// Kafka record is handled on its own (kafkajs `eachMessage`, offsets autocommitted) with
// exactly one Redis command: INCRBY <prefix>baseline:{<user_id>} <cents>.
//
//   node bench/baseline/wallet.ts        (SIGTERM or SIGINT stops it)
import type { EachMessagePayload } from 'kafkajs';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import { createRedis } from '../../src/adapters/redis/client.ts';
import type { Config } from '../../src/config.ts';
import type { Logger } from '../../src/logger.ts';
import { runService } from '../../src/runService.ts';

/** The Redis key (before the client's prefix) of a user's total in cents. */
const baselineKey = (userId: string): string => `baseline:{${userId}}`;

/** What the ingest baseline publishes: `{"id","user_id","amount"}`, amount a JSON number. */
const decode = (value: Buffer | null): { userId: string; cents: number } | undefined => {
  if (value === null) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { user_id: userId, amount } = parsed as Record<string, unknown>;
  if (typeof userId !== 'string' || typeof amount !== 'number' || !Number.isFinite(amount)) {
    return undefined;
  }
  // The ingest accepted at most two decimals, so rounding recovers the exact cents.
  return { userId, cents: Math.round(amount * 100) };
};

const startBaselineWallet = async (config: Config, logger: Logger) => {
  const { topic } = config.kafka;
  const { groupId } = config.wallet;
  const kafka = createKafka({ ...config.kafka, logger });
  const admin = kafka.admin();
  await admin.connect();
  try {
    // Checked first: kafkajs logs an already-existing topic as an error response.
    if (!(await admin.listTopics()).includes(topic)) {
      await ensureTopic(admin, { topic, partitions: config.kafka.topicPartitions });
    }
  } finally {
    await admin.disconnect();
  }

  const redis = createRedis(config.redis);
  redis.on('error', (error) => logger.debug('redis error', { error }));

  // Same fetch wait as spendstream's wallet consumer, so idle-topic latency is alike.
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, allowAutoTopicCreation: false });
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    logger.info('baseline wallet consuming', {
      topic,
      groupId,
      partitions: event.payload.memberAssignment[topic] ?? [],
    });
  });
  consumer.on(consumer.events.CRASH, (event) => {
    logger.error('consumer crashed', {
      error: event.payload.error,
      restart: event.payload.restart,
    });
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });

  let applied = 0;
  await consumer.run({
    // One record at a time, one INCRBY each; a throw makes kafkajs redeliver the record.
    eachMessage: async ({ message, partition }: EachMessagePayload) => {
      const event = decode(message.value);
      if (event === undefined) {
        logger.warn('skipping a record that is not a purchase', {
          partition,
          offset: message.offset,
        });
        return;
      }
      await redis.incrby(baselineKey(event.userId), event.cents);
      applied += 1;
    },
  });

  let stopping: Promise<void> | undefined;
  const stop = async () => {
    await consumer.disconnect();
    await redis.quit();
    logger.info('baseline wallet stopped', { applied });
  };
  return { stop: () => (stopping ??= stop()) };
};

await runService('baseline-wallet', startBaselineWallet);
