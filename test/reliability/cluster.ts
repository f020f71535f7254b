// One reliability test's deployment: its own database, topics, wallet group and private
// Redis, with the ingest and wallet services running as child processes the way
// `npm start` runs them, so a test can SIGKILL, SIGTERM and restart them, restart Redis
// empty or from a snapshot, cut PostgreSQL connections and stop the shared Kafka broker.
// On a topology of the test's own (a replicated Kafka, a Redis Cluster) it uses those
// instead, its keys under a prefix of its own, and leaves their faults to the test.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Admin, Kafka } from 'kafkajs';
import type { RedisClient } from '../../src/adapters/redis/client.ts';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { createPostgresPool } from '../../src/adapters/postgres/pool.ts';
import { createRedis } from '../../src/adapters/redis/client.ts';
import { offsetField, userIdOfKey } from '../../src/adapters/redis/walletKeys.ts';
import { createWalletStore } from '../../src/adapters/redis/walletStore.ts';
import type { BucketMarkers } from '../../src/core/ports.ts';
import { isServing, ROOT, run } from '../../scripts/infra.ts';
import {
  freePort,
  startIngestProcess,
  startWalletProcess,
  type Exit,
  type ServiceProcess,
} from '../harness/processes.ts';
import {
  clearKeyPrefix,
  createTestDatabase,
  databaseUrl,
  testConfig,
  uniqueName,
} from '../helpers.ts';
import { deleteTopics } from '../kafkaHelpers.ts';
import { spawnRedisServer } from '../harness/redisServer.ts';

const LOG_DIR = `${tmpdir()}/spendstream-reliability`;

/**
 * A Redis server of the test's own on a free port. It saves nothing by itself; only
 * {@link PrivateRedis.save} writes a snapshot, to a folder of its own, which a start loads.
 */
interface PrivateRedis {
  readonly url: string;
  start(): Promise<void>;
  /** `SAVE`: a snapshot of everything it holds now, loaded by the next start. */
  save(): Promise<void>;
  /** Deletes the snapshot, so that the next start is empty. */
  forget(): Promise<void>;
  /** Kills it (saving nothing) and waits for the exit. */
  kill(): Promise<void>;
  /** Removes its folder (once it is killed). */
  remove(): Promise<void>;
  /** Sends a signal without waiting: SIGSTOP freezes it (connections stay open), SIGCONT resumes. */
  signal(signal: 'SIGSTOP' | 'SIGCONT'): void;
}

const privateRedis = async (): Promise<PrivateRedis> => {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'spendstream-reliability-redis-'));
  let child: ChildProcess | undefined;
  let exited: Promise<Exit> | undefined;
  return {
    url: `redis://127.0.0.1:${port}`,
    start: async () => {
      ({ child, exited } = await spawnRedisServer(port, dir));
    },
    save: async () => {
      const redis = createRedis({ url: `redis://127.0.0.1:${port}` });
      try {
        await redis.save();
      } finally {
        redis.disconnect();
      }
    },
    forget: () => rm(join(dir, 'dump.rdb'), { force: true }),
    kill: async () => {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
      await exited;
    },
    remove: () => rm(dir, { recursive: true, force: true }),
    signal: (signal) => {
      child?.kill(signal);
    },
  };
};

/** Topic offsets by partition. */
export type Offsets = Map<number, bigint>;

/** Settings of a cluster. */
export interface ClusterOptions {
  /** Used in names and log file names. */
  readonly name: string;
  readonly partitions?: number;
  /** Extra settings for every ingest process. */
  readonly ingestEnv?: Readonly<Record<string, string>>;
  /** Extra settings for every wallet process. */
  readonly walletEnv?: Readonly<Record<string, string>>;
  /** Stores of the test's own, instead of the shared broker and a private Redis. */
  readonly topology?: Topology;
}

