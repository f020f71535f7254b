import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { ConfigError } from './core/errors.ts';

// 0 asks the OS for a free port (tests run services side by side that way).
const port = z.coerce.number().int().min(0).max(65_535);
const positiveInt = z.coerce.number().int().positive();
const brokerList = z
  .string()
  .transform((value) => value.split(',').map((broker) => broker.trim()))
  .pipe(
    z.array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port[,host:port…]')).nonempty(),
  );
const url = (protocols: readonly string[]) =>
  z.url({ protocol: new RegExp(`^(${protocols.join('|')})$`) });

/** Most worker processes of one service. */
const MAX_WORKERS = 256;
/** Longest ingest instance id, a worker's suffix included. */
const MAX_INSTANCE_ID_LENGTH = 100;

/**
 * The instance id of ingest worker `n` (1, 2, …) of `workers`, from the configured one:
 * `<id>-<n>`, so that every worker's Kafka transactional ids are its own; with one worker,
 * the id itself.
 */
export const workerInstanceId = (id: string, workers: number, n = workers): string =>
  workers === 1 ? id : `${id}-${n}`;

/**
 * Every setting of spendstream: the environment variable, its default and its meaning.
 * docs/configuration.md documents each one; test/readme.test.ts checks it against these.
 */
const settingsShape = z.object({
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  DATABASE_URL: url(['postgres', 'postgresql']).default(
    'postgres://postgres:postgres@localhost:5432/pocdb',
  ),
  DATABASE_POOL_SIZE: positiveInt.max(100).default(10),
  REDIS_URL: url(['redis', 'rediss']).default('redis://localhost:6379'),
  REDIS_KEY_PREFIX: z.string().max(64).default(''),
  // Set: a Redis Cluster, found from these seed nodes; REDIS_URL then gives only the
  // credentials and TLS.
  REDIS_CLUSTER_NODES: brokerList.optional(),
  KAFKA_BROKERS: brokerList.default(['localhost:9092']),
  KAFKA_CLIENT_ID: z.string().min(1).default('spendstream'),
  KAFKA_TOPIC: z
    .string()
    .regex(/^[a-zA-Z0-9._-]{1,249}$/)
    .default('user_purchase'),
  KAFKA_TOPIC_PARTITIONS: positiveInt.max(1_000).default(6),
  // -1 keeps every purchase for ever; a finite retention needs the wallet's snapshots
  // (a rebuild then starts from the snapshot, and refuses if its tail was deleted).
  KAFKA_TOPIC_RETENTION_MS: z.coerce.number().int().min(-1).default(-1),
  // Unset: the fewer of 3 and the brokers in the cluster, as its metadata lists them at start.
  KAFKA_REPLICATION_FACTOR: positiveInt.max(32).optional(),
  // Unset: one less than the replication factor, at least 1, so that acks=all sends go on
  // with one broker lost while every acked record is on at least two.
  KAFKA_MIN_INSYNC_REPLICAS: positiveInt.max(32).optional(),
  // 1 starts on a topic weaker than the two above (a warning); otherwise the start refuses.
  KAFKA_ALLOW_WEAK_TOPICS: z.enum(['0', '1']).default('0'),
  WS_HOST: z.string().min(1).default('127.0.0.1'),
  WS_PORT: port.default(8080),
  WS_PATH: z.string().startsWith('/').default('/ws'),
  GRPC_HOST: z.string().min(1).default('127.0.0.1'),
  GRPC_PORT: port.default(50051),
  WALLET_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  WALLET_HTTP_PORT: port.default(8081),
  WALLET_GRPC_ADDRESS: z
    .string()
    .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected host:port or [ipv6]:port')
    .refine((address) => Number(address.slice(address.lastIndexOf(':') + 1)) <= 65_535, {
      message: 'port must be at most 65535',
    })
    .default('127.0.0.1:50051'),
  INGEST_STATUS_PAGE: z.enum(['on', 'off']).default('on'),
  WALLET_GROUP_ID: z.string().min(1).default('wallet-group'),
  // 0: no snapshots (a rebuild replays the whole topic, and the wallet needs no PostgreSQL).
  WALLET_SNAPSHOT_INTERVAL_MS: z.coerce.number().int().min(0).default(60_000),
  KAFKA_DEAD_LETTER_TOPIC: z
    .string()
    .regex(/^[a-zA-Z0-9._-]{1,249}$/)
    .default('user_purchase_dead_letters'),
  INGEST_BATCH_MAX_SIZE: positiveInt.max(10_000).default(1_000),
  INGEST_BATCH_MAX_WAIT_MS: positiveInt.max(10_000).default(5),
  INGEST_PERSIST_CONCURRENCY: positiveInt.max(32).default(3),
  INGEST_PUBLISH_MAX_BYTES: positiveInt.default(786_432),
  INGEST_MAX_FRAME_BYTES: positiveInt.default(1_048_576),
  INGEST_MAX_ARRAY_LENGTH: positiveInt.max(10_000).default(1_000),
  INGEST_MAX_UNACKED_PER_CONNECTION: positiveInt.default(5_000),
  INGEST_MAX_UNACKED: positiveInt.default(50_000),
  INGEST_ATTEMPT_TIMEOUT_MS: positiveInt.default(5_000),
  INGEST_DURABLE_DEADLINE_MS: positiveInt.default(10_000),
  INGEST_PING_INTERVAL_MS: positiveInt.default(30_000),
  INGEST_SHUTDOWN_TIMEOUT_MS: positiveInt.default(30_000),
  // Names this ingest instance's outbox entries and Kafka transactional ids. Unique per
  // running instance; a new one per process unless set (a stable one fences a restarted
  // instance's previous process at once).
  INGEST_INSTANCE_ID: z
    .string()
    .regex(/^[\w.-]{1,100}$/, 'letters, digits, ".", "_" or "-", at most 100')
    .optional(),
  OUTBOX_RECOVERY_INTERVAL_MS: positiveInt.default(15_000),
  OUTBOX_MIN_AGE_MS: z.coerce.number().int().min(0).default(60_000),
  // Worker processes of each service sharing its ports (node:cluster); 1 runs the service
  // in the process itself. Unset, the ingest takes one per CPU (os.availableParallelism()).
  INGEST_WORKERS: positiveInt.max(MAX_WORKERS).optional(),
  WALLET_WORKERS: positiveInt.max(MAX_WORKERS).default(1),
});

