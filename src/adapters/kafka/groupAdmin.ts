import type { Admin } from 'kafkajs';
import { translateKafkaError } from './client.ts';
import type { GroupOffsets } from './groupOffsets.ts';

/**
 * Points `groupId` at the start of `topic`, or at the offsets `to` (a snapshot's), so the
 * next member replays everything the store lacks (it skips what it holds). Only possible
 * while the group has no live member; returns false when it has one (the coordinator
 * refuses the commit then, whatever the group's state said a moment before).
 */
export const rewindGroup = async (
  admin: Admin,
  offsets: GroupOffsets,
  groupId: string,
  topic: string,
  to?: ReadonlyMap<number, bigint>,
): Promise<boolean> => {
  let state: string;
  let starts: Awaited<ReturnType<Admin['fetchTopicOffsets']>>;
  try {
    const { groups } = await admin.describeGroups([groupId]);
    state = groups[0]?.state ?? 'Dead';
    if (state !== 'Dead' && state !== 'Empty') return false;
    // No such group yet (Dead): its first member starts at the beginning anyway.
    if (to === undefined && state === 'Dead') return true;
    starts = await admin.fetchTopicOffsets(topic);
  } catch (error) {
    throw translateKafkaError(error);
  }
  // Partitions left out start from their beginning.
  return offsets.commit(
    groupId,
    topic,
    new Map(starts.map(({ partition, low }) => [partition, to?.get(partition) ?? BigInt(low)])),
  );
};

/** Per partition of `topic`, its log start offset: records before it were deleted. */
export const fetchLogStarts = async (admin: Admin, topic: string): Promise<Map<number, bigint>> => {
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return new Map(offsets.map(({ partition, low }) => [partition, BigInt(low)]));
  } catch (error) {
    throw translateKafkaError(error);
  }
};

/** How far a consumer group is behind in one partition. */
export interface PartitionLag {
  readonly topic: string;
  readonly partition: number;
  /** Records after the group's committed offset: high watermark minus committed offset. */
  readonly lag: number;
}

/**
 * The group's lag in every partition of `topic`, from two admin requests: the partitions'
 * high watermarks and the group's committed offsets. A partition the group never
 * committed counts from its low watermark (the group starts from the beginning).
 */
export const fetchConsumerLag = async (
  admin: Admin,
  groupId: string,
  topic: string,
): Promise<PartitionLag[]> => {
  try {
    const [watermarks, committed] = await Promise.all([
      admin.fetchTopicOffsets(topic),
      admin.fetchOffsets({ groupId, topics: [topic] }),
    ]);
    const offsets = new Map(
      (committed.find((entry) => entry.topic === topic)?.partitions ?? []).map(
        ({ partition, offset }) => [partition, BigInt(offset)],
      ),
    );
    return watermarks.map(({ partition, high, low }) => {
      const done = offsets.get(partition) ?? -1n;
      const from = done < 0n ? BigInt(low) : done;
      const lag = BigInt(high) - from;
      return { topic, partition, lag: lag > 0n ? Number(lag) : 0 };
    });
  } catch (error) {
    throw translateKafkaError(error);
  }
};

/** The offsets `groupId` has committed in `topic`; partitions without one are left out. */
export const fetchCommittedOffsets = async (
  admin: Admin,
  groupId: string,
  topic: string,
): Promise<Map<number, bigint>> => {
  try {
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map(
      (committed.find((entry) => entry.topic === topic)?.partitions ?? [])
        .filter(({ offset }) => BigInt(offset) >= 0n)
        .map(({ partition, offset }) => [partition, BigInt(offset)]),
    );
  } catch (error) {
    throw translateKafkaError(error);
  }
};

/**
 * Whether `groupId` has committed, in every partition of `targets`, at least the offset
 * given: everything before it is applied.
 */
export const hasCommittedUpTo = async (
  admin: Admin,
  groupId: string,
  topic: string,
  targets: ReadonlyMap<number, bigint>,
): Promise<boolean> => {
  try {
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
    const offsets = new Map(
      (committed.find((entry) => entry.topic === topic)?.partitions ?? []).map(
        ({ partition, offset }) => [partition, BigInt(offset)],
      ),
    );
    return [...targets].every(([partition, target]) => (offsets.get(partition) ?? -1n) >= target);
  } catch (error) {
    throw translateKafkaError(error);
  }
};

/** The high watermark of every partition of `topic` that holds records. */
export const fetchTopicEnds = async (admin: Admin, topic: string): Promise<Map<number, bigint>> => {
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return new Map(
      offsets
        .filter(({ high, low }) => BigInt(high) > BigInt(low))
        .map(({ partition, high }) => [partition, BigInt(high)]),
    );
  } catch (error) {
    throw translateKafkaError(error);
  }
};
