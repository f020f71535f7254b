import type { Producer } from 'kafkajs';
import type { PoisonRecord } from '../../core/records.ts';
import { translateKafkaError } from './client.ts';
import type { DeadLetterPublisher } from '../../core/ports.ts';

/** Sends poison records to the dead-letter topic, with where they came from and why. */
export const createDeadLetterPublisher = (
  producer: Producer,
  topic: string,
): DeadLetterPublisher => ({
  publish: async (records: readonly PoisonRecord[]) => {
    try {
      await producer.send({
        topic,
        acks: -1,
        messages: records.map(({ topic: source, partition, record, reason }) => ({
          key: record.key,
          value: record.value,
          headers: {
            'x-original-topic': source,
            'x-original-partition': String(partition),
            'x-original-offset': record.offset,
            'x-error': reason,
          },
        })),
      });
    } catch (error) {
      throw translateKafkaError(error);
    }
  },
});