const settingsSchema = settingsShape
  .refine(
    (s) =>
      s.INGEST_INSTANCE_ID === undefined ||
      workerInstanceId(s.INGEST_INSTANCE_ID, s.INGEST_WORKERS ?? availableParallelism()).length <=
        MAX_INSTANCE_ID_LENGTH,
    {
      // Each worker's id is `<id>-<n>`, and must still fit where instance ids go.
      path: ['INGEST_INSTANCE_ID'],
      message: `with its worker suffix ("-<n>") must be at most ${MAX_INSTANCE_ID_LENGTH} long`,
    },
  )
  .refine((s) => s.REDIS_CLUSTER_NODES === undefined || !/[{}]/.test(s.REDIS_KEY_PREFIX), {
    // A brace in the prefix would become the hash tag of every key, or split a bucket's
    // keys over slots, and a bucket's script would no longer stay in one slot.
    path: ['REDIS_KEY_PREFIX'],
    message: 'must not hold { or } on a Redis Cluster (REDIS_CLUSTER_NODES)',
  })
  .refine((s) => s.OUTBOX_MIN_AGE_MS >= 2 * s.INGEST_DURABLE_DEADLINE_MS, {
    // Recovery must not race a batch its own pipeline is still saving and publishing.
    path: ['OUTBOX_MIN_AGE_MS'],
    message: 'must be at least twice INGEST_DURABLE_DEADLINE_MS',
  })
  .refine(
    (s) =>
      s.KAFKA_REPLICATION_FACTOR === undefined ||
      s.KAFKA_MIN_INSYNC_REPLICAS === undefined ||
      s.KAFKA_MIN_INSYNC_REPLICAS <= s.KAFKA_REPLICATION_FACTOR,
    {
      // More in-sync replicas than replicas would refuse every acks=all send.
      path: ['KAFKA_MIN_INSYNC_REPLICAS'],
      message: 'must be at most KAFKA_REPLICATION_FACTOR',
    },
  )
  .refine(
    (s) =>
      s.KAFKA_TOPIC_RETENTION_MS === -1 ||
      (s.WALLET_SNAPSHOT_INTERVAL_MS > 0 &&
        s.KAFKA_TOPIC_RETENTION_MS >= 10 * s.WALLET_SNAPSHOT_INTERVAL_MS),
    {
      // A rebuild needs the records after the last snapshot; without snapshots, all of them.
      path: ['KAFKA_TOPIC_RETENTION_MS'],
      message:
        'a finite retention needs wallet snapshots (WALLET_SNAPSHOT_INTERVAL_MS > 0) and ' +
        'must be at least 10 snapshot intervals',
    },
  );

