// Redis key layout of the wallet: one hash per user, one meta hash per topic.

/** Field of a user's hash holding their total in integer cents. */
export const TOTAL_FIELD = 'total';

/** Field of a topic's meta hash present once this Redis holds that topic's totals. */
export const INITIALISED_FIELD = 'initialised';

/**
 * A user's hash: `wallet:{<userId>}`. The braces are a Redis Cluster hash tag, so every
 * step of applying to one user touches one slot.
 */
export const walletKey = (userId: string): string => `wallet:{${userId}}`;

/** A topic's meta hash: `wallet:meta:{<topic>}`. */
export const walletMetaKey = (topic: string): string => `wallet:meta:{${topic}}`;

/** Field of a user's hash holding the last offset applied to them from one partition. */
export const offsetField = (topic: string, partition: number): string => `o:${topic}:${partition}`;

/**
 * Field of a topic's meta hash present while a rebuild replays the topic: the offsets per
 * partition the group must have committed before the totals are complete again.
 */
export const REBUILD_FIELD = 'rebuild';
