// The whole system with its totals on a Redis Cluster of 3 masters and 3 replicas:
// purchases over WebSocket, every total exact over gRPC and against PostgreSQL (reconcile
// reading every master), and the cluster wiped — FLUSHALL on every master — rebuilt
// exactly from the snapshots and the topic's tail.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import type { Cluster } from 'ioredis';
import { scanClients } from '../../src/adapters/redis/nodes.ts';
import { centsToDecimal } from '../../src/core/purchase.ts';
import { reconcile } from '../../src/services/reconcile.ts';
import { eventually } from '../harness/eventually.ts';
import { flushCluster, testRedisClusterNodes } from '../harness/redisCluster.ts';
import { startSystem, type StartedSystem } from '../harness/services.ts';
import { connectClient } from '../wsClient.ts';

const USERS = 300;
let system: StartedSystem;
const expected = new Map<string, number>();
let sent = 0;

/** Sends `count` purchases over one socket in array frames; resolves once all are acked. */
const send = async (count: number) => {
  const socket = await connectClient(system.ingest.url);
  try {
    for (let start = 0; start < count; start += 200) {
      const frame = Array.from({ length: Math.min(200, count - start) }, (_, i) => {
        const n = sent + start + i;
        const userId = `cluster-user-${(n * 7) % USERS}`;
        const cents = 1 + ((n * 7_919) % 100_000);
        expected.set(userId, (expected.get(userId) ?? 0) + cents);
        return { id: `c-${n}`, user_id: userId, amount: centsToDecimal(cents) };
      });
      socket.send(frame);
      const reply = await socket.next();
      assert.equal(reply.status, 'batch');
      assert.equal(reply['acked'], frame.length, JSON.stringify(reply));
    }
  } finally {
    await socket.close();
  }
  sent += count;
};

/** Waits until reconcile against PostgreSQL, over every master, finds no difference. */
const reconciled = () =>
  eventually(
    'every Redis total equal to its PostgreSQL sum',
    async () => {
      const report = await reconcile({ pool: system.ingest.pool, redis: system.wallet.redis });
      return report.differences.length === 0 && report.users === USERS;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );

const balancesExact = async () => {
  for (const [userId, cents] of expected) {
    const reply = await system.wallet.client.getBalance(userId);
    assert.deepEqual(reply, { balances: { total: Number(centsToDecimal(cents)) } }, userId);
  }
};

before(async (t) => {
  const nodes = await testRedisClusterNodes();
  system = await startSystem(t, {
    REDIS_CLUSTER_NODES: nodes.join(','),
    WALLET_SNAPSHOT_INTERVAL_MS: '300',
  });
});

test('purchases reach exact totals on the cluster, spread over every master', async () => {
  await send(3_000);
  await reconciled();
  await balancesExact();
  assert.deepEqual(await system.wallet.client.getBalance('cluster-nobody'), {
    balances: { total: 0 },
  });
  // Reconcile could only agree by reading every master: each holds some of the users.
  const prefix = system.config.redis.keyPrefix;
  const cluster = system.wallet.redis as Cluster;
  const held = await Promise.all(
    (await scanClients(cluster)).map(
      async (node) => (await node.keys(`${prefix}wallet:{b*`)).length,
    ),
  );
  assert.equal(held.length, 3);
  assert.ok(
    held.every((count) => count > 0),
    `users on every master: ${held.join(', ')}`,
  );
});

test('the cluster wiped on every master: the restarted wallet rebuilds every total exactly', async () => {
  await send(1_000);
  await reconciled();
  await system.wallet.restart(() => flushCluster(system.wallet.redis as Cluster));
  await eventually(
    'the rebuilt totals served',
    async () => {
      try {
        await system.wallet.client.getBalance('cluster-user-0');
        return true;
      } catch {
        return false;
      }
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  await reconciled();
  await balancesExact();
  // And it goes on counting.
  await send(500);
  await reconciled();
  await balancesExact();
});