/** The parsed, frozen settings of one spendstream process. */
export interface Config {
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  readonly postgres: { readonly url: string; readonly poolSize: number };
  readonly redis: {
    readonly url: string;
    readonly keyPrefix: string;
    /** Seed nodes of a Redis Cluster, when the totals are kept on one. */
    readonly clusterNodes?: readonly string[];
  };
  readonly kafka: {
    readonly brokers: readonly string[];
    readonly clientId: string;
    readonly topic: string;
    readonly topicPartitions: number;
    /** retention.ms of the topics spendstream creates; -1 for unlimited. */
    readonly topicRetentionMs: number;
    /** Replicas of each partition of the topics spendstream creates; unset: from the cluster. */
    readonly replicationFactor: number | undefined;
    /** min.insync.replicas of those topics; unset: the replication factor − 1, at least 1. */
    readonly minInsyncReplicas: number | undefined;
    /** Whether a start goes on, with a warning, on an existing topic weaker than these. */
    readonly allowWeakTopics: boolean;
  };
  readonly ws: { readonly host: string; readonly port: number; readonly path: string };
  readonly grpc: { readonly host: string; readonly port: number };
  readonly wallet: {
    readonly groupId: string;
    readonly deadLetterTopic: string;
    /** How often the totals are snapshotted into PostgreSQL; 0 for never. */
    readonly snapshotIntervalMs: number;
    /** Where the wallet serves `/metrics`, `/healthz` and `/readyz`. */
    readonly http: { readonly host: string; readonly port: number };
    /** Where other processes (the ingest's status page, the CLI) reach its gRPC server. */
    readonly grpcAddress: string;
  };
  readonly ingest: {
    readonly batchMaxSize: number;
    readonly batchMaxWaitMs: number;
    readonly persistConcurrency: number;
    readonly publishMaxBytes: number;
    readonly maxFrameBytes: number;
    readonly maxArrayLength: number;
    readonly maxUnackedPerConnection: number;
    readonly maxUnacked: number;
    readonly attemptTimeoutMs: number;
    readonly durableDeadlineMs: number;
    readonly pingIntervalMs: number;
    readonly shutdownTimeoutMs: number;
    /** This instance's name in the outbox and in its Kafka transactional ids. */
    readonly instanceId: string;
    /** INGEST_INSTANCE_ID as set, if it is: the base of the workers' ids. */
    readonly configuredInstanceId: string | undefined;
    /** Whether the ingest port serves the status page and its balance lookup. */
    readonly statusPage: boolean;
  };
  readonly outbox: { readonly recoveryIntervalMs: number; readonly minAgeMs: number };
  /** Worker processes of each service; 1 runs the service in its process itself. */
  readonly workers: { readonly ingest: number; readonly wallet: number };
}

/** Names of every environment variable spendstream reads. */
export const SETTING_NAMES = Object.keys(settingsShape.shape) as ReadonlyArray<
  keyof typeof settingsShape.shape
>;

const deepFreeze = <T extends object>(value: T): T => {
  for (const child of Object.values(value)) {
    if (typeof child === 'object' && child !== null) deepFreeze(child);
  }
  return Object.freeze(value);
};

/**
 * Parses the environment once into a frozen {@link Config}.
 * Throws a {@link ConfigError} naming every bad variable and the value it had.
 */
