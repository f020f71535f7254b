// The topics the services create on a replicated Kafka, read back with Kafka's own admin
// API: a 3-broker cluster of scripts/kafka (KAFKA_BROKERS_LOCAL=3) on ports of its own,
// started once for the file, and the suite's single broker.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ConfigResourceTypes } from 'kafkajs';
import { isServing, ROOT, run } from '../../scripts/infra.ts';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import type { Config } from '../../src/config.ts';
import { ConfigError, WeakTopicError } from '../../src/core/errors.ts';
import { startIngestProcess } from '../harness/processes.ts';
import { startIngest, startSystem, startWallet } from '../harness/services.ts';
import { ownDatabase, ownTopics } from '../harness/stores.ts';
import { eventually } from '../harness/eventually.ts';
import { configWith, uniqueName } from '../helpers.ts';
import { flatten } from '../wsClient.ts';

// Broker i on 9492 + 2(i-1), its controller on the port after: 9492 to 9497, clear of the
// suite's broker (9092) and of other local brokers.
const CLUSTER_PORT = 9492;
const CLUSTER_PORTS = Array.from({ length: 6 }, (_, i) => CLUSTER_PORT + i);
/** Settings that point a service at the cluster: its first broker only. */
const onCluster = { KAFKA_BROKERS: `127.0.0.1:${CLUSTER_PORT}` };

// ConfigResourceTypes.TOPIC: kafkajs's CommonJS entry does not show its enums to imports.
const TOPIC_RESOURCE: ConfigResourceTypes = 2;

/** A topic's replication as Kafka reports it: per partition, and its min.insync.replicas. */
const replicationOf = async (kafka: Config['kafka'], topic: string) => {
  const admin = createKafka(kafka).admin();
  await admin.connect();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: TOPIC_RESOURCE, name: topic, configNames: ['min.insync.replicas'] }],
    });
    return {
      partitions: (topics[0]?.partitions ?? []).map((partition) => ({
        leader: partition.leader,
        replicas: partition.replicas.length,
        inSync: partition.isr.length,
      })),
      minInsyncReplicas: resources[0]?.configEntries[0]?.configValue,
    };
  } finally {
    await admin.disconnect();
  }
};

/** Creates `topic` the way a hand or an older version did: one replica, min ISR 1. */
const createWeakTopic = async (kafka: Config['kafka'], topic: string) => {
  const admin = createKafka(kafka).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic,
          numPartitions: 2,
          replicationFactor: 1,
          configEntries: [{ name: 'min.insync.replicas', value: '1' }],
        },
      ],
    });
  } finally {
    await admin.disconnect();
  }
};

