// The Redis Cluster the cluster variants of the tests run on: the one `npm test` started
// (TEST_REDIS_CLUSTER_NODES), or, when a file runs on its own, one of its own on free
// ports, stopped when the file's tests are done.
import { after } from 'node:test';
import type { Cluster, Redis } from 'ioredis';
import { createRedis } from '../../src/adapters/redis/client.ts';
import { groupBySlot, scanClients } from '../../src/adapters/redis/nodes.ts';
import { CLUSTER_NODE_COUNT, startRedisCluster } from '../../scripts/redisCluster.ts';
import { givenRedisClusterNodes } from '../helpers.ts';
import { freePort } from './processes.ts';

let nodes: Promise<readonly string[]> | undefined;

const startOwn = async (): Promise<readonly string[]> => {
  const ports: number[] = [];
  // Two free ports a node: its clients' and its cluster bus's.
  while (ports.length < 2 * CLUSTER_NODE_COUNT) {
    const port = await freePort();
    if (!ports.includes(port)) ports.push(port);
  }
  const cluster = await startRedisCluster({
    ports: ports.slice(0, CLUSTER_NODE_COUNT),
    busPorts: ports.slice(CLUSTER_NODE_COUNT),
  });
  after(() => cluster.stop());
  return cluster.nodes;
};

/**
 * The seed nodes (`127.0.0.1:<port>`) of the suite's Redis Cluster of 3 masters and 3
 * replicas. Call it at a file's top level: a cluster of the file's own is stopped by a
 * top-level `after`.
 */
export const testRedisClusterNodes = (): Promise<readonly string[]> => {
  nodes ??=
    givenRedisClusterNodes === undefined ? startOwn() : Promise.resolve(givenRedisClusterNodes);
  return nodes;
};

/** A Cluster client on the suite's cluster with `keyPrefix` (the caller quits it). */
export const clusterClient = async (keyPrefix: string): Promise<Cluster> =>
  createRedis({
    url: 'redis://127.0.0.1',
    clusterNodes: await testRedisClusterNodes(),
    keyPrefix,
  }) as Cluster;

/** Every key of every master under `prefix` (a glob), as Redis names them, by node. */
export const keysByNode = async (
  redis: Redis | Cluster,
  pattern: string,
): Promise<readonly (readonly [Redis, readonly string[]])[]> =>
  Promise.all(
    (await scanClients(redis)).map(async (node) => [node, await node.keys(pattern)] as const),
  );

/** Deletes keys found by {@link keysByNode} on their node, one DEL per slot. */
export const deleteByNode = async (
  redis: Redis | Cluster,
  found: readonly (readonly [Redis, readonly string[]])[],
): Promise<void> => {
  for (const [node, keys] of found) {
    const own = node.options.keyPrefix ?? '';
    for (const group of groupBySlot(redis, keys)) {
      if (group.length > 0) await node.del(...group.map((key) => key.slice(own.length)));
    }
  }
};

/** FLUSHALL on every master of the cluster: the whole cluster's data gone. */
export const flushCluster = async (redis: Cluster): Promise<void> => {
  for (const node of await scanClients(redis)) await node.flushall();
};
