// The WalletStore contract against the published fake and against Redis (a key prefix of
// each test's own, its keys deleted afterwards).
import { createRedis } from '../../src/adapters/redis/client.ts';
import { scanTotals } from '../../src/adapters/redis/totalsScan.ts';
import { createWalletStore } from '../../src/adapters/redis/walletStore.ts';
import { createMemoryWalletStore } from '../../src/testing/index.ts';
import { clearKeyPrefix, testConfig, uniqueName } from '../helpers.ts';
import { walletStoreContract } from './walletStore.contract.ts';

walletStoreContract('memory', () => {
  const store = createMemoryWalletStore();
  return Promise.resolve({
    store,
    readBack: () => Promise.resolve(new Map(store.totals)),
    close: () => Promise.resolve(),
  });
});

walletStoreContract('redis', () => {
  const prefix = `${uniqueName('contract')}:`;
  const redis = createRedis({ url: testConfig.redis.url, keyPrefix: prefix });
  return Promise.resolve({
    store: createWalletStore(redis),
    // As the gRPC service and reconcile read them: every total under this prefix.
    readBack: async () => {
      const totals = new Map<string, number>();
      for await (const [userId, cents] of scanTotals(redis)) totals.set(userId, cents);
      return totals;
    },
    close: async () => {
      await clearKeyPrefix(redis, prefix);
      await redis.quit();
    },
  });
});
