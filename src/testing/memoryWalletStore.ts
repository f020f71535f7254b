import { bucketOf, WALLET_BUCKETS } from '../core/buckets.ts';
import { SpendstreamError } from '../core/errors.ts';
import type {
  ApplyOptions,
  ApplyResult,
  BucketMarkers,
  BucketSnapshot,
  LostBucket,
  PartitionSpan,
  SnapshotUser,
  WalletStore,
} from '../core/ports.ts';
import { checkWalletRecord, type WalletRecord } from '../core/records.ts';
import { createFaultQueue, type HangOptions } from './faults.ts';

/** A method of {@link WalletStore}, to aim a fault at. */
export type WalletStoreMethod = keyof WalletStore;

/** One call made to a {@link MemoryWalletStore}, failed or not. */
export type MemoryWalletStoreCall =
  | {
      readonly method: 'apply';
      readonly topic: string;
      readonly records: readonly WalletRecord[];
      readonly options: ApplyOptions;
    }
  | { readonly method: 'readMarkers'; readonly topic: string }
  | { readonly method: 'isInitialised' | 'markInitialised'; readonly topic: string }
  | {
      readonly method: 'takeSnapshot' | 'settleSnapshot' | 'restore';
      readonly bucket: number;
    };

/** An in-memory {@link WalletStore} that shows what it holds and fails on request. */
export interface MemoryWalletStore extends WalletStore {
  /** Each user's total in integer cents; a user never applied to is absent. */
  readonly totals: ReadonlyMap<string, number>;
  /** Per user, the last offset applied from each partition, keyed `topic:partition`. */
  readonly offsets: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** The topics marked initialised. */
  readonly initialised: ReadonlySet<string>;
  /** Every call, failed ones included, in the order they were made. */
  readonly calls: readonly MemoryWalletStoreCall[];
  /** The next `count` calls of `method` reject with `error`, without effect. */
  failNext(method: WalletStoreMethod, count: number, error: Error): void;
  /** The next `count` calls of `method` never answer (`applied`: after doing their work). */
  hangNext(method: WalletStoreMethod, count: number, options?: HangOptions): void;
  /** Every call of `method` rejects with `error` until called with undefined. */
  setFailure(method: WalletStoreMethod, error: Error | undefined): void;
  /** Loses one user's total and offsets, as an eviction or a `DEL` would. */
  deleteUser(userId: string): void;
  /** Loses one bucket's markers and register, as an eviction or a `DEL` would. */
  deleteBucket(bucket: number): void;
  /**
   * Takes a copy of everything held; calling what it returns puts the store back to it,
   * as a restart from a snapshot or a promoted replica behind its master would.
   */
  snapshot(): () => void;
}

const copy = ({ partition, offset, userId, amountCents }: WalletRecord): WalletRecord => ({
  partition,
  offset,
  userId,
  amountCents,
});

/** What a bucket holds besides its users: markers keyed `topic:partition`, its register. */
interface BucketState {
  readonly markers: Map<string, string>;
  readonly users: Set<string>;
}

const SPAN_OFFSET = /^\d{1,16}$/;

const checkSpan = (span: PartitionSpan): void => {
  if (
    !Number.isSafeInteger(span.partition) ||
    span.partition < 0 ||
    !SPAN_OFFSET.test(span.from) ||
    !SPAN_OFFSET.test(span.to) ||
    !Number.isSafeInteger(Number(span.to)) ||
    BigInt(span.from) > BigInt(span.to)
  ) {
    throw new SpendstreamError(
      'internal',
      `wallet span not applicable: partition ${span.partition}, ${span.from} to ${span.to}`,
    );
  }
};

/**
 * Creates a {@link MemoryWalletStore} keeping the port's contract: per user, a total and
 * the last applied offset of each `topic:partition`; a record at or below that offset is
 * skipped, so applying the same records again changes nothing. Per bucket, the markers
 * and the register of users, checked and changed with the bucket's users, as the Redis
 * adapter's one script per bucket does.
 */
