// A topic's id: the UUID Kafka gives a topic when it is created. A topic deleted and created
// again under the same name has a new one, and its offsets start again from 0. kafkajs
// speaks Metadata versions that predate topic ids, so this asks with @platformatic/kafka.
import { Admin } from '@platformatic/kafka';
import { StoreUnavailableError } from '../../core/errors.ts';
import type { KafkaConfig } from './client.ts';

/** Reads topics' ids from the cluster. */
export interface TopicIdentity {
  /**
   * The topic's id as the cluster says it is now; asked again for up to `waitMs` while
   * the cluster does not say (a topic just created may not have reached every broker).
   */
  idOf(topic: string, waitMs?: number): Promise<string>;
  close(): Promise<void>;
}

/** Opens a {@link TopicIdentity} on the cluster of `config`. */
export const createTopicIdentity = (config: KafkaConfig): TopicIdentity => {
  const admin = new Admin({
    clientId: `${config.clientId}-identity`,
    bootstrapBrokers: [...config.brokers],
    timeout: 5_000,
    retries: 2,
  });
  const once = async (topic: string): Promise<string> => {
    let id: string | undefined;
    try {
      const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
      id = metadata.topics.get(topic)?.id;
    } catch (error) {
      throw new StoreUnavailableError(
        'kafka',
        `Kafka did not say the id of ${topic}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    if (id === undefined || /^0{8}-0{4}-0{4}-0{4}-0{12}$/.test(id)) {
      throw new StoreUnavailableError('kafka', `Kafka named no id for topic ${topic}`);
    }
    return id;
  };
  return {
    idOf: async (topic, waitMs = 0) => {
      const deadline = Date.now() + waitMs;
      for (;;) {
        try {
          return await once(topic);
        } catch (error) {
          if (Date.now() >= deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
    },
    close: async () => {
      await admin.close();
    },
  };
};
