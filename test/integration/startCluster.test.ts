// `npm run start:cluster` as a user runs it, on ports of its own (Kafka 9892–9897, Redis
// 7600–7605 and their bus ports 17600–17605) so that it meets neither the suite's broker
// nor its Redis Cluster: it serves the WebSocket and gRPC contract, its topics have 3
// replicas and min ISR 2 as Kafka's admin API reports them, the totals spread over the
// Redis Cluster's masters, and a Ctrl-C (SIGINT to its process group) stops every process
// it started and nothing else.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ConfigResourceTypes } from 'kafkajs';
import type { Cluster } from 'ioredis';
import { isServing, ROOT, run } from '../../scripts/infra.ts';
import { createKafka } from '../../src/adapters/kafka/client.ts';
import { createRedis } from '../../src/adapters/redis/client.ts';
import { scanClients } from '../../src/adapters/redis/nodes.ts';
import { userIdOfKey } from '../../src/adapters/redis/walletKeys.ts';
import { connectWallet } from '../grpcClient.ts';
import { eventually } from '../harness/eventually.ts';
import { freePort } from '../harness/processes.ts';
import { childEnv, createTestDatabase, testConfig } from '../helpers.ts';
import { connectClient, flatten } from '../wsClient.ts';

const KAFKA_PORT = 9892;
const REDIS_PORT = 7600;
const KAFKA_PORTS = Array.from({ length: 6 }, (_, i) => KAFKA_PORT + i);
const REDIS_PORTS = Array.from({ length: 6 }, (_, i) => REDIS_PORT + i);
const PORTS = [...KAFKA_PORTS, ...REDIS_PORTS, ...REDIS_PORTS.map((port) => port + 10_000)];
const BROKERS = [0, 2, 4].map((step) => `127.0.0.1:${KAFKA_PORT + step}`);

// ConfigResourceTypes.TOPIC: kafkajs's CommonJS entry does not show its enums to imports.
const TOPIC_RESOURCE: ConfigResourceTypes = 2;

/** Settings of the suite's run that would change the topology under test. */
const CLEARED = [
  'KAFKA_BROKERS_LOCAL',
  'KAFKA_CONTROLLER_PORT',
  'KAFKA_REPLICATION_FACTOR',
  'KAFKA_MIN_INSYNC_REPLICAS',
  'INGEST_WORKERS',
  'WALLET_WORKERS',
  'REDIS_KEY_PREFIX',
];

/** Process `pid` and all its descendants now, from /proc. */
const processTree = (pid: number): number[] => {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .split(' ')
      .filter((part) => part.trim() !== '')
      .map(Number);
  } catch {
    // Gone meanwhile.
  }
  return [pid, ...children.flatMap(processTree)];
};

/** Whether `pid` still runs (a zombie not yet reaped counts as gone). */
const alive = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return false;
  }
};

const commandOf = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
};

