// What the rebuild and outage benches wait for and check in a wallet, as its users see it:
// gRPC health SERVING, the group caught up, and every total equal to the sum it must be.
import { createKafka } from '../src/adapters/kafka/client.ts';
import { fetchConsumerLag } from '../src/adapters/kafka/groupAdmin.ts';
import { checkWalletHealth, connectWallet } from '../src/adapters/grpc/walletClient.ts';
import { createRedis } from '../src/adapters/redis/client.ts';
import type { ServiceProcess } from '../test/harness/processes.ts';
import { eventually } from '../test/harness/eventually.ts';

/** The wallet's gRPC address, from its line saying it serves (it may listen on port 0). */
export const grpcAddressOf = (wallet: ServiceProcess): string => {
  const address = wallet.logLine('wallet service serving')?.['grpc'];
  if (typeof address !== 'string') throw new Error(`${wallet.name} logged no gRPC address`);
  return address;
};

/** Resolves once the wallet's gRPC health says SERVING; fails past `timeoutMs`. */
export const waitServing = async (wallet: ServiceProcess, timeoutMs: number): Promise<void> => {
  const address = grpcAddressOf(wallet);
  await eventually(
    `${wallet.name} reporting SERVING`,
    async () => {
      if (!wallet.running) throw new Error(`${wallet.name} exited:\n${wallet.tail.join('\n')}`);
      return (await checkWalletHealth(address, 1_000).catch(() => 'UNREACHABLE')) === 'SERVING';
    },
    { timeoutMs, intervalMs: 25 },
  );
};

/** Resolves once `groupId` has committed every record of `topic`; fails past `timeoutMs`. */
export const waitCaughtUp = async (
  brokers: readonly string[],
  topic: string,
  groupId: string,
  timeoutMs: number,
): Promise<void> => {
  const admin = createKafka({ brokers, clientId: 'spendstream-bench' }).admin();
  await admin.connect();
  try {
    await eventually(
      `${groupId} caught up with ${topic}`,
      async () => {
        const lag = await fetchConsumerLag(admin, groupId, topic).catch(() => undefined);
        return lag !== undefined && lag.every((partition) => partition.lag === 0);
      },
      { timeoutMs, intervalMs: 250 },
    );
  } finally {
    await admin.disconnect();
  }
};

/** Calls made at once while reading every total. */
const CONCURRENT_READS = 64;

/**
 * Reads every user's total of `expected` through the wallet's `GetBalance`; counts the
 * users whose total differs (a read that fails counts as differing), a few described.
 */
export const differingTotals = async (
  wallet: ServiceProcess,
  expected: ReadonlyMap<string, number>,
): Promise<{ readonly differing: number; readonly examples: readonly string[] }> => {
  const client = connectWallet(grpcAddressOf(wallet));
  const users = [...expected.keys()];
  const examples: string[] = [];
  let differing = 0;
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: CONCURRENT_READS }, async () => {
        while (next < users.length) {
          const userId = users[next++] ?? '';
          const want = expected.get(userId) ?? 0;
          const got = await client.getBalance(userId, 10_000).then(
            (reply) => Math.round((reply.balances['total'] ?? 0) * 100),
            (error: unknown) => `error ${String((error as { code?: number }).code ?? error)}`,
          );
          if (got === want) continue;
          differing += 1;
          if (examples.length < 5) examples.push(`${userId}: ${got} cents, expected ${want}`);
        }
      }),
    );
  } finally {
    client.close();
  }
  return { differing, examples };
};

/** Throws unless every total of `expected` reads as expected: a wrong rebuild fails the bench. */
export const assertTotals = async (
  what: string,
  wallet: ServiceProcess,
  expected: ReadonlyMap<string, number>,
): Promise<void> => {
  const { differing, examples } = await differingTotals(wallet, expected);
  if (differing > 0) {
    throw new Error(
      `${what}: ${differing} of ${expected.size} totals are wrong, e.g. ${examples.join('; ')}`,
    );
  }
};

/** Deletes every key under `prefix` in the Redis at `url`, as a Redis that lost its data. */
export const wipeKeyPrefix = async (url: string, prefix: string): Promise<void> => {
  if (prefix === '') throw new Error('refusing to wipe a whole Redis');
  const redis = createRedis({ url });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1_000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
};
