// The wallet's buckets: users are split into a fixed number of groups, each kept in one
// place of the store (one Redis Cluster slot), so a bucket's users and the marker saying
// how far they are applied change together and are lost together.

/**
 * How many buckets the users are split into. Every batch raises every bucket's marker, so
 * this bounds the store calls per batch; changing it moves users between buckets, which
 * the store's layout version must say.
 */
export const WALLET_BUCKETS = 64;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const encoder = new TextEncoder();

/**
 * The bucket of `userId`: FNV-1a (32 bits) of its UTF-8 bytes, modulo
 * {@link WALLET_BUCKETS}. Stable across processes, versions and languages, so any
 * instance, or a tool written elsewhere, finds a user where the wallet put them.
 */
export const bucketOf = (userId: string): number => {
  let hash = FNV_OFFSET;
  // Every read computes it: an ASCII id (most are) is hashed without encoding it first.
  for (let i = 0; i < userId.length; i += 1) {
    const code = userId.charCodeAt(i);
    if (code >= 0x80) return utf8BucketOf(userId);
    hash = Math.imul(hash ^ code, FNV_PRIME);
  }
  return (hash >>> 0) % WALLET_BUCKETS;
};

const utf8BucketOf = (userId: string): number => {
  let hash = FNV_OFFSET;
  for (const byte of encoder.encode(userId)) {
    hash = Math.imul(hash ^ byte, FNV_PRIME);
  }
  return (hash >>> 0) % WALLET_BUCKETS;
};
