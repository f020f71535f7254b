// A consumer group's committed offsets, set from outside the group: one OffsetCommit
// request with no member id and no generation, which the group's coordinator accepts only
// while the group has no member. (kafkajs's admin.setOffsets joins the group with a
// consumer of its own to do this, which costs the broker's initial rebalance delay, 3 s by
// default, and more, on every call.)
import { Admin } from '@platformatic/kafka';
import { StoreUnavailableError } from '../../core/errors.ts';
import type { KafkaConfig } from './client.ts';

/** Sets a group's committed offsets while it has no member. */
export interface GroupOffsets {
  /**
   * Commits `offsets` (per partition of `topic`) for `groupId`. Resolves false, committing
   * nothing, when the group has a member; rejects when Kafka cannot be asked.
   */
  commit(groupId: string, topic: string, offsets: ReadonlyMap<number, bigint>): Promise<boolean>;
  close(): Promise<void>;
}

// The coordinator's answers to a commit without a member while the group has members.
const MEMBERS_PRESENT = new Set([
  'UNKNOWN_MEMBER_ID',
  'ILLEGAL_GENERATION',
  'REBALANCE_IN_PROGRESS',
]);

/** The protocol error ids anywhere in `error`'s nested errors. */
const protocolErrors = (error: unknown): string[] => {
  if (typeof error !== 'object' || error === null) return [];
  const { apiId, errors } = error as { apiId?: unknown; errors?: unknown };
  const nested = Array.isArray(errors) ? errors.flatMap(protocolErrors) : [];
  return typeof apiId === 'string' ? [apiId, ...nested] : nested;
};

/** Opens {@link GroupOffsets} on the cluster of `config`. */
export const createGroupOffsets = (config: KafkaConfig): GroupOffsets => {
  const admin = new Admin({
    clientId: `${config.clientId}-group-offsets`,
    bootstrapBrokers: [...config.brokers],
    timeout: 5_000,
    retries: 2,
  });
  return {
    commit: async (groupId, topic, offsets) => {
      const partitionOffsets = [...offsets].map(([partition, offset]) => ({ partition, offset }));
      try {
        await admin.alterConsumerGroupOffsets({
          groupId,
          topics: [{ name: topic, partitionOffsets }],
        });
        return true;
      } catch (error) {
        const ids = protocolErrors(error);
        if (ids.length > 0 && ids.every((id) => MEMBERS_PRESENT.has(id))) return false;
        throw new StoreUnavailableError(
          'kafka',
          `Kafka did not take the offsets of group ${groupId}: ${[...new Set(ids)].join(', ') || (error instanceof Error ? error.message : String(error))}`,
          { cause: error },
        );
      }
    },
    close: async () => {
      await admin.close();
    },
  };
};
