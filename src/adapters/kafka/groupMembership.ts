import type { Consumer } from 'kafkajs';

/** What {@link watchMembership} tells as it happens. */
export interface MembershipEvents {
  /** The consumer joined its group, or stopped holding partitions. */
  readonly onChange: () => void;
  /** The consumer crashed (kafkajs says whether it restarts by itself). */
  readonly onCrash: (error: Error, restart: boolean) => void;
}

/** What {@link watchMembership} follows. */
export interface Membership {
  /** Whether the consumer holds its partitions now. */
  readonly assigned: boolean;
  /** The partitions of `topic` it holds now (none while not assigned). */
  partitions(topic: string): ReadonlySet<number>;
}

const NONE: ReadonlySet<number> = new Set();

/**
 * Follows whether `consumer` holds partitions, and which: from joining its group until a
 * rebalance, a stop, a lost connection or a crash, and again once it has rejoined.
 */
export const watchMembership = (
  consumer: Consumer,
  { onChange, onCrash }: MembershipEvents,
): Membership => {
  let assigned = false;
  let held = new Map<string, ReadonlySet<number>>();
  const set = (value: boolean) => {
    assigned = value;
    if (!value) held = new Map();
    onChange();
  };
  for (const event of [
    consumer.events.REBALANCING,
    consumer.events.STOP,
    consumer.events.DISCONNECT,
  ]) {
    consumer.on(event, () => set(false));
  }
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    held = new Map(
      Object.entries(payload.memberAssignment).map(([topic, partitions]) => [
        topic,
        new Set(partitions),
      ]),
    );
    set(true);
  });
  consumer.on(consumer.events.CRASH, (event) => {
    set(false);
    onCrash(event.payload.error, event.payload.restart);
  });
  return {
    get assigned() {
      return assigned;
    },
    partitions: (topic) => (assigned ? (held.get(topic) ?? NONE) : NONE),
  };
};
