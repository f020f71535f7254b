// What differs between one Redis and a Redis Cluster, in one place: which node serves a key,
// how many keys may share a pipeline, and which nodes a SCAN must visit.
import { once } from 'node:events';
import type { ChainableCommander, Cluster, Redis, ScanStreamOptions } from 'ioredis';
import { SpendstreamError, StoreUnavailableError } from '../../core/errors.ts';
import { translateRedisError, type RedisClient } from './client.ts';

/** How many hash slots a Redis Cluster has. */
export const CLUSTER_SLOTS = 16_384;

const crc16 = (bytes: Uint8Array): number => {
  // CRC-16/XMODEM, as Redis Cluster computes it.
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit += 1) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
};

/**
 * The hash slot of a key as Redis names it (every prefix included): of its hash tag, the
 * text between its first `{` and the next `}` when not empty, or else of the whole key.
 */
export const keySlot = (key: string): number => {
  const bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) % CLUSTER_SLOTS;
  }
  return crc16(bytes) % CLUSTER_SLOTS;
};

/** Whether `redis` is a Cluster client. */
export const isCluster = (redis: RedisClient): redis is Cluster =>
  (redis as { isCluster?: boolean }).isCluster === true;

/** One command of {@link execPerNode}: the key that routes it, and how to add it. */
export interface RoutedCall {
  /** A key of the command, as the client takes it (without the client's prefix). */
  readonly key: string;
  readonly add: (pipeline: ChainableCommander) => unknown;
}

/** Each command's `[error, reply]`, as a pipeline gives them. */
export type CallResults = [error: Error | null, reply: unknown][];

const execPipeline = async (pipeline: ChainableCommander): Promise<CallResults> => {
  let results: Awaited<ReturnType<ChainableCommander['exec']>>;
  try {
    results = await pipeline.exec();
  } catch (error) {
    throw translateRedisError(error);
  }
  if (results === null) throw new SpendstreamError('internal', 'Redis discarded a pipeline');
  return results;
};

/**
 * Sends `calls` in one pipeline per node, the pipelines at once, and gives each call's
 * result in the order of `calls`. On one Redis that is one pipeline; a Cluster client
 * takes a pipeline only when every key in it is served by the same nodes. Until the client
 * knows the cluster's slots, each slot gets its own pipeline. Each command's error is in
 * its result; a pipeline that fails as a whole rejects (translated).
 */
export const execPerNode = async (
  redis: RedisClient,
  calls: readonly RoutedCall[],
): Promise<CallResults> => {
  const groups = new Map<string, number[]>();
  if (isCluster(redis)) {
    const prefix = redis.options.keyPrefix ?? '';
    for (const [index, call] of calls.entries()) {
      const slot = keySlot(`${prefix}${call.key}`);
      const group = redis.slots[slot]?.join(',') ?? `slot ${slot}`;
      let members = groups.get(group);
      if (members === undefined) groups.set(group, (members = []));
      members.push(index);
    }
  } else {
    groups.set(
      '',
      calls.map((_, index) => index),
    );
  }
  const results: CallResults = new Array<[Error | null, unknown]>(calls.length);
  await Promise.all(
    [...groups.values()].map(async (members) => {
      const pipeline = redis.pipeline();
      for (const index of members) calls[index]?.add(pipeline);
      const replies = await execPipeline(pipeline);
      for (const [at, index] of members.entries()) results[index] = replies[at] ?? [null, null];
    }),
  );
  return results;
};

const READY_TIMEOUT_MS = 10_000;

/**
 * The clients a SCAN must visit to see every key: `redis` itself, or each master of a
 * Cluster that serves slots. Refuses when the cluster does not serve every slot (a SCAN
 * would then miss keys without saying so). The clients of a Cluster's nodes add no key
 * prefix, whatever the Cluster's.
 */
export const scanClients = async (redis: RedisClient): Promise<readonly Redis[]> => {
  if (!isCluster(redis)) return [redis];
  try {
    if (redis.status !== 'ready') {
      await once(redis, 'ready', { signal: AbortSignal.timeout(READY_TIMEOUT_MS) });
    }
  } catch (error) {
    throw new StoreUnavailableError('redis', 'Redis Cluster is not ready', { cause: error });
  }
  const serving = new Set<string>();
  for (let slot = 0; slot < CLUSTER_SLOTS; slot += 1) {
    const master = redis.slots[slot]?.[0];
    if (master === undefined) {
      throw new StoreUnavailableError('redis', `Redis Cluster serves no node for slot ${slot}`);
    }
    serving.add(master);
  }
  const masters = redis
    .nodes('master')
    .filter((node) => serving.has(`${node.options.host}:${node.options.port}`));
  if (masters.length < serving.size) {
    throw new StoreUnavailableError('redis', 'Redis Cluster has masters this client cannot reach');
  }
  return masters;
};

/** One page of {@link scanEveryNode}. */
export interface ScanPage {
  /** The node the keys are on; it adds `nodePrefix` to every key it is given. */
  readonly node: Redis;
  readonly nodePrefix: string;
  /** The keys as Redis names them, every prefix included. */
  readonly keys: readonly string[];
}

/**
 * SCANs every node that holds keys of `redis` (one Redis, or every master of a Cluster),
 * one page at a time. SCAN's MATCH is not prefixed by ioredis: `options.match` is the
 * whole key name.
 */
export async function* scanEveryNode(
  redis: RedisClient,
  options: ScanStreamOptions,
): AsyncGenerator<ScanPage> {
  for (const node of await scanClients(redis)) {
    const nodePrefix = node.options.keyPrefix ?? '';
    for await (const keys of node.scanStream(options) as AsyncIterable<string[]>) {
      if (keys.length > 0) yield { node, nodePrefix, keys };
    }
  }
}

/**
 * Groups keys (as Redis names them) so that each group may go in one multi-key command:
 * on a Cluster, one group per slot; on one Redis, one group; none for no keys.
 */
export const groupBySlot = (redis: RedisClient, keys: readonly string[]): string[][] => {
  // No keys, no group: a multi-key command needs one key at least.
  if (keys.length === 0) return [];
  if (!isCluster(redis)) return [[...keys]];
  const slots = new Map<number, string[]>();
  for (const key of keys) {
    const slot = keySlot(key);
    let group = slots.get(slot);
    if (group === undefined) slots.set(slot, (group = []));
    group.push(key);
  }
  return [...slots.values()];
};