export const createMemoryWalletStore = (): MemoryWalletStore => {
  let totals = new Map<string, number>();
  let offsets = new Map<string, Map<string, string>>();
  let buckets = new Map<number, BucketState>();
  /** Per bucket, the users changed since they were last taken by a snapshot. */
  let dirty = new Map<number, Set<string>>();
  /** Per bucket, the users taken by a snapshot and not yet settled. */
  let taking = new Map<number, Set<string>>();
  const setOf = (sets: Map<number, Set<string>>, bucket: number): Set<string> => {
    let set = sets.get(bucket);
    if (set === undefined) {
      set = new Set();
      sets.set(bucket, set);
    }
    return set;
  };
  const initialised = new Set<string>();
  const calls: MemoryWalletStoreCall[] = [];
  const faults = {
    apply: createFaultQueue(),
    readMarkers: createFaultQueue(),
    isInitialised: createFaultQueue(),
    markInitialised: createFaultQueue(),
    takeSnapshot: createFaultQueue(),
    settleSnapshot: createFaultQueue(),
    restore: createFaultQueue(),
  };
  const stateOf = (bucket: number): BucketState => {
    let state = buckets.get(bucket);
    if (state === undefined) {
      state = { markers: new Map(), users: new Set() };
      buckets.set(bucket, state);
    }
    return state;
  };

  /** One bucket's share of a call: lost, or what it applied. */
  const applyBucket = (
    topic: string,
    bucket: number,
    records: readonly WalletRecord[],
    spans: readonly PartitionSpan[],
    registerAll: boolean,
  ): { applied: number; lost?: LostBucket[] } => {
    const state = buckets.get(bucket);
    for (const span of spans) {
      const at = state?.markers.get(`${topic}:${span.partition}`) ?? '0';
      if (BigInt(at) < BigInt(span.from)) {
        return {
          applied: 0,
          lost: [{ bucket, partition: span.partition, marker: at, reason: 'behind' }],
        };
      }
    }
    for (const { userId } of records) {
      if (!totals.has(userId) && state?.users.has(userId) === true) {
        buckets.delete(bucket);
        const partitions =
          spans.length > 0 ? spans.map((s) => s.partition) : records.map((r) => r.partition);
        return {
          applied: 0,
          lost: [...new Set(partitions)].map((partition) => ({
            bucket,
            partition,
            marker: '0',
            reason: 'user' as const,
          })),
        };
      }
    }
    let applied = 0;
    const target = stateOf(bucket);
    for (const record of records) {
      const field = `${topic}:${record.partition}`;
      const created = !totals.has(record.userId);
      if (created || registerAll) target.users.add(record.userId);
      let userOffsets = offsets.get(record.userId);
      const last = userOffsets?.get(field);
      if (last !== undefined && BigInt(record.offset) <= BigInt(last)) continue;
      if (userOffsets === undefined) {
        userOffsets = new Map();
        offsets.set(record.userId, userOffsets);
      }
      userOffsets.set(field, record.offset);
      totals.set(record.userId, (totals.get(record.userId) ?? 0) + record.amountCents);
      setOf(dirty, bucket).add(record.userId);
      applied += 1;
    }
    for (const span of spans) {
      const field = `${topic}:${span.partition}`;
      if (BigInt(span.to) > BigInt(target.markers.get(field) ?? '0')) {
        target.markers.set(field, span.to);
      }
    }
    return { applied };
  };

  const apply = (
    topic: string,
    records: readonly WalletRecord[],
    options: ApplyOptions,
  ): ApplyResult => {
    records.forEach(checkWalletRecord);
    const spans = options.spans ?? [];
    spans.forEach(checkSpan);
    const only = options.buckets === undefined ? undefined : new Set(options.buckets);
    const byBucket = new Map<number, WalletRecord[]>();
    if (spans.length > 0) {
      for (const bucket of options.buckets ?? Array.from({ length: WALLET_BUCKETS }, (_, b) => b)) {
        byBucket.set(bucket, []);
      }
    }
    for (const record of records) {
      const bucket = bucketOf(record.userId);
      if (only !== undefined && !only.has(bucket)) continue;
      const list = byBucket.get(bucket) ?? [];
      list.push(record);
      byBucket.set(bucket, list);
    }
    let applied = 0;
    let counted = 0;
    const lost: LostBucket[] = [];
    for (const [bucket, list] of byBucket) {
      const result = applyBucket(topic, bucket, list, spans, only !== undefined);
      if (result.lost !== undefined) {
        lost.push(...result.lost);
        continue;
      }
      applied += result.applied;
      counted += list.length;
    }
    return { applied, skipped: counted - applied, lost };
  };

  const readMarkers = (topic: string, partitions: readonly number[]): BucketMarkers =>
    new Map(
      Array.from({ length: WALLET_BUCKETS }, (_, bucket) => {
        const state = buckets.get(bucket);
        return [
          bucket,
          state === undefined
            ? undefined
            : new Map(partitions.map((p) => [p, state.markers.get(`${topic}:${p}`) ?? '0'])),
        ] as const;
      }),
    );

  const takeSnapshot = (
    topic: string,
    bucket: number,
    partitions: readonly number[],
  ): BucketSnapshot | undefined => {
    const state = buckets.get(bucket);
    if (state === undefined) return undefined;
    const taken = setOf(taking, bucket);
    for (const userId of dirty.get(bucket) ?? []) taken.add(userId);
    dirty.delete(bucket);
    const users: SnapshotUser[] = [];
    for (const userId of taken) {
      const total = totals.get(userId);
      if (total === undefined) continue;
      const held = new Map<number, string>();
      for (const [field, offset] of offsets.get(userId) ?? []) {
        if (field.startsWith(`${topic}:`)) held.set(Number(field.slice(topic.length + 1)), offset);
      }
      users.push({ userId, totalCents: total, offsets: held });
    }
    return {
      bucket,
      markers: new Map(partitions.map((p) => [p, state.markers.get(`${topic}:${p}`) ?? '0'])),
      users,
    };
  };

  const restore = (topic: string, snapshot: BucketSnapshot): void => {
    const decisions: [SnapshotUser, boolean][] = [];
    for (const user of snapshot.users) {
      if (bucketOf(user.userId) !== snapshot.bucket) {
        throw new SpendstreamError(
          'internal',
          `snapshot of bucket ${snapshot.bucket} holds ${user.userId} of bucket ${bucketOf(user.userId)}`,
        );
      }
      const held = new Map<string, string>();
      for (const [field, offset] of offsets.get(user.userId) ?? []) {
        if (field.startsWith(`${topic}:`)) held.set(field, offset);
      }
      const exists = totals.has(user.userId);
      let snapshotAhead = true;
      let heldAhead = true;
      for (const [partition, offset] of user.offsets) {
        const h = BigInt(held.get(`${topic}:${partition}`) ?? '-1');
        if (BigInt(offset) < h) snapshotAhead = false;
        if (BigInt(offset) > h) heldAhead = false;
      }
      for (const field of held.keys()) {
        if (!user.offsets.has(Number(field.slice(topic.length + 1)))) snapshotAhead = false;
      }
      if (exists && !snapshotAhead && !heldAhead) {
        throw new SpendstreamError('internal', `${user.userId} differs from the snapshot`);
      }
      decisions.push([user, !exists || (snapshotAhead && !heldAhead)]);
    }
    const state = stateOf(snapshot.bucket);
    for (const [user, replace] of decisions) {
      if (replace) {
        totals.set(user.userId, user.totalCents);
        offsets.set(
          user.userId,
          new Map([...user.offsets].map(([p, o]) => [`${topic}:${p}`, o] as const)),
        );
      }
      state.users.add(user.userId);
    }
    for (const [partition, offset] of snapshot.markers) {
      const field = `${topic}:${partition}`;
      if (BigInt(offset) > BigInt(state.markers.get(field) ?? '0'))
        state.markers.set(field, offset);
    }
  };

  return {
    get totals() {
      return totals;
    },
    get offsets() {
      return offsets;
    },
    initialised,
    calls,
    apply: (topic, records, options = {}) => {
      const snapshot = records.map(copy);
      const taken: ApplyOptions = {
        ...(options.spans === undefined ? {} : { spans: options.spans.map((s) => ({ ...s })) }),
        ...(options.buckets === undefined ? {} : { buckets: [...options.buckets] }),
      };
      calls.push({ method: 'apply', topic, records: snapshot, options: taken });
      // The adapter answers a call with nothing to do without a round trip, so Redis
      // cannot fail it.
      if (snapshot.length === 0 && (taken.spans ?? []).length === 0) {
        return Promise.resolve({ applied: 0, skipped: 0, lost: [] });
      }
      return faults.apply.call(() => apply(topic, snapshot, taken));
    },
    readMarkers: (topic, partitions) => {
      calls.push({ method: 'readMarkers', topic });
      return faults.readMarkers.call(() => readMarkers(topic, [...partitions]));
    },
    isInitialised: (topic) => {
      calls.push({ method: 'isInitialised', topic });
      return faults.isInitialised.call(() => initialised.has(topic));
    },
    markInitialised: (topic) => {
      calls.push({ method: 'markInitialised', topic });
      return faults.markInitialised.call(() => {
        for (let bucket = 0; bucket < WALLET_BUCKETS; bucket += 1) stateOf(bucket);
        initialised.add(topic);
      });
    },
    takeSnapshot: (topic, bucket, partitions) => {
      calls.push({ method: 'takeSnapshot', bucket });
      return faults.takeSnapshot.call(() => takeSnapshot(topic, bucket, [...partitions]));
    },
    settleSnapshot: (bucket, userIds) => {
      calls.push({ method: 'settleSnapshot', bucket });
      const ids = [...userIds];
      return faults.settleSnapshot.call(() => {
        const taken = taking.get(bucket);
        for (const userId of ids) taken?.delete(userId);
      });
    },
    restore: (topic, snapshot) => {
      calls.push({ method: 'restore', bucket: snapshot.bucket });
      const copied: BucketSnapshot = {
        bucket: snapshot.bucket,
        markers: new Map(snapshot.markers),
        users: snapshot.users.map((u) => ({ ...u, offsets: new Map(u.offsets) })),
      };
      return faults.restore.call(() => restore(topic, copied));
    },
    failNext: (method, count, error) => faults[method].failNext(count, error),
    hangNext: (method, count, options) => faults[method].hangNext(count, options),
    setFailure: (method, error) => faults[method].setFailure(error),
    deleteUser: (userId) => {
      totals.delete(userId);
      offsets.delete(userId);
    },
    deleteBucket: (bucket) => {
      buckets.delete(bucket);
    },
    snapshot: () => {
      const saved = {
        totals: new Map(totals),
        offsets: new Map([...offsets].map(([user, map]) => [user, new Map(map)])),
        buckets: new Map(
          [...buckets].map(([bucket, state]) => [
            bucket,
            { markers: new Map(state.markers), users: new Set(state.users) },
          ]),
        ),
        dirty: new Map([...dirty].map(([bucket, set]) => [bucket, new Set(set)])),
        taking: new Map([...taking].map(([bucket, set]) => [bucket, new Set(set)])),
      };
      return () => {
        dirty = new Map([...saved.dirty].map(([bucket, set]) => [bucket, new Set(set)]));
        taking = new Map([...saved.taking].map(([bucket, set]) => [bucket, new Set(set)]));
        totals = new Map(saved.totals);
        offsets = new Map([...saved.offsets].map(([user, map]) => [user, new Map(map)]));
        buckets = new Map(
          [...saved.buckets].map(([bucket, state]) => [
            bucket,
            { markers: new Map(state.markers), users: new Set(state.users) },
          ]),
        );
      };
    },
  };
};
