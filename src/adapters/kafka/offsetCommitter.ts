import type { Consumer } from 'kafkajs';
import { translateKafkaError } from './client.ts';
import type { OffsetCommitter } from '../../core/ports.ts';

/** Commits offsets of the consumer's group. */
export const createOffsetCommitter = (consumer: Consumer): OffsetCommitter => ({
  commit: async (topic, partition, offset) => {
    try {
      await consumer.commitOffsets([{ topic, partition, offset }]);
    } catch (error) {
      throw translateKafkaError(error);
    }
  },
});
