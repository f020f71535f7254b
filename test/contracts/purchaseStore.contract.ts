// The PurchaseStore contract: what every implementation of the port keeps, the published
// fake and the PostgreSQL adapter alike. Each runner calls it once per implementation.
import assert from 'node:assert/strict';
import { isSpendstreamError } from '../../src/core/errors.ts';
import type { PurchaseStore } from '../../src/core/ports.ts';
import type { Purchase } from '../../src/core/purchase.ts';
import { contractSuite } from './contractSuite.ts';

/** What the store holds, as its readers see it (totals, reconcile, outbox recovery). */
export interface StoredState {
  /** Every stored purchase by id. */
  readonly purchases: ReadonlyMap<string, Purchase>;
  /** Outbox entries not yet marked published: entry id → its purchase ids, in arrival order. */
  readonly outbox: ReadonlyMap<string, readonly string[]>;
}

/** One implementation under test, empty when opened. */
export interface PurchaseStoreUnderTest {
  readonly store: PurchaseStore;
  /** What the store now holds, read from where it keeps it. */
  readonly readBack: () => Promise<StoredState>;
  readonly close: () => Promise<void>;
}

const purchase = (id: string, userId: string, amountCents: number): Purchase => ({
  id,
  userId,
  amountCents,
});

/**
 * Registers the PurchaseStore contract's tests, each on a fresh implementation from
 * `open`.
 */
