// Faults of the distributed stores under steady load, on a topology of the file's own:
// a 3-broker Kafka (scripts/kafka, KAFKA_BROKERS_LOCAL=3) on 127.0.0.1:9992–9997 and a
// Redis Cluster of 3 masters and 3 replicas on 7610–7615 (bus ports 17610–17615), both
// started once for the file and stopped at its end, never the suite's own. A Redis master
// is SIGKILLed, its replica (held behind it) promoted by the cluster, and the lost writes
// repaired by the wallet, then the old master restarted as a replica; the broker leading
// most partitions of the topic is SIGKILLed while acks go on from the in-sync replicas,
// then restarted until its replicas are in sync again. After each, the
// invariants: nothing acked lost, nothing counted twice, every total exact.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import type { Admin } from 'kafkajs';
import { isServing, ROOT, run } from '../../scripts/infra.ts';
import { startRedisCluster, type LocalRedisCluster } from '../../scripts/redisCluster.ts';
import { createRedis } from '../../src/adapters/redis/client.ts';
import { keySlot } from '../../src/adapters/redis/nodes.ts';
import { walletMetaKey } from '../../src/adapters/redis/walletKeys.ts';
import { eventually } from '../harness/eventually.ts';
import { createCluster, type Cluster, type Offsets, type Topology } from './cluster.ts';
import { checkInvariants } from './invariants.ts';
import { baseSettings, FULL, sleep } from './level.ts';
import { reportScenario } from './report.ts';
import { startLoad, type Load } from './load.ts';

/** Durations and sizes of the level: `reduced` fits `npm test`, `full` is the real run. */
const settings = {
  ...baseSettings,
  /** How long the load goes on with a broker down once acks have resumed. */
  outageMs: FULL ? 15_000 : 3_000,
  /** How far behind its master the replica is held before the master is killed. */
  replicaLagMs: FULL ? 3_000 : 1_000,
};

const KAFKA_PORT = 9992;
const REDIS_PORTS = Array.from({ length: 6 }, (_, i) => 7610 + i);
const BROKERS = [1, 2, 3].map((id) => `127.0.0.1:${KAFKA_PORT + 2 * (id - 1)}`);
// A master silent for 1 s is failed over: the default of 15 s would make the test long.
const REDIS_NODE_TIMEOUT_MS = 1_000;

let kafkaDataDir = '';
let redisCluster: LocalRedisCluster | undefined;
const kafkaEnv = () => ({
  KAFKA_BROKERS_LOCAL: '3',
  KAFKA_PORT: String(KAFKA_PORT),
  KAFKA_CONTROLLER_PORT: String(KAFKA_PORT + 1),
  KAFKA_DATA_DIR: kafkaDataDir,
  KAFKA_HEAP_OPTS: '-Xms128m -Xmx384m',
  KAFKA_START_TIMEOUT: '180',
});
const topology: Topology = {
  kafkaBrokers: BROKERS.join(','),
  redisClusterNodes: REDIS_PORTS.map((port) => `127.0.0.1:${port}`),
};

before(async () => {
  const ports = [
    ...Array.from({ length: 6 }, (_, i) => KAFKA_PORT + i),
    ...REDIS_PORTS,
    ...REDIS_PORTS.map((port) => port + 10_000),
  ];
  const taken = [];
  for (const port of ports) if (await isServing('127.0.0.1', port)) taken.push(port);
  assert.deepEqual(taken, [], `the topology's ports ${ports.join(', ')} must be free`);
  kafkaDataDir = await mkdtemp(join(tmpdir(), 'spendstream-reliability-kafka3-'));
  await Promise.all([
    run('bash', [join(ROOT, 'scripts/kafka/start.sh')], kafkaEnv()),
    startRedisCluster({ ports: REDIS_PORTS, nodeTimeoutMs: REDIS_NODE_TIMEOUT_MS }).then(
      (started) => {
        redisCluster = started;
      },
    ),
  ]);
});

after(async () => {
  await redisCluster?.stop();
  if (kafkaDataDir === '') return;
  await run('bash', [join(ROOT, 'scripts/kafka/stop.sh')], kafkaEnv());
  await rm(kafkaDataDir, { recursive: true, force: true });
});

