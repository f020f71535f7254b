// An ingest service of a test's own: its database, its topic, a free port.
import type { DatabasePool } from 'slonik';
import { createKafka } from '../src/adapters/kafka/client.ts';
import { createPostgresPool } from '../src/adapters/postgres/pool.ts';
import type { Config } from '../src/config.ts';
import { startIngestService, type IngestService } from '../src/services/ingestService.ts';
import { createLogger, type LogLevel } from '../src/logger.ts';
import { configWith, createTestDatabase, uniqueName } from './helpers.ts';
import { deleteTopics } from './kafkaHelpers.ts';
import type { Reply } from './wsClient.ts';

/** A running test ingest service and what a test needs around it. */
export interface IngestHarness {
  readonly config: Config;
  readonly service: IngestService;
  /** A pool on the service's database, for checking what it stored. */
  readonly pool: DatabasePool;
  /** The WebSocket URL. */
  readonly url: string;
  /** Stops the service and removes its database and topic. */
  close(): Promise<void>;
}

/** Starts an ingest service on a new database and topic, with settings replaced. */
export const startIngestHarness = async (
  overrides: Record<string, string>,
  logLevel: LogLevel = 'warn',
): Promise<IngestHarness> => {
  const database = await createTestDatabase();
  const config = configWith({
    DATABASE_URL: database.url,
    KAFKA_TOPIC: uniqueName('test_purchases'),
    KAFKA_TOPIC_PARTITIONS: '3',
    WS_PORT: '0',
    ...overrides,
  });
  const service = await startIngestService(config, createLogger(logLevel, { test: 'ingest' }));
  const pool = await createPostgresPool({ url: database.url, poolSize: 3 });
  return {
    config,
    service,
    pool,
    url: `ws://127.0.0.1:${service.port}${config.ws.path}`,
    close: async () => {
      await service.stop();
      await pool.end();
      await deleteTopics(createKafka(config.kafka), [config.kafka.topic]);
      await database.drop();
    },
  };
};

/** The replies to each purchase, array frames opened up. */
export const flatten = (replies: readonly Reply[]): Reply[] =>
  replies.flatMap((reply) => (reply.status === 'batch' ? (reply.results as Reply[]) : [reply]));
