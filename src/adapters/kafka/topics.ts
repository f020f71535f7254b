import type { Admin, ConfigResourceTypes } from 'kafkajs';
import { SpendstreamError, StoreUnavailableError } from '../../core/errors.ts';
import { translateKafkaError } from './client.ts';

/** How a topic is created when it is missing. */
export interface TopicSpec {
  readonly topic: string;
  readonly partitions: number;
  /** Replicas of each partition; 1 unless set. */
  readonly replicationFactor?: number;
  /** Topic-level configs, e.g. `{ 'retention.ms': '-1' }`. */
  readonly configs?: Readonly<Record<string, string>>;
}

/** How long {@link ensureTopic} asks again while Kafka's refusals are retriable. */
export interface EnsureTopicOptions {
  readonly waitMs?: number;
}

const isRetriable = (error: unknown): boolean =>
  error instanceof Error && 'retriable' in error && error.retriable === true;

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Creates `spec.topic` unless it exists; returns whether this call created it. Resolves
 * once every partition has a leader. On a cluster, a broker whose metadata lags the
 * controller answers for a topic just created (by this call or by another instance at the
 * same moment) that it does not host it; kafkajs waits through "no leader yet" only, so
 * that and any other refusal Kafka calls retriable is asked again, for up to `waitMs`.
 */
export const ensureTopic = async (
  admin: Admin,
  spec: TopicSpec,
  { waitMs = 30_000 }: EnsureTopicOptions = {},
): Promise<boolean> => {
  const deadline = Date.now() + waitMs;
  let created = false;
  for (;;) {
    try {
      created ||= await admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic: spec.topic,
            numPartitions: spec.partitions,
            replicationFactor: spec.replicationFactor ?? 1,
            configEntries: Object.entries(spec.configs ?? {}).map(([name, value]) => ({
              name,
              value,
            })),
          },
        ],
      });
      const { topics } = await admin.fetchTopicMetadata({ topics: [spec.topic] });
      const partitions = topics[0]?.partitions ?? [];
      if (partitions.length > 0 && partitions.every((partition) => partition.leader >= 0)) {
        return created;
      }
    } catch (error) {
      if (!isRetriable(error) || Date.now() > deadline) throw translateKafkaError(error);
    }
    if (Date.now() > deadline) {
      throw new StoreUnavailableError('kafka', `Kafka topic ${spec.topic} has no leaders yet`);
    }
    await pause(200);
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
      if (!isRetriable(error) || Date.now() > deadline) throw translateKafkaError(error);
      await pause(200);
    }
  }
};

/** How many copies of a topic's records Kafka keeps, and how many an acks=all send waits for. */
export interface TopicReplication {
  /** Replicas of each partition (of an existing topic: those of its partition with fewest). */
  readonly replicationFactor: number;
  /** The topic's `min.insync.replicas`, its own or the broker's default. */
  readonly minInsyncReplicas: number;
}

// ConfigResourceTypes.TOPIC: kafkajs's CommonJS entry does not show its enums to imports.
const TOPIC_RESOURCE: ConfigResourceTypes = 2;

/** How many brokers the cluster's metadata lists (those registered and up now). */
export const countBrokers = async (admin: Admin): Promise<number> => {
  try {
    return (await admin.describeCluster()).brokers.length;
  } catch (error) {
    throw translateKafkaError(error);
  }
};

/** The replication an existing topic has, from its metadata and its configs. */
export const readTopicReplication = async (
  admin: Admin,
  topic: string,
): Promise<TopicReplication> => {
  try {
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    const partitions = metadata.topics[0]?.partitions ?? [];
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: TOPIC_RESOURCE, name: topic, configNames: ['min.insync.replicas'] }],
    });
    const value = described.resources[0]?.configEntries.find(
      (entry) => entry.configName === 'min.insync.replicas',
    )?.configValue;
    if (partitions.length === 0 || value === undefined) {
      throw new SpendstreamError('internal', `Kafka gave no replication of topic ${topic}`);
    }
    return {
      replicationFactor: Math.min(...partitions.map((partition) => partition.replicas.length)),
      minInsyncReplicas: Number(value),
    };
  } catch (error) {
    throw translateKafkaError(error);
  }
};