/** A Kafka and a Redis Cluster a test started for itself, to break them. */
export interface Topology {
  /** KAFKA_BROKERS of its Kafka (never the suite's shared broker). */
  readonly kafkaBrokers: string;
  /** Seed nodes of its Redis Cluster; each deployment keeps its keys under its own prefix. */
  readonly redisClusterNodes: readonly string[];
}

/** A running deployment of one test. */
export interface Cluster {
  readonly name: string;
  readonly topic: string;
  readonly deadLetterTopic: string;
  readonly groupId: string;
  readonly databaseName: string;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  /** The first ingest's instance id (the same across its restarts). */
  readonly ingestInstanceId: string;
  /** The WebSocket URL; the same port across ingest restarts. */
  readonly ingestUrl: string;
  readonly kafka: Kafka;
  /** Where the services' logs go. */
  readonly logDir: string;
  /** The current ingest process, if started. */
  readonly ingest: ServiceProcess | undefined;
  /** Wallet processes started so far (running or not), in start order. */
  readonly wallets: readonly ServiceProcess[];
  startIngest(): Promise<ServiceProcess>;
  /** Starts another ingest instance beside the first, on a port of its own. */
  startExtraIngest(): Promise<{ readonly process: ServiceProcess; readonly url: string }>;
  startWallet(): Promise<ServiceProcess>;
  /** Kills the private Redis and starts it again, empty. */
  restartRedisEmpty(): Promise<void>;
  /** Takes a snapshot (`SAVE`) of the private Redis. */
  snapshotRedis(): Promise<void>;
  /**
   * Kills the private Redis and starts it again from the last snapshot: every write since
   * is gone, as after a restart from an RDB file or a failover to a replica behind.
   */
  restartRedisFromSnapshot(): Promise<void>;
  /** Every bucket's markers of the topic's partitions, as the wallet keeps them. */
  bucketMarkers(): Promise<BucketMarkers>;
  /** Makes the private Redis refuse every write (OOM: maxmemory 1 byte, no eviction). */
  refuseRedisWrites(): Promise<void>;
  /** Lets the private Redis take writes again. */
  allowRedisWrites(): Promise<void>;
  /** A client on the private Redis, or on the topology's Redis Cluster (the caller quits it). */
  redis(): RedisClient;
  /** A pool on the test database (the caller ends it). */
  pool(): Promise<DatabasePool>;
  /** Terminates every other connection to the test database; returns how many. */
  terminatePostgresConnections(): Promise<number>;
  /** Stops the shared Kafka broker (scripts/kafka/stop.sh). */
  stopKafka(): Promise<void>;
  /** Starts the shared Kafka broker again and waits until it serves. */
  startKafka(): Promise<void>;
  /** Each partition's high watermark. */
  highWatermarks(): Promise<Offsets>;
  /** The wallet group's committed offsets (partitions without one are left out). */
  committedOffsets(): Promise<Offsets>;
  /**
   * Records published and not yet committed by the wallet group (sum over partitions of
   * high watermark minus committed offset); undefined when Kafka cannot tell right now.
   */
  walletLag(): Promise<number | undefined>;
  /** The highest offset the wallet applied per partition, read from the users' hashes. */
  appliedOffsets(): Promise<Offsets>;
  /** Stops everything and removes the database, topics and Redis. */
  close(): Promise<void>;
}

const countRow = z.object({ n: z.number() });

const startKafka = () => run('bash', [`${ROOT}scripts/kafka/start.sh`]);

/**
 * Starts the shared broker unless it serves. Another test run may have stopped it: one
 * that found it down (stopped by a fault scenario) starts it and stops it when it ends.
 */
const ensureKafka = async () => {
  const [host = '127.0.0.1', port = '9092'] = (testConfig.kafka.brokers[0] ?? '').split(':');
  if (!(await isServing(host, Number(port)))) await startKafka();
};