export const purchaseStoreContract = (
  name: string,
  open: () => Promise<PurchaseStoreUnderTest>,
): void => {
  contractSuite(`PurchaseStore contract: ${name}`, open, (test) => {
    test('new purchases are stored exactly, each batch in an outbox entry of its own', async ({
      store,
      readBack,
    }) => {
      const batches: Purchase[][] = [
        [purchase('a-1', 'user-1', 4_999), purchase('a-2', 'user-2', 1)],
        // The largest amount a purchase may carry, and user ids beyond ASCII.
        [purchase('b-1', 'ユーザー', 100_000_000), purchase('b-2', 'user-🙂', 10)],
      ];
      const outboxIds: string[] = [];
      for (const batch of batches) {
        const result = await store.save(batch);
        assert.deepEqual(result.inserted, new Set(batch.map((p) => p.id)));
        assert.deepEqual(result.existing, new Map());
        assert.ok(result.outboxId !== null, 'a batch with new purchases opens an outbox entry');
        outboxIds.push(result.outboxId);
      }
      assert.notEqual(outboxIds[0], outboxIds[1]);
      const state = await readBack();
      assert.deepEqual(state.purchases, new Map(batches.flat().map((p) => [p.id, p])));
      assert.deepEqual(
        state.outbox,
        new Map(outboxIds.map((id, i) => [id, (batches[i] ?? []).map((p) => p.id)])),
      );
    });

    test('an outbox entry lists its purchases in arrival order, whatever their ids', async ({
      store,
      readBack,
    }) => {
      const ids = ['order-z', 'order-b', 'order-m', 'order-a'];
      const result = await store.save(ids.map((id, i) => purchase(id, 'order-user', 100 + i)));
      assert.ok(result.outboxId !== null);
      // Recovery publishes an entry in this order, so a user's purchases keep theirs.
      assert.deepEqual((await readBack()).outbox.get(result.outboxId), ids);
    });

    test('a stored id is left alone and reported as stored, pending until published', async ({
      store,
      readBack,
    }) => {
      const original = purchase('resend-1', 'resend-user', 4_999);
      const first = await store.save([original]);
      assert.ok(first.outboxId !== null);

      // A retry carrying other values: the stored purchase wins, and is reported as stored.
      const fresh = purchase('resend-2', 'resend-user', 100);
      const second = await store.save([
        { ...original, userId: 'someone-else', amountCents: 1 },
        fresh,
      ]);
      assert.deepEqual(second.inserted, new Set([fresh.id]));
      assert.deepEqual(
        second.existing,
        new Map([
          [original.id, { ...original, pendingPublish: true, pendingOutboxId: first.outboxId }],
        ]),
      );
      assert.ok(second.outboxId !== null && second.outboxId !== first.outboxId);
      let state = await readBack();
      assert.deepEqual(state.purchases.get(original.id), original);
      assert.deepEqual(state.outbox.get(second.outboxId), [fresh.id]);

      await store.markPublished([first.outboxId]);
      const third = await store.save([original]);
      assert.equal(third.outboxId, null, 'nothing new, no outbox entry');
      assert.deepEqual(third.inserted, new Set());
      assert.deepEqual(
        third.existing,
        new Map([[original.id, { ...original, pendingPublish: false }]]),
      );
      state = await readBack();
      assert.deepEqual(state.outbox, new Map([[second.outboxId, [fresh.id]]]));
    });

    test('an id repeated within one batch is stored once, as its first occurrence', async ({
      store,
      readBack,
    }) => {
      const result = await store.save([
        purchase('twice-1', 'twice-user', 250),
        purchase('twice-2', 'twice-user', 300),
        purchase('twice-1', 'twice-user', 999),
      ]);
      assert.deepEqual(result.inserted, new Set(['twice-1', 'twice-2']));
      assert.ok(result.outboxId !== null);
      // The repeat learns what was stored for its id: its first occurrence, pending in
      // this very batch, so every purchase of the batch can be answered.
      assert.deepEqual(
        result.existing,
        new Map([
          [
            'twice-1',
            {
              ...purchase('twice-1', 'twice-user', 250),
              pendingPublish: true,
              pendingOutboxId: result.outboxId,
            },
          ],
        ]),
      );
      const state = await readBack();
      assert.deepEqual(state.purchases.get('twice-1'), purchase('twice-1', 'twice-user', 250));
      assert.deepEqual(state.outbox.get(result.outboxId), ['twice-1', 'twice-2']);

      // Repeats of an id stored before: reported once, as stored.
      await store.markPublished([result.outboxId]);
      const again = await store.save([
        purchase('twice-2', 'twice-user', 1),
        purchase('twice-2', 'twice-user', 2),
      ]);
      assert.equal(again.outboxId, null);
      assert.deepEqual(again.inserted, new Set());
      assert.deepEqual(
        again.existing,
        new Map([
          ['twice-2', { ...purchase('twice-2', 'twice-user', 300), pendingPublish: false }],
        ]),
      );
    });

    test('markPublished clears only the entries it names, and again is harmless', async ({
      store,
      readBack,
    }) => {
      const batches = ['mark-1', 'mark-2', 'mark-3'].map((id) => [purchase(id, 'mark-user', 100)]);
      const outboxIds: string[] = [];
      for (const batch of batches) {
        const { outboxId } = await store.save(batch);
        assert.ok(outboxId !== null);
        outboxIds.push(outboxId);
      }
      const [first = '', second = '', third = ''] = outboxIds;
      await store.markPublished([first, third]);
      assert.deepEqual((await readBack()).outbox, new Map([[second, ['mark-2']]]));
      const resent = await store.save(batches.flat());
      assert.deepEqual(
        resent.existing,
        new Map([
          ['mark-1', { ...purchase('mark-1', 'mark-user', 100), pendingPublish: false }],
          [
            'mark-2',
            {
              ...purchase('mark-2', 'mark-user', 100),
              pendingPublish: true,
              pendingOutboxId: second,
            },
          ],
          ['mark-3', { ...purchase('mark-3', 'mark-user', 100), pendingPublish: false }],
        ]),
      );
      // Outbox recovery may have cleared an entry before the ingest that wrote it does.
      await store.markPublished([first]);
      await store.markPublished([]);
      assert.deepEqual((await readBack()).outbox, new Map([[second, ['mark-2']]]));
    });

    test('an empty batch stores nothing and opens no outbox entry', async ({ store, readBack }) => {
      const result = await store.save([]);
      assert.deepEqual(result, { outboxId: null, inserted: new Set(), existing: new Map() });
      assert.deepEqual(await readBack(), { purchases: new Map(), outbox: new Map() });
    });

    test('a batch holding a purchase the store cannot hold is refused whole', async ({
      store,
      readBack,
    }) => {
      const refused = [
        purchase('refused-zero', 'refused-user', 0),
        purchase('refused-negative', 'refused-user', -100),
        purchase('refused-fraction', 'refused-user', 49.99),
        // numeric(14, 2) holds up to 999,999,999,999.99.
        purchase('refused-huge', 'refused-user', 100_000_000_000_000),
        purchase('refused-nul', 'refused\u0000user', 100),
      ];
      for (const bad of refused) {
        await assert.rejects(
          store.save([purchase('refused-ok', 'refused-user', 100), bad]),
          (error: unknown) => {
            // Trying again cannot help: the caller must not retry it as unavailable.
            assert.ok(isSpendstreamError(error), String(error));
            assert.equal(error.code, 'internal');
            assert.equal(error.retryable, false);
            return true;
          },
          bad.id,
        );
      }
      assert.deepEqual(await readBack(), { purchases: new Map(), outbox: new Map() });
      // Nothing of the refused batches was kept: the good purchase is still new.
      const result = await store.save([purchase('refused-ok', 'refused-user', 100)]);
      assert.deepEqual(result.inserted, new Set(['refused-ok']));
    });

    test('saves running at once that share ids insert each id once and answer for all', async ({
      store,
      readBack,
    }) => {
      const shared = Array.from({ length: 100 }, (_, i) =>
        purchase(`race-${String(i).padStart(3, '0')}`, `race-user-${i % 5}`, 500 + i),
      );
      const [a, b] = await Promise.all([
        store.save([...shared, purchase('race-own-1', 'race-user-0', 1)]),
        store.save([...shared].reverse().concat(purchase('race-own-2', 'race-user-1', 2))),
      ]);
      for (const p of shared) {
        const winner = a.inserted.has(p.id) ? a : b;
        const other = winner === a ? b : a;
        assert.ok(winner.inserted.has(p.id) && !other.inserted.has(p.id), `${p.id} inserted once`);
        assert.deepEqual(other.existing.get(p.id), {
          ...p,
          pendingPublish: true,
          pendingOutboxId: winner.outboxId,
        });
      }
      assert.ok(a.inserted.has('race-own-1') && b.inserted.has('race-own-2'));
      assert.equal((await readBack()).purchases.size, shared.length + 2);
    });

    test('save takes the purchases as they were when it was called', async ({
      store,
      readBack,
    }) => {
      const batch = [
        purchase('reuse-1', 'reuse-user', 100),
        purchase('reuse-2', 'reuse-user', 200),
      ];
      const saving = store.save(batch);
      // A caller reusing its buffer for the next batch must not change this one.
      batch.length = 0;
      batch.push(purchase('reuse-3', 'reuse-user', 300));
      const result = await saving;
      assert.deepEqual(result.inserted, new Set(['reuse-1', 'reuse-2']));
      assert.deepEqual([...(await readBack()).purchases.keys()].sort(), ['reuse-1', 'reuse-2']);
    });
  });
};
