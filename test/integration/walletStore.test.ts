// The Redis wallet store on one Redis and on a Redis Cluster of 3 masters and 3 replicas:
// every test runs on both, each in key prefixes of its own.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { WalletRecord } from '../../src/core/records.ts';
import { createRedis, type RedisClient } from '../../src/adapters/redis/client.ts';
import { scanClients } from '../../src/adapters/redis/nodes.ts';
import { createWalletStore } from '../../src/adapters/redis/walletStore.ts';
import { deleteAllTotals, scanTotals } from '../../src/adapters/redis/totalsScan.ts';
import {
  bucketKey,
  dirtyKey,
  markerField,
  offsetField,
  userField,
  walletKey,
  walletMetaKey,
} from '../../src/adapters/redis/walletKeys.ts';
import { readHeldLayout } from '../../src/adapters/redis/walletStore.ts';
import { bucketOf, WALLET_BUCKETS } from '../../src/core/buckets.ts';
import type { WalletStore } from '../../src/core/ports.ts';
import { clusterClient, deleteByNode, keysByNode } from '../harness/redisCluster.ts';
import { testConfig, uniqueName } from '../helpers.ts';

const TOPIC = 'user_purchase';

const escapeGlob = (text: string): string => text.replace(/[*?[\]\\]/g, '\\$&');

/** Every key under the client's prefix, without the prefix, from every master. */
const ownKeys = async (client: RedisClient): Promise<string[]> => {
  const own = client.options.keyPrefix ?? '';
  const found = await keysByNode(client, `${escapeGlob(own)}*`);
  return found.flatMap(([, keys]) => keys.map((key) => key.slice(own.length))).sort();
};

const deleteOwnKeys = async (client: RedisClient): Promise<void> => {
  const own = client.options.keyPrefix ?? '';
  await deleteByNode(client, await keysByNode(client, `${escapeGlob(own)}*`));
};

const sums = (records: readonly WalletRecord[]): Map<string, number> => {
  const expected = new Map<string, number>();
  for (const r of records) expected.set(r.userId, (expected.get(r.userId) ?? 0) + r.amountCents);
  return expected;
};

/** 5,000 records over 200 users and 3 partitions, the partitions interleaved. */
const bulk: WalletRecord[] = Array.from({ length: 5_000 }, (_, i) => ({
  partition: i % 3,
  offset: String(Math.floor(i / 3)),
  userId: `user-${(i * 7) % 200}`,
  // 1 cent, 1,000,000.00 and large amounts between, so totals pass 2^31 cents.
  amountCents: i === 0 ? 100_000_000 : i === 1 ? 1 : 90_000_001 + ((i * 7_919) % 10_000_000),
}));