/** What a fault reports back. */
interface FaultOutcome {
  readonly recoveryMs: number | undefined;
  readonly extra: Readonly<Record<string, number | string>>;
  /** Checks of the scenario's own, run after the invariants. */
  readonly check: () => void;
}

/**
 * One scenario on the file's topology: the ingest and a wallet, steady load, the fault,
 * more load, then stop, resend, check, record, assert.
 */
const scenario = async (
  t: TestContext,
  name: string,
  fault: (cluster: Cluster, load: Load) => Promise<FaultOutcome>,
): Promise<void> => {
  const cluster = await createCluster({ name, partitions: 6, topology });
  let load: Load | undefined;
  try {
    await Promise.all([cluster.startIngest(), cluster.startWallet()]);
    load = startLoad({ url: cluster.ingestUrl, ...settings });
    await load.waitForAcks(100, 60_000);
    await sleep(settings.beforeMs);
    const outcome = await fault(cluster, load);
    await sleep(settings.afterMs);
    await load.stop();
    const resend = await load.resendUnacked(settings.resendDeadlineMs);
    const report = await checkInvariants(cluster, load, resend, settings);
    const extra = { ...report.extra, ...outcome.extra };
    reportScenario(t, name, report, outcome.recoveryMs, extra);
    outcome.check();
    assert.ok(cluster.ingest?.running, 'the ingest service still runs');
    assert.ok(cluster.wallets[0]?.running, 'the wallet still runs');
  } catch (error) {
    t.diagnostic(`service logs of ${cluster.name}: ${cluster.logDir}`);
    await load?.stop().catch(() => undefined);
    await cluster.close().catch((cleanup: unknown) => t.diagnostic(`cleanup: ${String(cleanup)}`));
    throw error;
  }
  await cluster.close();
};

const withAdmin = async <T>(cluster: Cluster, use: (admin: Admin) => Promise<T>): Promise<T> => {
  const admin = cluster.kafka.admin();
  await admin.connect();
  try {
    return await use(admin);
  } finally {
    await admin.disconnect();
  }
};

/** Each partition of the topic: its leader and its in-sync replicas. */
const partitionsOf = (cluster: Cluster) =>
  withAdmin(cluster, async (admin) => {
    const { topics } = await admin.fetchTopicMetadata({ topics: [cluster.topic] });
    return (topics[0]?.partitions ?? []).map((p) => ({ leader: p.leader, isr: p.isr }));
  });

const TIMEOUT = { timeout: FULL ? 900_000 : 300_000 };

/** A node of `CLUSTER NODES`. */
interface ClusterNode {
  readonly id: string;
  readonly port: number;
  readonly master: boolean;
  /** The id of its master, for a replica. */
  readonly masterId: string;
  readonly slots: readonly (readonly [number, number])[];
}

const clusterNodes = async (port: number): Promise<ClusterNode[]> => {
  const redis = createRedis({ url: `redis://127.0.0.1:${port}` });
  try {
    const text = String(await redis.call('CLUSTER', 'NODES'));
    return text
      .trim()
      .split('\n')
      .map((line) => {
        const [id = '', address = '', flags = '', masterId = '', , , , , ...slots] =
          line.split(' ');
        return {
          id,
          port: Number(address.split('@')[0]?.split(':')[1]),
          master: flags.split(',').includes('master') && !flags.includes('fail'),
          masterId,
          slots: slots
            .filter((slot) => !slot.startsWith('['))
            .map((slot) => {
              const [from = '', to = from] = slot.split('-');
              return [Number(from), Number(to)] as const;
            }),
        };
      });
  } finally {
    redis.disconnect();
  }
};

/** `INFO replication` of the node on `port`, by field. */
const replicationOf = async (port: number): Promise<Record<string, string>> => {
  const redis = createRedis({ url: `redis://127.0.0.1:${port}` });
  try {
    const text = await redis.info('replication');
    return Object.fromEntries(
      text
        .split(/\r?\n/)
        .filter((line) => line.includes(':'))
        .map((line) => line.split(':', 2) as [string, string]),
    );
  } finally {
    redis.disconnect();
  }
};

