import type { Consumer } from 'kafkajs';

/** What {@link watchMembership} tells as it happens. */
export interface MembershipEvents {
  /** The consumer joined its group, or stopped holding partitions. */
  readonly onChange: () => void;
  /** The consumer crashed (kafkajs says whether it restarts by itself). */
  readonly onCrash: (error: Error, restart: boolean) => void;
}

/**
 * Follows whether `consumer` holds partitions: true from joining its group until a
 * rebalance, a stop, a lost connection or a crash, and again once it has rejoined.
 */
export const watchMembership = (
  consumer: Consumer,
  { onChange, onCrash }: MembershipEvents,
): { readonly assigned: boolean } => {
  let assigned = false;
  const set = (value: boolean) => {
    assigned = value;
    onChange();
  };
  for (const event of [
    consumer.events.REBALANCING,
    consumer.events.STOP,
    consumer.events.DISCONNECT,
  ]) {
    consumer.on(event, () => set(false));
  }
  consumer.on(consumer.events.GROUP_JOIN, () => set(true));
  consumer.on(consumer.events.CRASH, (event) => {
    set(false);
    onCrash(event.payload.error, event.payload.restart);
  });
  return {
    get assigned() {
      return assigned;
    },
  };
};
