// The WalletStore contract against the published fake and against Redis (a key prefix of
// each test's own, its keys deleted afterwards) and against a Redis Cluster.
import { createRedis } from '../../src/adapters/redis/client.ts';
import { scanTotals } from '../../src/adapters/redis/totalsScan.ts';
import { bucketKey, walletKey } from '../../src/adapters/redis/walletKeys.ts';
import { createWalletStore } from '../../src/adapters/redis/walletStore.ts';
import { createMemoryWalletStore } from '../../src/testing/index.ts';
import { clearKeyPrefix, testConfig, uniqueName } from '../helpers.ts';
import { walletStoreContract } from './walletStore.contract.ts';
import { clusterClient, deleteByNode, keysByNode } from '../harness/redisCluster.ts';

walletStoreContract('memory', () => {
  const store = createMemoryWalletStore();
  return Promise.resolve({
    store,
    readBack: () => Promise.resolve(new Map(store.totals)),
    deleteUser: (userId) => Promise.resolve(store.deleteUser(userId)),
    deleteBucket: (bucket) => Promise.resolve(store.deleteBucket(bucket)),
    snapshot: () => {
      const restore = store.snapshot();
      return Promise.resolve(() => Promise.resolve(restore()));
    },
    close: () => Promise.resolve(),
  });
});

walletStoreContract('redis', () => {
  const prefix = `${uniqueName('contract')}:`;
  const redis = createRedis({ url: testConfig.redis.url, keyPrefix: prefix });
  // DUMP and RESTORE take whole key names, as KEYS gives them.
  const raw = createRedis({ url: testConfig.redis.url });
  return Promise.resolve({
    store: createWalletStore(redis),
    // As the gRPC service and reconcile read them: every total under this prefix.
    readBack: async () => {
      const totals = new Map<string, number>();
      for await (const [userId, cents] of scanTotals(redis)) totals.set(userId, cents);
      return totals;
    },
    deleteUser: async (userId) => void (await redis.del(walletKey(userId))),
    deleteBucket: async (bucket) => void (await redis.del(bucketKey(bucket))),
    // What a restart from an RDB snapshot does to this prefix's keys: each as it was then.
    snapshot: async () => {
      const keys = await raw.keys(`${prefix}*`);
      const dumps = await Promise.all(
        keys.map(async (key) => [key, await raw.dumpBuffer(key)] as const),
      );
      return async () => {
        const now = await raw.keys(`${prefix}*`);
        if (now.length > 0) await raw.del(...now);
        for (const [key, dump] of dumps) {
          if (dump !== null) await raw.restore(key, 0, dump, 'REPLACE');
        }
      };
    },
    close: async () => {
      await clearKeyPrefix(redis, prefix);
      await redis.quit();
      await raw.quit();
    },
  });
});

walletStoreContract('redis cluster', async () => {
  const prefix = `${uniqueName('contract')}:`;
  const redis = await clusterClient(prefix);
  return {
    store: createWalletStore(redis),
    // As the gRPC service and reconcile read them: every total under this prefix, on
    // every master.
    readBack: async () => {
      const totals = new Map<string, number>();
      for await (const [userId, cents] of scanTotals(redis)) totals.set(userId, cents);
      return totals;
    },
    deleteUser: async (userId) => void (await redis.del(walletKey(userId))),
    deleteBucket: async (bucket) => void (await redis.del(bucketKey(bucket))),
    // A restart of every master from an RDB snapshot: each key as it was then, on its node.
    snapshot: async () => {
      const dumps = await Promise.all(
        (await keysByNode(redis, `${prefix}*`)).map(async ([node, keys]) => ({
          node,
          keys: await Promise.all(
            keys.map(async (key) => [key, await node.dumpBuffer(key)] as const),
          ),
        })),
      );
      return async () => {
        await deleteByNode(redis, await keysByNode(redis, `${prefix}*`));
        for (const { node, keys } of dumps) {
          for (const [key, dump] of keys) {
            if (dump !== null) await node.restore(key, 0, dump, 'REPLACE');
          }
        }
      };
    },
    close: async () => {
      await clearKeyPrefix(redis, prefix);
      await redis.quit();
    },
  };
});
