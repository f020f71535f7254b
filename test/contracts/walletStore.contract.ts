// The WalletStore contract: what every implementation of the port keeps, the published
// fake and the Redis adapter alike. Each runner calls it once per implementation.
import assert from 'node:assert/strict';
import { bucketOf, WALLET_BUCKETS } from '../../src/core/buckets.ts';
import { isSpendstreamError } from '../../src/core/errors.ts';
import type { PartitionSpan, WalletStore } from '../../src/core/ports.ts';
import type { WalletRecord } from '../../src/core/records.ts';
import { contractSuite } from './contractSuite.ts';

/** One implementation under test, holding no totals when opened. */
export interface WalletStoreUnderTest {
  readonly store: WalletStore;
  /** Every user's total in integer cents, as the balance readers see them. */
  readonly readBack: () => Promise<ReadonlyMap<string, number>>;
  /** Loses one user's hash, as an eviction or a `DEL` does. */
  readonly deleteUser: (userId: string) => Promise<void>;
  /** Loses one bucket's own state (markers and register), as an eviction or a `DEL` does. */
  readonly deleteBucket: (bucket: number) => Promise<void>;
  /** Copies everything held; what it resolves with puts it all back, as a restart from a snapshot does. */
  readonly snapshot: () => Promise<() => Promise<void>>;
  readonly close: () => Promise<void>;
}

const TOPIC = 'user_purchase';

const record = (
  partition: number,
  offset: string | number,
  userId: string,
  amountCents: number,
): WalletRecord => ({ partition, offset: String(offset), userId, amountCents });

const span = (partition: number, from: number | string, to: number | string): PartitionSpan => ({
  partition,
  from: String(from),
  to: String(to),
});

/** `count` user ids of bucket `bucket`, and one of another bucket. */
const usersOf = (bucket: number, count: number): string[] => {
  const found: string[] = [];
  for (let i = 0; found.length < count; i += 1) {
    if (bucketOf(`member-${i}`) === bucket) found.push(`member-${i}`);
  }
  return found;
};

const sums = (records: readonly WalletRecord[]): Map<string, number> => {
  const totals = new Map<string, number>();
  for (const r of records) totals.set(r.userId, (totals.get(r.userId) ?? 0) + r.amountCents);
  return totals;
};

/**
 * Registers the WalletStore contract's tests, each on a fresh implementation from
 * `open`.
 */