export const loadConfig = (
  env: Readonly<Record<string, string | undefined>> = process.env,
): Config => {
  const relevant = Object.fromEntries(
    SETTING_NAMES.map((name) => [name, env[name] === '' ? undefined : env[name]]),
  );
  const parsed = settingsSchema.safeParse(relevant);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0]);
      return `${name}=${JSON.stringify(env[name])}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`, {
      variables: [...new Set(parsed.error.issues.map((issue) => String(issue.path[0])))],
    });
  }
  const s = parsed.data;
  return deepFreeze({
    logLevel: s.LOG_LEVEL,
    postgres: { url: s.DATABASE_URL, poolSize: s.DATABASE_POOL_SIZE },
    redis: {
      url: s.REDIS_URL,
      keyPrefix: s.REDIS_KEY_PREFIX,
      ...(s.REDIS_CLUSTER_NODES === undefined ? {} : { clusterNodes: s.REDIS_CLUSTER_NODES }),
    },
    kafka: {
      brokers: s.KAFKA_BROKERS,
      clientId: s.KAFKA_CLIENT_ID,
      topic: s.KAFKA_TOPIC,
      topicPartitions: s.KAFKA_TOPIC_PARTITIONS,
      topicRetentionMs: s.KAFKA_TOPIC_RETENTION_MS,
      replicationFactor: s.KAFKA_REPLICATION_FACTOR,
      minInsyncReplicas: s.KAFKA_MIN_INSYNC_REPLICAS,
      allowWeakTopics: s.KAFKA_ALLOW_WEAK_TOPICS === '1',
    },
    ws: { host: s.WS_HOST, port: s.WS_PORT, path: s.WS_PATH },
    grpc: { host: s.GRPC_HOST, port: s.GRPC_PORT },
    wallet: {
      groupId: s.WALLET_GROUP_ID,
      deadLetterTopic: s.KAFKA_DEAD_LETTER_TOPIC,
      snapshotIntervalMs: s.WALLET_SNAPSHOT_INTERVAL_MS,
      http: { host: s.WALLET_HTTP_HOST, port: s.WALLET_HTTP_PORT },
      grpcAddress: s.WALLET_GRPC_ADDRESS,
    },
    ingest: {
      batchMaxSize: s.INGEST_BATCH_MAX_SIZE,
      batchMaxWaitMs: s.INGEST_BATCH_MAX_WAIT_MS,
      persistConcurrency: s.INGEST_PERSIST_CONCURRENCY,
      publishMaxBytes: s.INGEST_PUBLISH_MAX_BYTES,
      maxFrameBytes: s.INGEST_MAX_FRAME_BYTES,
      maxArrayLength: s.INGEST_MAX_ARRAY_LENGTH,
      maxUnackedPerConnection: s.INGEST_MAX_UNACKED_PER_CONNECTION,
      maxUnacked: s.INGEST_MAX_UNACKED,
      attemptTimeoutMs: s.INGEST_ATTEMPT_TIMEOUT_MS,
      durableDeadlineMs: s.INGEST_DURABLE_DEADLINE_MS,
      pingIntervalMs: s.INGEST_PING_INTERVAL_MS,
      shutdownTimeoutMs: s.INGEST_SHUTDOWN_TIMEOUT_MS,
      instanceId: s.INGEST_INSTANCE_ID ?? randomUUID(),
      configuredInstanceId: s.INGEST_INSTANCE_ID,
      statusPage: s.INGEST_STATUS_PAGE === 'on',
    },
    outbox: { recoveryIntervalMs: s.OUTBOX_RECOVERY_INTERVAL_MS, minAgeMs: s.OUTBOX_MIN_AGE_MS },
    workers: {
      ingest: s.INGEST_WORKERS ?? availableParallelism(),
      wallet: s.WALLET_WORKERS,
    },
  });
};

/**
 * The settings worker `n` (1, 2, …) of a service replaces in the environment it inherits:
 * it runs as one process of the service, an ingest worker under an instance id of its own
 * (`<INGEST_INSTANCE_ID>-<n>`) when one is set, a new one per process otherwise.
 */
export const workerEnvironment = (
  service: 'ingest' | 'wallet',
  n: number,
  config: Config,
): Record<string, string> => {
  if (service === 'wallet') return { WALLET_WORKERS: '1' };
  const id = config.ingest.configuredInstanceId;
  return {
    INGEST_WORKERS: '1',
    ...(id === undefined
      ? {}
      : { INGEST_INSTANCE_ID: workerInstanceId(id, config.workers.ingest, n) }),
  };
};
