// The PurchasePublisher contract against the published fake and against Kafka (a topic of
// each test's own, read back with a consumer, deleted afterwards).
import { after } from 'node:test';
import { createIdempotentProducer } from '../../src/adapters/kafka/producer.ts';
import { createPurchasePublisher } from '../../src/adapters/kafka/purchasePublisher.ts';
import { decodePurchaseEvent } from '../../src/core/purchaseEvent.ts';
import { createMemoryPurchasePublisher } from '../../src/testing/index.ts';
import { createKafkaTopics } from './kafkaTopics.ts';
import { purchasePublisherContract } from './purchasePublisher.contract.ts';

purchasePublisherContract('memory', () => {
  const publisher = createMemoryPurchasePublisher();
  return Promise.resolve({
    publisher,
    readBack: () => Promise.resolve([...publisher.published]),
    close: () => Promise.resolve(),
  });
});

const topics = createKafkaTopics();
after(() => topics.close());

const PARTITIONS = 3;

purchasePublisherContract('kafka', async () => {
  const topic = await topics.open('contract_purchases', PARTITIONS);
  const publisher = createPurchasePublisher({
    newProducer: () => createIdempotentProducer(topics.kafka),
    topic: topic.name,
    partitions: PARTITIONS,
  });
  return {
    publisher,
    // As the wallet reads the log; a record without a value fails to decode, as it should.
    readBack: async () =>
      (await topic.records()).map((record) => decodePurchaseEvent(record.value ?? '')),
    close: async () => {
      await publisher.close();
      await topic.delete();
    },
  };
});
