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

/**
 * Every partition's end offset (the next offset to be written), empty partitions too.
 * Right after a topic is created its partitions may have no leader yet: a refusal Kafka
 * calls retriable is asked again, for up to `waitMs`.
 */
export const fetchEndOffsets = async (
  admin: Admin,
  topic: string,
  waitMs = 15_000,
): Promise<Map<number, string>> => {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const offsets = await admin.fetchTopicOffsets(topic);
      return new Map(offsets.map(({ partition, high }) => [partition, high]));
    } catch (error) {
      const retriable = error instanceof Error && 'retriable' in error && error.retriable === true;
      if (!retriable || Date.now() > deadline) throw translateKafkaError(error);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
};