/** Starts a cluster's stores (database, topics come with the services, private Redis). */
export const createCluster = async (options: ClusterOptions): Promise<Cluster> => {
  const partitions = options.partitions ?? 4;
  const { topology } = options;
  if (topology === undefined) await ensureKafka();
  const name = uniqueName(options.name.replace(/[^a-z0-9]+/gi, '_').slice(0, 30));
  const database = await createTestDatabase();
  const databaseName = new URL(database.url).pathname.slice(1);
  const redisServer = topology === undefined ? await privateRedis() : undefined;
  await redisServer?.start();
  // On the topology's Redis Cluster, shared by the file's scenarios: a prefix of its own.
  const keyPrefix = topology === undefined ? '' : `${name}:`;
  const redisUrl = redisServer?.url ?? 'redis://127.0.0.1';
  const privateServer = (): PrivateRedis => {
    if (redisServer === undefined) throw new Error('no private Redis on a Redis Cluster');
    return redisServer;
  };
  const logDir = `${LOG_DIR}/${name}`;
  mkdirSync(logDir, { recursive: true });
  const topic = uniqueName('rel_purchases');
  const deadLetterTopic = `${topic}_dead`;
  const groupId = uniqueName('rel_wallet');
  const wsPort = await freePort();
  const kafka = createKafka(
    topology === undefined
      ? testConfig.kafka
      : { ...testConfig.kafka, brokers: topology.kafkaBrokers.split(',') },
  );
  const common = {
    DATABASE_URL: database.url,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: keyPrefix,
    ...(topology === undefined
      ? {}
      : {
          KAFKA_BROKERS: topology.kafkaBrokers,
          REDIS_CLUSTER_NODES: topology.redisClusterNodes.join(','),
        }),
    KAFKA_TOPIC: topic,
    KAFKA_TOPIC_PARTITIONS: String(partitions),
    KAFKA_DEAD_LETTER_TOPIC: deadLetterTopic,
    WALLET_GROUP_ID: groupId,
    // The readiness lines are info lines.
    LOG_LEVEL: 'info',
  };
  const ingestEnv = {
    ...common,
    WS_HOST: '127.0.0.1',
    WS_PORT: String(wsPort),
    // Small enough that a batch PostgreSQL or Kafka cannot take is refused within seconds
    // and outbox recovery publishes what a fault left behind within the test.
    // (OUTBOX_MIN_AGE_MS must be at least twice INGEST_DURABLE_DEADLINE_MS.)
    INGEST_ATTEMPT_TIMEOUT_MS: '1500',
    INGEST_DURABLE_DEADLINE_MS: '2500',
    OUTBOX_MIN_AGE_MS: '5000',
    OUTBOX_RECOVERY_INTERVAL_MS: '1000',
    INGEST_SHUTDOWN_TIMEOUT_MS: '30000',
    INGEST_INSTANCE_ID: `${name}-ingest`,
    ...options.ingestEnv,
  };
  let ingest: ServiceProcess | undefined;
  const extraIngests: ServiceProcess[] = [];
  const wallets: ServiceProcess[] = [];
  // Services whose start has not resolved yet: close() waits for them, so that one still
  // starting when another's start failed is not left running.
  const pending = new Set<Promise<ServiceProcess>>();
  const started = new Set<ServiceProcess>();
  const starting = async (start: Promise<ServiceProcess>): Promise<ServiceProcess> => {
    pending.add(start);
    try {
      const service = await start;
      started.add(service);
      return service;
    } finally {
      pending.delete(start);
    }
  };
  let starts = 0;
  let kafkaStopped = false;

  const withPool = async <T>(url: string, use: (pool: DatabasePool) => Promise<T>) => {
    const pool = await createPostgresPool({ url, poolSize: 1 });
    try {
      return await use(pool);
    } finally {
      await pool.end();
    }
  };

  // Right after a broker restart, leaders are being elected and the group coordinator is
  // loading for a while: an admin call is retried through that.
  const withAdmin = async <T>(use: (admin: Admin) => Promise<T>): Promise<T> => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const admin = kafka.admin();
      try {
        await admin.connect();
        return await use(admin);
      } catch (error) {
        if (Date.now() > deadline) throw error;
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };

  const toOffsets = (entries: Array<{ partition: number; offset: string }>): Offsets =>
    new Map(
      entries
        .filter((entry) => Number(entry.offset) >= 0)
        .map((entry) => [entry.partition, BigInt(entry.offset)]),
    );

  const cluster: Cluster = {
    name,
    topic,
    deadLetterTopic,
    groupId,
    databaseName,
    databaseUrl: database.url,
    redisUrl,
    ingestInstanceId: `${name}-ingest`,
    ingestUrl: `ws://127.0.0.1:${wsPort}/ws`,
    kafka,
    logDir,
    get ingest() {
      return ingest;
    },
    wallets,
    startIngest: async () => {
      if (ingest?.running === true) throw new Error('the ingest service is already running');
      starts += 1;
      ingest = await starting(
        startIngestProcess(ingestEnv, { logFile: `${logDir}/ingest-${starts}.log` }),
      );
      return ingest;
    },
    startExtraIngest: async () => {
      starts += 1;
      const port = await freePort();
      const process = await starting(
        startIngestProcess(
          {
            ...ingestEnv,
            WS_PORT: String(port),
            INGEST_INSTANCE_ID: `${name}-ingest-extra-${extraIngests.length + 1}`,
          },
          {
            name: `ingest-extra-${extraIngests.length + 1}`,
            logFile: `${logDir}/ingest-extra-${extraIngests.length + 1}-${starts}.log`,
          },
        ),
      );
      extraIngests.push(process);
      return { process, url: `ws://127.0.0.1:${port}/ws` };
    },
    startWallet: async () => {
      starts += 1;
      const grpcPort = await freePort();
      const wallet = await starting(
        startWalletProcess(
          { ...common, GRPC_HOST: '127.0.0.1', GRPC_PORT: String(grpcPort), ...options.walletEnv },
          {
            name: `wallet-${wallets.length + 1}`,
            logFile: `${logDir}/wallet-${wallets.length + 1}-${starts}.log`,
          },
        ),
      );
      wallets.push(wallet);
      return wallet;
    },
    refuseRedisWrites: async () => {
      const redis = createRedis({ url: privateServer().url });
      try {
        await redis.config('SET', 'maxmemory-policy', 'noeviction');
        await redis.config('SET', 'maxmemory', '1');
      } finally {
        redis.disconnect();
      }
    },
    allowRedisWrites: async () => {
      const redis = createRedis({ url: privateServer().url });
      try {
        await redis.config('SET', 'maxmemory', '0');
      } finally {
        redis.disconnect();
      }
    },
    restartRedisEmpty: async () => {
      await privateServer().kill();
      await privateServer().forget();
      await privateServer().start();
    },
    snapshotRedis: () => privateServer().save(),
    restartRedisFromSnapshot: async () => {
      await privateServer().kill();
      await privateServer().start();
    },
    bucketMarkers: async () => {
      const redis = cluster.redis();
      try {
        const partitionList = Array.from({ length: partitions }, (_, p) => p);
        return await createWalletStore(redis).readMarkers(topic, partitionList);
      } finally {
        redis.disconnect();
      }
    },
    redis: () =>
      createRedis({
        url: redisUrl,
        keyPrefix,
        ...(topology === undefined ? {} : { clusterNodes: topology.redisClusterNodes }),
      }),
    pool: () => createPostgresPool({ url: database.url, poolSize: 2 }),
    terminatePostgresConnections: () =>
      withPool(databaseUrl('postgres'), (pool) =>
        pool.oneFirst(sql.type(countRow)`
          SELECT count(pg_terminate_backend(pid))::int AS n
          FROM pg_stat_activity
          WHERE datname = ${databaseName} AND pid <> pg_backend_pid()`),
      ),
    stopKafka: async () => {
      kafkaStopped = true;
      await run('bash', [`${ROOT}scripts/kafka/stop.sh`]);
      // stop.sh stops the broker this checkout started; one started from another checkout
      // (another data folder) would go on serving and the scenario would prove nothing.
      const [host = '127.0.0.1', port = '9092'] = (testConfig.kafka.brokers[0] ?? '').split(':');
      if (await isServing(host, Number(port))) {
        throw new Error(
          `Kafka still serves ${host}:${port} after scripts/kafka/stop.sh: it was started from ` +
            'another checkout; stop it there, or set KAFKA_DATA_DIR to its data folder',
        );
      }
    },
    startKafka: async () => {
      await startKafka();
      kafkaStopped = false;
    },
    highWatermarks: () =>
      withAdmin(async (admin) => {
        const offsets = await admin.fetchTopicOffsets(topic);
        return toOffsets(offsets.map(({ partition, high }) => ({ partition, offset: high })));
      }),
    committedOffsets: () =>
      withAdmin(async (admin) => {
        const [result] = await admin.fetchOffsets({ groupId, topics: [topic] });
        return toOffsets(result?.partitions ?? []);
      }),
    walletLag: async () => {
      try {
        const high = await cluster.highWatermarks();
        const committed = await cluster.committedOffsets();
        let lag = 0;
        for (const [partition, offset] of high) {
          lag += Number(offset - (committed.get(partition) ?? 0n));
        }
        return lag;
      } catch {
        // Right after a broker restart the group coordinator answers "loading" a while.
        return undefined;
      }
    },
    appliedOffsets: async () => {
      const redis = createRedis({ url: privateServer().url });
      try {
        const applied: Offsets = new Map();
        const keys = (await redis.keys('wallet:{b*}:*')).filter(
          (key) => userIdOfKey(key) !== undefined,
        );
        const pipeline = redis.pipeline();
        for (const key of keys) pipeline.hgetall(key);
        const results = (await pipeline.exec()) ?? [];
        for (const [error, hash] of results) {
          if (error !== null) throw error;
          for (let partition = 0; partition < partitions; partition += 1) {
            const text = (hash as Record<string, string>)[offsetField(topic, partition)];
            if (text === undefined) continue;
            const offset = BigInt(text);
            if (offset > (applied.get(partition) ?? -1n)) applied.set(partition, offset);
          }
        }
        return applied;
      } finally {
        redis.disconnect();
      }
    },
    close: async () => {
      const problems: unknown[] = [];
      const attempt = async (step: () => Promise<unknown>) => {
        try {
          await step();
        } catch (error) {
          problems.push(error);
        }
      };
      // A service still starting (beside one whose start failed) is stopped with the rest.
      await Promise.allSettled([...pending]);
      // The broker is shared: whatever happened, it is left running.
      if (topology === undefined) {
        await attempt(() => (kafkaStopped ? cluster.startKafka() : ensureKafka()));
      }
      await attempt(() =>
        Promise.all(
          [...new Set([ingest, ...extraIngests, ...wallets, ...started])].map((service) => {
            // A paused process would take SIGTERM only once resumed.
            service?.signal('SIGCONT');
            return service?.kill('SIGTERM') ?? Promise.resolve();
          }),
        ),
      );
      if (redisServer !== undefined) {
        await attempt(() => redisServer.kill());
        await attempt(() => redisServer.remove());
      } else {
        await attempt(async () => {
          const redis = cluster.redis();
          try {
            await clearKeyPrefix(redis, keyPrefix);
          } finally {
            redis.disconnect();
          }
        });
      }
      await attempt(() => deleteTopics(kafka, [topic, deadLetterTopic]));
      await attempt(async () => {
        const admin = kafka.admin();
        await admin.connect();
        await admin.deleteGroups([groupId]).catch(() => undefined);
        await admin.disconnect();
      });
      await attempt(() => database.drop());
      if (problems.length > 0) {
        throw new AggregateError(problems, `cleaning up cluster ${name} failed`);
      }
    },
  };
  return cluster;
};
