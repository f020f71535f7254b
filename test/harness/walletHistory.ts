// A purchase topic's history as a wallet test writes it: purchases published straight to
// the topic, the sum each user must end with, and waits on the wallet's group and totals.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { Admin, Kafka } from 'kafkajs';
import type { ManagedPurchasePublisher } from '../../src/adapters/kafka/purchasePublisher.ts';
import { fetchConsumerLag } from '../../src/adapters/kafka/groupAdmin.ts';
import type { RedisClient } from '../../src/adapters/redis/client.ts';
import { scanTotals } from '../../src/adapters/redis/totalsScan.ts';
import type { Purchase } from '../../src/core/purchase.ts';
import { eventually } from './eventually.ts';

/** Runs `run` with a connected admin client of `kafka`, disconnecting it after. */
export const withAdmin = async <T>(kafka: Kafka, run: (admin: Admin) => Promise<T>) => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await run(admin);
  } finally {
    await admin.disconnect();
  }
};

/** Every log line of a JSON log file whose `msg` is `msg` (none while the file is missing). */
export const logLines = async (file: string, msg: string): Promise<Record<string, unknown>[]> =>
  (await readFile(file, 'utf8').catch(() => ''))
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry['msg'] === msg);

export interface WalletHistoryOptions {
  readonly kafka: Kafka;
  readonly topic: string;
  readonly groupId: string;
  /** Users are `<userPrefix><n>` for n below `users`, in turn. */
  readonly userPrefix: string;
  readonly users: number;
  /** The publisher to send with, once the test has made it. */
  readonly publisher: () => ManagedPurchasePublisher;
}

export interface WalletHistory {
  /** Each user's sum of what was published, in cents. */
  readonly expected: ReadonlyMap<string, number>;
  /** Publishes `count` purchases, for `users` in turn when given. */
  readonly publish: (count: number, users?: readonly string[]) => Promise<void>;
  /** Waits until the group has committed everything published. */
  readonly committedAll: () => Promise<void>;
  /** Waits until every total in `redis` is its user's sum, failing if one is ever above. */
  readonly totalsExact: (redis: RedisClient) => Promise<void>;
}

export const walletHistory = (options: WalletHistoryOptions): WalletHistory => {
  const { kafka, topic, groupId } = options;
  const expected = new Map<string, number>();
  let sent = 0;
  return {
    expected,
    publish: async (count, users = []) => {
      const purchases: Purchase[] = Array.from({ length: count }, (_, i) => ({
        id: `${topic}-${sent + i}`,
        userId:
          users[i % Math.max(1, users.length)] ??
          `${options.userPrefix}${(sent + i) % options.users}`,
        amountCents: 1 + (((sent + i) * 7_919) % 50_000),
      }));
      sent += count;
      await options.publisher().publish(purchases);
      for (const p of purchases)
        expected.set(p.userId, (expected.get(p.userId) ?? 0) + p.amountCents);
    },
    committedAll: async () => {
      await eventually(
        'the wallet group committing every record',
        () =>
          withAdmin(kafka, async (admin) =>
            (await fetchConsumerLag(admin, groupId, topic)).every(({ lag }) => lag === 0),
          ),
        { timeoutMs: 60_000, intervalMs: 200 },
      );
    },
    totalsExact: async (redis) => {
      let wrong: string[] = [];
      await eventually(
        () => `every total equal to the sum published (not yet: ${wrong.slice(0, 5).join(', ')})`,
        async () => {
          const totals = new Map<string, number>();
          for await (const [userId, cents] of scanTotals(redis)) totals.set(userId, cents);
          const users = new Set([...expected.keys(), ...totals.keys()]);
          wrong = [...users]
            .filter((user) => totals.get(user) !== expected.get(user))
            .map((user) => `${user}: ${totals.get(user)} of ${expected.get(user)}`);
          const over = [...users].filter(
            (user) => (totals.get(user) ?? 0) > (expected.get(user) ?? 0),
          );
          assert.deepEqual(over, [], 'no purchase is ever counted twice');
          return wrong.length === 0;
        },
        { timeoutMs: 90_000, intervalMs: 250 },
      );
    },
  };
};
