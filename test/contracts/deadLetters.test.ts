// The DeadLetterPublisher contract against the published fake and against Kafka (a
// dead-letter topic of each test's own, read back with a consumer, deleted afterwards).
import { after } from 'node:test';
import type { IHeaders } from 'kafkajs';
import { createDeadLetterPublisher } from '../../src/adapters/kafka/deadLetters.ts';
import { createIdempotentProducer } from '../../src/adapters/kafka/producer.ts';
import type { PoisonRecord } from '../../src/core/records.ts';
import { createMemoryDeadLetters } from '../../src/testing/index.ts';
import { deadLetterPublisherContract } from './deadLetters.contract.ts';
import { createKafkaTopics, type StoredRecord } from './kafkaTopics.ts';

deadLetterPublisherContract('memory', () => {
  const deadLetters = createMemoryDeadLetters();
  return Promise.resolve({
    deadLetters,
    readBack: () => Promise.resolve([...deadLetters.published]),
    close: () => Promise.resolve(),
  });
});

const topics = createKafkaTopics();
after(() => topics.close());

/** A header as text; a missing one reads as a marker, so a failed comparison names it. */
const header = (headers: IHeaders, name: string): string => {
  const value = headers[name];
  return value === undefined ? `<no ${name} header>` : String(value);
};

/** A dead letter as an operator reads it: the record that came, where from, and why. */
const asPoison = ({ key, value, headers }: StoredRecord): PoisonRecord => ({
  topic: header(headers, 'x-original-topic'),
  partition: Number(header(headers, 'x-original-partition')),
  record: {
    offset: header(headers, 'x-original-offset'),
    key: key === null ? null : key.toString('utf8'),
    value,
  },
  reason: header(headers, 'x-error'),
});

deadLetterPublisherContract('kafka', async () => {
  // One partition, as the wallet creates its dead-letter topic.
  const topic = await topics.open('contract_dead_letters', 1);
  const producer = createIdempotentProducer(topics.kafka);
  await producer.connect();
  return {
    deadLetters: createDeadLetterPublisher(producer, topic.name),
    readBack: async () => (await topic.records()).map(asPoison),
    close: async () => {
      await producer.disconnect();
      await topic.delete();
    },
  };
});
