// The settings `npm run start:cluster` (`scripts/start.ts --cluster`) runs with: the whole
// distributed topology on one machine — a 3-broker Kafka, a Redis Cluster of 3 masters and
// 3 replicas, the services as workers — on ports and folders of its own, clear of the
// single-node defaults (Kafka 9092, Redis 6379) and of the suite's Redis Cluster (7000).
import { join } from 'node:path';

/** The first Kafka broker's port of the topology: brokers on it, +2 and +4. */
export const CLUSTER_KAFKA_PORT = 19_092;
/** The first Redis Cluster node's port: six nodes on it and the five after it. */
export const CLUSTER_REDIS_PORT = 7_100;

const firstPort = (list: string | undefined): number | undefined => {
  const first = list?.split(',')[0]?.trim() ?? '';
  const port = Number(first.slice(first.lastIndexOf(':') + 1));
  return Number.isInteger(port) && port > 0 ? port : undefined;
};

/**
 * The settings of the cluster topology that `env` leaves unset (or empty), to be added to
 * it: every one can be set to something else. The ingest keeps its default of one worker
 * per CPU; the wallet runs two, which pays on a Redis Cluster (design.md, "Workers").
 */
export const clusterSettings = (
  env: Readonly<Record<string, string | undefined>>,
  root: string,
): Record<string, string> => {
  // All three, so that a client started while the first is down still finds the cluster.
  const brokers =
    env['KAFKA_BROKERS'] ||
    [0, 2, 4].map((step) => `127.0.0.1:${CLUSTER_KAFKA_PORT + step}`).join(',');
  const defaults: Record<string, string> = {
    KAFKA_BROKERS: brokers,
    KAFKA_BROKERS_LOCAL: '3',
    // Each broker's controller on the port after its own: 19093, 19095, 19097.
    KAFKA_CONTROLLER_PORT: String((firstPort(brokers) ?? CLUSTER_KAFKA_PORT) + 1),
    // Not the folder of `KAFKA_BROKERS_LOCAL=3 npm run kafka:start` (data-3), which runs
    // on 9092: the two would share pid files.
    KAFKA_DATA_DIR: join(root, '.cache', 'kafka', 'cluster'),
    // Explicit, so that a start against a Kafka of fewer brokers fails, naming them.
    KAFKA_REPLICATION_FACTOR: '3',
    KAFKA_MIN_INSYNC_REPLICAS: '2',
    REDIS_CLUSTER_NODES: `127.0.0.1:${CLUSTER_REDIS_PORT}`,
    WALLET_WORKERS: '2',
  };
  return Object.fromEntries(Object.entries(defaults).filter(([name]) => (env[name] ?? '') === ''));
};
