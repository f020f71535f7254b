// A local Redis Cluster of 3 masters and 3 replicas from Debian's `redis-server`: for
// `npm test` and, when REDIS_CLUSTER_NODES names loopback nodes nothing serves, `npm start`.
// Loopback only, nothing on disk but each node's cluster config, in a folder of its own.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isServing, stopChild } from './children.ts';

const execFileAsync = promisify(execFile);

/** How many nodes {@link startRedisCluster} starts: 3 masters, each with a replica. */
export const CLUSTER_NODE_COUNT = 6;

/** Options of {@link startRedisCluster}. */
export interface RedisClusterOptions {
  /** The nodes' client ports, {@link CLUSTER_NODE_COUNT} of them. */
  readonly ports: readonly number[];
  /** Their cluster bus ports; each client port + 10000 unless given. */
  readonly busPorts?: readonly number[];
  /** Milliseconds before a silent master counts as failed and its replica takes over. */
  readonly nodeTimeoutMs?: number;
}

/** A running local cluster. */
export interface LocalRedisCluster {
  readonly name: string;
  stop(): Promise<void>;
  /** `127.0.0.1:<port>` of every node, masters and replicas. */
  readonly nodes: readonly string[];
  /** Each node's process, by client port (tests kill masters). */
  readonly processes: ReadonlyMap<number, ChildProcess>;
  /**
   * Starts the node on `port` again, once its process has exited, with the cluster
   * configuration it had (a master killed and restarted rejoins as its successor's
   * replica); resolves once it answers.
   */
  restartNode(port: number): Promise<void>;
}

const redisCli = async (args: readonly string[]): Promise<string> => {
  const { stdout } = await execFileAsync('redis-cli', [...args], { timeout: 30_000 });
  return stdout;
};

const clusterInfo = async (port: number): Promise<Record<string, string>> => {
  const text = await redisCli(['-h', '127.0.0.1', '-p', String(port), 'cluster', 'info']);
  return Object.fromEntries(
    text
      .split(/\r?\n/)
      .filter((line) => line.includes(':'))
      .map((line) => line.split(':', 2) as [string, string]),
  );
};

const waitUntil = async (what: string, check: () => Promise<boolean>, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

/**
 * Starts a node on each of `ports`, joins them with `redis-cli --cluster create` (one
 * replica per master) and resolves once every node reports `cluster_state:ok` and knows
 * all the others. Refuses ports something already serves. Stopping it stops the nodes and
 * removes their folder.
 */
export const startRedisCluster = async ({
  ports,
  busPorts = ports.map((port) => port + 10_000),
  nodeTimeoutMs = 2_000,
}: RedisClusterOptions): Promise<LocalRedisCluster> => {
  if (ports.length !== CLUSTER_NODE_COUNT || busPorts.length !== CLUSTER_NODE_COUNT) {
    throw new Error(`a local Redis Cluster takes ${CLUSTER_NODE_COUNT} ports`);
  }
  for (const port of [...ports, ...busPorts]) {
    if (await isServing('127.0.0.1', port)) {
      throw new Error(`port ${port} is taken: choose other ports for the local Redis Cluster`);
    }
  }
  const dir = await mkdtemp(join(tmpdir(), 'spendstream-redis-cluster-'));
  const processes = new Map<number, ChildProcess>();
  const stop = async () => {
    await Promise.all([...processes.values()].map((child) => stopChild(child, 5_000)));
    await rm(dir, { recursive: true, force: true });
  };
  const startNode = (port: number, busPort: number) => {
    const nodeDir = join(dir, String(port));
    const child = spawn(
      'redis-server',
      [
        ...['--port', String(port), '--bind', '127.0.0.1'],
        ...['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'],
        ...['--cluster-port', String(busPort)],
        ...['--cluster-node-timeout', String(nodeTimeoutMs)],
        ...['--dir', nodeDir, '--save', '', '--appendonly', 'no'],
      ],
      // A group of its own: a Ctrl-C at the terminal reaches the services, which drain,
      // and not the nodes, which are stopped after them.
      { stdio: 'ignore', cwd: nodeDir, detached: true },
    );
    processes.set(port, child);
  };
  const restartNode = async (port: number) => {
    const index = ports.indexOf(port);
    const child = processes.get(port);
    const busPort = busPorts[index];
    if (child === undefined || busPort === undefined) throw new Error(`no node on ${port}`);
    if (child.exitCode === null && child.signalCode === null) {
      throw new Error(`the node on ${port} is still running`);
    }
    startNode(port, busPort);
    await waitUntil(`redis-server on ${port}`, () => isServing('127.0.0.1', port), 10_000);
  };
  try {
    for (const [index, port] of ports.entries()) {
      await mkdir(join(dir, String(port)));
      startNode(port, busPorts[index] ?? port + 10_000);
    }
    for (const port of ports) {
      await waitUntil(`redis-server on ${port}`, () => isServing('127.0.0.1', port), 10_000);
    }
    const nodes = ports.map((port) => `127.0.0.1:${port}`);
    await redisCli(['--cluster', 'create', ...nodes, '--cluster-replicas', '1', '--cluster-yes']);
    await waitUntil(
      'Redis Cluster state ok on every node',
      async () => {
        for (const port of ports) {
          const info = await clusterInfo(port);
          if (info['cluster_state'] !== 'ok') return false;
          if (info['cluster_known_nodes'] !== String(CLUSTER_NODE_COUNT)) return false;
          if (info['cluster_slots_assigned'] !== '16384') return false;
        }
        return true;
      },
      30_000,
    );
    return { name: 'redis-cluster', nodes, processes, stop, restartNode };
  } catch (error) {
    await stop();
    throw error;
  }
};

/** `count` ports from `base` on: the local cluster's default layout (7000–7005). */
export const consecutivePorts = (base: number, count = CLUSTER_NODE_COUNT): number[] =>
  Array.from({ length: count }, (_, i) => base + i);