/** The store's tests on the clients `open` gives: one with a plain prefix, one with globs. */
const storeSuite = (name: string, open: (prefix: string) => Promise<RedisClient>): void => {
  describe(name, () => {
    let redis: RedisClient;
    let globRedis: RedisClient;
    let store: WalletStore;

    const totals = async (client: RedisClient = redis): Promise<Map<string, number>> => {
      const found = new Map<string, number>();
      for await (const [userId, cents] of scanTotals(client, 50)) found.set(userId, cents);
      return found;
    };

    /** Every key and its value: hashes as objects, sets (the dirty users) sorted. */
    const snapshot = async (): Promise<Record<string, Record<string, string> | string[]>> => {
      const state: Record<string, Record<string, string> | string[]> = {};
      for (const key of await ownKeys(redis)) {
        state[key] =
          (await redis.type(key)) === 'set'
            ? (await redis.smembers(key)).sort()
            : await redis.hgetall(key);
      }
      return state;
    };

    before(async () => {
      redis = await open(`${uniqueName('test')}:`);
      // A prefix full of glob characters: SCAN's MATCH must treat it literally.
      globRedis = await open(`${uniqueName('test')}*?[x]\\:`);
      store = createWalletStore(redis);
    });

    beforeEach(async () => {
      await deleteOwnKeys(redis);
      await deleteOwnKeys(globRedis);
    });

    after(async () => {
      await deleteOwnKeys(redis);
      await deleteOwnKeys(globRedis);
      await redis.quit();
      await globRedis.quit();
    });

    test('5,000 records are summed exactly; the same batch again changes nothing', async () => {
      assert.deepEqual(await store.apply(TOPIC, bulk), { applied: 5_000, skipped: 0, lost: [] });
      const expected = sums(bulk);
      assert.equal(expected.size, 200);
      assert.deepEqual(await totals(), expected);
      assert.ok(Math.min(...expected.values()) > 2 ** 31);

      const before = await snapshot();
      assert.deepEqual(await store.apply(TOPIC, bulk), { applied: 0, skipped: 5_000, lost: [] });
      assert.deepEqual(await snapshot(), before);
    });

    test('a redelivery from an earlier offset applies only the records not applied yet', async () => {
      const records = (from: number, to: number): WalletRecord[] =>
        Array.from({ length: to - from }, (_, i) => ({
          partition: 0,
          offset: String(from + i),
          userId: `redelivered-${(from + i) % 4}`,
          amountCents: 100 + from + i,
        }));
      assert.deepEqual(await store.apply(TOPIC, records(0, 100)), {
        applied: 100,
        skipped: 0,
        lost: [],
      });
      assert.deepEqual(await store.apply(TOPIC, records(50, 150)), {
        applied: 50,
        skipped: 50,
        lost: [],
      });
      assert.deepEqual(await totals(), sums(records(0, 150)));
    });

    test('a record repeated within one batch is applied once', async () => {
      const at = (offset: number): WalletRecord => ({
        partition: 2,
        offset: String(offset),
        userId: 'repeated',
        amountCents: 1,
      });
      const result = await store.apply(TOPIC, [at(0), at(1), at(2), at(1), at(2), at(3)]);
      assert.deepEqual(result, { applied: 4, skipped: 2, lost: [] });
      assert.deepEqual(await totals(), new Map([['repeated', 4]]));
    });

    test("one partition's offsets do not hold back another's, nor another topic's", async () => {
      const record = (partition: number, offset: string, amountCents: number): WalletRecord => ({
        partition,
        offset,
        userId: 'mover',
        amountCents,
      });
      assert.equal((await store.apply(TOPIC, [record(0, '10', 1_000)])).applied, 1);
      // Lower offsets, but on another partition: new records.
      assert.equal(
        (await store.apply(TOPIC, [record(1, '5', 200), record(2, '0', 30)])).applied,
        2,
      );
      assert.equal((await store.apply('other_topic', [record(0, '10', 4)])).applied, 1);
      // At or below what partition 0 of TOPIC applied: already counted.
      assert.deepEqual(
        await store.apply(TOPIC, [record(0, '5', 99_999), record(0, '10', 99_999)]),
        {
          applied: 0,
          skipped: 2,
          lost: [],
        },
      );
      assert.equal((await store.apply(TOPIC, [record(1, '6', 5)])).applied, 1);
      assert.deepEqual(await totals(), new Map([['mover', 1_239]]));
      // Offsets past 2^32 (and past Lua's 14 printed digits) are stored as sent.
      assert.equal((await store.apply(TOPIC, [record(1, '123456789012345', 1)])).applied, 1);
      assert.equal((await store.apply(TOPIC, [record(1, '123456789012344', 1)])).applied, 0);
      assert.deepEqual(await redis.hgetall(walletKey('mover')), {
        total: '1240',
        [offsetField(TOPIC, 0)]: '10',
        [offsetField(TOPIC, 1)]: '123456789012345',
        [offsetField(TOPIC, 2)]: '0',
        [offsetField('other_topic', 0)]: '10',
      });
    });

    test("each user's state is one hash: the keys are the users', the buckets', their dirty sets and the meta key", async () => {
      await store.markInitialised(TOPIC);
      const spans = [0, 1, 2].map((partition) => ({ partition, from: '0', to: '1667' }));
      await store.apply(TOPIC, bulk, { spans });
      const users = [...sums(bulk).keys()];
      const buckets = Array.from({ length: WALLET_BUCKETS }, (_, bucket) => bucketKey(bucket));
      // A bucket's dirty set holds the users changed since its last snapshot: here, all of them.
      const touched = [...new Set(users.map(bucketOf))].map(dirtyKey);
      assert.deepEqual(
        await ownKeys(redis),
        [...users.map(walletKey), ...buckets, ...touched, walletMetaKey(TOPIC)].sort(),
      );
      for (const bucket of new Set(users.map(bucketOf))) {
        assert.deepEqual(
          (await redis.smembers(dirtyKey(bucket))).sort(),
          users.filter((user) => bucketOf(user) === bucket).sort(),
        );
      }
      // A user's key carries the bucket's tag first: `wallet:{b<bucket>}:<id>`.
      assert.equal(walletKey('user-0'), `wallet:{b${bucketOf('user-0')}}:user-0`);
      const fields = Object.keys(await redis.hgetall(walletKey('user-0'))).sort();
      assert.deepEqual(
        fields,
        [offsetField(TOPIC, 0), offsetField(TOPIC, 1), offsetField(TOPIC, 2)]
          .concat('total')
          .sort(),
      );
      // The bucket's hash: when Redis was initialised, the markers, one field per user.
      const bucket = bucketOf('user-0');
      const own = users.filter((user) => bucketOf(user) === bucket);
      assert.deepEqual(
        Object.keys(await redis.hgetall(bucketKey(bucket))).sort(),
        ['since', ...[0, 1, 2].map((p) => markerField(TOPIC, p)), ...own.map(userField)].sort(),
      );
      assert.equal(await redis.hget(bucketKey(bucket), markerField(TOPIC, 1)), '1667');
    });

    test('a whole batch is one script call per bucket, in one pipeline per node', async (t) => {
      await store.markInitialised(TOPIC);
      // One Redis, or each master of the cluster: every bucket's call reaches one of them.
      const nodes = await scanClients(redis);
      const watchers = nodes.map((node) => node.duplicate());
      const monitors = await Promise.all(watchers.map((watcher) => watcher.monitor()));
      const commands: string[] = [];
      const perNode = monitors.map((monitor) => {
        const seen = { evals: 0 };
        monitor.on('monitor', (_time: string, args: string[]) => {
          const command = args[0]?.toLowerCase();
          if (command === undefined) return;
          commands.push(command);
          if (command === 'evalsha' || command === 'eval') seen.evals += 1;
        });
        return seen;
      });
      const pipelines = t.mock.method(redis, 'pipeline');
      try {
        await store.apply(TOPIC, bulk, { spans: [{ partition: 0, from: '0', to: '1667' }] });
        await Promise.all(nodes.map((node) => node.ping()));
        await new Promise((resolve) => setTimeout(resolve, 50));
      } finally {
        pipelines.mock.restore();
        for (const monitor of monitors) monitor.disconnect();
        for (const watcher of watchers) watcher.disconnect();
      }
      // 200 users, 64 buckets: 64 calls, not 200 (the first one as EVAL, loading the script).
      assert.equal(commands.filter((c) => c === 'evalsha' || c === 'eval').length, WALLET_BUCKETS);
      // Each node got its buckets' calls, and each in one pipeline.
      assert.ok(perNode.every(({ evals }) => evals > 0));
      assert.equal(pipelines.mock.callCount(), nodes.length);
    });

    test('a record the wallet cannot apply exactly fails the batch before anything is written', async () => {
      const good: WalletRecord = { partition: 0, offset: '1', userId: 'good', amountCents: 100 };
      for (const bad of [
        { partition: 0, offset: '2', userId: 'bad', amountCents: 49.99 },
        { partition: 0, offset: '-1', userId: 'bad', amountCents: 1 },
        { partition: 0, offset: '9007199254740993', userId: 'bad', amountCents: 1 },
      ]) {
        await assert.rejects(store.apply(TOPIC, [good, bad]), { code: 'internal' });
      }
      assert.deepEqual(await ownKeys(redis), []);
    });

    test('initialised: false at first, true once marked, false again once the data is gone', async () => {
      assert.equal(await store.isInitialised(TOPIC), false);
      await store.markInitialised(TOPIC);
      assert.equal(await store.isInitialised(TOPIC), true);
      assert.equal(await store.isInitialised('other_topic'), false);
      // Marking again keeps the time this Redis first held the topic.
      const since = await redis.hget(walletMetaKey(TOPIC), 'initialised');
      await new Promise((resolve) => setTimeout(resolve, 5));
      await store.markInitialised(TOPIC);
      assert.equal(await redis.hget(walletMetaKey(TOPIC), 'initialised'), since);

      await deleteOwnKeys(redis);
      assert.equal(await store.isInitialised(TOPIC), false);
    });

    test('totals held in an older key layout count as not initialised, and are told apart', async () => {
      assert.equal(await readHeldLayout(redis, TOPIC), 'none');
      // Layout 1: one hash per user tagged with the user id, a meta hash without a layout.
      await redis.hset('wallet:{old-user}', { total: '500', [offsetField(TOPIC, 0)]: '3' });
      await redis.hset(walletMetaKey(TOPIC), 'initialised', '2024-01-01T00:00:00.000Z');
      assert.equal(await readHeldLayout(redis, TOPIC), 'older');
      assert.equal(await store.isInitialised(TOPIC), false);
      // The replay deletes every key of either layout, and only the meta hashes stay.
      await store.apply(TOPIC, bulk.slice(0, 10), {
        spans: [{ partition: 0, from: '0', to: '4' }],
      });
      assert.ok((await deleteAllTotals(redis, 7)) > 10);
      assert.deepEqual(await ownKeys(redis), [walletMetaKey(TOPIC)]);
      await store.markInitialised(TOPIC);
      assert.equal(await readHeldLayout(redis, TOPIC), 'current');
      assert.equal(await store.isInitialised(TOPIC), true);
      // Marking again keeps the time this Redis first held the topic.
      assert.equal(
        await redis.hget(walletMetaKey(TOPIC), 'initialised'),
        '2024-01-01T00:00:00.000Z',
      );
    });

    test("totals are scanned under the client's own key prefix only, glob characters and all", async () => {
      await store.apply(TOPIC, bulk.slice(0, 30));
      await store.markInitialised(TOPIC);
      const other = createWalletStore(globRedis);
      const mine: WalletRecord[] = [
        { partition: 0, offset: '0', userId: 'glob-a', amountCents: 5 },
        { partition: 0, offset: '1', userId: 'glob-b}{', amountCents: 7 },
        { partition: 0, offset: '2', userId: '', amountCents: 11 },
      ];
      assert.equal((await other.apply(TOPIC, mine)).applied, 3);
      await other.markInitialised(TOPIC);
      assert.deepEqual(await totals(globRedis), sums(mine));
      assert.deepEqual(await totals(redis), sums(bulk.slice(0, 30)));
    });
  });
};

storeSuite('one Redis', (keyPrefix) =>
  Promise.resolve(createRedis({ url: testConfig.redis.url, keyPrefix })),
);
storeSuite('Redis Cluster', clusterClient);