test(
  'npm run start:cluster serves the contract on 3 brokers and a Redis Cluster, and Ctrl-C stops it all',
  { timeout: 420_000, skip: existsSync('/proc/self/stat') ? false : 'needs /proc' },
  async (t) => {
    const taken = [];
    for (const port of PORTS) if (await isServing('127.0.0.1', port)) taken.push(port);
    assert.deepEqual(taken, [], `the topology's ports must be free`);
    const dataDir = await mkdtemp(join(tmpdir(), 'spendstream-start-cluster-'));
    const database = await createTestDatabase();
    const [wsPort, grpcPort, walletHttpPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const env = childEnv({});
    for (const name of CLEARED) delete env[name];
    Object.assign(env, {
      KAFKA_BROKERS: BROKERS.join(','),
      KAFKA_DATA_DIR: dataDir,
      // Three JVMs on a shared machine: a few topics need little heap.
      KAFKA_HEAP_OPTS: '-Xms128m -Xmx256m',
      KAFKA_START_TIMEOUT: '180',
      REDIS_CLUSTER_NODES: `127.0.0.1:${REDIS_PORT}`,
      DATABASE_URL: database.url,
      WS_PORT: String(wsPort),
      GRPC_PORT: String(grpcPort),
      WALLET_HTTP_PORT: String(walletHttpPort),
      WALLET_GRPC_ADDRESS: `127.0.0.1:${grpcPort}`,
      LOG_LEVEL: 'info',
    });
    const kafkaEnv = { KAFKA_BROKERS_LOCAL: '3', KAFKA_DATA_DIR: dataDir };
    // A group of its own, as a terminal gives a command: SIGINT to the group is a Ctrl-C.
    const child = spawn('npm', ['run', '--silent', 'start:cluster'], {
      cwd: ROOT,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    for (const stream of [child.stdout, child.stderr]) {
      stream.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
      });
    }
    const lastOutput = () => `its last output:\n${output.slice(-4_000)}`;
    const exited = new Promise<number | string>((resolve) =>
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
    );
    const started = new Set<number>();
    t.after(async () => {
      const kill = (pid: number) => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      };
      if (child.exitCode === null && child.signalCode === null) kill(-(child.pid ?? 0));
      for (const pid of started) if (alive(pid)) kill(pid);
      await run('bash', [join(ROOT, 'scripts/kafka/stop.sh')], kafkaEnv).catch(() => undefined);
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    });

    const readyAt = async (port: number) => {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
      return response?.status === 200;
    };
    const startedAt = Date.now();
    await eventually(
      () => `both services ready; ${lastOutput()}`,
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          assert.fail(`start:cluster exited; ${lastOutput()}`);
        }
        return (await readyAt(wsPort)) && (await readyAt(walletHttpPort));
      },
      { timeoutMs: 300_000, intervalMs: 500 },
    );
    t.diagnostic(`ready in ${Date.now() - startedAt} ms`);
    for (const pid of processTree(child.pid ?? 0)) started.add(pid);
    for (let broker = 1; broker <= 3; broker += 1) {
      started.add(Number(readFileSync(join(dataDir, `broker-${broker}`, 'kafka.pid'), 'utf8')));
    }
    const commands = [...started].map(commandOf);
    assert.equal(commands.filter((c) => c.includes('redis-server')).length, 6, 'six Redis nodes');
    assert.equal(commands.filter((c) => c.includes(' kafka.Kafka ')).length, 3, 'three brokers');
    const workers = async (port: number) => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(/^spendstream_workers_running (\d+)$/m.exec(text)?.[1]);
    };
    assert.equal(await workers(walletHttpPort), 2, 'two wallet workers');
    if (availableParallelism() > 1) {
      assert.equal(await workers(wsPort), availableParallelism(), 'an ingest worker per CPU');
    }

    // The contract: purchases over WebSocket, acked; their totals over gRPC.
    const client = await connectClient(`ws://127.0.0.1:${wsPort}/ws`);
    const purchases = Array.from({ length: 30 }, (_, i) => ({ user_id: `tc-${i}`, amount: 1.25 }));
    client.send(purchases);
    client.send({ user_id: 'tc-0', amount: '2.50' });
    const replies = flatten(await client.take(2));
    await client.close();
    assert.deepEqual(
      replies.map((reply) => reply.status),
      [...purchases, 1].map(() => 'ack'),
    );
    const wallet = connectWallet(`127.0.0.1:${grpcPort}`);
    try {
      await eventually('the wallet counting tc-0 and tc-29', async () => {
        const first = await wallet.getBalance('tc-0').catch(() => undefined);
        const last = await wallet.getBalance('tc-29').catch(() => undefined);
        return first?.balances['total'] === 3.75 && last?.balances['total'] === 1.25;
      });
      assert.deepEqual(await wallet.getBalance('tc-unknown'), { balances: { total: 0 } });
    } finally {
      wallet.close();
    }

    // Kafka's own account of the topics: 3 replicas, all in sync, min.insync.replicas 2.
    const admin = createKafka({
      ...testConfig.kafka,
      brokers: [`127.0.0.1:${KAFKA_PORT}`],
    }).admin();
    await admin.connect();
    try {
      const topics = [testConfig.kafka.topic, testConfig.wallet.deadLetterTopic];
      const { topics: metadata } = await admin.fetchTopicMetadata({ topics });
      const { resources } = await admin.describeConfigs({
        includeSynonyms: false,
        resources: topics.map((name) => ({
          type: TOPIC_RESOURCE,
          name,
          configNames: ['min.insync.replicas'],
        })),
      });
      for (const topic of metadata) {
        assert.ok(topic.partitions.length > 0);
        for (const partition of topic.partitions) {
          assert.deepEqual(
            [partition.replicas.length, partition.isr.length],
            [3, 3],
            `${topic.name}/${partition.partitionId}`,
          );
        }
      }
      assert.deepEqual(
        resources.map((resource) => resource.configEntries[0]?.configValue),
        ['2', '2'],
      );
    } finally {
      await admin.disconnect();
    }

    // A Redis Cluster of three masters, each holding some of the users' totals.
    const redis = createRedis({
      url: 'redis://127.0.0.1',
      clusterNodes: [`127.0.0.1:${REDIS_PORT}`],
      keyPrefix: '',
    }) as Cluster;
    try {
      const info = await redis.cluster('INFO');
      assert.match(info, /cluster_state:ok/);
      assert.match(info, /cluster_known_nodes:6/);
      const masters = await scanClients(redis);
      assert.equal(masters.length, 3, 'three masters');
      const users = await Promise.all(
        masters.map(async (node) =>
          (await node.keys('wallet:{b*}:tc-*')).filter((key) => userIdOfKey(key) !== undefined),
        ),
      );
      assert.equal(users.flat().length, 30);
      assert.ok(
        users.every((keys) => keys.length > 0),
        `users on every master (${users.map((keys) => keys.length).join(', ')})`,
      );
    } finally {
      redis.disconnect();
    }

    // Ctrl-C: every process it started is gone, its ports are closed, PostgreSQL serves on.
    process.kill(-(child.pid ?? 0), 'SIGINT');
    const stoppingAt = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      exited,
      new Promise((resolve) => {
        timer = setTimeout(() => resolve('still running after 120 s'), 120_000);
      }),
    ]);
    clearTimeout(timer);
    t.diagnostic(`stopped in ${Date.now() - stoppingAt} ms`);
    // npm passes the Ctrl-C on and ends by it; scripts/start.ts logs its own exit code.
    assert.ok(exit === 0 || exit === 'SIGINT', `start:cluster ended with ${String(exit)}`);
    const stopped = output.split('\n').filter((line) => line.includes('"msg":"stopped"'));
    assert.match(
      stopped.at(-1) ?? '',
      /"code":0\b/,
      `start:cluster stopped cleanly; ${lastOutput()}`,
    );
    await eventually(
      () => `every process gone: ${[...started].filter(alive).map(commandOf).join('; ')}`,
      () => [...started].every((pid) => !alive(pid)),
      { timeoutMs: 10_000 },
    );
    const open = [];
    for (const port of [...PORTS, wsPort, grpcPort, walletHttpPort]) {
      if (await isServing('127.0.0.1', port)) open.push(port);
    }
    assert.deepEqual(open, [], 'ports still served');
    const postgres = new URL(database.url);
    assert.ok(
      await isServing(postgres.hostname, Number(postgres.port || 5432)),
      'PostgreSQL serves',
    );
  },
);
