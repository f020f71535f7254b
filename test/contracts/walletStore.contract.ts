// The WalletStore contract: what every implementation of the port keeps, the published
// fake and the Redis adapter alike. Each runner calls it once per implementation.
import assert from 'node:assert/strict';
import { isSpendstreamError } from '../../src/core/errors.ts';
import type { WalletStore } from '../../src/core/ports.ts';
import type { WalletRecord } from '../../src/core/records.ts';
import { contractSuite } from './contractSuite.ts';

/** One implementation under test, holding no totals when opened. */
export interface WalletStoreUnderTest {
  readonly store: WalletStore;
  /** Every user's total in integer cents, as the balance readers see them. */
  readonly readBack: () => Promise<ReadonlyMap<string, number>>;
  readonly close: () => Promise<void>;
}

const TOPIC = 'user_purchase';

const record = (
  partition: number,
  offset: string | number,
  userId: string,
  amountCents: number,
): WalletRecord => ({ partition, offset: String(offset), userId, amountCents });

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
      });
      const expected = sums([...records, ...dimes]);
      assert.equal(expected.get('dimes'), 30);
      assert.ok(Math.min(...[...expected.values()].filter((cents) => cents > 30)) > 2 ** 31);
      assert.deepEqual(await readBack(), expected);

      assert.deepEqual(await store.apply(TOPIC, [...records, ...dimes]), {
        applied: 0,
        skipped: 1_502,
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
      assert.deepEqual(await store.apply(TOPIC, range(0, 100)), { applied: 100, skipped: 0 });
      assert.deepEqual(await store.apply(TOPIC, range(50, 150)), { applied: 50, skipped: 50 });
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
      });
      assert.deepEqual(
        await store.apply(TOPIC, [record(0, 10, 'unordered', 5), record(0, 7, 'unordered', 3)]),
        { applied: 1, skipped: 1 },
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
      assert.deepEqual(await store.apply(TOPIC, [good]), { applied: 1, skipped: 0 });
    });

    test('an empty batch applies nothing', async ({ store, readBack }) => {
      assert.deepEqual(await store.apply(TOPIC, []), { applied: 0, skipped: 0 });
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

    test('apply takes the records as they were when it was called', async ({ store, readBack }) => {
      const batch = [record(0, 0, 'reuse', 100), record(0, 1, 'reuse', 200)];
      const applying = store.apply(TOPIC, batch);
      // A caller reusing its buffer for the next batch must not change this one.
      batch.length = 0;
      batch.push(record(0, 2, 'reuse', 300));
      assert.deepEqual(await applying, { applied: 2, skipped: 0 });
      assert.deepEqual(await readBack(), new Map([['reuse', 300]]));
    });
  });
};