describe('on a 3-broker cluster', () => {
  let dataDir = '';
  const clusterEnv = () => ({
    KAFKA_BROKERS_LOCAL: '3',
    KAFKA_PORT: String(CLUSTER_PORT),
    KAFKA_CONTROLLER_PORT: String(CLUSTER_PORT + 1),
    KAFKA_DATA_DIR: dataDir,
    // Three JVMs on a shared machine: a test's topics need little heap.
    KAFKA_HEAP_OPTS: '-Xms128m -Xmx256m',
    KAFKA_START_TIMEOUT: '180',
  });
  const clusterKafka = configWith(onCluster).kafka;

  before(async () => {
    // start.sh would take a broker answering there for its own and start nothing.
    const taken = [];
    for (const port of CLUSTER_PORTS) if (await isServing('127.0.0.1', port)) taken.push(port);
    assert.deepEqual(taken, [], `the cluster's ports ${CLUSTER_PORTS.join(', ')} must be free`);
    dataDir = await mkdtemp(join(tmpdir(), 'spendstream-kafka3-'));
    const started = Date.now();
    await run('bash', [join(ROOT, 'scripts/kafka/start.sh')], clusterEnv());
    process.stdout.write(`# 3-broker cluster ready in ${Date.now() - started} ms\n`);
  });

  after(async () => {
    if (dataDir === '') return;
    await run('bash', [join(ROOT, 'scripts/kafka/stop.sh')], clusterEnv());
    await rm(dataDir, { recursive: true, force: true });
  });

  test('the topics the services create have 3 replicas and min.insync.replicas 2', async (t) => {
    const { config, ingest, wallet } = await startSystem(t, onCluster);
    // Users on every partition: the client found each partition's leader from broker 1.
    const client = await ingest.connect();
    const purchases = Array.from({ length: 30 }, (_, i) => ({ user_id: `rf3-${i}`, amount: 1 }));
    client.send(purchases);
    const replies = flatten([await client.next()]);
    assert.deepEqual(
      replies.map((reply) => reply.status),
      purchases.map(() => 'ack'),
    );
    await eventually('the wallet counting rf3-0', async () => {
      return (await wallet.client.getBalance('rf3-0')).balances['total'] === 1;
    });

    const purchaseTopic = await replicationOf(config.kafka, config.kafka.topic);
    const deadLetters = await replicationOf(config.kafka, config.wallet.deadLetterTopic);
    process.stdout.write(`# ${config.kafka.topic}: ${JSON.stringify(purchaseTopic)}\n`);
    process.stdout.write(`# ${config.wallet.deadLetterTopic}: ${JSON.stringify(deadLetters)}\n`);
    for (const topic of [purchaseTopic, deadLetters]) {
      assert.equal(topic.minInsyncReplicas, '2');
      for (const partition of topic.partitions) {
        assert.deepEqual([partition.replicas, partition.inSync], [3, 3]);
      }
    }
    assert.equal(purchaseTopic.partitions.length, 3);
    assert.deepEqual(
      new Set(purchaseTopic.partitions.map((partition) => partition.leader)),
      new Set([1, 2, 3]),
      'the partitions are led by all three brokers',
    );
  });

  test('an ingest refuses to start on a topic with one replica, and exits 1', async (t) => {
    const topic = uniqueName('test_weak');
    ownTopics(t, clusterKafka, [topic]);
    await createWeakTopic(clusterKafka, topic);
    const databaseUrl = await ownDatabase(t);
    const env = { ...onCluster, KAFKA_TOPIC: topic, DATABASE_URL: databaseUrl, WS_PORT: '0' };

    await assert.rejects(
      startIngestProcess(env),
      (error: Error) =>
        /exited with 1 before it was ready/.test(error.message) &&
        /kafka topic weaker than configured: refusing to start/.test(error.message) &&
        error.message.includes(
          `Kafka topic ${topic} is weaker than configured: 1 replica(s) per partition where ` +
            'the replication factor is 3; min.insync.replicas=1 where 2 is configured',
        ),
    );
    assert.deepEqual(
      (await replicationOf(clusterKafka, topic)).partitions.map((p) => p.replicas),
      [1, 1],
      'the topic is left as it was',
    );
  });

  test('with KAFKA_ALLOW_WEAK_TOPICS=1 the ingest starts on it and acks', async (t) => {
    const topic = uniqueName('test_weak');
    ownTopics(t, clusterKafka, [topic]);
    await createWeakTopic(clusterKafka, topic);
    const ingest = await startIngest(t, {
      ...onCluster,
      KAFKA_TOPIC: topic,
      KAFKA_ALLOW_WEAK_TOPICS: '1',
    });
    const client = await ingest.connect();
    client.send({ user_id: 'weak-1', amount: 2 });
    assert.equal((await client.next()).status, 'ack');
  });

  test('a wallet refuses a weak dead-letter topic as it does the purchase topic', async (t) => {
    const deadLetters = uniqueName('test_weak_dead_letters');
    ownTopics(t, clusterKafka, [deadLetters]);
    await createWeakTopic(clusterKafka, deadLetters);
    await assert.rejects(
      startWallet(t, { ...onCluster, KAFKA_DEAD_LETTER_TOPIC: deadLetters }),
      (error: unknown) => error instanceof WeakTopicError && error.topic === deadLetters,
    );
  });
});

test('on one broker the topics get one replica and min.insync.replicas 1', async (t) => {
  const { config } = await startIngest(t);
  const replication = await replicationOf(config.kafka, config.kafka.topic);
  assert.equal(replication.minInsyncReplicas, '1');
  assert.deepEqual(
    replication.partitions.map((partition) => partition.replicas),
    [1, 1, 1],
  );
});

test('on one broker a replication factor of 2 fails the start, naming the setting', async (t) => {
  await assert.rejects(
    startIngest(t, { KAFKA_REPLICATION_FACTOR: '2' }),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.variables.includes('KAFKA_REPLICATION_FACTOR') &&
      /the cluster lists 1 broker/.test(error.message),
  );
});
