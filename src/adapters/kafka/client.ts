import { Kafka, logLevel as KafkaLogLevel, type Admin, type LogEntry } from 'kafkajs';
import { SpendstreamError, StoreUnavailableError } from '../../core/errors.ts';
import type { Logger } from '../../logger.ts';

/** Settings of the Kafka adapter. */
export interface KafkaConfig {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly logger?: Logger;
}

const levelNames = {
  [KafkaLogLevel.ERROR]: 'error',
  [KafkaLogLevel.WARN]: 'warn',
  [KafkaLogLevel.INFO]: 'info',
  [KafkaLogLevel.DEBUG]: 'debug',
} as const;

/** Creates a kafkajs client whose log lines go through spendstream's logger. */
export const createKafka = (config: KafkaConfig): Kafka => {
  const logger = config.logger;
  return new Kafka({
    clientId: config.clientId,
    brokers: [...config.brokers],
    connectionTimeout: 3_000,
    // kafkajs waits 30 s for a reply by default; a store call here is bounded far lower.
    requestTimeout: 10_000,
    // Bounded so a send to a dead broker fails within seconds (see OUTBOX_MIN_AGE_MS).
    retry: { initialRetryTime: 100, retries: 5, maxRetryTime: 2_000 },
    logLevel: KafkaLogLevel.WARN,
    logCreator: () => (entry: LogEntry) => {
      if (logger === undefined || entry.level === KafkaLogLevel.NOTHING) return;
      const { message, timestamp: _timestamp, ...fields } = entry.log;
      logger[levelNames[entry.level]](`kafka: ${message}`, {
        ...fields,
        namespace: entry.namespace,
      });
    },
  });
};

/** Turns a kafkajs error into a spendstream error, keeping the original as `cause`. */
export const translateKafkaError = (error: unknown): SpendstreamError => {
  if (error instanceof SpendstreamError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const retriable =
    error instanceof Error && 'retriable' in error ? error.retriable === true : false;
  const isConnection =
    error instanceof Error &&
    /KafkaJSConnectionError|KafkaJSNumberOfRetriesExceeded|KafkaJSRequestTimeoutError|KafkaJSBrokerNotFound/.test(
      error.name,
    );
  if (retriable || isConnection) {
    return new StoreUnavailableError('kafka', `Kafka unavailable: ${message}`, { cause: error });
  }
  return new SpendstreamError('internal', `Kafka error: ${message}`, { cause: error });
};

/** Resolves once a broker answers a metadata request for `topic`; rejects translated. */
export const pingKafka = async (admin: Admin, topic: string): Promise<void> => {
  try {
    await admin.fetchTopicMetadata({ topics: [topic] });
  } catch (error) {
    throw translateKafkaError(error);
  }
};