export const walletStoreContract = (
  name: string,
  open: () => Promise<WalletStoreUnderTest>,
): void => {
  contractSuite(`WalletStore contract: ${name}`, open, (test) => {
    test('totals are exact in cents; applying the same records again changes nothing', async ({
      store,
      readBack,
    }) => {
      // 1,500 records over 50 users and 3 partitions, interleaved; amounts from 1 cent to
      // 1,000,000.00, so totals pass what a 32-bit integer holds.
      const records = Array.from({ length: 1_500 }, (_, i) =>
        record(
          i % 3,
          Math.floor(i / 3),
          `user-${(i * 7) % 50}`,
          i === 0 ? 1 : 90_000_000 + ((i * 7_919) % 10_000_001),
        ),
      );
      // 0.10 + 0.20 is 0.30, not 0.30000000000000004.
      const dimes = [record(0, 600, 'dimes', 10), record(0, 601, 'dimes', 20)];
      assert.deepEqual(await store.apply(TOPIC, [...records, ...dimes]), {
        applied: 1_502,
        skipped: 0,
        lost: [],
      });
      const expected = sums([...records, ...dimes]);
      assert.equal(expected.get('dimes'), 30);
      assert.ok(Math.min(...[...expected.values()].filter((cents) => cents > 30)) > 2 ** 31);
      assert.deepEqual(await readBack(), expected);

      assert.deepEqual(await store.apply(TOPIC, [...records, ...dimes]), {
        applied: 0,
        skipped: 1_502,
        lost: [],
      });
      assert.deepEqual(await readBack(), expected);
    });

    test('a redelivery from an earlier offset applies only the records not applied yet', async ({
      store,
      readBack,
    }) => {
      const range = (from: number, to: number) =>
        Array.from({ length: to - from }, (_, i) =>
          record(0, from + i, `redelivered-${(from + i) % 4}`, 100 + from + i),
        );
      assert.deepEqual(await store.apply(TOPIC, range(0, 100)), {
        applied: 100,
        skipped: 0,
        lost: [],
      });
      assert.deepEqual(await store.apply(TOPIC, range(50, 150)), {
        applied: 50,
        skipped: 50,
        lost: [],
      });
      assert.deepEqual(await readBack(), sums(range(0, 150)));
    });

    test('within one batch, a repeated or lower offset of the same partition is skipped', async ({
      store,
      readBack,
    }) => {
      const at = (offset: number) => record(2, offset, 'repeated', 1);
      assert.deepEqual(await store.apply(TOPIC, [at(0), at(1), at(2), at(1), at(2), at(3)]), {
        applied: 4,
        skipped: 2,
        lost: [],
      });
      assert.deepEqual(
        await store.apply(TOPIC, [record(0, 10, 'unordered', 5), record(0, 7, 'unordered', 3)]),
        { applied: 1, skipped: 1, lost: [] },
      );
      assert.deepEqual(
        await readBack(),
        new Map([
          ['repeated', 4],
          ['unordered', 5],
        ]),
      );
    });

    test("offsets are kept per user: another user's later offset holds no one back", async ({
      store,
      readBack,
    }) => {
      assert.equal((await store.apply(TOPIC, [record(0, 10, 'ahead', 100)])).applied, 1);
      // Same partition, lower offset, but a user this partition never gave anything.
      assert.equal((await store.apply(TOPIC, [record(0, 5, 'behind', 7)])).applied, 1);
      assert.equal((await store.apply(TOPIC, [record(0, 5, 'ahead', 99_999)])).skipped, 1);
      assert.deepEqual(
        await readBack(),
        new Map([
          ['ahead', 100],
          ['behind', 7],
        ]),
      );
    });

    test("offsets are kept per partition and per topic: one's do not hold back another's", async ({
      store,
      readBack,
    }) => {
      const mover = (partition: number, offset: number, cents: number) =>
        record(partition, offset, 'mover', cents);
      assert.equal((await store.apply(TOPIC, [mover(0, 10, 1_000)])).applied, 1);
      assert.equal((await store.apply(TOPIC, [mover(1, 5, 200), mover(2, 0, 30)])).applied, 2);
      assert.equal((await store.apply('other_topic', [mover(0, 10, 4)])).applied, 1);
      assert.deepEqual(await store.apply(TOPIC, [mover(0, 5, 99_999), mover(0, 10, 99_999)]), {
        applied: 0,
        skipped: 2,
        lost: [],
      });
      assert.equal((await store.apply(TOPIC, [mover(1, 6, 5)])).applied, 1);
      assert.deepEqual(await readBack(), new Map([['mover', 1_239]]));
    });

    test('offsets are compared exactly up to 2^53 - 1, past 32 bits and 14 digits', async ({
      store,
      readBack,
    }) => {
      const big = (offset: string) => record(1, offset, 'far', 1);
      assert.equal((await store.apply(TOPIC, [big('4294967296')])).applied, 1);
      assert.equal((await store.apply(TOPIC, [big('123456789012345')])).applied, 1);
      assert.equal((await store.apply(TOPIC, [big('123456789012344')])).skipped, 1);
      assert.equal((await store.apply(TOPIC, [big('123456789012346')])).applied, 1);
      assert.equal((await store.apply(TOPIC, [big('9007199254740991')])).applied, 1);
      assert.equal((await store.apply(TOPIC, [big('9007199254740990')])).skipped, 1);
      assert.deepEqual(await readBack(), new Map([['far', 4]]));
    });

    test('a record it cannot apply exactly fails the whole batch, applying none of it', async ({
      store,
      readBack,
    }) => {
      const good = record(0, 1, 'good', 100);
      const malformed = [
        record(0, 2, 'bad', 49.99),
        record(0, 2, 'bad', Number.MAX_SAFE_INTEGER + 2),
        record(0, 2, 'bad', Number.NaN),
        record(0, '-1', 'bad', 1),
        record(0, '1.5', 'bad', 1),
        record(0, '', 'bad', 1),
        record(0, '9007199254740993', 'bad', 1),
        record(-1, 2, 'bad', 1),
        record(0.5, 2, 'bad', 1),
      ];
      for (const bad of malformed) {
        await assert.rejects(
          store.apply(TOPIC, [good, bad]),
          (error: unknown) => {
            // Trying again cannot help: the caller must not retry it as unavailable.
            assert.ok(isSpendstreamError(error), String(error));
            assert.equal(error.code, 'internal');
            assert.equal(error.retryable, false);
            return true;
          },
          JSON.stringify(bad),
        );
      }
      assert.deepEqual(await readBack(), new Map());
      // Neither its total nor its offset moved: the good record is still new.
      assert.deepEqual(await store.apply(TOPIC, [good]), { applied: 1, skipped: 0, lost: [] });
    });

    test('an empty batch applies nothing', async ({ store, readBack }) => {
      assert.deepEqual(await store.apply(TOPIC, []), { applied: 0, skipped: 0, lost: [] });
      assert.deepEqual(await readBack(), new Map());
    });

    test('initialised is per topic: false until marked, and marking again keeps it', async ({
      store,
    }) => {
      assert.equal(await store.isInitialised(TOPIC), false);
      // Totals alone do not say the store holds the whole topic: only marking does.
      await store.apply(TOPIC, [record(0, 0, 'someone', 1)]);
      assert.equal(await store.isInitialised(TOPIC), false);
      await store.markInitialised(TOPIC);
      assert.equal(await store.isInitialised(TOPIC), true);
      assert.equal(await store.isInitialised('other_topic'), false);
      await store.markInitialised(TOPIC);
      assert.equal(await store.isInitialised(TOPIC), true);
    });

    test("every bucket's marker moves to the span's end, with users in the batch or not", async ({
      store,
    }) => {
      await store.markInitialised(TOPIC);
      const [a] = usersOf(3, 1);
      const batch = [record(1, 10, a ?? '', 5), record(1, 12, a ?? '', 7)];
      // The batch continues from 0 (nothing before it) and the next one begins at 14.
      assert.deepEqual(await store.apply(TOPIC, batch, { spans: [span(1, 0, 14)] }), {
        applied: 2,
        skipped: 0,
        lost: [],
      });
      const markers = await store.readMarkers(TOPIC, [0, 1]);
      assert.equal(markers.size, WALLET_BUCKETS);
      for (const [, bucket] of markers)
        assert.deepEqual(
          bucket,
          new Map([
            [0, '0'],
            [1, '14'],
          ]),
        );
      // A span with no records (transaction markers only) moves them on all the same.
      assert.deepEqual(await store.apply(TOPIC, [], { spans: [span(1, 14, 16)] }), {
        applied: 0,
        skipped: 0,
        lost: [],
      });
      for (const [, bucket] of await store.readMarkers(TOPIC, [1])) {
        assert.equal(bucket?.get(1), '16');
      }
      // Redelivered from an earlier offset: nothing applied, and no marker moves back.
      assert.deepEqual(await store.apply(TOPIC, batch, { spans: [span(1, 10, 14)] }), {
        applied: 0,
        skipped: 2,
        lost: [],
      });
      for (const [, bucket] of await store.readMarkers(TOPIC, [1])) {
        assert.equal(bucket?.get(1), '16');
      }
    });

    test('a bucket whose marker is behind the span is reported lost and left as it was', async ({
      store,
      readBack,
      snapshot,
    }) => {
      await store.markInitialised(TOPIC);
      const [a, b] = usersOf(5, 2);
      const [other] = usersOf(9, 1);
      const first = [record(0, 0, a ?? '', 100), record(0, 1, other ?? '', 1)];
      await store.apply(TOPIC, first, { spans: [span(0, 0, 2)] });
      const restore = await snapshot();
      const second = [record(0, 2, a ?? '', 20), record(0, 3, b ?? '', 30)];
      await store.apply(TOPIC, second, { spans: [span(0, 2, 4)] });
      // Redis restarted from the snapshot: the second batch is gone, its offsets committed.
      await restore();
      const third = [record(0, 4, a ?? '', 3), record(0, 5, other ?? '', 5)];
      const result = await store.apply(TOPIC, third, { spans: [span(0, 4, 6)] });
      // Every bucket lost the second batch's markers; the one whose user was in the third
      // batch among them. Nothing of the third batch was applied to any of them.
      assert.equal(result.applied, 0);
      assert.equal(result.lost.length, WALLET_BUCKETS);
      assert.ok(result.lost.every((l) => l.reason === 'behind' && l.marker === '2'));
      assert.deepEqual(
        result.lost.map((l) => [l.bucket, l.partition]).sort(([x = 0], [y = 0]) => x - y),
        Array.from({ length: WALLET_BUCKETS }, (_, bucket) => [bucket, 0]),
      );
      assert.deepEqual(
        await readBack(),
        new Map([
          [a ?? '', 100],
          [other ?? '', 1],
        ]),
      );
      // The repair: the lost range into the lost bucket, through the same call.
      const repaired = await store.apply(TOPIC, second, { spans: [span(0, 2, 4)], buckets: [5] });
      assert.deepEqual(repaired, { applied: 2, skipped: 0, lost: [] });
      const markers = await store.readMarkers(TOPIC, [0]);
      assert.equal(markers.get(5)?.get(0), '4');
      assert.equal(markers.get(9)?.get(0), '2', 'a repair moves only its own buckets');
      // Bucket 5 goes on; bucket 9 is still short.
      const again = await store.apply(TOPIC, third, { spans: [span(0, 4, 6)] });
      assert.deepEqual(
        again.lost.map((l) => l.bucket).filter((bucket) => bucket === 5 || bucket === 9),
        [9],
      );
      assert.equal((await readBack()).get(a ?? ''), 123);
      assert.equal((await readBack()).get(b ?? ''), 30);
    });

    test("a bucket whose own state is gone is behind everywhere but at a partition's start", async ({
      store,
      readBack,
      deleteBucket,
    }) => {
      await store.markInitialised(TOPIC);
      const [a] = usersOf(7, 1);
      await store.apply(TOPIC, [record(2, 0, a ?? '', 40)], { spans: [span(2, 0, 1)] });
      await deleteBucket(7);
      const markers = await store.readMarkers(TOPIC, [2]);
      assert.equal(markers.get(7), undefined);
      assert.deepEqual(markers.get(8), new Map([[2, '1']]));
      const result = await store.apply(TOPIC, [record(2, 1, a ?? '', 2)], {
        spans: [span(2, 1, 2)],
      });
      assert.deepEqual(
        result.lost.filter((l) => l.bucket === 7),
        [{ bucket: 7, partition: 2, marker: '0', reason: 'behind' }],
      );
      assert.equal(result.lost.length, 1);
      // A replay from the start is what it takes, and it skips what the users still hold.
      assert.deepEqual(
        await store.apply(TOPIC, [record(2, 0, a ?? '', 40)], {
          spans: [span(2, 0, 1)],
          buckets: [7],
        }),
        { applied: 0, skipped: 1, lost: [] },
      );
      assert.equal((await store.readMarkers(TOPIC, [2])).get(7)?.get(2), '1');
      assert.deepEqual(await readBack(), new Map([[a ?? '', 40]]));
    });

    test('a user whose hash is gone is reported lost; the bucket goes back to the start', async ({
      store,
      readBack,
      deleteUser,
    }) => {
      await store.markInitialised(TOPIC);
      const [gone, stays] = usersOf(11, 2);
      const history = [record(0, 0, gone ?? '', 500), record(0, 1, stays ?? '', 60)];
      await store.apply(TOPIC, history, { spans: [span(0, 0, 2)] });
      await deleteUser(gone ?? '');
      // Without the register, this would start the user afresh at 7 cents.
      const next = [record(0, 2, gone ?? '', 7)];
      const result = await store.apply(TOPIC, next, { spans: [span(0, 2, 3)] });
      assert.deepEqual(result, {
        applied: 0,
        skipped: 0,
        lost: [{ bucket: 11, partition: 0, marker: '0', reason: 'user' }],
      });
      assert.equal((await store.readMarkers(TOPIC, [0])).get(11), undefined);
      assert.deepEqual(await readBack(), new Map([[stays ?? '', 60]]));
      // Replayed from the start, the user is whole again and the others are skipped.
      assert.deepEqual(
        await store.apply(TOPIC, [...history, ...next], { spans: [span(0, 0, 3)], buckets: [11] }),
        { applied: 2, skipped: 1, lost: [] },
      );
      assert.deepEqual(
        await readBack(),
        new Map([
          [gone ?? '', 507],
          [stays ?? '', 60],
        ]),
      );
    });

    test('a replay enters every user it sees in the register again', async ({
      store,
      deleteBucket,
      deleteUser,
    }) => {
      await store.markInitialised(TOPIC);
      const [a] = usersOf(13, 1);
      const history = [record(1, 0, a ?? '', 9)];
      await store.apply(TOPIC, history, { spans: [span(1, 0, 1)] });
      // Register and markers gone, then replayed: the user was skipped, yet registered.
      await deleteBucket(13);
      await store.apply(TOPIC, history, { spans: [span(1, 0, 1)], buckets: [13] });
      await deleteUser(a ?? '');
      const result = await store.apply(TOPIC, [record(1, 1, a ?? '', 1)], {
        spans: [span(1, 1, 2)],
      });
      assert.deepEqual(
        result.lost.map(({ bucket, reason }) => [bucket, reason]),
        [[13, 'user']],
      );
    });

    test('a new user is no loss, also in a bucket whose other users have records', async ({
      store,
      readBack,
    }) => {
      await store.markInitialised(TOPIC);
      const [old, fresh] = usersOf(17, 2);
      await store.apply(TOPIC, [record(0, 0, old ?? '', 1)], { spans: [span(0, 0, 1)] });
      assert.deepEqual(
        await store.apply(TOPIC, [record(0, 1, fresh ?? '', 2)], { spans: [span(0, 1, 2)] }),
        { applied: 1, skipped: 0, lost: [] },
      );
      assert.deepEqual(
        await readBack(),
        new Map([
          [old ?? '', 1],
          [fresh ?? '', 2],
        ]),
      );
    });

    test('a span it cannot use fails the call before anything is written', async ({
      store,
      readBack,
    }) => {
      await store.markInitialised(TOPIC);
      const good = record(0, 0, 'good', 100);
      for (const bad of [span(0, 5, 4), span(0, '-1', 3), span(-1, 0, 1), span(0, 0, '1.5')]) {
        await assert.rejects(
          store.apply(TOPIC, [good], { spans: [bad] }),
          (error: unknown) => isSpendstreamError(error) && error.code === 'internal',
          JSON.stringify(bad),
        );
      }
      await assert.rejects(
        store.apply(TOPIC, [good, record(0, 1, 'bad', 0.5)], { spans: [span(0, 0, 2)] }),
      );
      assert.deepEqual(await readBack(), new Map());
      for (const [, bucket] of await store.readMarkers(TOPIC, [0])) {
        assert.deepEqual(bucket, new Map([[0, '0']]));
      }
    });

    test('a snapshot takes the users changed since the last one, with the markers', async ({
      store,
    }) => {
      await store.markInitialised(TOPIC);
      const [a = '', b = '', c = ''] = usersOf(5, 3);
      await store.apply(TOPIC, [record(0, 0, a, 100), record(1, 0, b, 200)], {
        spans: [span(0, 0, 1), span(1, 0, 1)],
      });
      const first = await store.takeSnapshot(TOPIC, 5, [0, 1, 2]);
      assert.ok(first !== undefined);
      assert.deepEqual(
        first.markers,
        new Map([
          [0, '1'],
          [1, '1'],
          [2, '0'],
        ]),
      );
      const byUser = new Map(first.users.map((u) => [u.userId, u]));
      assert.deepEqual(byUser.get(a), { userId: a, totalCents: 100, offsets: new Map([[0, '0']]) });
      assert.deepEqual(byUser.get(b), { userId: b, totalCents: 200, offsets: new Map([[1, '0']]) });
      assert.equal(byUser.size, 2);

      // Not settled (the write failed): the next snapshot takes them again, with what
      // changed since.
      await store.apply(TOPIC, [record(0, 1, c, 300)], { spans: [span(0, 1, 2)] });
      const second = await store.takeSnapshot(TOPIC, 5, [0, 1]);
      assert.deepEqual(new Set(second?.users.map((u) => u.userId)), new Set([a, b, c]));
      assert.deepEqual(
        second?.markers,
        new Map([
          [0, '2'],
          [1, '1'],
        ]),
      );
      await store.settleSnapshot(5, [a, b, c]);
      assert.deepEqual((await store.takeSnapshot(TOPIC, 5, [0]))?.users, []);

      // A user changed after the take and before the settle stays to be taken.
      await store.apply(TOPIC, [record(0, 2, a, 1)], { spans: [span(0, 2, 3)] });
      const third = await store.takeSnapshot(TOPIC, 5, [0]);
      await store.apply(TOPIC, [record(0, 3, a, 1)], { spans: [span(0, 3, 4)] });
      await store.settleSnapshot(5, third?.users.map((u) => u.userId) ?? []);
      const fourth = await store.takeSnapshot(TOPIC, 5, [0]);
      assert.deepEqual(fourth?.users, [
        { userId: a, totalCents: 102, offsets: new Map([[0, '3']]) },
      ]);
      // Other buckets took nothing; a bucket whose own state is gone has no snapshot.
      assert.deepEqual((await store.takeSnapshot(TOPIC, 6, [0]))?.users, []);
    });

    test('a lost bucket has no snapshot', async ({ store, deleteBucket }) => {
      await store.markInitialised(TOPIC);
      await deleteBucket(9);
      assert.equal(await store.takeSnapshot(TOPIC, 9, [0]), undefined);
    });

    test('a restore puts a lost bucket back; replaying its tail counts nothing twice', async ({
      store,
      readBack,
      snapshot,
    }) => {
      await store.markInitialised(TOPIC);
      const users = usersOf(3, 4);
      const history = Array.from({ length: 40 }, (_, i) =>
        record(i % 2, Math.floor(i / 2), users[i % 4] ?? '', 100 + i),
      );
      const bySpan = (from: number, to: number) =>
        history.filter((r) => Number(r.offset) >= from && Number(r.offset) < to);
      const emptyStore = await snapshot();
      await store.apply(TOPIC, bySpan(0, 12), { spans: [span(0, 0, 12), span(1, 0, 12)] });
      const taken = await store.takeSnapshot(TOPIC, 3, [0, 1]);
      assert.ok(taken !== undefined);
      await store.apply(TOPIC, bySpan(12, 20), { spans: [span(0, 12, 20), span(1, 12, 20)] });
      const expected = sums(history);

      // Everything lost: the snapshot, then the tail from its markers (and a replay of
      // more than the tail: the users' offsets skip what the snapshot holds).
      await emptyStore();
      await store.markInitialised(TOPIC);
      await store.restore(TOPIC, taken);
      assert.deepEqual(
        (await store.readMarkers(TOPIC, [0, 1])).get(3),
        new Map([
          [0, '12'],
          [1, '12'],
        ]),
      );
      const replay = await store.apply(TOPIC, bySpan(6, 20), {
        spans: [span(0, 6, 20), span(1, 6, 20)],
        buckets: [3],
      });
      assert.deepEqual(replay, { applied: 16, skipped: 12, lost: [] });
      assert.deepEqual(await readBack(), expected);
    });

    test('a restore keeps users the store holds further on, and never lowers a marker', async ({
      store,
      readBack,
    }) => {
      await store.markInitialised(TOPIC);
      const [a = '', b = ''] = usersOf(7, 2);
      await store.apply(TOPIC, [record(0, 0, a, 100), record(0, 1, b, 200)], {
        spans: [span(0, 0, 2)],
      });
      const old = await store.takeSnapshot(TOPIC, 7, [0]);
      assert.ok(old !== undefined);
      await store.apply(TOPIC, [record(0, 2, a, 5)], { spans: [span(0, 2, 3)] });
      await store.restore(TOPIC, old);
      assert.deepEqual(
        await readBack(),
        new Map([
          [a, 105],
          [b, 200],
        ]),
      );
      assert.deepEqual((await store.readMarkers(TOPIC, [0])).get(7), new Map([[0, '3']]));

      // A snapshot that disagrees with a user (neither holds all the other does) is refused.
      const diverged = {
        bucket: 7,
        markers: new Map([[0, '9']]),
        users: [
          {
            userId: a,
            totalCents: 1,
            offsets: new Map([
              [0, '9'],
              [1, '0'],
            ]),
          },
        ],
      };
      await store.apply(TOPIC, [record(1, 5, a, 1)]);
      await assert.rejects(store.restore(TOPIC, diverged));
      assert.deepEqual(
        await readBack(),
        new Map([
          [a, 106],
          [b, 200],
        ]),
      );
      // A user of another bucket does not belong in the snapshot.
      const [other = ''] = usersOf(8, 1);
      await assert.rejects(
        store.restore(TOPIC, {
          bucket: 7,
          markers: new Map(),
          users: [{ userId: other, totalCents: 1, offsets: new Map([[0, '1']]) }],
        }),
      );
    });

    test('apply takes the records as they were when it was called', async ({ store, readBack }) => {
      const batch = [record(0, 0, 'reuse', 100), record(0, 1, 'reuse', 200)];
      const applying = store.apply(TOPIC, batch);
      // A caller reusing its buffer for the next batch must not change this one.
      batch.length = 0;
      batch.push(record(0, 2, 'reuse', 300));
      assert.deepEqual(await applying, { applied: 2, skipped: 0, lost: [] });
      assert.deepEqual(await readBack(), new Map([['reuse', 300]]));
    });
  });
};
