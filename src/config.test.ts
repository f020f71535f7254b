import assert from 'node:assert/strict';
import { test } from 'node:test';
import { availableParallelism } from 'node:os';
import { loadConfig, SETTING_NAMES, workerEnvironment, workerInstanceId } from './config.ts';
import { ConfigError } from './core/errors.ts';

test('defaults match the documented ports and addresses', () => {
  const config = loadConfig({});
  assert.equal(config.ws.port, 8080);
  assert.equal(config.ws.path, '/ws');
  assert.equal(config.grpc.port, 50051);
  assert.equal(config.postgres.url, 'postgres://postgres:postgres@localhost:5432/pocdb');
  assert.equal(config.redis.url, 'redis://localhost:6379');
  assert.deepEqual(config.kafka.brokers, ['localhost:9092']);
  assert.equal(config.kafka.topic, 'user_purchase');
});

test('reads overrides and splits the broker list', () => {
  const config = loadConfig({
    WS_PORT: '9000',
    KAFKA_BROKERS: 'a:9092, b:9093',
    DATABASE_URL: 'postgresql://u@db:6543/other',
  });
  assert.equal(config.ws.port, 9000);
  assert.deepEqual(config.kafka.brokers, ['a:9092', 'b:9093']);
  assert.equal(config.postgres.url, 'postgresql://u@db:6543/other');
});

test('an empty variable means the default', () => {
  assert.equal(loadConfig({ GRPC_PORT: '' }).grpc.port, 50051);
});

test('the result is frozen all the way down', () => {
  const config = loadConfig({});
  assert.throws(() => {
    (config.ws as { port: number }).port = 1;
  }, TypeError);
});

test('a bad value fails with a message naming the variable and the value', () => {
  assert.throws(
    () => loadConfig({ WS_PORT: 'eighty', REDIS_URL: 'http://x' }),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.code, 'invalid_config');
      assert.deepEqual([...error.variables].sort(), ['REDIS_URL', 'WS_PORT']);
      assert.match(error.message, /WS_PORT="eighty"/);
      assert.match(error.message, /REDIS_URL="http:\/\/x"/);
      return true;
    },
  );
});

test('out-of-range ports and malformed broker lists are rejected', () => {
  assert.throws(() => loadConfig({ GRPC_PORT: '70000' }), /GRPC_PORT/);
  assert.throws(() => loadConfig({ KAFKA_BROKERS: 'localhost' }), /KAFKA_BROKERS/);
});

test('every setting has a name for docs/configuration.md', () => {
  assert.ok(SETTING_NAMES.includes('DATABASE_URL'));
  assert.ok(SETTING_NAMES.includes('KAFKA_BROKERS'));
});

test('the wallet gRPC address takes host:port or [ipv6]:port with a real port', () => {
  assert.equal(
    loadConfig({ WALLET_GRPC_ADDRESS: '[::1]:50051' }).wallet.grpcAddress,
    '[::1]:50051',
  );
  assert.equal(
    loadConfig({ WALLET_GRPC_ADDRESS: 'wallet:50051' }).wallet.grpcAddress,
    'wallet:50051',
  );
  for (const bad of ['wallet', 'wallet:99999', 'a b:1', '::1:50051']) {
    assert.throws(() => loadConfig({ WALLET_GRPC_ADDRESS: bad }), /WALLET_GRPC_ADDRESS/, bad);
  }
});

test('the status page is on by default and can be turned off', () => {
  assert.equal(loadConfig({}).ingest.statusPage, true);
  assert.equal(loadConfig({ INGEST_STATUS_PAGE: 'off' }).ingest.statusPage, false);
  assert.throws(() => loadConfig({ INGEST_STATUS_PAGE: 'maybe' }), /INGEST_STATUS_PAGE/);
});

test('each process gets an ingest instance id of its own unless one is set', () => {
  assert.notEqual(loadConfig({}).ingest.instanceId, loadConfig({}).ingest.instanceId);
  assert.equal(loadConfig({ INGEST_INSTANCE_ID: 'ingest-a.1' }).ingest.instanceId, 'ingest-a.1');
  // It goes into Kafka transactional ids and PostgreSQL rows: no spaces, no slashes.
  assert.throws(() => loadConfig({ INGEST_INSTANCE_ID: 'a b/c' }), ConfigError);
});

test('the ingest runs a worker per CPU unless set, the wallet one', () => {
  assert.equal(loadConfig({}).workers.ingest, availableParallelism());
  assert.equal(loadConfig({}).workers.wallet, 1);
  assert.deepEqual(loadConfig({ INGEST_WORKERS: '3', WALLET_WORKERS: '2' }).workers, {
    ingest: 3,
    wallet: 2,
  });
  assert.throws(() => loadConfig({ INGEST_WORKERS: '0' }), /INGEST_WORKERS/);
});

