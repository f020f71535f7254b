import { type Admin } from 'kafkajs';
import { translateKafkaError } from './client.ts';

/** How a topic is created when it is missing. */
export interface TopicSpec {
  readonly topic: string;
  readonly partitions: number;
  /** Topic-level configs, e.g. `{ 'retention.ms': '-1' }`. */
  readonly configs?: Readonly<Record<string, string>>;
}

/** Creates `spec.topic` unless it exists; returns whether it was created. */
export const ensureTopic = async (admin: Admin, spec: TopicSpec): Promise<boolean> => {
  try {
    return await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic: spec.topic,
          numPartitions: spec.partitions,
          replicationFactor: 1,
          configEntries: Object.entries(spec.configs ?? {}).map(([name, value]) => ({
            name,
            value,
          })),
        },
      ],
    });
  } catch (error) {
    throw translateKafkaError(error);
  }
};

/** Every partition's end offset (the next offset to be written), empty partitions too. */
export const fetchEndOffsets = async (
  admin: Admin,
  topic: string,
): Promise<Map<number, string>> => {
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return new Map(offsets.map(({ partition, high }) => [partition, high]));
  } catch (error) {
    throw translateKafkaError(error);
  }
};
