// The services under test, in-process: each start takes names of its own in the stores
// (a database, topics, a consumer group, a Redis key prefix), starts the real service on
// free ports, and registers its teardown with the test's `t.after`.
import type { DatabasePool } from 'slonik';
import { createPostgresPool } from '../../src/adapters/postgres/pool.ts';
import type { RedisClient } from '../../src/adapters/redis/client.ts';
import type { Config } from '../../src/config.ts';
import { createLogger, type LogLevel } from '../../src/logger.ts';
import { startIngestService, type IngestService } from '../../src/services/ingestService.ts';
import { startWalletService, type WalletService } from '../../src/services/walletService.ts';
import { connectWallet, type WalletClient } from '../grpcClient.ts';
import { configWith, uniqueName } from '../helpers.ts';
import { connectClient, type TestClient } from '../wsClient.ts';
import { ownDatabase, ownGroup, ownKeyPrefix, ownTopics } from './stores.ts';
import { onTeardown, type TestHooks } from './teardown.ts';

/** Settings replaced for a test (environment variable names, as `npm start` reads them). */
export type Overrides = Readonly<Record<string, string>>;

/** How the harness runs a service, beyond its settings. */
export interface StartOptions {
  /** The services' log level; `warn` unless set. */
  readonly logLevel?: LogLevel;
}

/** An ingest service of a test's own. */
export interface StartedIngest {
  readonly config: Config;
  readonly service: IngestService;
  /** A pool on the service's database, for checking what it stored. */
  readonly pool: DatabasePool;
  /** The WebSocket URL. */
  readonly url: string;
  /** A client connected to the service, closed at teardown if still open. */
  connect(options?: { autoPong?: boolean }): Promise<TestClient>;
}

/** A wallet service of a test's own. */
export interface StartedWallet {
  readonly config: Config;
  /** The running instance (a new one after {@link StartedWallet.restart}). */
  readonly service: WalletService;
  /** A gRPC client of the running instance. */
  readonly client: WalletClient;
  /** A Redis client on the wallet's key prefix, for reading or wiping its totals. */
  readonly redis: RedisClient;
  /** Stops the instance, runs `meanwhile`, then starts a new one on the same settings. */
  restart(meanwhile?: () => Promise<unknown>): Promise<void>;
}

/** An ingest and a wallet service on the same topic. */
export interface StartedSystem {
  readonly config: Config;
  readonly ingest: StartedIngest;
  readonly wallet: StartedWallet;
}

// Each call's own names and free ports; a test's overrides replace any of them.
const topicSettings = () => ({
  KAFKA_TOPIC: uniqueName('test_purchases'),
  KAFKA_TOPIC_PARTITIONS: '3',
});
const ingestSettings = { WS_PORT: '0' };
const walletSettings = () => ({
  KAFKA_DEAD_LETTER_TOPIC: uniqueName('test_dead_letters'),
  WALLET_GROUP_ID: uniqueName('test_wallet_group'),
  REDIS_KEY_PREFIX: `${uniqueName('test')}:`,
  GRPC_PORT: '0',
});

const openIngest = async (
  t: TestHooks,
  config: Config,
  { logLevel = 'warn' }: StartOptions,
): Promise<StartedIngest> => {
  const service = await startIngestService(config, createLogger(logLevel, { test: 'ingest' }));
  onTeardown(t, () => service.stop());
  const pool = await createPostgresPool({ url: config.postgres.url, poolSize: 3 });
  onTeardown(t, () => pool.end());
  const url = `ws://127.0.0.1:${service.port}${config.ws.path}`;
  return {
    config,
    service,
    pool,
    url,
    connect: async (options) => {
      const client = await connectClient(url, options);
      onTeardown(t, () => client.close());
      return client;
    },
  };
};

const openWallet = async (
  t: TestHooks,
  config: Config,
  redis: RedisClient,
  { logLevel = 'warn' }: StartOptions,
): Promise<StartedWallet> => {
  const logger = createLogger(logLevel, { test: 'wallet' });
  const launch = async () => {
    const service = await startWalletService(config, logger);
    return { service, client: connectWallet(`127.0.0.1:${service.grpcPort}`) };
  };
  let running = await launch();
  const stop = async () => {
    running.client.close();
    await running.service.stop();
  };
  onTeardown(t, stop);
  return {
    config,
    get service() {
      return running.service;
    },
    get client() {
      return running.client;
    },
    redis,
    restart: async (meanwhile) => {
      await stop();
      await meanwhile?.();
      running = await launch();
    },
  };
};

/**
 * Starts an ingest service on a new database and topic and a free port, settings
 * replaced by `overrides`; at the end of `t` it stops, and the topic and database go.
 */
export const startIngest = async (
  t: TestHooks,
  overrides: Overrides = {},
  options: StartOptions = {},
): Promise<StartedIngest> => {
  const databaseUrl = await ownDatabase(t);
  const config = configWith({
    DATABASE_URL: databaseUrl,
    ...topicSettings(),
    ...ingestSettings,
    ...overrides,
  });
  ownTopics(t, config.kafka, [config.kafka.topic]);
  return openIngest(t, config, options);
};

/**
 * Starts a wallet service on a new topic, dead-letter topic, consumer group and Redis key
 * prefix, with free ports; at the end of `t` it stops, and all of those go.
 */
export const startWallet = async (
  t: TestHooks,
  overrides: Overrides = {},
  options: StartOptions = {},
): Promise<StartedWallet> => {
  const config = configWith({ ...topicSettings(), ...walletSettings(), ...overrides });
  ownTopics(t, config.kafka, [config.kafka.topic, config.wallet.deadLetterTopic]);
  ownGroup(t, config.kafka, config.wallet.groupId);
  return openWallet(t, config, ownKeyPrefix(t, config.redis), options);
};

/**
 * Starts an ingest and a wallet service on one topic (a new database, topics, consumer
 * group and key prefix, free ports): purchases sent to the ingest reach the wallet's
 * totals. At the end of `t` both stop (the wallet first) and their names go.
 */
export const startSystem = async (
  t: TestHooks,
  overrides: Overrides = {},
  options: StartOptions = {},
): Promise<StartedSystem> => {
  const databaseUrl = await ownDatabase(t);
  const config = configWith({
    DATABASE_URL: databaseUrl,
    ...topicSettings(),
    ...ingestSettings,
    ...walletSettings(),
    ...overrides,
  });
  ownTopics(t, config.kafka, [config.kafka.topic, config.wallet.deadLetterTopic]);
  ownGroup(t, config.kafka, config.wallet.groupId);
  const redis = ownKeyPrefix(t, config.redis);
  const ingest = await openIngest(t, config, options);
  const wallet = await openWallet(t, config, redis, options);
  return { config, ingest, wallet };
};