test('each ingest worker gets an instance id of its own, one process in each', () => {
  const config = loadConfig({ INGEST_WORKERS: '2', INGEST_INSTANCE_ID: 'edge' });
  assert.deepEqual(workerEnvironment('ingest', 2, config), {
    INGEST_WORKERS: '1',
    INGEST_INSTANCE_ID: 'edge-2',
  });
  // Unset, each worker process makes a new one, as one process does.
  assert.deepEqual(workerEnvironment('ingest', 1, loadConfig({ INGEST_WORKERS: '2' })), {
    INGEST_WORKERS: '1',
  });
  assert.deepEqual(workerEnvironment('wallet', 1, config), { WALLET_WORKERS: '1' });
  // One worker keeps the id as it is.
  assert.equal(workerInstanceId('edge', 1), 'edge');
  // The suffix must still fit.
  assert.throws(
    () => loadConfig({ INGEST_WORKERS: '12', INGEST_INSTANCE_ID: 'x'.repeat(98) }),
    /INGEST_INSTANCE_ID/,
  );
  assert.equal(
    loadConfig({ INGEST_WORKERS: '1', INGEST_INSTANCE_ID: 'x'.repeat(100) }).ingest.instanceId,
    'x'.repeat(100),
  );
});

test('a finite retention needs snapshots, at least 10 of their intervals apart', () => {
  assert.equal(loadConfig({}).kafka.topicRetentionMs, -1);
  assert.equal(loadConfig({}).wallet.snapshotIntervalMs, 60_000);
  assert.equal(loadConfig({ KAFKA_TOPIC_RETENTION_MS: '600000' }).kafka.topicRetentionMs, 600_000);
  assert.throws(
    () => loadConfig({ KAFKA_TOPIC_RETENTION_MS: '600000', WALLET_SNAPSHOT_INTERVAL_MS: '0' }),
    /KAFKA_TOPIC_RETENTION_MS/,
  );
  assert.throws(() => loadConfig({ KAFKA_TOPIC_RETENTION_MS: '599999' }), /10 snapshot intervals/);
  assert.equal(loadConfig({ WALLET_SNAPSHOT_INTERVAL_MS: '0' }).wallet.snapshotIntervalMs, 0);
});

test('REDIS_CLUSTER_NODES opens a Redis Cluster from its seed nodes; unset, one Redis', () => {
  assert.equal(loadConfig({}).redis.clusterNodes, undefined);
  const config = loadConfig({
    REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-b:7001',
    REDIS_KEY_PREFIX: 'prod:',
  });
  assert.deepEqual(config.redis.clusterNodes, ['10.0.0.1:7000', 'redis-b:7001']);
  assert.equal(config.redis.keyPrefix, 'prod:');
  assert.throws(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis-a' }), /REDIS_CLUSTER_NODES/);
  assert.throws(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:7000,,b:7001' }), /REDIS_CLUSTER_NODES/);
});

test('on a Redis Cluster the key prefix may not hold a brace, which would move the hash tag', () => {
  assert.equal(loadConfig({ REDIS_KEY_PREFIX: '{app}:' }).redis.keyPrefix, '{app}:');
  for (const prefix of ['{app}:', 'app{', 'app}']) {
    assert.throws(
      () => loadConfig({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_KEY_PREFIX: prefix }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.deepEqual([...error.variables], ['REDIS_KEY_PREFIX']);
        return true;
      },
    );
  }
});

test('replication settings are unset unless given: the cluster decides at start', () => {
  const { kafka } = loadConfig({});
  assert.equal(kafka.replicationFactor, undefined);
  assert.equal(kafka.minInsyncReplicas, undefined);
  assert.equal(kafka.allowWeakTopics, false);
  const set = loadConfig({
    KAFKA_REPLICATION_FACTOR: '3',
    KAFKA_MIN_INSYNC_REPLICAS: '2',
    KAFKA_ALLOW_WEAK_TOPICS: '1',
  }).kafka;
  assert.equal(set.replicationFactor, 3);
  assert.equal(set.minInsyncReplicas, 2);
  assert.equal(set.allowWeakTopics, true);
});

test('replication settings are positive and min ISR is at most the replication factor', () => {
  assert.throws(() => loadConfig({ KAFKA_REPLICATION_FACTOR: '0' }), /KAFKA_REPLICATION_FACTOR/);
  assert.throws(() => loadConfig({ KAFKA_REPLICATION_FACTOR: '1.5' }), /KAFKA_REPLICATION_FACTOR/);
  assert.throws(() => loadConfig({ KAFKA_MIN_INSYNC_REPLICAS: '0' }), /KAFKA_MIN_INSYNC_REPLICAS/);
  assert.throws(
    () => loadConfig({ KAFKA_REPLICATION_FACTOR: '2', KAFKA_MIN_INSYNC_REPLICAS: '3' }),
    /KAFKA_MIN_INSYNC_REPLICAS=.*at most KAFKA_REPLICATION_FACTOR/,
  );
  // Alone, a min ISR is checked against the replication factor the cluster gives, at start.
  assert.equal(loadConfig({ KAFKA_MIN_INSYNC_REPLICAS: '3' }).kafka.minInsyncReplicas, 3);
  assert.throws(() => loadConfig({ KAFKA_ALLOW_WEAK_TOPICS: 'yes' }), /KAFKA_ALLOW_WEAK_TOPICS/);
});
