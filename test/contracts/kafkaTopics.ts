// Topics of a contract test's own on the shared broker, each with a reader that sees
// everything appended to it, so a suite can compare what Kafka holds with what a fake holds.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, IHeaders, Kafka } from 'kafkajs';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { ensureTopic } from '../../src/adapters/kafka/topics.ts';
import { testConfig, uniqueName } from '../helpers.ts';

/** One record as it is stored in the topic. */
export interface StoredRecord {
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: IHeaders;
}

/** A topic created for one test, and what has been appended to it. */
export interface TestTopic {
  readonly name: string;
  /** Every record appended before this call, each partition in offset order. */
  records(): Promise<readonly StoredRecord[]>;
  /** Stops reading and deletes the topic. */
  delete(): Promise<void>;
}

/** A Kafka client for one test file; it connects when the first topic is opened. */
export interface KafkaTopics {
  readonly kafka: Kafka;
  open(prefix: string, partitions: number): Promise<TestTopic>;
  close(): Promise<void>;
}

// Far longer than a read takes; it only turns a reader that is stuck into a failure.
const READ_TIMEOUT_MS = 30_000;

/** Creates the client; call `close` in the file's `after`. */
export const createKafkaTopics = (): KafkaTopics => {
  const kafka = createKafka({
    brokers: testConfig.kafka.brokers,
    clientId: uniqueName('contract'),
  });
  let admin: Promise<Admin> | undefined;
  const connected = () =>
    (admin ??= (async () => {
      const client = kafka.admin();
      await client.connect();
      return client;
    })());

  const open = async (prefix: string, partitions: number): Promise<TestTopic> => {
    const client = await connected();
    const name = uniqueName(prefix);
    await ensureTopic(client, { topic: name, partitions });
    // One reader for the test's whole life: a consumer group joins in seconds, once.
    const groupId = uniqueName('contract_reader');
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
    const seen: StoredRecord[] = [];
    const next = new Map<number, bigint>();
    await consumer.connect();
    await consumer.subscribe({ topics: [name], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: ({ partition, message }) => {
        seen.push({
          partition,
          offset: message.offset,
          key: message.key,
          value: message.value,
          headers: message.headers ?? {},
        });
        next.set(partition, BigInt(message.offset) + 1n);
        return Promise.resolve();
      },
    });
    return {
      name,
      records: async () => {
        const ends = await client.fetchTopicOffsets(name);
        const deadline = Date.now() + READ_TIMEOUT_MS;
        const behind = () =>
          ends.filter((end) => (next.get(end.partition) ?? BigInt(end.low)) < BigInt(end.high));
        while (behind().length > 0) {
          if (Date.now() > deadline) {
            throw new Error(`reading ${name} did not reach its end in ${READ_TIMEOUT_MS} ms`);
          }
          await sleep(20);
        }
        return [...seen];
      },
      delete: async () => {
        await consumer.disconnect();
        await client.deleteGroups([groupId]).catch(() => undefined);
        await client.deleteTopics({ topics: [name] }).catch(() => undefined);
      },
    };
  };

  return {
    kafka,
    open,
    close: async () => {
      if (admin !== undefined) await (await admin).disconnect();
    },
  };
};
