import type { Admin } from 'kafkajs';
import type { RedisClient } from '../adapters/redis/client.ts';
import { fetchLogStarts, fetchTopicEnds, rewindGroup } from '../adapters/kafka/groupAdmin.ts';
import type { GroupOffsets } from '../adapters/kafka/groupOffsets.ts';
import { withRebuildLock } from '../adapters/redis/rebuildLock.ts';
import { markRebuild } from '../adapters/redis/rebuildMarker.ts';
import { deleteAllTotals } from '../adapters/redis/totalsScan.ts';
import {
  readHeldLayout,
  readHeldTopicId,
  writeHeldTopicId,
} from '../adapters/redis/walletStore.ts';
import { WALLET_LAYOUT } from '../adapters/redis/walletKeys.ts';
import { RecordsDeletedError, SpendstreamError } from '../core/errors.ts';
import type { WalletStore } from '../core/ports.ts';
import type { Logger } from '../logger.ts';
import type { WalletMetrics } from '../metrics.ts';
import type { WalletSnapshots } from './walletSnapshots.ts';

/** What {@link prepareTotals} works on. */
export interface PrepareTotalsDeps {
  readonly store: WalletStore;
  readonly admin: Admin;
  /** Sets the group's offsets for a rebuild, while it has no member. */
  readonly groupOffsets: GroupOffsets;
  readonly redis: RedisClient;
  readonly topic: string;
  /** The topic's id now: totals held for another id are of a topic deleted since. */
  readonly topicId: string;
  readonly groupId: string;
  /** Where a rebuild starts from; without, it replays the topic from the start. */
  readonly snapshots?: Pick<WalletSnapshots, 'restore'>;
  readonly metrics?: Pick<WalletMetrics, 'recordsDeleted'>;
  readonly logger: Logger;
}

/** Why Redis's totals cannot be used as they are. */
type Unusable = 'none' | 'older' | 'other-topic';

const unusable = async (deps: PrepareTotalsDeps): Promise<Unusable | undefined> => {
  const { store, redis, topic, topicId } = deps;
  if (!(await store.isInitialised(topic))) {
    return (await readHeldLayout(redis, topic)) === 'older' ? 'older' : 'none';
  }
  const held = await readHeldTopicId(redis, topic);
  // Totals from before topics' ids were recorded: the topic's, as nothing says otherwise.
  if (held === undefined) {
    await writeHeldTopicId(redis, topic, topicId);
    return undefined;
  }
  return held === topicId ? undefined : 'other-topic';
};

/**
 * Makes Redis ready to hold the totals of `topic`. When it holds none (first start, or it
 * lost its data), holds them in an older key layout, or holds those of an earlier topic
 * of the same name (deleted and created again), they are rebuilt: from the latest
 * snapshot when there is one, then the group is pointed at the snapshot's offsets (or the
 * start) so that the tail is replayed; that needs the group to have no live member, and
 * the start is refused otherwise. The totals are then marked incomplete until the group
 * has committed the offsets the topic had reached.
 */
export const prepareTotals = async (deps: PrepareTotalsDeps): Promise<void> => {
  const { redis, topic, logger } = deps;
  if ((await unusable(deps)) === undefined) return;
  // One rebuild at a time: a second wallet starting beside the first would rewind the
  // group and delete the totals the first is rebuilding. It waits, then finds them held.
  await withRebuildLock(
    redis,
    topic,
    async () => {
      const why = await unusable(deps);
      if (why !== undefined) await rebuild(deps, why);
    },
    {
      onWait: () =>
        logger.info('another wallet is preparing the totals: waiting for it', { topic }),
    },
  );
};

const DESCRIBED: Record<Unusable, string> = {
  none: 'no totals',
  older: 'the totals in an older key layout',
  'other-topic': 'the totals of an earlier topic of that name (deleted since)',
};

/** The log line of a rebuild, by why it is needed. */
export const REBUILDING: Record<Unusable, string> = {
  none: 'Redis holds no totals for the topic: rebuilding them',
  older: 'Redis holds the totals in an older key layout: rebuilding them',
  'other-topic': 'Redis holds the totals of an earlier topic of this name: rebuilding them',
};

/** Rebuilds the totals and marks them incomplete: see {@link prepareTotals}. */
const rebuild = async (deps: PrepareTotalsDeps, why: Unusable): Promise<void> => {
  const { store, admin, groupOffsets, redis, topic, topicId, groupId, logger } = deps;
  const started = performance.now();
  // The group must be idle before anything is deleted; it is pointed at the tail below.
  if (!(await rewindGroup(admin, groupOffsets, groupId, topic, new Map()))) {
    // Consuming on from the group's offsets would leave the lost totals lost for good, or
    // (an older layout) apply the rest where this version does not read.
    throw new SpendstreamError(
      'unavailable',
      `Redis holds ${DESCRIBED[why]} for ${topic} but other members of ${groupId} are ` +
        'running; stop every wallet instance, then start them again to rebuild the totals',
    );
  }
  // Hashes written since Redis lost its data (by a wallet that ran on meanwhile) hold
  // offsets that would make the replay skip everything before them: start from nothing.
  const deleted = await deleteAllTotals(redis);
  const restored =
    deps.snapshots === undefined
      ? { buckets: 0, users: 0, from: new Map<number, bigint>() }
      : await deps.snapshots.restore();
  // The tail must still be in the topic: a retention that deleted part of it would leave
  // totals short for good, and serving them is worse than not serving.
  const starts = await fetchLogStarts(admin, topic);
  for (const [partition, start] of starts) {
    const needed = restored.from.get(partition) ?? 0n;
    if (start > needed) {
      deps.metrics?.recordsDeleted.inc({ partition: String(partition) });
      throw new RecordsDeletedError(topic, partition, String(needed), String(start));
    }
  }
  if (!(await rewindGroup(admin, groupOffsets, groupId, topic, restored.from))) {
    throw new SpendstreamError(
      'unavailable',
      `a member of ${groupId} joined while the totals of ${topic} were being rebuilt; ` +
        'stop every wallet instance, then start them again',
    );
  }
  // Before the totals count as held: a crash in between rebuilds again.
  const ends = await fetchTopicEnds(admin, topic);
  // An empty topic has nothing to replay: its totals (none) are complete at once.
  if (ends.size > 0) await markRebuild(redis, topic, ends);
  const text = (offsets: ReadonlyMap<number, bigint>) =>
    Object.fromEntries([...offsets].map(([p, o]) => [p, String(o)]));
  logger.info(REBUILDING[why], {
    topic,
    topicId,
    layout: WALLET_LAYOUT,
    keysDeleted: deleted,
    snapshotBuckets: restored.buckets,
    snapshotUsers: restored.users,
    replayFrom: text(restored.from),
    replayUpTo: text(ends),
    restoreMs: Math.round(performance.now() - started),
  });
  await writeHeldTopicId(redis, topic, topicId);
  await store.markInitialised(topic);
};
