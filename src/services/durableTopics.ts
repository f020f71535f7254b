import type { Admin } from 'kafkajs';
import {
  countBrokers,
  ensureTopic,
  readTopicReplication,
  type TopicReplication,
  type TopicSpec,
} from '../adapters/kafka/topics.ts';
import type { Config } from '../config.ts';
import { ConfigError, WeakTopicError } from '../core/errors.ts';
import type { Logger } from '../logger.ts';

/** The most replicas the default replication factor asks for. */
const DEFAULT_MAX_REPLICAS = 3;

/** The replication settings, as `Config['kafka']` holds them. */
export type ReplicationSettings = Pick<
  Config['kafka'],
  'replicationFactor' | 'minInsyncReplicas' | 'allowWeakTopics'
>;

/**
 * The replication the topics spendstream creates get, for a cluster of `brokers`: the
 * settings where given; else the fewer of 3 and the brokers, and one less in sync (at
 * least 1), so that sends go on with one broker lost and an ack rests on two.
 */
export const targetReplication = (
  settings: Pick<ReplicationSettings, 'replicationFactor' | 'minInsyncReplicas'>,
  brokers: number,
): TopicReplication => {
  const replicationFactor =
    settings.replicationFactor ?? Math.max(1, Math.min(DEFAULT_MAX_REPLICAS, brokers));
  const minInsyncReplicas = settings.minInsyncReplicas ?? Math.max(1, replicationFactor - 1);
  if (minInsyncReplicas > replicationFactor) {
    // Only when the replication factor came from the cluster: config.ts checks the pair.
    throw new ConfigError(
      `KAFKA_MIN_INSYNC_REPLICAS=${minInsyncReplicas} is more than the replication factor ` +
        `${replicationFactor} taken from the cluster's ${brokers} broker(s): every send ` +
        'would be refused; set KAFKA_REPLICATION_FACTOR or lower KAFKA_MIN_INSYNC_REPLICAS',
      { variables: ['KAFKA_MIN_INSYNC_REPLICAS'] },
    );
  }
  return { replicationFactor, minInsyncReplicas };
};

/** How `actual` falls short of `target`, one phrase per shortfall; empty if it does not. */
export const replicationShortfalls = (
  actual: TopicReplication,
  target: TopicReplication,
): string[] => [
  ...(actual.replicationFactor < target.replicationFactor
    ? [
        `${actual.replicationFactor} replica(s) per partition where the replication factor ` +
          `is ${target.replicationFactor}`,
      ]
    : []),
  ...(actual.minInsyncReplicas < target.minInsyncReplicas
    ? [
        `min.insync.replicas=${actual.minInsyncReplicas} where ` +
          `${target.minInsyncReplicas} is configured`,
      ]
    : []),
];

/** What {@link ensureDurableTopics} needs beside the admin client. */
export interface DurableTopicsDeps {
  readonly settings: ReplicationSettings;
  readonly logger: Logger;
}

/**
 * Creates each missing topic with the target replication (see {@link targetReplication},
 * taken from the brokers the cluster lists now) and checks each existing one against it.
 * A weaker existing topic is logged and refused with a {@link WeakTopicError}, unless the
 * settings allow weak topics: then it is logged as a warning and used as it is.
 */
export const ensureDurableTopics = async (
  admin: Admin,
  specs: readonly TopicSpec[],
  { settings, logger }: DurableTopicsDeps,
): Promise<TopicReplication> => {
  const brokers = await countBrokers(admin);
  const target = targetReplication(settings, brokers);
  for (const spec of specs) {
    const created = await ensureTopic(admin, {
      ...spec,
      replicationFactor: target.replicationFactor,
      configs: { ...spec.configs, 'min.insync.replicas': String(target.minInsyncReplicas) },
    }).catch((error: unknown) => {
      if (target.replicationFactor <= brokers) throw error;
      throw new ConfigError(
        `cannot create Kafka topic ${spec.topic} with ${target.replicationFactor} replicas: ` +
          `the cluster lists ${brokers} broker(s); lower KAFKA_REPLICATION_FACTOR`,
        { variables: ['KAFKA_REPLICATION_FACTOR'] },
      );
    });
    if (created) {
      logger.info('kafka topic created', {
        topic: spec.topic,
        partitions: spec.partitions,
        ...target,
      });
      continue;
    }
    const actual = await readTopicReplication(admin, spec.topic);
    const shortfalls = replicationShortfalls(actual, target);
    if (shortfalls.length === 0) continue;
    const fields = { topic: spec.topic, actual, target, shortfalls, brokers };
    if (!settings.allowWeakTopics) {
      logger.error('kafka topic weaker than configured: refusing to start', fields);
      throw new WeakTopicError(spec.topic, shortfalls);
    }
    logger.warn(
      'kafka topic weaker than configured: starting on it (KAFKA_ALLOW_WEAK_TOPICS=1)',
      fields,
    );
  }
  return target;
};
