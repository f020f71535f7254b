// Marble tests with the real decoder: decoding is synchronous, so virtual time shows that
// each consumed batch comes out decoded at once, and what it holds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { of } from 'rxjs';
// The wallet service's own decoder, so these cases check what the service will really do.
import { decodePurchaseEvent } from '../../core/purchaseEvent.ts';
import { createMarbleScheduler } from '../../testing/index.ts';
import type { DecodedBatch } from '../walletTypes.ts';
import type { ConsumedBatch, ConsumedRecord } from '../../core/records.ts';
import { decodeBatch } from './decodeBatch.ts';

const TOPIC = 'user_purchase';

const consumed = (offset: string, value: string | null): ConsumedRecord => ({
  offset,
  key: null,
  value: value === null ? null : Buffer.from(value),
});

const batchOf = (
  partition: number,
  records: readonly ConsumedRecord[],
  ref = 'ref',
): ConsumedBatch<string> => ({ ref, topic: TOPIC, partition, records });

/** Decodes one batch through the operator, synchronously. */
const decodeOne = (batch: ConsumedBatch<string>): DecodedBatch<string> => {
  const decoded: DecodedBatch<string>[] = [];
  of(batch)
    .pipe(decodeBatch<string>(decodePurchaseEvent))
    .subscribe((value) => decoded.push(value));
  assert.equal(decoded.length, 1);
  return decoded[0];
};

const event = (userId: string, amountCents: number, id = `p-${userId}-${amountCents}`) =>
  JSON.stringify({ id, user_id: userId, amount: amountCents / 100, amount_cents: amountCents });

test('emits one decoded batch per consumed batch, as it arrives, and completes with them', () => {
  const first = batchOf(0, [consumed('0', event('u1', 100))], 'a');
  const second = batchOf(1, [consumed('7', event('u2', 250))], 'b');
  createMarbleScheduler().run(({ cold, expectObservable }) => {
    const batches = cold('-a--b|', { a: first, b: second });
    expectObservable(batches.pipe(decodeBatch<string>(decodePurchaseEvent))).toBe('-a--b|', {
      a: {
        batch: first,
        records: [{ partition: 0, offset: '0', userId: 'u1', amountCents: 100 }],
        poison: [],
      },
      b: {
        batch: second,
        records: [{ partition: 1, offset: '7', userId: 'u2', amountCents: 250 }],
        poison: [],
      },
    });
  });
});

test('valid records become wallet records carrying their partition and offset, in order', () => {
  const batch = batchOf(3, [
    consumed('41', event('u1', 1234)),
    consumed('42', event('u2', 1)),
    consumed('43', event('u1', 100_000_000)),
  ]);
  const decoded = decodeOne(batch);

  assert.equal(decoded.batch, batch, 'the consumed batch rides along, for its ref and offsets');
  assert.deepEqual(decoded.records, [
    { partition: 3, offset: '41', userId: 'u1', amountCents: 1234 },
    { partition: 3, offset: '42', userId: 'u2', amountCents: 1 },
    { partition: 3, offset: '43', userId: 'u1', amountCents: 100_000_000 },
  ]);
  assert.deepEqual(decoded.poison, []);
});

test("the proof of concept's value decodes to exact cents", () => {
  const decoded = decodeOne(batchOf(0, [consumed('5', '{"user_id":"123","amount":49.99}')]));
  assert.deepEqual(decoded.records, [
    { partition: 0, offset: '5', userId: '123', amountCents: 4999 },
  ]);
  assert.deepEqual(decoded.poison, []);
});

test('records that are not purchases are set aside with a reason; the rest still decode', () => {
  const records = [
    consumed('10', event('u1', 100)),
    consumed('11', null),
    consumed('12', event('u2', 200)),
    consumed('13', 'not json {'),
    consumed('14', '{"amount":12.5}'),
    consumed('15', '{"user_id":"u3","amount":300}'),
    consumed('16', '{"user_id":"u4","amount":1.999}'),
    consumed('17', '{"user_id":"u4","amount":-5}'),
    consumed('18', '{"user_id":"u4","amount":"ten"}'),
    // More than the ingest service ever accepts: counting it could overflow a total.
    consumed('19', '{"user_id":"u4","amount_cents":100000001}'),
    consumed('20', event('u1', 400)),
  ];
  const decoded = decodeOne(batchOf(2, records));

  assert.deepEqual(decoded.records, [
    { partition: 2, offset: '10', userId: 'u1', amountCents: 100 },
    { partition: 2, offset: '12', userId: 'u2', amountCents: 200 },
    { partition: 2, offset: '15', userId: 'u3', amountCents: 30_000 },
    { partition: 2, offset: '20', userId: 'u1', amountCents: 400 },
  ]);
  const reasons = [
    /no value/,
    /not JSON/,
    /user_id/,
    /amount is not a positive decimal/,
    /amount is not a positive decimal/,
    /amount is not a positive decimal/,
    /amount/,
  ];
  assert.deepEqual(
    decoded.poison.map(({ record }) => record.offset),
    ['11', '13', '14', '16', '17', '18', '19'],
  );
  decoded.poison.forEach((poison, index) => {
    // The original record, untouched, so the dead-letter topic gets its key and bytes.
    assert.equal(poison.record, records[Number(poison.record.offset) - 10]);
    assert.equal(poison.topic, TOPIC);
    assert.equal(poison.partition, 2);
    assert.match(poison.reason, reasons[index]);
  });
});

test('a batch of nothing but poison decodes to no records, every one set aside', () => {
  const decoded = decodeOne(batchOf(0, [consumed('0', ''), consumed('1', '[]')]));
  assert.deepEqual(decoded.records, []);
  assert.deepEqual(
    decoded.poison.map((p) => [p.record.offset, p.reason]),
    [
      ['0', 'invalid purchase event: not JSON'],
      ['1', 'invalid purchase event: not a JSON object'],
    ],
  );
});

test('a decoder throwing something other than an Error still gives a reason', () => {
  const decoded: DecodedBatch<string>[] = [];
  of(batchOf(0, [consumed('0', '{}')]))
    .pipe(
      decodeBatch<string>(() => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- the case under test
        throw 'unreadable';
      }),
    )
    .subscribe((value) => decoded.push(value));
  assert.deepEqual(
    decoded.map((d) => d.poison.map((p) => p.reason)),
    [['unreadable']],
  );
});
