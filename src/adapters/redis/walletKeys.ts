// Redis key layout of the wallet (layout 2): users split into buckets, each bucket's keys
// under one hash tag, so that on Redis Cluster a bucket lives in one slot of one node.
import { bucketOf } from '../../core/buckets.ts';

/** The layout these keys make; a topic's meta hash records the one its totals are in. */
export const WALLET_LAYOUT = '2';

/** Field of a user's hash holding their total in integer cents. */
export const TOTAL_FIELD = 'total';

/** Field of a topic's meta hash present once this Redis holds that topic's totals. */
export const INITIALISED_FIELD = 'initialised';

/** Field of a topic's meta hash naming the key layout its totals are kept in. */
export const LAYOUT_FIELD = 'layout';

/** The hash tag of a bucket: `{b<n>}`, the same for every key of the bucket. */
const bucketTag = (bucket: number): string => `{b${bucket}}`;

/**
 * A user's hash: `wallet:{b<bucket>}:<userId>`, holding the total and the last offset
 * applied to the user per partition. The tag comes first, so a user id holding braces
 * cannot move the key to another slot.
 */
export const walletKey = (userId: string): string => `${userKeyPrefix(bucketOf(userId))}${userId}`;

/** What the hash of every user of `bucket` is named before the user id. */
export const userKeyPrefix = (bucket: number): string => `wallet:${bucketTag(bucket)}:`;

/**
 * A bucket's own hash: `wallet:bucket:{b<bucket>}`, in the slot of its users. It holds the
 * bucket's markers ({@link markerField}), its register of users ({@link userField}) and
 * {@link SINCE_FIELD}; it is written in the same script as the users' hashes.
 */
export const bucketKey = (bucket: number): string => `wallet:bucket:${bucketTag(bucket)}`;

/**
 * Field of a bucket's hash: the bucket holds every record of the partition before this
 * offset — the offset the wallet commits once the batch is applied.
 */
export const markerField = (topic: string, partition: number): string => `m:${topic}:${partition}`;

/** What a register field of a bucket's hash starts with, before the user id. */
export const USER_FIELD_PREFIX = 'u:';

/** Field of a bucket's hash present for each user the bucket has a hash for. */
export const userField = (userId: string): string => `${USER_FIELD_PREFIX}${userId}`;

/**
 * A bucket's set of users changed since the last snapshot of the bucket was written:
 * `wallet:dirty:{b<bucket>}`, in the slot of its users, added to by the apply script.
 */
export const dirtyKey = (bucket: number): string => `wallet:dirty:${bucketTag(bucket)}`;

/**
 * The users a snapshot of the bucket is writing: `wallet:snapshotting:{b<bucket>}`. A
 * snapshot moves the dirty set here and removes the users it wrote once they are stored;
 * one that fails leaves them here for the next.
 */
export const snapshottingKey = (bucket: number): string =>
  `wallet:snapshotting:${bucketTag(bucket)}`;

/** What the offset fields of a topic's users start with, before the partition. */
export const offsetFieldPrefix = (topic: string): string => `o:${topic}:`;

/** Field of a topic's meta hash: the id of the Kafka topic its totals are of. */
export const TOPIC_ID_FIELD = 'topic-id';

/** Field of a bucket's hash set when Redis was initialised, so the hash is never absent. */
export const SINCE_FIELD = 'since';

/** A topic's meta hash: `wallet:meta:{<topic>}`. */
export const walletMetaKey = (topic: string): string => `wallet:meta:{${topic}}`;

/** Field of a user's hash holding the last offset applied to them from one partition. */
export const offsetField = (topic: string, partition: number): string =>
  `${offsetFieldPrefix(topic)}${partition}`;

/**
 * Field of a topic's meta hash present while a rebuild replays the topic: the offsets per
 * partition the group must have committed before the totals are complete again.
 */
export const REBUILD_FIELD = 'rebuild';

const USER_KEY = /^wallet:\{b(\d{1,4})\}:(.*)$/s;

/** The user id of a user's hash, or undefined for any other key (prefix removed). */
export const userIdOfKey = (key: string): string | undefined => {
  const match = USER_KEY.exec(key);
  if (match === null) return undefined;
  const [, bucket, userId = ''] = match;
  return bucketOf(userId) === Number(bucket) ? userId : undefined;
};

/**
 * The lock one wallet holds while it prepares (rebuilds) the totals of `topic`:
 * `wallet:rebuild-lock:{<topic>}`, so that two wallets starting at once on an empty Redis
 * never both rewind the group and delete each other's progress.
 */
export const rebuildLockKey = (topic: string): string => `wallet:rebuild-lock:{${topic}}`;