/** Buckets whose markers are below `targets` on some partition. */
const bucketsBehind = async (cluster: Cluster, targets: Offsets): Promise<number | undefined> => {
  const markers = await cluster.bucketMarkers().catch(() => undefined);
  if (markers === undefined) return undefined;
  return [...markers.values()].filter((bucket) =>
    [...targets].some(([p, offset]) => BigInt(bucket?.get(p) ?? '0') < offset),
  ).length;
};

test(
  'a Redis master SIGKILLed under load, its replica promoted behind it, then restarted',
  TIMEOUT,
  (t) =>
    scenario(t, 'redis-master-failover', async (cluster) => {
      const nodes = redisCluster;
      assert.ok(nodes, 'the Redis Cluster runs');
      // A master of buckets only: not the one holding the topic's meta hash, whose loss
      // would be a Redis that lost everything (rebuilt, not repaired).
      const metaSlot = keySlot(walletMetaKey(cluster.topic));
      const view = await clusterNodes(REDIS_PORTS[0] ?? 0);
      const master = view.find(
        (node) =>
          node.master &&
          node.slots.length > 0 &&
          !node.slots.some(([from, to]) => from <= metaSlot && metaSlot <= to),
      );
      const replica = view.find((node) => !node.master && node.masterId === master?.id);
      assert.ok(master && replica, `a master with a replica: ${JSON.stringify(view)}`);
      const masterProcess = nodes.processes.get(master.port);
      const replicaProcess = nodes.processes.get(replica.port);
      assert.ok(masterProcess && replicaProcess);

      // Behind its master: the replica frozen and its link cut while the master takes
      // writes, which the wallet commits. The promotion then loses them.
      replicaProcess.kill('SIGSTOP');
      const direct = createRedis({ url: `redis://127.0.0.1:${master.port}` });
      try {
        await direct.call('CLIENT', 'KILL', 'TYPE', 'replica');
      } finally {
        direct.disconnect();
      }
      await sleep(settings.replicaLagMs);
      const committed = await cluster.committedOffsets();
      masterProcess.kill('SIGKILL');
      const killedAt = Date.now();
      replicaProcess.kill('SIGCONT');

      await eventually(
        'the replica promoted by the cluster',
        async () => {
          const role = await replicationOf(replica.port).catch(() => undefined);
          return role?.['role'] === 'master';
        },
        { timeoutMs: 60_000, intervalMs: 100 },
      );
      const promotedAt = Date.now();
      const behind = (await bucketsBehind(cluster, committed)) ?? 'n/a';
      const repaired = await eventually(
        'every bucket back at the offsets committed before the kill',
        async () => (await bucketsBehind(cluster, committed)) === 0,
        { timeoutMs: settings.catchUpTimeoutMs, intervalMs: 100, onTimeout: 'resolve' },
      );
      const repairedMs = Date.now() - promotedAt;

      await nodes.restartNode(master.port);
      const restartedAt = Date.now();
      await eventually(
        'the old master rejoined as a replica of the promoted one',
        async () => {
          const role = await replicationOf(master.port).catch(() => undefined);
          return (
            role?.['role'] === 'slave' &&
            role['master_port'] === String(replica.port) &&
            role['master_link_status'] === 'up'
          );
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      const rejoinedMs = Date.now() - restartedAt;
      const [wallet] = cluster.wallets;
      return {
        recoveryMs: repaired ? repairedMs : undefined,
        extra: {
          replicaLagMs: settings.replicaLagMs,
          failoverMs: promotedAt - killedAt,
          bucketsBehindAtPromotion: behind,
          repairedAfterPromotionMs: repaired ? repairedMs : 'n/a',
          oldMasterRejoinedMs: rejoinedMs,
        },
        check: () => {
          assert.ok(repaired, 'every bucket repaired');
          assert.ok(
            wallet?.logLine('Redis lost records of a bucket: repairing it'),
            'the wallet found the writes the promoted replica lacked',
          );
          assert.equal(
            wallet?.logLine('Redis lost the totals; stopping so that a restart rebuilds them'),
            undefined,
            'repaired in place, not stopped for a rebuild',
          );
        },
      };
    }),
);

// Known to fail (run, reported as a todo): after the kill, the ingest's transactional
// producer keeps getting CONCURRENT_TRANSACTIONS from its transaction coordinator on
// AddPartitionsToTxn, long after the broker is back, and purchases are refused
// `unavailable` past the resend deadline (nothing acked is lost), and some records are
// published twice (docs/reliability.md). Run after it on the same cluster, the Redis
// scenario saw records published twice too. Ordered last for that reason.
const KNOWN_FAILURE = {
  todo: 'after a broker is killed the ingest producer stays refused with CONCURRENT_TRANSACTIONS',
};

test(
  'the broker leading most partitions SIGKILLed under load, then restarted',
  { ...TIMEOUT, ...KNOWN_FAILURE },
  (t) =>
    scenario(t, 'kafka-leader-sigkill', async (cluster, load) => {
      const before = await partitionsOf(cluster);
      assert.ok(
        before.every((p) => p.isr.length === 3),
        `every replica in sync first: ${JSON.stringify(before)}`,
      );
      const led = new Map<number, number>();
      for (const { leader } of before) led.set(leader, (led.get(leader) ?? 0) + 1);
      const [victim = 1, partitionsLed = 0] = [...led].sort(([, a], [, b]) => b - a)[0] ?? [];
      const pid = Number(
        readFileSync(join(kafkaDataDir, `broker-${victim}`, 'kafka.pid'), 'utf8').trim(),
      );
      const ackedAtKill = load.ackedCount;
      process.kill(pid, 'SIGKILL');
      const killedAt = Date.now();

      // The controller fences the broker once its session times out and elects new leaders
      // from the in-sync replicas, two of three: still min.insync.replicas.
      await eventually(
        'new leaders elected from the in-sync replicas',
        async () => {
          const now = await partitionsOf(cluster).catch(() => undefined);
          return now !== undefined && now.every((p) => p.leader !== victim);
        },
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      const leadersMovedMs = Date.now() - killedAt;
      const ackedAtNewLeaders = load.ackedCount;
      load.markHealed();
      const firstAckMs = await load.firstAckSinceHealed(60_000);
      await sleep(settings.outageMs);
      const during = await partitionsOf(cluster);
      const acksDuringOutage = load.ackedCount - ackedAtKill;
      const acksWithTwoReplicas = load.ackedCount - ackedAtNewLeaders;
      const outageMs = Date.now() - killedAt;

      await run('bash', [join(ROOT, 'scripts/kafka/start.sh')], kafkaEnv());
      const restartedAt = Date.now();
      const caughtUp = await eventually(
        'the restarted broker back in every ISR',
        async () => {
          const now = await partitionsOf(cluster).catch(() => undefined);
          return now !== undefined && now.every((p) => p.isr.length === 3);
        },
        { timeoutMs: settings.catchUpTimeoutMs, intervalMs: 250, onTimeout: 'resolve' },
      );
      const isrFullMs = Date.now() - restartedAt;
      return {
        recoveryMs: caughtUp ? isrFullMs : undefined,
        extra: {
          brokerKilled: victim,
          partitionsLed: `${partitionsLed} of ${before.length}`,
          leadersMovedMs,
          acksBeforeNewLeaders: ackedAtNewLeaders - ackedAtKill,
          firstAckAfterNewLeadersMs: firstAckMs,
          acksDuringOutage,
          acksWithTwoReplicas,
          isrDuringOutage: [...new Set(during.map((p) => p.isr.length))].join('/'),
          outageMs,
          isrFullAfterRestartMs: caughtUp ? isrFullMs : 'n/a',
        },
        check: () => {
          assert.ok(acksWithTwoReplicas > 0, 'acks went on with one broker down');
          assert.ok(
            during.every((p) => p.isr.length >= 2 && !p.isr.includes(victim)),
            `two in sync without the killed broker: ${JSON.stringify(during)}`,
          );
          assert.ok(caughtUp, 'the restarted broker caught up: every ISR full again');
        },
      };
    }),
);
