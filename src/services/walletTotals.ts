import type { Admin } from 'kafkajs';
import type { Redis } from 'ioredis';
import { fetchTopicEnds, rewindGroup } from '../adapters/kafka/groupAdmin.ts';
import { withRebuildLock } from '../adapters/redis/rebuildLock.ts';
import { markRebuild } from '../adapters/redis/rebuildMarker.ts';
import { deleteAllTotals } from '../adapters/redis/totalsScan.ts';
import { readHeldLayout } from '../adapters/redis/walletStore.ts';
import { WALLET_LAYOUT } from '../adapters/redis/walletKeys.ts';
import { SpendstreamError } from '../core/errors.ts';
import type { WalletStore } from '../core/ports.ts';
import type { Logger } from '../logger.ts';

/** What {@link prepareTotals} works on. */
export interface PrepareTotalsDeps {
  readonly store: WalletStore;
  readonly admin: Admin;
  readonly redis: Redis;
  readonly topic: string;
  readonly groupId: string;
  readonly logger: Logger;
}

/**
 * Makes Redis ready to hold the totals of `topic`. When it holds none (first start, or it
 * lost its data) or holds them in an older key layout, the group is rewound so the topic
 * is replayed from the start; that needs the group to have no live member, and the start
 * is refused otherwise. The totals are then marked incomplete until the group has
 * committed the offsets the topic had reached.
 */
export const prepareTotals = async (deps: PrepareTotalsDeps): Promise<void> => {
  const { store, redis, topic, logger } = deps;
  if (await store.isInitialised(topic)) return;
  // One rebuild at a time: a second wallet starting beside the first would rewind the
  // group and delete the totals the first is rebuilding. It waits, then finds them held.
  await withRebuildLock(
    redis,
    topic,
    async () => {
      if (await store.isInitialised(topic)) return;
      await rebuild(deps);
    },
    {
      onWait: () =>
        logger.info('another wallet is preparing the totals: waiting for it', { topic }),
    },
  );
};

/** Rewinds the group and marks the totals incomplete: see {@link prepareTotals}. */
const rebuild = async ({
  store,
  admin,
  redis,
  topic,
  groupId,
  logger,
}: PrepareTotalsDeps): Promise<void> => {
  const older = (await readHeldLayout(redis, topic)) === 'older';
  if (!(await rewindGroup(admin, groupId, topic))) {
    // Consuming on from the group's offsets would leave the lost totals lost for good, or
    // (an older layout) apply the rest where this version does not read.
    throw new SpendstreamError(
      'unavailable',
      `Redis holds ${older ? 'the totals in an older key layout' : 'no totals'} for ${topic} ` +
        `but other members of ${groupId} are running; ` +
        'stop every wallet instance, then start them again to replay the topic',
    );
  }
  // Hashes written since Redis lost its data (by a wallet that ran on meanwhile) hold
  // offsets that would make the replay skip everything before them: start from nothing.
  const deleted = await deleteAllTotals(redis);
  // Before the totals count as held: a crash in between rebuilds again.
  const ends = await fetchTopicEnds(admin, topic);
  // An empty topic has nothing to replay: its totals (none) are complete at once.
  if (ends.size > 0) await markRebuild(redis, topic, ends);
  const replayUpTo = Object.fromEntries([...ends].map(([p, o]) => [p, String(o)]));
  if (older) {
    logger.info('Redis holds the totals in an older key layout: rebuilding them from the topic', {
      topic,
      layout: WALLET_LAYOUT,
      oldKeysDeleted: deleted,
      replayUpTo,
    });
  } else {
    logger.info('Redis holds no totals for the topic: replaying it from the start', {
      topic,
      partialTotalsDeleted: deleted,
      replayUpTo,
    });
  }
  await store.markInitialised(topic);
};
